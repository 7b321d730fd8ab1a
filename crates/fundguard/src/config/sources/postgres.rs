//! `type: postgres` — PostgreSQL logical decoding (wal2json) through a replication slot.

use std::path::PathBuf;
use std::time::Duration;

use fundguard_rules::parse_duration;
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
    #[serde(default)]
    create_slot: bool,
    /// `schema.table` patterns to read; empty reads every table.
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    poll_interval: Option<String>,
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
        Ok(SourceKind::Postgres(fundguard_sources::postgres::PostgresConfig {
            url: self.url,
            password,
            tls,
            slot: self.slot,
            create_slot: self.create_slot,
            include: self.include,
            poll_interval,
        }))
    }
}
