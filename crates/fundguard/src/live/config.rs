//! `fundguard.yaml`: what `fundguard run` reads, where, and where findings go.
//!
//! Parsed with locations like rule files; secrets never appear in it — a source names
//! the environment variable that holds its token.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fundguard_formats::Format;
use fundguard_formats::plain::{PlainConfig, TableFrom};
use fundguard_rules::{Diagnostic, Location, parse_duration};
use serde::Deserialize;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    rules: Vec<PathBuf>,
    #[serde(default)]
    schema: Option<PathBuf>,
    #[serde(default)]
    data_dir: Option<PathBuf>,
    #[serde(default)]
    listen: Option<String>,
    #[serde(default)]
    idle_after: Option<String>,
    #[serde(default)]
    sources: Vec<SourceFile>,
    #[serde(default)]
    sinks: Vec<SinkConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum SourceFile {
    Http {
        name: String,
        format: String,
        #[serde(default)]
        table: Option<String>,
        #[serde(default)]
        table_field: Option<String>,
        #[serde(default)]
        time_field: Option<String>,
        token_env: String,
        #[serde(default)]
        max_body_bytes: Option<usize>,
        #[serde(default)]
        max_messages: Option<usize>,
    },
    Nats {
        name: String,
        format: String,
        #[serde(default)]
        table: Option<String>,
        #[serde(default)]
        table_field: Option<String>,
        #[serde(default)]
        time_field: Option<String>,
        url: String,
        stream: String,
        #[serde(default)]
        subjects: Vec<String>,
        consumer: String,
        #[serde(default)]
        create: bool,
        /// JSON format: subject → table, for subjects whose messages are of different types.
        #[serde(default)]
        tables: std::collections::BTreeMap<String, String>,
    },
    File {
        name: String,
        path: PathBuf,
        format: String,
        #[serde(default)]
        table: Option<String>,
        #[serde(default)]
        table_field: Option<String>,
        #[serde(default)]
        time_field: Option<String>,
        #[serde(default)]
        follow: bool,
    },
}

/// Where findings are written.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    /// Findings appended as JSON lines.
    Jsonl {
        path: PathBuf,
    },
    Stdout,
}

/// A validated source.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    pub format: Format,
    pub kind: SourceKind,
}

#[derive(Debug, Clone)]
pub enum SourceKind {
    Http { token: String, max_body_bytes: usize, max_messages: usize },
    File { path: PathBuf, follow: bool },
    Nats { nats: fundguard_sources::nats::NatsConfig, tables: std::collections::HashMap<String, String> },
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub rules: Vec<PathBuf>,
    pub schema: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub listen: Option<String>,
    pub idle_after: Duration,
    pub sources: Vec<SourceConfig>,
    pub sinks: Vec<SinkConfig>,
}

/// Reads and validates a config file; paths in it are relative to the file's directory.
/// `env` looks up environment variables (injected so tests need not touch the process's).
pub fn load(path: &Path, env: impl Fn(&str) -> Option<String>) -> Result<Config, Vec<Diagnostic>> {
    let name: Arc<str> = Arc::from(path.display().to_string());
    let at = |line, column| Location::new(name.clone(), line, column);
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![Diagnostic::new(at(0, 0), format!("cannot read the config file: {e}"))])?;
    let file: ConfigFile = serde_saphyr::from_str(&text).map_err(|e| {
        let (line, column) = e.location().map(|l| (l.line() as usize, l.column() as usize)).unwrap_or((0, 0));
        let message = e.without_snippet().to_string();
        let message = message.split(" at line ").next().unwrap_or_default().to_string();
        vec![Diagnostic::new(at(line, column), message)]
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let rel = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
    let mut problems = Vec::new();
    let idle_after = match &file.idle_after {
        Some(d) => parse_duration(d).unwrap_or_else(|e| {
            problems.push(Diagnostic::new(at(0, 0), format!("idle_after: {e}")));
            Duration::from_secs(5)
        }),
        None => Duration::from_secs(5),
    };
    if file.rules.is_empty() {
        problems.push(Diagnostic::new(at(0, 0), "`rules` is empty: expected at least one rule file or directory"));
    }
    let mut sources = Vec::new();
    for source in file.sources {
        let (name, format, table, table_field, time_field) = match &source {
            SourceFile::Http { name, format, table, table_field, time_field, .. }
            | SourceFile::Nats { name, format, table, table_field, time_field, .. }
            | SourceFile::File { name, format, table, table_field, time_field, .. } => {
                (name.clone(), format.clone(), table.clone(), table_field.clone(), time_field.clone())
            }
        };
        if sources.iter().any(|s: &SourceConfig| s.name == name) {
            problems
                .push(Diagnostic::new(at(0, 0), format!("source `{name}` is declared twice: names must be unique")));
        }
        let format = match format.as_str() {
            "debezium" => Format::Debezium,
            "canal" => Format::Canal,
            "maxwell" => Format::Maxwell,
            "json" => Format::Json(PlainConfig {
                table: match (table, table_field) {
                    (Some(t), _) => TableFrom::Fixed(t),
                    (None, Some(f)) => TableFrom::Field(f),
                    (None, None) => TableFrom::Field("type".into()),
                },
                time_field: time_field.unwrap_or_else(|| "ts".into()),
            }),
            other => {
                problems.push(Diagnostic::new(
                    at(0, 0),
                    format!("source `{name}`: format `{other}`: expected debezium, canal, maxwell or json"),
                ));
                continue;
            }
        };
        let kind = match source {
            SourceFile::Http { token_env, max_body_bytes, max_messages, .. } => {
                if file.listen.is_none() {
                    problems.push(Diagnostic::new(
                        at(0, 0),
                        format!(
                            "source `{name}` is an HTTP source but `listen` is not set: add `listen: 127.0.0.1:8080`"
                        ),
                    ));
                }
                match env(&token_env).filter(|t| !t.is_empty()) {
                    Some(token) => SourceKind::Http {
                        token,
                        max_body_bytes: max_body_bytes.unwrap_or(1 << 20),
                        max_messages: max_messages.unwrap_or(10_000),
                    },
                    None => {
                        problems.push(Diagnostic::new(
                            at(0, 0),
                            format!("source `{name}`: environment variable {token_env} is not set: export the ingest token there (never in this file)"),
                        ));
                        continue;
                    }
                }
            }
            SourceFile::File { path, follow, .. } => SourceKind::File { path: rel(&path), follow },
            SourceFile::Nats { url, stream, subjects, consumer, create, tables, .. } => {
                if create && subjects.is_empty() {
                    problems.push(Diagnostic::new(
                        at(0, 0),
                        format!("source `{name}`: `create: true` needs the stream's `subjects`"),
                    ));
                }
                if !tables.is_empty() && !matches!(format, Format::Json(_)) {
                    problems.push(Diagnostic::new(
                        at(0, 0),
                        format!("source `{name}`: `tables` maps subjects of JSON messages; {} messages name their own table", format.name()),
                    ));
                }
                SourceKind::Nats {
                    nats: fundguard_sources::nats::NatsConfig { url, stream, subjects, consumer, create },
                    tables: tables.into_iter().collect(),
                }
            }
        };
        sources.push(SourceConfig { name, format, kind });
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let sinks = if file.sinks.is_empty() { vec![SinkConfig::Stdout] } else { file.sinks };
    let sinks = sinks
        .into_iter()
        .map(|s| match s {
            SinkConfig::Jsonl { path } => SinkConfig::Jsonl { path: rel(&path) },
            other => other,
        })
        .collect();
    Ok(Config {
        rules: file.rules.iter().map(|p| rel(p)).collect(),
        schema: file.schema.as_deref().map(rel),
        data_dir: rel(&file.data_dir.unwrap_or_else(|| PathBuf::from("fundguard-data"))),
        listen: file.listen,
        idle_after,
        sources,
        sinks,
    })
}
