//! `sinks:` — where findings are written: JSON lines, stdout, or the alert store.

use std::path::PathBuf;

use serde::Deserialize;

use super::loader::Loader;

/// Where findings are written.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    /// Findings appended as JSON lines.
    Jsonl {
        path: PathBuf,
    },
    Stdout,
    /// Findings recorded as alerts: in the SQLite store (default `DATA_DIR/alerts.db`), or
    /// in PostgreSQL at the URL in the environment variable `postgres_env`.
    Alerts {
        #[serde(default)]
        path: Option<PathBuf>,
        #[serde(default)]
        postgres_env: Option<String>,
        /// The URL read from `postgres_env` at load time.
        #[serde(skip)]
        postgres_url: Option<String>,
    },
}

/// Checks the secrets the sinks name (a problem for each one unset).
pub(super) fn check(sinks: &[SinkConfig], loader: &mut Loader) {
    for sink in sinks {
        if let SinkConfig::Alerts { postgres_env: Some(var), .. } = sink
            && loader.env(var).is_none()
        {
            loader.problem(
                loader.at(0, 0),
                format!("the alerts sink: environment variable {var} is not set: export the PostgreSQL URL there"),
            );
        }
    }
}

/// The sinks with paths made absolute and secrets read (stdout when none is given).
pub(super) fn resolve(sinks: Vec<SinkConfig>, data_dir: &std::path::Path, loader: &Loader) -> Vec<SinkConfig> {
    let sinks = if sinks.is_empty() { vec![SinkConfig::Stdout] } else { sinks };
    sinks
        .into_iter()
        .map(|s| match s {
            SinkConfig::Jsonl { path } => SinkConfig::Jsonl { path: loader.rel(&path) },
            SinkConfig::Alerts { path, postgres_env, .. } => SinkConfig::Alerts {
                path: Some(path.map_or_else(|| data_dir.join("alerts.db"), |p| loader.rel(&p))),
                postgres_url: postgres_env.as_deref().and_then(|var| loader.env(var)),
                postgres_env,
            },
            other => other,
        })
        .collect()
}
