//! What every section needs while it validates itself: where the file is (for the
//! location of each problem and for relative paths), the environment (for secrets), and
//! the list of problems found so far.
//!
//! Sections report every problem they find instead of stopping at the first, so one
//! `fundguard validate` shows a user everything to fix.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fundguard_rules::{Diagnostic, Location, parse_duration};
use serde_saphyr::Spanned;

/// The state of one `config::load`.
pub(crate) struct Loader<'a> {
    file: Arc<str>,
    /// The config file's directory: relative paths in the file are relative to it.
    pub base: PathBuf,
    env: &'a dyn Fn(&str) -> Option<String>,
    pub problems: Vec<Diagnostic>,
}

impl<'a> Loader<'a> {
    pub fn new(path: &Path, env: &'a dyn Fn(&str) -> Option<String>) -> Loader<'a> {
        Loader {
            file: Arc::from(path.display().to_string()),
            base: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            env,
            problems: Vec::new(),
        }
    }

    /// A place in the file (`0, 0` for the file as a whole).
    pub fn at(&self, line: usize, column: usize) -> Location {
        Location::new(self.file.clone(), line, column)
    }

    /// Where a spanned value was written.
    pub fn at_value<T>(&self, spanned: &Spanned<T>) -> Location {
        self.at(spanned.referenced.line() as usize, spanned.referenced.column() as usize)
    }

    /// `path` as written, made absolute against the config file's directory.
    pub fn rel(&self, path: &Path) -> PathBuf {
        if path.is_absolute() { path.to_path_buf() } else { self.base.join(path) }
    }

    /// An environment variable's value; an empty one counts as unset.
    pub fn env(&self, var: &str) -> Option<String> {
        (self.env)(var).filter(|v| !v.is_empty())
    }

    pub fn problem(&mut self, at: Location, message: impl Into<String>) {
        self.problems.push(Diagnostic::new(at, message));
    }

    /// A top-level duration setting (`key: 5s`), or `default` when it is left out or wrong
    /// (a wrong one is a problem).
    pub fn duration_or(&mut self, key: &str, value: Option<&String>, default: Duration) -> Duration {
        let Some(value) = value else { return default };
        parse_duration(value).unwrap_or_else(|e| {
            self.problem(self.at(0, 0), format!("{key}: {e}"));
            default
        })
    }

    /// A duration written at a known place; `None` (and a problem there) when it is wrong.
    pub fn spanned_duration(&mut self, value: &Spanned<String>) -> Option<Duration> {
        match parse_duration(&value.value) {
            Ok(d) => Some(d),
            Err(e) => {
                self.problem(self.at_value(value), e);
                None
            }
        }
    }
}

/// A secret read from a file at load: one trailing newline (`\n` or `\r\n`) dropped.
/// Errors name the file and never show what it holds.
pub(crate) fn secret_file(path: &Path) -> Result<String, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: cannot read it: {}", path.display(), e.kind()))?;
    let text = String::from_utf8(text).map_err(|_| format!("{}: not UTF-8 text", path.display()))?;
    let secret = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
    if secret.is_empty() {
        return Err(format!("{} is empty: write the secret there", path.display()));
    }
    Ok(secret.to_string())
}
