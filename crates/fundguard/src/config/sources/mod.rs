//! `sources:` — where events come from. Each kind of source is one module here holding
//! what a user writes for it and how that is checked; what it validates into is the
//! source's own config type, defined next to its implementation (`fundguard_sources::
//! binlog::BinlogConfig`, `…::kafka::KafkaConfig`, …).
//!
//! Adding a kind of source: implement it (usually in `fundguard-sources`), add a module
//! here implementing [`SourceSpec`], and add its line to [`SourceFile`] and
//! [`SourceFile::into_spec`]; `live::sources` starts it.

/// The [`SourceSpec`] methods every message source shares — its name, and how its messages
/// are decoded from its `format`, `table`, `table_field` and `time_field` — for sources
/// that carry those fields. (A shared struct cannot be flattened into sources that refuse
/// unknown fields, which is why this is a macro.)
macro_rules! message_source_spec {
    () => {
        fn name(&self) -> &str {
            &self.name
        }

        fn message_format(&self) -> Option<Result<fundguard_formats::Format, String>> {
            Some(super::message_format(&self.format, &self.table, &self.table_field, &self.time_field))
        }
    };
}

mod file;
mod http;
mod kafka;
mod mysql;
mod nats;
mod postgres;
mod simulator;
mod tls;

use std::collections::HashMap;
use std::path::PathBuf;

use fundguard_formats::Format;
use fundguard_formats::plain::{PlainConfig, TableFrom};
use fundguard_rules::Location;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::loader::{Loader, secret_file};

/// The registry: one line for each kind of source, named by `type:` in the file.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum SourceFile {
    Http(http::HttpSource),
    Nats(nats::NatsSource),
    Kafka(kafka::KafkaSource),
    Mysql(mysql::MysqlSource),
    Postgres(postgres::PostgresSource),
    File(file::FileSource),
    Simulator(simulator::SimulatorSource),
}

impl SourceFile {
    fn into_spec(self) -> Box<dyn SourceSpec> {
        match self {
            SourceFile::Http(s) => Box::new(s),
            SourceFile::Nats(s) => Box::new(s),
            SourceFile::Kafka(s) => Box::new(s),
            SourceFile::Mysql(s) => Box::new(s),
            SourceFile::Postgres(s) => Box::new(s),
            SourceFile::File(s) => Box::new(s),
            SourceFile::Simulator(s) => Box::new(s),
        }
    }
}

/// What each kind of source, as written, tells the loader and how it validates itself.
trait SourceSpec {
    fn name(&self) -> &str;

    /// How its messages are decoded; `None` for database logs, which sources decode
    /// themselves, and for the simulator.
    fn message_format(&self) -> Option<Result<Format, String>> {
        None
    }

    /// The connection string, which must not carry a password.
    fn url(&self) -> Option<&str> {
        None
    }

    /// The validated source. Problems go to `scope`; `Err` leaves the source out.
    fn validate(self: Box<Self>, scope: &mut Scope) -> Result<SourceKind, Reported>;
}

/// A validated source.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    /// How messages are decoded; `None` for database logs, which sources decode themselves.
    pub format: Option<Format>,
    pub kind: SourceKind,
}

/// What each kind of source needs to run.
#[derive(Debug, Clone)]
pub enum SourceKind {
    Http { token: String, max_body_bytes: usize, max_messages: usize, rate: fundguard_server::IngestRate },
    Simulator { orders: u64, incident_rate: f64, seed: u64, speed: u32 },
    File { path: PathBuf, follow: bool },
    Nats { nats: fundguard_sources::nats::NatsConfig, tables: HashMap<String, String> },
    Kafka { kafka: fundguard_sources::kafka::KafkaConfig, tables: HashMap<String, String> },
    Mysql(fundguard_sources::binlog::BinlogConfig),
    Postgres(fundguard_sources::postgres::PostgresConfig),
}

/// A problem was reported (to the [`Scope`]) and the source is left out.
pub(super) struct Reported;

/// One source being validated: its name and place, so every problem names both, and what
/// the rest of the file says that a source depends on.
pub(super) struct Scope<'s, 'a> {
    name: String,
    here: Location,
    format: Option<Format>,
    /// Whether the file sets `listen` (HTTP sources are served there).
    pub has_listen: bool,
    loader: &'s mut Loader<'a>,
}

impl Scope<'_, '_> {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reports `source `name`: {message}` at the source's place.
    pub fn problem(&mut self, message: impl std::fmt::Display) -> Reported {
        let message = format!("source `{}`: {message}", self.name);
        self.loader.problem(self.here.clone(), message);
        Reported
    }

    /// Reports a message as it is, at the source's place.
    pub fn problem_as_is(&mut self, message: String) {
        self.loader.problem(self.here.clone(), message);
    }

    /// `path` as written, made absolute against the config file's directory.
    pub fn rel(&self, path: &std::path::Path) -> PathBuf {
        self.loader.rel(path)
    }

    /// Whether messages are plain JSON (which may need a table per topic or subject).
    pub fn is_json(&self) -> bool {
        matches!(self.format, Some(Format::Json(_)))
    }

    pub fn format_name(&self) -> &'static str {
        self.format.as_ref().map(Format::name).unwrap_or_default()
    }

    /// The secret in environment variable `var`.
    pub fn secret_env(&mut self, var: &str) -> Result<String, Reported> {
        match self.loader.env(var) {
            Some(secret) => Ok(secret),
            None => Err(self.problem(format_args!(
                "environment variable {var} is not set: export the secret there (never in this file)"
            ))),
        }
    }

    /// A password from `{what}password_env` or `{what}password_file` (`what` is the key's
    /// prefix, `sasl.` say); `None` when neither is given.
    pub fn password(
        &mut self,
        what: &str,
        var: &Option<String>,
        file: &Option<PathBuf>,
    ) -> Result<Option<String>, Reported> {
        match (var, file) {
            (Some(_), Some(_)) => {
                Err(self.problem(format_args!("give {what}password_env or {what}password_file, not both")))
            }
            (_, Some(file)) => match secret_file(&self.rel(file)) {
                Ok(secret) => Ok(Some(secret)),
                Err(e) => Err(self.problem(format_args!("{what}password_file {e}"))),
            },
            (Some(var), None) => self.secret_env(var).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// A database's `password_env`/`password_file` and `tls:` block, both checked before
    /// either fails, so one run reports both.
    pub fn credentials(
        &mut self,
        password_env: &Option<String>,
        password_file: &Option<PathBuf>,
        tls: Option<tls::TlsFile>,
    ) -> Result<(Option<String>, Option<fundguard_sources::tls::TlsConfig>), Reported> {
        let password = self.password("", password_env, password_file);
        let tls = self.tls(tls, true);
        Ok((password?, tls?))
    }

    /// A `tls:` block; `verify_ca` says whether the source's client can skip the host check.
    pub fn tls(
        &mut self,
        file: Option<tls::TlsFile>,
        verify_ca: bool,
    ) -> Result<Option<fundguard_sources::tls::TlsConfig>, Reported> {
        let Some(file) = file else { return Ok(None) };
        file.validate(&|p| self.loader.rel(p), verify_ca).map(Some).map_err(|e| self.problem(format_args!("tls: {e}")))
    }
}

/// Validates `sources:`; the sources with problems are left out (and the problems reported).
pub(super) fn validate(written: Vec<Spanned<SourceFile>>, has_listen: bool, loader: &mut Loader) -> Vec<SourceConfig> {
    let mut sources = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for spanned in written {
        let here = loader.at_value(&spanned);
        let spec = spanned.value.into_spec();
        let name = spec.name().to_string();
        let format = spec.message_format().transpose();
        let mut scope = Scope { name: name.clone(), here, format: None, has_listen, loader };
        let format = match format {
            Ok(format) => format,
            Err(e) => {
                scope.problem(e);
                continue;
            }
        };
        scope.format = format.clone();
        if names.contains(&name) {
            scope.problem_as_is(format!("source `{name}` is declared twice: names must be unique"));
        }
        names.push(name.clone());
        if spec.url().is_some_and(carries_password) {
            scope.problem(
                "`url` carries a password: remove it from the URL and name the environment variable that holds it in `password_env`, or a file in `password_file` (secrets never live in this file)",
            );
            continue;
        }
        if let Ok(kind) = spec.validate(&mut scope) {
            sources.push(SourceConfig { name, format, kind });
        }
    }
    sources
}

/// How a message source's messages are decoded, from its `format`, `table`, `table_field`
/// and `time_field`.
fn message_format(
    format: &str,
    table: &Option<String>,
    table_field: &Option<String>,
    time_field: &Option<String>,
) -> Result<Format, String> {
    Ok(match format {
        "debezium" => Format::Debezium,
        "canal" => Format::Canal,
        "maxwell" => Format::Maxwell,
        "json" => Format::Json(PlainConfig {
            table: match (table, table_field) {
                (Some(t), _) => TableFrom::Fixed(t.clone()),
                (None, Some(f)) => TableFrom::Field(f.clone()),
                (None, None) => TableFrom::Field("type".into()),
            },
            time_field: time_field.clone().unwrap_or_else(|| "ts".into()),
        }),
        other => return Err(format!("format `{other}`: expected debezium, canal, maxwell or json")),
    })
}

/// Whether a connection string carries a password: `scheme://user:secret@host`, a
/// `password=` query parameter, or a libpq `password=` keyword. Such a secret would sit in
/// the config file in clear and travel into logs and errors with the URL.
fn carries_password(url: &str) -> bool {
    let keyword = |text: &str| text.split(['?', '&', ' ']).any(|part| part.trim_start().starts_with("password="));
    match url.split_once("://") {
        Some((_, rest)) => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let in_userinfo = authority.rsplit_once('@').is_some_and(|(userinfo, _)| userinfo.contains(':'));
            in_userinfo || keyword(rest)
        }
        None => keyword(url),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_in_connection_strings_are_found() {
        for url in [
            "mysql://root:hunter2@db:3306",
            "postgres://fg:pw@db/shop",
            "postgres://fg@db/shop?sslmode=disable&password=pw",
            "host=db user=fg password=pw dbname=shop",
            "nats://u:p@127.0.0.1:4222",
        ] {
            assert!(super::carries_password(url), "{url}");
        }
        for url in [
            "mysql://root@db:3306",
            "postgres://fg@db/shop?sslmode=disable",
            "nats://127.0.0.1:4222",
            "host=db user=fg",
        ] {
            assert!(!super::carries_password(url), "{url}");
        }
    }
}
