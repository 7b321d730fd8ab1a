//! The file as written: `fundguard.yaml` parsed with the place of every value, so each
//! problem names its line and column as a rule file's do. Each section's own type lives
//! in its module and validates itself; this is only the table of contents.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fundguard_rules::Diagnostic;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::console::ConsoleFile;
use super::health::HealthFile;
use super::limits::LimitsFile;
use super::loader::Loader;
use super::notify::NotifyFile;
use super::sinks::SinkConfig;
use super::slo::DeadlinesFile;
use super::sources::SourceFile;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigFile {
    pub rules: Vec<PathBuf>,
    #[serde(default)]
    pub schema: Option<PathBuf>,
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub listen: Option<String>,
    #[serde(default)]
    pub idle_after: Option<String>,
    /// How long a SIGTERM may take to drain (default 30s).
    #[serde(default)]
    pub shutdown_timeout: Option<String>,
    /// How often positions, rule state and sink marks are checkpointed (default 5s).
    #[serde(default)]
    pub checkpoint_interval: Option<String>,
    #[serde(default)]
    pub limits: Option<LimitsFile>,
    /// Each entry keeps its place in the file, so a problem with it names its line.
    #[serde(default)]
    pub sources: Vec<Spanned<SourceFile>>,
    #[serde(default)]
    pub sinks: Vec<SinkConfig>,
    #[serde(default)]
    pub notify: Option<Spanned<NotifyFile>>,
    #[serde(default)]
    pub slo: BTreeMap<fundguard_core::Severity, DeadlinesFile>,
    #[serde(default)]
    pub console: Option<ConsoleFile>,
    /// Rule health thresholds (see docs/health.md).
    #[serde(default)]
    pub health: Option<HealthFile>,
    /// Tables `sql` rules query: files, object storage and databases (see docs/rules.md);
    /// each validates itself as it is read (`fundguard_warehouse::TableSource`).
    #[serde(default)]
    pub warehouse: Vec<fundguard_warehouse::TableSource>,
    /// Reference data rules read (see `super::lookups`).
    #[serde(default)]
    pub lookups: Vec<super::lookups::LookupFile>,
    /// Incidents and attribution (see `super::incidents`).
    #[serde(default)]
    pub incidents: Option<super::incidents::IncidentsFile>,
}

impl ConfigFile {
    /// Reads and parses the file; a syntax or shape error is one problem at its place.
    pub fn read(path: &Path, loader: &Loader) -> Result<ConfigFile, Vec<Diagnostic>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| vec![Diagnostic::new(loader.at(0, 0), format!("cannot read the config file: {e}"))])?;
        serde_saphyr::from_str(&text).map_err(|e| {
            let (line, column) = e.location().map(|l| (l.line() as usize, l.column() as usize)).unwrap_or((0, 0));
            let message = e.without_snippet().to_string();
            let message = message.split(" at line ").next().unwrap_or_default().to_string();
            vec![Diagnostic::new(loader.at(line, column), message)]
        })
    }
}
