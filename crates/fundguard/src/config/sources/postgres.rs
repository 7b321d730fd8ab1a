//! `type: postgres` — PostgreSQL logical decoding (wal2json or pgoutput) through a
//! replication slot.

use std::path::PathBuf;
use std::time::Duration;

use fundguard_rules::parse_duration;
use fundguard_sources::postgres::Plugin;
use serde::Deserialize;

use super::tls::TlsFile;
use super::{Reported, Scope, SourceKind, SourceSpec};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct PostgresSource {
    name: String,
    url: String,
    #[serde(default)]
    password_env: Option<String>,
    #[serde(default)]
    password_file: Option<PathBuf>,
    #[serde(default)]
    tls: Option<TlsFile>,
    slot: String,
    /// The slot's output plugin.
    #[serde(default)]
    plugin: PluginName,
    /// pgoutput: the publication whose tables the server streams.
    #[serde(default)]
    publication: Option<String>,
    #[serde(default)]
    create_publication: bool,
    #[serde(default)]
    create_slot: bool,
    /// `schema.table` patterns to read; empty reads every table.
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    poll_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum PluginName {
    #[default]
    Wal2json,
    Pgoutput,
}

impl SourceSpec for PostgresSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn url(&self) -> Option<&str> {
        Some(&self.url)
    }

    fn validate(self: Box<Self>, scope: &mut Scope) -> Result<SourceKind, Reported> {
        let (password, tls) = scope.credentials(&self.password_env, &self.password_file, self.tls)?;
        let poll_interval = match self.poll_interval.as_deref().map(parse_duration) {
            None => Duration::from_millis(100),
            Some(Ok(d)) => d,
            Some(Err(e)) => return Err(scope.problem(format_args!("poll_interval: {e}"))),
        };
        let plugin = match (self.plugin, self.publication) {
            (PluginName::Wal2json, None) if !self.create_publication => Plugin::Wal2Json,
            (PluginName::Wal2json, _) => {
                return Err(scope.problem(format_args!(
                    "publication: only `plugin: pgoutput` streams a publication (wal2json reads `include`)"
                )));
            }
            (PluginName::Pgoutput, Some(publication)) => {
                Plugin::PgOutput { publication, create_publication: self.create_publication }
            }
            (PluginName::Pgoutput, None) => {
                return Err(scope.problem(format_args!(
                    "plugin: pgoutput needs `publication:`, the publication whose tables the server sends \
                     (with `create_publication: true` fundguard creates it for the tables `include` matches)"
                )));
            }
        };
        Ok(SourceKind::Postgres(fundguard_sources::postgres::PostgresConfig {
            url: self.url,
            password,
            tls,
            slot: self.slot,
            plugin,
            create_slot: self.create_slot,
            include: self.include,
            poll_interval,
        }))
    }
}
