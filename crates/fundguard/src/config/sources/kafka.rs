//! `type: kafka` — Kafka topics read by a consumer group, over TLS and SASL when asked.

use std::collections::BTreeMap;
use std::path::PathBuf;

use fundguard_sources::kafka::{KafkaConfig, SASL_MECHANISMS, Sasl, StartAt};
use serde::Deserialize;

use super::tls::TlsFile;
use super::{Reported, Scope, SourceKind, SourceSpec};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct KafkaSource {
    name: String,
    format: String,
    #[serde(default)]
    table: Option<String>,
    #[serde(default)]
    table_field: Option<String>,
    #[serde(default)]
    time_field: Option<String>,
    brokers: String,
    group: String,
    topics: Vec<String>,
    /// JSON format: topic → table.
    #[serde(default)]
    tables: BTreeMap<String, String>,
    /// Where a new consumer group starts: `earliest` (default) or `latest`.
    #[serde(default)]
    start: Option<String>,
    /// Static group membership id; defaults to `fundguard-<source name>`.
    #[serde(default)]
    instance_id: Option<String>,
    #[serde(default)]
    tls: Option<TlsFile>,
    #[serde(default)]
    sasl: Option<SaslFile>,
}

/// `sasl:` as written. The password comes from the environment or a file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SaslFile {
    mechanism: String,
    username: String,
    #[serde(default)]
    password_env: Option<String>,
    #[serde(default)]
    password_file: Option<PathBuf>,
}

impl SourceSpec for KafkaSource {
    message_source_spec!();

    fn validate(self: Box<Self>, scope: &mut Scope) -> Result<SourceKind, Reported> {
        let KafkaSource { name, brokers, group, topics, tables, start, instance_id, tls, sasl, .. } = *self;
        let tls = scope.tls(tls, true)?;
        let sasl = match sasl {
            None => None,
            Some(sasl) => Some(sasl.validate(tls.is_some(), scope)?),
        };
        if !tables.is_empty() && !scope.is_json() {
            let format = scope.format_name();
            scope
                .problem(format_args!("`tables` maps topics of JSON messages; {format} messages name their own table"));
        }
        if topics.is_empty() {
            scope.problem("`topics` is empty: list the topics to consume");
        }
        let start = match start.as_deref() {
            None | Some("earliest") => StartAt::Earliest,
            Some("latest") => StartAt::Latest,
            Some(other) => return Err(scope.problem(format_args!("start `{other}`: expected earliest or latest"))),
        };
        Ok(SourceKind::Kafka {
            kafka: KafkaConfig {
                brokers,
                group,
                topics,
                start,
                instance_id: instance_id.unwrap_or_else(|| format!("fundguard-{name}")),
                tls,
                sasl,
            },
            tables: tables.into_iter().collect(),
        })
    }
}

impl SaslFile {
    fn validate(self, has_tls: bool, scope: &mut Scope) -> Result<Sasl, Reported> {
        let mechanism = self.mechanism.to_ascii_uppercase();
        if !SASL_MECHANISMS.contains(&mechanism.as_str()) {
            return Err(scope.problem(format_args!(
                "sasl.mechanism `{}`: expected SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN",
                self.mechanism
            )));
        }
        if mechanism == "PLAIN" && !has_tls {
            return Err(scope.problem("sasl PLAIN sends the password as it is: add a `tls` block"));
        }
        match scope.password("sasl.", &self.password_env, &self.password_file)? {
            Some(password) => Ok(Sasl { mechanism, username: self.username, password }),
            None => {
                Err(scope
                    .problem("sasl needs sasl.password_env or sasl.password_file (never the password in this file)"))
            }
        }
    }
}
