//! `type: nats` — a NATS JetStream stream read through a durable consumer.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::tls::TlsFile;
use super::{Reported, Scope, SourceKind, SourceSpec};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct NatsSource {
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
    tables: BTreeMap<String, String>,
    #[serde(default)]
    tls: Option<TlsFile>,
    /// A NATS `.creds` file (user JWT and NKey seed).
    #[serde(default)]
    credentials_file: Option<PathBuf>,
}

impl SourceSpec for NatsSource {
    message_source_spec!();

    fn url(&self) -> Option<&str> {
        Some(&self.url)
    }

    fn validate(self: Box<Self>, scope: &mut Scope) -> Result<SourceKind, Reported> {
        let NatsSource { url, stream, subjects, consumer, create, tables, tls, credentials_file, .. } = *self;
        // async-nats checks host names always (it has no verify-ca).
        let tls = scope.tls(tls, false)?;
        let credentials_file = credentials_file.map(|f| scope.rel(&f));
        if let Some(f) = &credentials_file
            && let Err(e) = std::fs::File::open(f)
        {
            return Err(scope.problem(format_args!("credentials_file {}: {e}", f.display())));
        }
        if create && subjects.is_empty() {
            scope.problem("`create: true` needs the stream's `subjects`");
        }
        if !tables.is_empty() && !scope.is_json() {
            let format = scope.format_name();
            scope.problem(format_args!(
                "`tables` maps subjects of JSON messages; {format} messages name their own table"
            ));
        }
        Ok(SourceKind::Nats {
            nats: fundguard_sources::nats::NatsConfig {
                url,
                stream,
                subjects,
                consumer,
                create,
                tls,
                credentials_file,
            },
            tables: tables.into_iter().collect(),
        })
    }
}
