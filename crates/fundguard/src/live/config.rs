//! `fundguard.yaml`: what `fundguard run` reads, where, and where findings go.
//!
//! Parsed with locations like rule files; secrets never appear in it — a source names
//! the environment variable (`*_env`) or the file (`password_file`) that holds its secret.

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
    /// How long a SIGTERM may take to drain (default 30s).
    #[serde(default)]
    shutdown_timeout: Option<String>,
    /// How often positions, rule state and sink marks are checkpointed (default 5s).
    #[serde(default)]
    checkpoint_interval: Option<String>,
    #[serde(default)]
    limits: Option<LimitsFile>,
    /// Each entry keeps its place in the file, so a problem with it names its line.
    #[serde(default)]
    sources: Vec<serde_saphyr::Spanned<SourceFile>>,
    #[serde(default)]
    sinks: Vec<SinkConfig>,
    #[serde(default)]
    notify: Option<serde_saphyr::Spanned<NotifyFile>>,
    #[serde(default)]
    slo: std::collections::BTreeMap<fundguard_core::Severity, DeadlinesFile>,
    #[serde(default)]
    console: Option<ConsoleFile>,
    /// Tables `sql` rules query: files, object storage and databases (see docs/rules.md).
    #[serde(default)]
    warehouse: Vec<fundguard_warehouse::TableSource>,
}

/// Resource limits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    /// Bytes of rule state all rules together may hold: `512MiB`, `2GiB`, or a number of bytes.
    #[serde(default)]
    state_memory: Option<serde_json::Value>,
    /// The largest message (file line, Kafka record, NATS message) decoded: longer ones are
    /// dead-lettered unread. `4MiB` by default.
    #[serde(default)]
    max_message_bytes: Option<serde_json::Value>,
}

/// Notification channels and the routing table (needs an `alerts` sink).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifyFile {
    #[serde(default)]
    channels: Vec<serde_saphyr::Spanned<ChannelFile>>,
    #[serde(default)]
    routes: Vec<serde_saphyr::Spanned<RouteFile>>,
    /// Base URL of alert pages, for links in messages.
    #[serde(default)]
    link: Option<String>,
    /// How often firing alerts are posted again to Alertmanager (default 5m).
    #[serde(default)]
    resend_every: Option<serde_saphyr::Spanned<String>>,
}

/// A notification channel as written: `type` says which kind; bot URLs carry access
/// tokens, so every URL may come from an environment variable instead (`url_env`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelFile {
    name: String,
    #[serde(rename = "type")]
    kind: ChannelKind,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    url_env: Option<String>,
    /// The signing secret (webhook HMAC, Feishu/Lark and DingTalk signatures).
    #[serde(default)]
    secret_env: Option<String>,
    /// Email: the sender and the recipients.
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Vec<String>,
    /// At most this many messages a minute; the rest wait (and group up), never dropped.
    #[serde(default)]
    max_per_minute: Option<usize>,
}

/// The kinds of notification channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Webhook,
    Alertmanager,
    Slack,
    Feishu,
    Dingtalk,
    Wecom,
    Email,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    #[serde(default)]
    severity: Vec<fundguard_core::Severity>,
    #[serde(default)]
    owner: Vec<String>,
    #[serde(default)]
    rule: Vec<String>,
    /// Any of the rule's tags.
    #[serde(default)]
    tags: Vec<String>,
    channels: Vec<String>,
}

/// `slo:` — deadlines per severity; what is not given keeps the practice's default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadlinesFile {
    #[serde(default)]
    detect: Option<serde_saphyr::Spanned<String>>,
    #[serde(default)]
    respond: Option<serde_saphyr::Spanned<String>>,
    #[serde(default)]
    resolve: Option<serde_saphyr::Spanned<String>>,
}

/// A validated notification channel.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    pub name: String,
    pub kind: ChannelKind,
    pub url: String,
    pub secret: Option<String>,
    /// Email only.
    pub from: String,
    pub to: Vec<String>,
    pub max_per_minute: Option<usize>,
}

/// Validated notification settings.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub channels: Vec<ChannelConfig>,
    pub routes: fundguard_alerts::Routes,
    pub link: Option<String>,
    /// How often firing alerts are posted again to Alertmanager, so it never times them out.
    pub resend_every: Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            channels: Vec::new(),
            routes: fundguard_alerts::Routes::default(),
            link: None,
            resend_every: Duration::from_secs(300),
        }
    }
}

/// `tls:` on a networked source (the same block for mysql, postgres, kafka and nats): its
/// presence turns TLS on; the server's certificate is always verified.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    /// `verify-full` (default: a trusted CA signed it and it names the host) or `verify-ca`.
    #[serde(default)]
    mode: Option<String>,
    /// PEM CA certificates to trust instead of the system's.
    #[serde(default)]
    ca_file: Option<PathBuf>,
    /// A client certificate and its PEM (PKCS#8) key, for servers that ask for one.
    #[serde(default)]
    cert_file: Option<PathBuf>,
    #[serde(default)]
    key_file: Option<PathBuf>,
}

/// `sasl:` on a Kafka source. The password comes from the environment or a file.
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
        /// Requests a second this source accepts (a token bucket holding one second's worth).
        #[serde(default)]
        max_requests_per_second: Option<f64>,
        /// Messages a second this source accepts.
        #[serde(default)]
        max_messages_per_second: Option<f64>,
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
        #[serde(default)]
        tls: Option<TlsFile>,
        /// A NATS `.creds` file (user JWT and NKey seed).
        #[serde(default)]
        credentials_file: Option<PathBuf>,
    },
    Kafka {
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
        tables: std::collections::BTreeMap<String, String>,
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
    },
    Mysql {
        name: String,
        url: String,
        #[serde(default)]
        password_env: Option<String>,
        #[serde(default)]
        password_file: Option<PathBuf>,
        #[serde(default)]
        tls: Option<TlsFile>,
        #[serde(default)]
        server_id: Option<u32>,
        /// `end` (default) or `beginning`, when no position is stored and none is given.
        #[serde(default)]
        start: Option<String>,
        #[serde(default)]
        start_file: Option<String>,
        #[serde(default)]
        start_offset: Option<u64>,
        #[serde(default)]
        start_gtid: Option<String>,
        #[serde(default)]
        include: Vec<String>,
        #[serde(default)]
        exclude: Vec<String>,
        /// The zone of DATETIME columns, `+08:00`; UTC when absent.
        #[serde(default)]
        datetime_offset: Option<String>,
    },
    Postgres {
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
    /// The built-in shop simulator, replayed in real time with injected incidents: a
    /// source that needs nothing else (what `fundguard demo` runs).
    Simulator {
        name: String,
        #[serde(default)]
        orders: Option<u64>,
        /// Fraction of orders carrying an incident.
        #[serde(default)]
        incident_rate: Option<f64>,
        #[serde(default)]
        seed: Option<u64>,
        /// Simulated seconds per real second.
        #[serde(default)]
        speed: Option<u32>,
    },
}

/// `console:` — who may use the console and the API. Secrets come from the environment.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsoleFile {
    #[serde(default)]
    users: Vec<serde_saphyr::Spanned<PrincipalFile>>,
    #[serde(default)]
    tokens: Vec<serde_saphyr::Spanned<PrincipalFile>>,
    /// `Secure` on the session cookie; default: yes, unless `listen` is a loopback address.
    #[serde(default)]
    secure_cookies: Option<bool>,
    /// Lock-out after failed logins.
    #[serde(default)]
    login: Option<LoginFile>,
}

/// `console.login:` — failed logins of one user, or from one address, within `within`
/// that lock it out for `lockout`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginFile {
    #[serde(default)]
    max_failures: Option<usize>,
    #[serde(default)]
    within: Option<String>,
    #[serde(default)]
    lockout: Option<String>,
}

/// A console user (`password_env`) or an API token (`token_env`) with its role and the
/// teams whose alerts it works (every team's when left out).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrincipalFile {
    name: String,
    role: String,
    #[serde(default)]
    teams: Option<Vec<String>>,
    #[serde(default)]
    password_env: Option<String>,
    /// A user's password from a file instead (read at load, trailing newline dropped).
    #[serde(default)]
    password_file: Option<PathBuf>,
    #[serde(default)]
    token_env: Option<String>,
}

/// Validated console access: users (name, password) and API tokens (name, token), and
/// how logins are guarded.
#[derive(Debug, Clone, Default)]
pub struct ConsoleConfig {
    pub users: Vec<fundguard_server::Credential>,
    pub tokens: Vec<fundguard_server::Credential>,
    pub login: fundguard_server::LoginPolicy,
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

/// A validated source.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    /// How messages are decoded; `None` for database logs, which sources decode themselves.
    pub format: Option<Format>,
    pub kind: SourceKind,
}

#[derive(Debug, Clone)]
pub enum SourceKind {
    Http { token: String, max_body_bytes: usize, max_messages: usize, rate: fundguard_server::IngestRate },
    Simulator { orders: u64, incident_rate: f64, seed: u64, speed: u32 },
    File { path: PathBuf, follow: bool },
    Nats { nats: fundguard_sources::nats::NatsConfig, tables: std::collections::HashMap<String, String> },
    Kafka { kafka: fundguard_sources::kafka::KafkaConfig, tables: std::collections::HashMap<String, String> },
    Mysql(fundguard_sources::binlog::BinlogConfig),
    Postgres(fundguard_sources::postgres::PostgresConfig),
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub rules: Vec<PathBuf>,
    pub schema: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub listen: Option<String>,
    pub idle_after: Duration,
    /// How long stopping may take: stop reading, drain the pipeline, checkpoint, exit.
    pub shutdown_timeout: Duration,
    /// How often a checkpoint is taken (and sources acknowledge upstream).
    pub checkpoint_interval: Duration,
    /// The memory budget of rule state, in bytes (default 2 GiB).
    pub state_memory: u64,
    /// Longer messages are dead-lettered unread (default [`fundguard_formats::MAX_MESSAGE_BYTES`]).
    pub max_message_bytes: usize,
    pub sources: Vec<SourceConfig>,
    pub sinks: Vec<SinkConfig>,
    pub notify: NotifyConfig,
    /// SLO deadlines per severity.
    pub slo: fundguard_alerts::Slo,
    /// Console and API access (served on `listen` when there is an alerts sink).
    pub console: ConsoleConfig,
    /// Tables `sql` rules query; relative file paths are read from `base_dir`.
    pub warehouse: Vec<fundguard_warehouse::TableSource>,
    /// The config file's directory.
    pub base_dir: PathBuf,
}

impl Config {
    /// The alert store of the `alerts` sink, if there is one.
    pub fn alert_store(&self) -> Option<fundguard_alerts::StoreLocation> {
        self.sinks.iter().find_map(|s| match s {
            SinkConfig::Alerts { postgres_url: Some(url), .. } => {
                Some(fundguard_alerts::StoreLocation::Postgres(url.clone()))
            }
            SinkConfig::Alerts { path, .. } => Some(fundguard_alerts::StoreLocation::Sqlite(
                path.clone().unwrap_or_else(|| self.data_dir.join("alerts.db")),
            )),
            _ => None,
        })
    }
}

/// The replica id fundguard registers with a MySQL/MariaDB server unless told otherwise.
pub const DEFAULT_SERVER_ID: u32 = 4_242_001;

/// How a message source's messages are decoded.
fn message_format(
    format: &str,
    table: Option<String>,
    table_field: Option<String>,
    time_field: Option<String>,
) -> Result<Format, String> {
    Ok(match format {
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
        other => return Err(format!("format `{other}`: expected debezium, canal, maxwell or json")),
    })
}

/// `+08:00`, `-05:30`, `Z` → seconds east of UTC.
fn parse_utc_offset(text: &str) -> Result<i32, String> {
    let bad = || format!("`{text}` is not a UTC offset: expected +HH:MM or -HH:MM (or Z)");
    if text == "Z" || text == "UTC" {
        return Ok(0);
    }
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1, &text[1..]),
        Some(b'-') => (-1, &text[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 14 || m > 59 {
        return Err(bad());
    }
    Ok(sign * (h * 3600 + m * 60))
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
    let shutdown_timeout = match &file.shutdown_timeout {
        Some(d) => parse_duration(d).unwrap_or_else(|e| {
            problems.push(Diagnostic::new(at(0, 0), format!("shutdown_timeout: {e}")));
            Duration::from_secs(30)
        }),
        None => Duration::from_secs(30),
    };
    let checkpoint_interval = match &file.checkpoint_interval {
        Some(d) => parse_duration(d).unwrap_or_else(|e| {
            problems.push(Diagnostic::new(at(0, 0), format!("checkpoint_interval: {e}")));
            DEFAULT_CHECKPOINT_INTERVAL
        }),
        None => DEFAULT_CHECKPOINT_INTERVAL,
    };
    let state_memory = match file.limits.as_ref().and_then(|l| l.state_memory.as_ref()) {
        Some(v) => parse_bytes(v).unwrap_or_else(|e| {
            problems.push(Diagnostic::new(at(0, 0), format!("limits.state_memory: {e}")));
            DEFAULT_STATE_MEMORY
        }),
        None => DEFAULT_STATE_MEMORY,
    };
    let max_message_bytes = match file.limits.as_ref().and_then(|l| l.max_message_bytes.as_ref()) {
        Some(v) => parse_bytes(v).and_then(|n| usize::try_from(n).map_err(|e| e.to_string())).unwrap_or_else(|e| {
            problems.push(Diagnostic::new(at(0, 0), format!("limits.max_message_bytes: {e}")));
            fundguard_formats::MAX_MESSAGE_BYTES
        }),
        None => fundguard_formats::MAX_MESSAGE_BYTES,
    };
    if file.rules.is_empty() {
        problems.push(Diagnostic::new(at(0, 0), "`rules` is empty: expected at least one rule file or directory"));
    }
    let mut sources = Vec::new();
    for spanned in file.sources {
        let (line, column) = (spanned.referenced.line() as usize, spanned.referenced.column() as usize);
        let source = spanned.value;
        let here = at(line, column);
        let (name, format) = match &source {
            SourceFile::Http { name, format, table, table_field, time_field, .. }
            | SourceFile::Nats { name, format, table, table_field, time_field, .. }
            | SourceFile::Kafka { name, format, table, table_field, time_field, .. }
            | SourceFile::File { name, format, table, table_field, time_field, .. } => {
                match message_format(format, table.clone(), table_field.clone(), time_field.clone()) {
                    Ok(format) => (name.clone(), Some(format)),
                    Err(e) => {
                        problems.push(Diagnostic::new(here.clone(), format!("source `{name}`: {e}")));
                        continue;
                    }
                }
            }
            SourceFile::Mysql { name, .. } | SourceFile::Postgres { name, .. } | SourceFile::Simulator { name, .. } => {
                (name.clone(), None)
            }
        };
        if sources.iter().any(|s: &SourceConfig| s.name == name) {
            problems.push(Diagnostic::new(
                here.clone(),
                format!("source `{name}` is declared twice: names must be unique"),
            ));
        }
        let is_json = matches!(format, Some(Format::Json(_)));
        let format_name = format.as_ref().map(Format::name).unwrap_or_default();
        let secret = |var: &Option<String>| -> Result<Option<String>, Diagnostic> {
            let Some(var) = var else { return Ok(None) };
            env(var).filter(|v| !v.is_empty()).map(Some).ok_or_else(|| {
                Diagnostic::new(
                    here.clone(),
                    format!("source `{name}`: environment variable {var} is not set: export the secret there (never in this file)"),
                )
            })
        };
        // `password_env` or `password_file` (`what` is the key's prefix, `sasl.` say).
        let password = |what: &str, var: &Option<String>, file: &Option<PathBuf>| match (var, file) {
            (Some(_), Some(_)) => Err(Diagnostic::new(
                here.clone(),
                format!("source `{name}`: give {what}password_env or {what}password_file, not both"),
            )),
            (_, Some(file)) => secret_file(&rel(file))
                .map(Some)
                .map_err(|e| Diagnostic::new(here.clone(), format!("source `{name}`: {what}password_file {e}"))),
            (var, None) => secret(var),
        };
        let tls = |file: Option<TlsFile>, verify_ca: bool| match file {
            None => Ok(None),
            Some(file) => tls_config(file, &rel, verify_ca)
                .map(Some)
                .map_err(|e| Diagnostic::new(here.clone(), format!("source `{name}`: tls: {e}"))),
        };
        let url = match &source {
            SourceFile::Mysql { url, .. } | SourceFile::Postgres { url, .. } | SourceFile::Nats { url, .. } => {
                Some(url)
            }
            _ => None,
        };
        if url.is_some_and(|url| carries_password(url)) {
            problems.push(Diagnostic::new(
                here.clone(),
                format!(
                    "source `{name}`: `url` carries a password: remove it from the URL and name the environment variable that holds it in `password_env`, or a file in `password_file` (secrets never live in this file)"
                ),
            ));
            continue;
        }
        let kind = match source {
            SourceFile::Http {
                token_env,
                max_body_bytes,
                max_messages,
                max_requests_per_second,
                max_messages_per_second,
                ..
            } => {
                for (key, rate) in [
                    ("max_requests_per_second", max_requests_per_second),
                    ("max_messages_per_second", max_messages_per_second),
                ] {
                    if rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
                        problems.push(Diagnostic::new(
                            here.clone(),
                            format!("source `{name}`: {key} must be a number above 0 (leave it out for no limit)"),
                        ));
                    }
                }
                if file.listen.is_none() {
                    problems.push(Diagnostic::new(
                        here.clone(),
                        format!(
                            "source `{name}` is an HTTP source but `listen` is not set: add `listen: 127.0.0.1:8080`"
                        ),
                    ));
                }
                match secret(&Some(token_env.clone())) {
                    Ok(Some(token)) => SourceKind::Http {
                        token,
                        max_body_bytes: max_body_bytes.unwrap_or(1 << 20),
                        max_messages: max_messages.unwrap_or(10_000),
                        rate: fundguard_server::IngestRate {
                            requests_per_second: max_requests_per_second,
                            messages_per_second: max_messages_per_second,
                        },
                    },
                    Ok(None) => continue,
                    Err(problem) => {
                        problems.push(problem);
                        continue;
                    }
                }
            }
            SourceFile::File { path, follow, .. } => SourceKind::File { path: rel(&path), follow },
            SourceFile::Simulator { orders, incident_rate, seed, speed, .. } => {
                let incident_rate = incident_rate.unwrap_or(0.02);
                if !(0.0..=1.0).contains(&incident_rate) {
                    problems.push(Diagnostic::new(
                        here.clone(),
                        format!("source `{name}`: incident_rate {incident_rate}: expected a fraction from 0 to 1"),
                    ));
                }
                SourceKind::Simulator {
                    orders: orders.unwrap_or(50_000),
                    incident_rate,
                    seed: seed.unwrap_or(7),
                    speed: speed.unwrap_or(60).max(1),
                }
            }
            SourceFile::Nats {
                url,
                stream,
                subjects,
                consumer,
                create,
                tables,
                tls: tls_file,
                credentials_file,
                ..
            } => {
                // async-nats checks host names always (it has no verify-ca).
                let tls = match tls(tls_file, false) {
                    Ok(tls) => tls,
                    Err(problem) => {
                        problems.push(problem);
                        continue;
                    }
                };
                let credentials_file = credentials_file.map(|f| rel(&f));
                if let Some(f) = &credentials_file
                    && let Err(e) = std::fs::File::open(f)
                {
                    problems.push(Diagnostic::new(
                        here.clone(),
                        format!("source `{name}`: credentials_file {}: {e}", f.display()),
                    ));
                    continue;
                }
                if create && subjects.is_empty() {
                    problems.push(Diagnostic::new(
                        here.clone(),
                        format!("source `{name}`: `create: true` needs the stream's `subjects`"),
                    ));
                }
                if !tables.is_empty() && !is_json {
                    problems.push(Diagnostic::new(
                        here.clone(),
                        format!("source `{name}`: `tables` maps subjects of JSON messages; {format_name} messages name their own table"),
                    ));
                }
                SourceKind::Nats {
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
                }
            }
            SourceFile::Kafka { brokers, group, topics, tables, start, instance_id, tls: tls_file, sasl, .. } => {
                let tls = match tls(tls_file, true) {
                    Ok(tls) => tls,
                    Err(problem) => {
                        problems.push(problem);
                        continue;
                    }
                };
                let sasl = match sasl {
                    None => None,
                    Some(sasl) => {
                        let mechanism = sasl.mechanism.to_ascii_uppercase();
                        if !fundguard_sources::kafka::SASL_MECHANISMS.contains(&mechanism.as_str()) {
                            problems.push(Diagnostic::new(
                                here.clone(),
                                format!(
                                    "source `{name}`: sasl.mechanism `{}`: expected SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN",
                                    sasl.mechanism
                                ),
                            ));
                            continue;
                        }
                        if mechanism == "PLAIN" && tls.is_none() {
                            problems.push(Diagnostic::new(
                                here.clone(),
                                format!("source `{name}`: sasl PLAIN sends the password as it is: add a `tls` block"),
                            ));
                            continue;
                        }
                        let password = match password("sasl.", &sasl.password_env, &sasl.password_file) {
                            Ok(Some(p)) => p,
                            Ok(None) => {
                                problems.push(Diagnostic::new(
                                    here.clone(),
                                    format!("source `{name}`: sasl needs sasl.password_env or sasl.password_file (never the password in this file)"),
                                ));
                                continue;
                            }
                            Err(problem) => {
                                problems.push(problem);
                                continue;
                            }
                        };
                        Some(fundguard_sources::kafka::Sasl { mechanism, username: sasl.username, password })
                    }
                };
                if !tables.is_empty() && !is_json {
                    problems.push(Diagnostic::new(
                        here.clone(),
                        format!("source `{name}`: `tables` maps topics of JSON messages; {format_name} messages name their own table"),
                    ));
                }
                if topics.is_empty() {
                    problems.push(Diagnostic::new(
                        here.clone(),
                        format!("source `{name}`: `topics` is empty: list the topics to consume"),
                    ));
                }
                let start = match start.as_deref() {
                    None | Some("earliest") => fundguard_sources::kafka::StartAt::Earliest,
                    Some("latest") => fundguard_sources::kafka::StartAt::Latest,
                    Some(other) => {
                        problems.push(Diagnostic::new(
                            here.clone(),
                            format!("source `{name}`: start `{other}`: expected earliest or latest"),
                        ));
                        continue;
                    }
                };
                SourceKind::Kafka {
                    kafka: fundguard_sources::kafka::KafkaConfig {
                        brokers,
                        group,
                        topics,
                        start,
                        instance_id: instance_id.unwrap_or_else(|| format!("fundguard-{name}")),
                        tls,
                        sasl,
                    },
                    tables: tables.into_iter().collect(),
                }
            }
            SourceFile::Mysql {
                url,
                password_env,
                password_file,
                tls: tls_file,
                server_id,
                start,
                start_file,
                start_offset,
                start_gtid,
                include,
                exclude,
                datetime_offset,
                ..
            } => {
                use fundguard_sources::binlog::{BinlogConfig, BinlogPosition, GtidState, StartAt};
                let (password, tls) = match (password("", &password_env, &password_file), tls(tls_file, true)) {
                    (Ok(p), Ok(t)) => (p, t),
                    (p, t) => {
                        problems.extend(p.err());
                        problems.extend(t.err());
                        continue;
                    }
                };
                let start = match (start.as_deref(), start_file, start_gtid) {
                    (_, Some(file), None) => StartAt::At(BinlogPosition {
                        file,
                        offset: start_offset.unwrap_or(4),
                        gtid: GtidState::default(),
                    }),
                    (_, None, Some(gtid)) => match GtidState::parse(&gtid) {
                        Ok(gtid) => StartAt::At(BinlogPosition { file: String::new(), offset: 4, gtid }),
                        Err(e) => {
                            problems.push(Diagnostic::new(here.clone(), format!("source `{name}`: start_gtid: {e}")));
                            continue;
                        }
                    },
                    (_, Some(_), Some(_)) => {
                        problems.push(Diagnostic::new(
                            here.clone(),
                            format!("source `{name}`: give start_file (with start_offset) or start_gtid, not both"),
                        ));
                        continue;
                    }
                    (None | Some("end"), None, None) => StartAt::End,
                    (Some("beginning"), None, None) => StartAt::Beginning,
                    (Some(other), None, None) => {
                        problems.push(Diagnostic::new(
                            here.clone(),
                            format!("source `{name}`: start `{other}`: expected end or beginning (or start_file / start_gtid)"),
                        ));
                        continue;
                    }
                };
                let datetime_offset_secs = match datetime_offset.as_deref().map(parse_utc_offset) {
                    None => 0,
                    Some(Ok(secs)) => secs,
                    Some(Err(e)) => {
                        problems.push(Diagnostic::new(here.clone(), format!("source `{name}`: datetime_offset: {e}")));
                        continue;
                    }
                };
                SourceKind::Mysql(BinlogConfig {
                    url,
                    password,
                    tls,
                    server_id: server_id.unwrap_or(DEFAULT_SERVER_ID),
                    start,
                    include,
                    exclude,
                    datetime_offset_secs,
                })
            }
            SourceFile::Postgres {
                url,
                password_env,
                password_file,
                tls: tls_file,
                slot,
                create_slot,
                include,
                poll_interval,
                ..
            } => {
                let (password, tls) = match (password("", &password_env, &password_file), tls(tls_file, true)) {
                    (Ok(p), Ok(t)) => (p, t),
                    (p, t) => {
                        problems.extend(p.err());
                        problems.extend(t.err());
                        continue;
                    }
                };
                let poll_interval = match poll_interval.as_deref().map(parse_duration) {
                    None => Duration::from_millis(100),
                    Some(Ok(d)) => d,
                    Some(Err(e)) => {
                        problems.push(Diagnostic::new(here.clone(), format!("source `{name}`: poll_interval: {e}")));
                        continue;
                    }
                };
                SourceKind::Postgres(fundguard_sources::postgres::PostgresConfig {
                    url,
                    password,
                    tls,
                    slot,
                    create_slot,
                    include,
                    poll_interval,
                })
            }
        };
        sources.push(SourceConfig { name, format, kind });
    }
    let duration = |problems: &mut Vec<Diagnostic>, d: &serde_saphyr::Spanned<String>| match parse_duration(&d.value) {
        Ok(d) => Some(d),
        Err(e) => {
            problems.push(Diagnostic::new(at(d.referenced.line() as usize, d.referenced.column() as usize), e));
            None
        }
    };
    let mut slo = fundguard_alerts::Slo::default();
    for (severity, deadlines) in &file.slo {
        let entry = slo.deadlines.entry(*severity).or_insert_with(|| fundguard_alerts::Slo::default().of(*severity));
        for (given, field) in [
            (&deadlines.detect, &mut entry.detect),
            (&deadlines.respond, &mut entry.respond),
            (&deadlines.resolve, &mut entry.resolve),
        ] {
            if let Some(d) = given.as_ref().and_then(|d| duration(&mut problems, d)) {
                *field = d;
            }
        }
    }
    let mut console = ConsoleConfig::default();
    for (spanned, is_user) in
        file.console.iter().flat_map(|c| c.users.iter().map(|u| (u, true)).chain(c.tokens.iter().map(|t| (t, false))))
    {
        let here = at(spanned.referenced.line() as usize, spanned.referenced.column() as usize);
        let p = &spanned.value;
        let Some(role) = fundguard_server::Role::parse(&p.role) else {
            problems.push(Diagnostic::new(
                here,
                format!("`{}`: role `{}`: expected viewer, operator or admin", p.name, p.role),
            ));
            continue;
        };
        match &p.teams {
            Some(_) if role == fundguard_server::Role::Admin => {
                problems.push(Diagnostic::new(
                    here,
                    format!("`{}`: an admin works for every team: drop `teams` (or make it an operator)", p.name),
                ));
                continue;
            }
            Some(teams) if teams.is_empty() || teams.iter().any(|t| t.trim().is_empty()) => {
                problems.push(Diagnostic::new(
                    here,
                    format!(
                        "`{}`: `teams` lists no team: name the rule owners it works for, or leave `teams` out for every team",
                        p.name
                    ),
                ));
                continue;
            }
            _ => {}
        }
        let (var, what) = match (is_user, &p.password_env, &p.password_file, &p.token_env) {
            (true, Some(var), None, None) => (var, "password"),
            (false, None, None, Some(var)) => (var, "API token"),
            (true, None, Some(file), None) => {
                match secret_file(&rel(file)) {
                    Ok(secret) => {
                        let credential =
                            fundguard_server::Credential { name: p.name.clone(), secret, role, teams: p.teams.clone() };
                        console.users.push(credential);
                    }
                    Err(e) => problems.push(Diagnostic::new(here, format!("`{}`: password_file {e}", p.name))),
                }
                continue;
            }
            _ => {
                let expected = if is_user {
                    "a user needs `password_env` or `password_file`"
                } else {
                    "a token needs `token_env`"
                };
                problems.push(Diagnostic::new(here, format!("`{}`: {expected} (and nothing else)", p.name)));
                continue;
            }
        };
        let Some(secret) = env(var).filter(|v| !v.is_empty()) else {
            problems.push(Diagnostic::new(
                here,
                format!(
                    "`{}`: environment variable {var} is not set: export the {what} there (never in this file)",
                    p.name
                ),
            ));
            continue;
        };
        let credential = fundguard_server::Credential { name: p.name.clone(), secret, role, teams: p.teams.clone() };
        if is_user { console.users.push(credential) } else { console.tokens.push(credential) }
    }
    let defaults = fundguard_server::LoginPolicy::default();
    let login = file.console.as_ref().and_then(|c| c.login.as_ref());
    let login_duration = |problems: &mut Vec<Diagnostic>, key: &str, value: Option<&String>, default: Duration| {
        value.map_or(default, |d| {
            parse_duration(d).unwrap_or_else(|e| {
                problems.push(Diagnostic::new(at(0, 0), format!("console.login.{key}: {e}")));
                default
            })
        })
    };
    console.login = fundguard_server::LoginPolicy {
        max_failures: login.and_then(|l| l.max_failures).unwrap_or(defaults.max_failures),
        within: login_duration(&mut problems, "within", login.and_then(|l| l.within.as_ref()), defaults.within),
        lockout: login_duration(&mut problems, "lockout", login.and_then(|l| l.lockout.as_ref()), defaults.lockout),
        secure_cookies: file
            .console
            .as_ref()
            .and_then(|c| c.secure_cookies)
            .unwrap_or_else(|| !file.listen.as_deref().is_some_and(is_loopback)),
    };
    if console.login.max_failures == 0 {
        problems.push(Diagnostic::new(at(0, 0), "console.login.max_failures: expected 1 or more"));
    }
    let mut notify = NotifyConfig::default();
    if let Some(spanned) = file.notify {
        let here = at(spanned.referenced.line() as usize, spanned.referenced.column() as usize);
        let file_notify = spanned.value;
        notify.link = file_notify.link;
        if let Some(d) = file_notify.resend_every.as_ref().and_then(|d| duration(&mut problems, d)) {
            notify.resend_every = d;
        }
        if !file.sinks.iter().any(|s| matches!(s, SinkConfig::Alerts { .. })) {
            problems.push(Diagnostic::new(here, "`notify` needs an alerts sink: add `- { type: alerts }` to `sinks`"));
        }
        for spanned in file_notify.channels {
            let here = at(spanned.referenced.line() as usize, spanned.referenced.column() as usize);
            let ChannelFile { name, kind, url, url_env, secret_env, from, to, max_per_minute } = spanned.value;
            if (kind == ChannelKind::Email) != (from.is_some() && !to.is_empty()) {
                let why = if kind == ChannelKind::Email {
                    "needs `from` and `to`"
                } else {
                    "takes `from` and `to` only for email"
                };
                problems.push(Diagnostic::new(here.clone(), format!("channel `{name}`: {kind:?} {why}")));
            }
            let from_env = |problems: &mut Vec<Diagnostic>, var: &str, what: &str| {
                let value = env(var).filter(|v| !v.is_empty());
                if value.is_none() {
                    problems.push(Diagnostic::new(
                        here.clone(),
                        format!("channel `{name}`: environment variable {var} is not set: export the {what} there (never in this file)"),
                    ));
                }
                value
            };
            let url = match (url, url_env) {
                (Some(url), None) => Some(url),
                (None, Some(var)) => from_env(&mut problems, &var, "URL"),
                _ => {
                    problems.push(Diagnostic::new(
                        here.clone(),
                        format!("channel `{name}`: give `url` or `url_env` (one of them)"),
                    ));
                    None
                }
            };
            let secret = secret_env.as_deref().and_then(|var| from_env(&mut problems, var, "signing secret"));
            if secret_env.is_some()
                && matches!(
                    kind,
                    ChannelKind::Slack | ChannelKind::Wecom | ChannelKind::Alertmanager | ChannelKind::Email
                )
            {
                problems.push(Diagnostic::new(
                    here.clone(),
                    format!("channel `{name}`: {kind:?} messages are not signed: drop `secret_env`"),
                ));
            }
            if notify.channels.iter().any(|c| c.name == name) {
                problems.push(Diagnostic::new(here, format!("channel `{name}` is declared twice")));
                continue;
            }
            if let Some(url) = url {
                notify.channels.push(ChannelConfig {
                    name,
                    kind,
                    url,
                    secret,
                    from: from.unwrap_or_default(),
                    to,
                    max_per_minute,
                });
            }
        }
        for spanned in file_notify.routes {
            let here = at(spanned.referenced.line() as usize, spanned.referenced.column() as usize);
            let route = spanned.value;
            for c in &route.channels {
                if !notify.channels.iter().any(|k| &k.name == c) {
                    problems.push(Diagnostic::new(
                        here.clone(),
                        format!("route names channel `{c}`, which `notify.channels` does not declare"),
                    ));
                }
            }
            notify.routes.0.push(fundguard_alerts::Route {
                severities: route.severity,
                owners: route.owner,
                rules: route.rule,
                tags: route.tags,
                channels: route.channels,
            });
        }
    }
    for sink in &file.sinks {
        if let SinkConfig::Alerts { postgres_env: Some(var), .. } = sink
            && env(var).filter(|v| !v.is_empty()).is_none()
        {
            problems.push(Diagnostic::new(
                at(0, 0),
                format!("the alerts sink: environment variable {var} is not set: export the PostgreSQL URL there"),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let data_dir = rel(&file.data_dir.clone().unwrap_or_else(|| PathBuf::from("fundguard-data")));
    let sinks = if file.sinks.is_empty() { vec![SinkConfig::Stdout] } else { file.sinks };
    let sinks = sinks
        .into_iter()
        .map(|s| match s {
            SinkConfig::Jsonl { path } => SinkConfig::Jsonl { path: rel(&path) },
            SinkConfig::Alerts { path, postgres_env, .. } => SinkConfig::Alerts {
                path: Some(path.map_or_else(|| data_dir.join("alerts.db"), |p| rel(&p))),
                postgres_url: postgres_env.as_deref().and_then(&env),
                postgres_env,
            },
            other => other,
        })
        .collect();
    Ok(Config {
        rules: file.rules.iter().map(|p| rel(p)).collect(),
        schema: file.schema.as_deref().map(rel),
        data_dir,
        listen: file.listen,
        idle_after,
        shutdown_timeout,
        checkpoint_interval,
        state_memory,
        max_message_bytes,
        sources,
        sinks,
        notify,
        slo,
        console,
        warehouse: file.warehouse,
        base_dir: base,
    })
}

/// A secret read from a file at load: one trailing newline (`\n` or `\r\n`) dropped.
/// Errors name the file and never show what it holds.
fn secret_file(path: &Path) -> Result<String, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: cannot read it: {}", path.display(), e.kind()))?;
    let text = String::from_utf8(text).map_err(|_| format!("{}: not UTF-8 text", path.display()))?;
    let secret = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
    if secret.is_empty() {
        return Err(format!("{} is empty: write the secret there", path.display()));
    }
    Ok(secret.to_string())
}

/// Validates a `tls:` block; paths are made absolute with `rel` and must be readable files.
/// `verify_ca` says whether the source's client can skip the host name check.
fn tls_config(
    file: TlsFile,
    rel: &impl Fn(&Path) -> PathBuf,
    verify_ca: bool,
) -> Result<fundguard_sources::tls::TlsConfig, String> {
    use fundguard_sources::tls::{ClientCert, TlsConfig, Verify};
    let verify = match file.mode.as_deref() {
        None | Some("verify-full") => Verify::Full,
        Some("verify-ca") if verify_ca => Verify::Ca,
        Some("verify-ca") => {
            return Err("mode verify-ca: this source's client always checks the host name: use verify-full".into());
        }
        Some(other) => {
            return Err(format!(
                "mode `{other}`: expected verify-full (the default) or verify-ca; the server's certificate is always verified"
            ));
        }
    };
    let readable = |key: &str, path: &Option<PathBuf>| -> Result<Option<PathBuf>, String> {
        let Some(path) = path.as_deref().map(rel) else { return Ok(None) };
        match std::fs::File::open(&path) {
            Ok(_) if path.is_file() => Ok(Some(path)),
            Ok(_) => Err(format!("{key} {} is not a file", path.display())),
            Err(e) => Err(format!("{key} {}: {e}", path.display())),
        }
    };
    let ca_file = readable("ca_file", &file.ca_file)?;
    let client = match (readable("cert_file", &file.cert_file)?, readable("key_file", &file.key_file)?) {
        (Some(cert_file), Some(key_file)) => Some(ClientCert { cert_file, key_file }),
        (None, None) => None,
        _ => return Err("give cert_file and key_file together (a client certificate and its key)".into()),
    };
    Ok(TlsConfig { verify, ca_file, client })
}

/// Whether a `listen` address is on this host only (`127.0.0.1:8080`, `[::1]:80`, `localhost:8080`).
fn is_loopback(listen: &str) -> bool {
    let host = listen.rsplit_once(':').map_or(listen, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_STATE_MEMORY: u64 = 2 << 30;

/// A size: a number of bytes, or a number with `KiB`, `MiB` or `GiB`.
fn parse_bytes(value: &serde_json::Value) -> Result<u64, String> {
    let expected = || format!("expected a number of bytes or a size like 512MiB or 2GiB, found {value}");
    if let Some(n) = value.as_u64() {
        return Ok(n);
    }
    let text = value.as_str().ok_or_else(expected)?.trim();
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = digits.parse().map_err(|_| expected())?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(expected()),
    };
    n.checked_mul(scale).ok_or_else(expected)
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
mod password_tests {
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
