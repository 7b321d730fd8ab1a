//! PostgreSQL logical decoding through a replication slot with the `wal2json` plugin.
//!
//! The slot remembers, on the server, how far fundguard has confirmed. Changes are read
//! over a replication connection (`replication.rs`): the server decodes each transaction
//! once, at its commit, and pushes it as soon as it is flushed. Only once a checkpoint
//! covering a batch is written does [`PostgresSource::confirm`] tell the server the slot
//! may move to that batch's last commit LSN. A crash before that re-reads the batch:
//! at-least-once, never skipping. A new connection starts again at the slot's confirmed
//! position, so the source skips the batches it already delivered (whole transactions,
//! in commit order: a prefix of what the server sends again).
//! Types are mapped exactly: `numeric` keeps every digit (wal2json writes it as a bare
//! JSON number, read here from its text).

mod replication;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use fundguard_core::{ChangeEvent, Decimal, EventTime, LogPoint, Op, Position, Row, Value};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio_postgres::{Client, NoTls};

use crate::tls::{TlsConfig, Verify};
use replication::{Received, Replication};

use crate::batch::{clock_offset, local_micros};
use crate::{DeadLetter, DecodedBatch, SourceError};

/// A transaction takes its commit time just before its commit record is written and
/// flushed; an empty read vouches only for commits that began this long before it.
const COMMIT_MARGIN_MICROS: i64 = 100_000;

/// While vouching for a quiet slot: how often to ask the server again whether it has sent
/// everything up to the WAL flushed when the check began.
const CATCH_UP_CHECK: Duration = Duration::from_millis(10);

/// Where to read from.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// `postgres://user@host:port/database`; the password comes separately.
    pub url: String,
    pub password: Option<String>,
    /// TLS to the server (`None`: clear text).
    pub tls: Option<crate::tls::TlsConfig>,
    /// The logical replication slot (plugin `wal2json`).
    pub slot: String,
    /// Create the slot when it does not exist (it then starts at the current end).
    pub create_slot: bool,
    /// `schema.table` patterns (`*` wildcards) to decode; empty decodes every table.
    pub include: Vec<String>,
    /// How long the slot may stay quiet before the source vouches that it has read every
    /// commit up to then (event time moves on: deadlines fire without new changes).
    pub poll_interval: Duration,
}

fn failed(message: impl Into<String>, retryable: bool) -> SourceError {
    SourceError::new("PostgreSQL", message, retryable)
}

fn client_error(what: &str, e: tokio_postgres::Error) -> SourceError {
    // Errors the server reports (a missing slot, a denied permission) need a person;
    // lost connections do not — nor the server going away: class 57 (shutdown, crash,
    // still starting), 08 (connection) and 53 (out of resources) pass on reconnect.
    let retryable = e.as_db_error().is_none_or(|db| retryable_code(db.code().code()));
    let said = match e.as_db_error() {
        Some(db) => server_said(db.message(), db.detail(), db.hint()),
        None => e.to_string(),
    };
    failed(format!("{what}: {said}"), retryable)
}

/// Whether a server error (by SQLSTATE) passes on reconnect: the server going away (class
/// 57: shutdown, crash, still starting), the connection (08), resources (53), and a slot
/// still held by the session of a connection that was just lost (55006, object in use).
fn retryable_code(code: &str) -> bool {
    matches!(code.get(..2), Some("57" | "08" | "53")) || code == "55006"
}

/// A server error on one line with its DETAIL and HINT, which often name the setting to
/// change (`output_plugin_libraries` for an output plugin the server does not trust):
/// `message (DETAIL: …) (HINT: …)`.
fn server_said(message: &str, detail: Option<&str>, hint: Option<&str>) -> String {
    let mut said = message.to_string();
    for (label, text) in [("DETAIL", detail), ("HINT", hint)] {
        if let Some(text) = text.filter(|t| !t.trim().is_empty()) {
            said.push_str(&format!(" ({label}: {})", text.trim().replace('\n', " ")));
        }
    }
    said
}

/// The TLS connector for `tls`: only `ca_file`'s CAs are trusted when it is given (the
/// system's otherwise); verify-ca skips the host name check, never the CA's.
pub fn connector(tls: &TlsConfig) -> Result<postgres_native_tls::MakeTlsConnector, SourceError> {
    Ok(postgres_native_tls::MakeTlsConnector::new(native_connector(tls)?))
}

fn native_connector(tls: &TlsConfig) -> Result<native_tls::TlsConnector, SourceError> {
    let read = |key: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| failed(format!("tls.{key} {}: {e}", path.display()), false))
    };
    let mut builder = native_tls::TlsConnector::builder();
    if let Some(ca) = &tls.ca_file {
        let pem = read("ca_file", ca)?;
        let certificate = native_tls::Certificate::from_pem(&pem)
            .map_err(|e| failed(format!("tls.ca_file {}: not a PEM certificate: {e}", ca.display()), false))?;
        builder.add_root_certificate(certificate).disable_built_in_roots(true);
    }
    if let Some(client) = &tls.client {
        let identity = native_tls::Identity::from_pkcs8(
            &read("cert_file", &client.cert_file)?,
            &read("key_file", &client.key_file)?,
        )
        .map_err(|e| {
            failed(
                format!(
                    "tls.cert_file {} / key_file {}: expected a PEM certificate and a PEM PKCS#8 key: {e}",
                    client.cert_file.display(),
                    client.key_file.display()
                ),
                false,
            )
        })?;
        builder.identity(identity);
    }
    builder.danger_accept_invalid_hostnames(tls.verify == Verify::Ca);
    builder.build().map_err(|e| failed(format!("setting up TLS: {e}"), false))
}

/// A connected slot reader: a query connection (checks, the slot, the server's WAL
/// position) and, from the first read on, a replication connection streaming the slot.
pub struct PostgresSource {
    client: Client,
    /// Where to open the replication connection (the password set).
    server: tokio_postgres::Config,
    config: PostgresConfig,
    source: Arc<str>,
    /// The server's clock minus ours, in microseconds (measured on connect).
    clock_offset: i64,
    stream: Option<Replication>,
    /// Records received and not yet delivered, as `(lsn, wal2json record)`.
    pending: Vec<(String, String)>,
    /// How many of `pending` make whole transactions (up to the last commit received).
    whole: usize,
    /// Batches delivered but not yet confirmed on the slot: a new connection sends them
    /// again first.
    unconfirmed: Delivered,
    /// The newest commit LSN confirmed (a written checkpoint covers it).
    confirmed: u64,
    /// The end of the WAL the server says it has sent (its keepalives).
    sent_end: u64,
}

/// The commit LSNs of batches delivered but not yet confirmed on the slot, oldest first.
/// Kept across a reconnection ([`PostgresSource::take_delivered`],
/// [`PostgresSource::delivered_before`]): the server sends everything after the slot's
/// confirmed position again, and the transactions up to the newest of these are skipped,
/// so none is delivered twice.
#[derive(Debug, Default)]
pub struct Delivered(VecDeque<LogPoint>);

impl Delivered {
    /// Decodes the transactions of `rows` that come after the delivered ones, and counts
    /// them as delivered.
    fn decode_after(&mut self, source: &Arc<str>, rows: &[(String, String)]) -> PostgresBatch {
        let rows = match self.0.back() {
            Some(delivered) => &rows[delivered_prefix(rows, delivered)..],
            None => rows,
        };
        let out = decode_changes(source, rows);
        if let Some(lsn) = &out.confirm {
            self.0.push_back(LogPoint::parse(lsn));
        }
        out
    }

    /// Forgets the batches the slot now confirms.
    fn confirmed(&mut self, lsn: &LogPoint) {
        while self.0.front().is_some_and(|commit| commit <= lsn) {
            self.0.pop_front();
        }
    }
}

/// A batch of whole transactions and the commit LSN to confirm once it is processed.
pub struct PostgresBatch {
    pub batch: DecodedBatch,
    /// `None` when the batch holds no whole transaction.
    pub confirm: Option<String>,
    /// Records the batch's transactions took (those after its last commit wait for the
    /// next read).
    pub rows: usize,
}

impl PostgresSource {
    /// Connects, checks `wal_level` and the slot (creating it when asked).
    pub async fn connect(name: &str, config: &PostgresConfig) -> Result<PostgresSource, SourceError> {
        let mut pg: tokio_postgres::Config =
            config.url.parse().map_err(|e| failed(format!("`url` {}: {e}", config.url), false))?;
        if let Some(password) = &config.password {
            pg.password(password);
        }
        let server = pg.clone();
        let client = match &config.tls {
            None => {
                let (client, connection) = pg.connect(NoTls).await.map_err(|e| client_error("connecting", e))?;
                tokio::spawn(async move {
                    let _ = connection.await; // its end shows up as an error on the next query
                });
                client
            }
            Some(tls) => {
                // TLS or nothing: `prefer` would fall back to clear text.
                pg.ssl_mode(tokio_postgres::config::SslMode::Require);
                let connector = connector(tls)?;
                let host = match pg.get_hosts().first() {
                    Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
                    _ => String::from("localhost"),
                };
                let (client, connection) = pg.connect(connector).await.map_err(|e| {
                    let said = crate::tls::error_chain(&e);
                    match crate::tls::explain_refusal(tls, &host, &said) {
                        Some(why) => failed(format!("connecting with TLS: {why}"), false),
                        None => client_error("connecting with TLS", e),
                    }
                })?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            }
        };
        let wal_level: String =
            client.query_one("SHOW wal_level", &[]).await.map_err(|e| client_error("reading wal_level", e))?.get(0);
        if wal_level != "logical" {
            return Err(failed(
                format!(
                    "wal_level is {wal_level}; logical decoding needs wal_level=logical \
                     (ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL)"
                ),
                false,
            ));
        }
        let plugin: Option<String> = client
            .query_opt("SELECT plugin::text FROM pg_replication_slots WHERE slot_name = $1", &[&config.slot])
            .await
            .map_err(|e| client_error("looking up the slot", e))?
            .map(|row| row.get(0));
        match plugin.as_deref() {
            Some("wal2json") => {}
            Some(other) => {
                return Err(failed(
                    format!("slot {} uses the plugin {other}; fundguard reads wal2json slots", config.slot),
                    false,
                ));
            }
            None if config.create_slot => {
                client
                    .execute("SELECT pg_create_logical_replication_slot($1, 'wal2json')", &[&config.slot])
                    .await
                    .map_err(|e| client_error(&format!("creating the slot {}", config.slot), e))?;
            }
            None => {
                return Err(failed(
                    format!("slot {} does not exist: create it or set `create_slot: true`", config.slot),
                    false,
                ));
            }
        }
        let before = local_micros();
        let server_clock: i64 = client
            .query_one("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::int8", &[])
            .await
            .map_err(|e| client_error("reading the server's clock", e))?
            .get(0);
        let clock_offset = clock_offset(before, server_clock, local_micros());
        Ok(PostgresSource {
            client,
            server,
            config: config.clone(),
            source: Arc::from(name),
            clock_offset,
            stream: None,
            pending: Vec::new(),
            whole: 0,
            unconfirmed: Delivered::default(),
            confirmed: 0,
            sent_end: 0,
        })
    }

    /// Whole transactions, about `max` changes, after the last delivered one: what has
    /// arrived, without waiting for more once one transaction is whole. When none comes
    /// within `poll_interval`, an empty batch `caught_up` to the server's clock at a moment
    /// the server had sent every commit flushed before it (every later commit is stamped
    /// after it, less [`COMMIT_MARGIN_MICROS`]).
    pub async fn next_batch(&mut self, max: usize) -> Result<PostgresBatch, SourceError> {
        if self.stream.is_none() {
            self.stream = Some(self.start_streaming().await?);
        }
        loop {
            let began = tokio::time::Instant::now();
            while self.whole < max.max(1) {
                let wait = if self.whole > 0 {
                    Duration::ZERO
                } else {
                    self.config.poll_interval.saturating_sub(began.elapsed())
                };
                if !self.receive(wait).await? {
                    break;
                }
            }
            if self.whole == 0 {
                return self.vouch_quiet().await;
            }
            let rows: Vec<(String, String)> = self.pending.drain(..self.whole).collect();
            self.whole = 0;
            let out = self.unconfirmed.decode_after(&self.source, &rows);
            if out.confirm.is_some() {
                return Ok(out);
            }
            // Every transaction was one delivered before a reconnection: read on.
        }
    }

    /// Opens the replication connection and starts streaming the slot from its confirmed
    /// position.
    async fn start_streaming(&mut self) -> Result<Replication, SourceError> {
        let mut stream = Replication::connect(&self.server, self.config.tls.as_ref()).await?;
        let mut options: Vec<(&str, String)> = [
            ("format-version", "2"),
            ("include-timestamp", "1"),
            ("include-types", "1"),
            ("include-transaction", "1"),
            ("include-type-oids", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
        if !self.config.include.is_empty() {
            options.push(("add-tables", self.config.include.join(",")));
        }
        let options: Vec<String> = options
            .iter()
            .map(|(k, v)| format!("{} {}", replication::quote_identifier(k), replication::quote_literal(v)))
            .collect();
        let command = format!(
            "START_REPLICATION SLOT {} LOGICAL 0/0 ({})",
            replication::quote_identifier(&self.config.slot),
            options.join(", ")
        );
        stream.start(&command).await?;
        Ok(stream)
    }

    /// Takes one message off the stream (waiting at most `wait`); whether one came.
    async fn receive(&mut self, wait: Duration) -> Result<bool, SourceError> {
        let Some(stream) = self.stream.as_mut() else { return Ok(false) };
        match stream.receive(wait).await? {
            Some(Received::Record { lsn, data }) => {
                let commit = is_commit(&data);
                self.pending.push((replication::lsn_text(lsn), data));
                if commit {
                    self.whole = self.pending.len();
                }
            }
            Some(Received::Keepalive { wal_end, reply }) => {
                self.sent_end = self.sent_end.max(wal_end);
                if reply {
                    self.report(false).await?;
                }
            }
            None => return Ok(false),
        }
        Ok(true)
    }

    /// After `poll_interval` without a commit: makes sure the server has sent everything it
    /// had flushed when we asked (its keepalive's WAL end reaches that position), then
    /// answers an empty batch caught up to that moment. Commits arriving meanwhile are
    /// delivered instead.
    async fn vouch_quiet(&mut self) -> Result<PostgresBatch, SourceError> {
        let asked = local_micros();
        let flushed = replication::lsn_number(&self.wal_flushed().await?).unwrap_or(0);
        let began = tokio::time::Instant::now();
        let mut out = PostgresBatch { batch: DecodedBatch::default(), confirm: None, rows: 0 };
        while self.sent_end < flushed && self.whole == 0 {
            if began.elapsed() >= self.config.poll_interval {
                return Ok(out); // the server is busy decoding: vouch for nothing yet
            }
            self.report(true).await?;
            let check = tokio::time::Instant::now();
            while self.sent_end < flushed && self.whole == 0 && check.elapsed() < CATCH_UP_CHECK {
                self.receive(CATCH_UP_CHECK.saturating_sub(check.elapsed())).await?;
            }
        }
        if self.whole == 0 {
            let server_then = asked.saturating_add(self.clock_offset).saturating_sub(COMMIT_MARGIN_MICROS);
            out.batch.caught_up = Some(EventTime::from_micros(server_then));
            // WAL that held nothing for this slot (other tables, other databases) need not
            // be kept: the slot may move over it.
            self.report(false).await?;
        }
        Ok(out)
    }

    /// The server's WAL flush position (replayed position on a standby): logical decoding
    /// reads up to it.
    async fn wal_flushed(&self) -> Result<String, SourceError> {
        let row = self
            .client
            .query_one(
                "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
                 ELSE pg_current_wal_flush_lsn() END)::text",
                &[],
            )
            .await
            .map_err(|e| client_error("reading the WAL position", e))?;
        Ok(row.get::<_, Option<String>>(0).unwrap_or_default())
    }

    /// How far the slot may move: the newest confirmed commit, or, with nothing delivered
    /// left unconfirmed and nothing received undelivered, all the WAL the server has sent.
    fn movable_to(&self) -> u64 {
        if self.unconfirmed.0.is_empty() && self.pending.is_empty() {
            self.confirmed.max(self.sent_end)
        } else {
            self.confirmed
        }
    }

    /// A standby status update: how far the slot may move (`reply`: ask for a keepalive).
    async fn report(&mut self, reply: bool) -> Result<(), SourceError> {
        let to = self.movable_to();
        match self.stream.as_mut() {
            Some(stream) => stream.status(to, reply).await,
            None => Ok(()),
        }
    }

    /// What this connection delivered and did not confirm, for the next connection.
    pub fn take_delivered(&mut self) -> Delivered {
        std::mem::take(&mut self.unconfirmed)
    }

    /// Continues after what an earlier connection to the same slot delivered.
    pub fn delivered_before(&mut self, delivered: Delivered) {
        self.unconfirmed = delivered;
    }

    /// Confirms everything up to `lsn` (a commit LSN from a processed batch). Before
    /// streaming starts the slot is advanced with a query; while streaming, the server is
    /// told in a status update (the slot is busy with the stream).
    pub async fn confirm(&mut self, lsn: &str) -> Result<(), SourceError> {
        self.unconfirmed.confirmed(&LogPoint::parse(lsn));
        if self.stream.is_some() {
            self.confirmed = self.confirmed.max(replication::lsn_number(lsn).unwrap_or(0));
            return self.report(false).await;
        }
        self.client
            // Never backwards: a checkpoint older than the slot's position (confirmed
            // before a crash) leaves the slot where it is.
            .execute(
                "SELECT pg_replication_slot_advance(slot_name, GREATEST($2::text::pg_lsn, confirmed_flush_lsn)) \
                 FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.config.slot, &lsn],
            )
            .await
            .map_err(|e| client_error("confirming the slot position", e))?;
        Ok(())
    }
}

/// How many leading rows belong to transactions already delivered: those up to
/// the last commit at or before `delivered` (transactions come whole, in commit order).
fn delivered_prefix(rows: &[(String, String)], delivered: &LogPoint) -> usize {
    let mut prefix = 0;
    for (i, (lsn, data)) in rows.iter().enumerate() {
        if is_commit(data) {
            if LogPoint::parse(lsn) > *delivered {
                break;
            }
            prefix = i + 1;
        }
    }
    prefix
}

/// Whether a wal2json record is a transaction's commit (`"action":"C"`).
fn is_commit(data: &str) -> bool {
    #[derive(Deserialize)]
    struct Action<'a> {
        action: &'a str,
    }
    serde_json::from_str::<Action<'_>>(data).is_ok_and(|a| a.action == "C")
}

/// One wal2json (format 2) record.
#[derive(Deserialize)]
struct Change<'a> {
    action: &'a str,
    #[serde(default)]
    timestamp: Option<&'a str>,
    #[serde(default)]
    schema: Option<&'a str>,
    #[serde(default)]
    table: Option<&'a str>,
    #[serde(default, borrow)]
    columns: Vec<Column<'a>>,
    #[serde(default, borrow)]
    identity: Vec<Column<'a>>,
}

#[derive(Deserialize)]
struct Column<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    ty: &'a str,
    #[serde(borrow)]
    value: &'a RawValue,
}

/// Turns `(lsn, wal2json record)` rows into events, up to the last whole transaction.
///
/// An event's position is its transaction's commit LSN and its place in the transaction:
/// transactions are decoded in commit order, while the LSNs of their changes interleave
/// with other transactions' changes, so only the commit LSN orders them as they happened.
///
/// Pure (no server): the records come from the server's output plugin, and fuzzing holds
/// this to never panicking, whatever the text.
pub fn decode_changes(source: &Arc<str>, rows: &[(String, String)]) -> PostgresBatch {
    let mut batch = DecodedBatch::default();
    let mut confirm = None;
    let mut taken = 0;
    // Events of the open transaction, moved to `batch` at its commit.
    let mut open: Vec<ChangeEvent> = Vec::new();
    let mut open_dead: Vec<DeadLetter> = Vec::new();
    for (row, (lsn, data)) in rows.iter().enumerate() {
        // Until its commit names it, a change is placed at its own LSN.
        let index = (open.len() + open_dead.len()) as u32;
        let position = Position::Log { source: source.clone(), at: LogPoint::parse(lsn), index };
        let change: Change<'_> = match serde_json::from_str(data) {
            Ok(c) => c,
            Err(e) => {
                let reason = format!("not a wal2json format-version 2 record: {e}");
                open_dead.push(DeadLetter { payload: data.clone().into_bytes(), position, reason });
                continue;
            }
        };
        match change.action {
            "B" => {}
            "C" => {
                let commit_time = change.timestamp.and_then(|t| pg_timestamp(t).ok());
                let commit_lsn = LogPoint::parse(lsn);
                let at_commit = |position: &mut Position| {
                    if let Position::Log { at, .. } = position {
                        *at = commit_lsn.clone();
                    }
                };
                for mut event in open.drain(..) {
                    if let Some(t) = commit_time {
                        event.commit_time = t;
                    }
                    at_commit(&mut event.position);
                    batch.events.push(event);
                }
                for mut letter in open_dead.drain(..) {
                    at_commit(&mut letter.position);
                    batch.dead_letters.push(letter);
                }
                confirm = Some(lsn.clone());
                taken = row + 1;
            }
            "I" | "U" | "D" => match change_event(&change, position.clone()) {
                Ok(event) => open.push(event),
                Err(reason) => open_dead.push(DeadLetter { payload: data.clone().into_bytes(), position, reason }),
            },
            _ => {} // truncates and logical messages carry no rows
        }
    }
    PostgresBatch { batch, confirm, rows: taken }
}

fn change_event(change: &Change<'_>, position: Position) -> Result<ChangeEvent, String> {
    let table = match (change.schema, change.table) {
        (Some(schema), Some(table)) => format!("{schema}.{table}"),
        _ => return Err("a row change without schema and table".into()),
    };
    let row = |columns: &[Column<'_>]| -> Result<Row, String> {
        let mut row = Row::with_capacity(columns.len());
        for c in columns {
            let value = pg_value(c.ty, c.value.get()).map_err(|e| format!("column `{table}.{}`: {e}", c.name))?;
            row.push(Arc::from(c.name), value);
        }
        Ok(row)
    };
    let (op, before, after) = match change.action {
        "I" => (Op::Insert, None, Some(row(&change.columns)?)),
        "U" => {
            let before = if change.identity.is_empty() { None } else { Some(row(&change.identity)?) };
            (Op::Update, before, Some(row(&change.columns)?))
        }
        _ => (Op::Delete, Some(row(&change.identity)?), None),
    };
    let commit_time = change.timestamp.map(pg_timestamp).transpose()?.unwrap_or_default();
    Ok(ChangeEvent { table: Arc::from(table), op, before, after, commit_time, position })
}

/// Converts one wal2json value by its PostgreSQL type; `raw` is the JSON text.
fn pg_value(ty: &str, raw: &str) -> Result<Value, String> {
    if raw == "null" {
        return Ok(Value::Null);
    }
    let text = || -> Result<String, String> {
        if raw.starts_with('"') {
            serde_json::from_str::<String>(raw).map_err(|e| e.to_string())
        } else {
            Ok(raw.to_string())
        }
    };
    let base = ty.split('(').next().unwrap_or(ty).trim();
    Ok(match base {
        "smallint" | "integer" | "bigint" => {
            Value::Int(raw.parse().map_err(|_| format!("{ty} `{raw}` is not an integer"))?)
        }
        "numeric" | "real" | "double precision" | "money" => {
            let t = text()?;
            let d = Decimal::from_str_exact(&t).or_else(|_| Decimal::from_scientific(&t)).map_err(|_| {
                format!("{ty} `{t}` is not a number fundguard can keep exactly (28 digits; no NaN or infinity)")
            })?;
            Value::Decimal(d)
        }
        "boolean" => match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(format!("boolean `{raw}`")),
        },
        "timestamp with time zone" => Value::Timestamp(pg_timestamp(&text()?)?),
        "timestamp without time zone" | "date" => {
            let t = text()?;
            Value::Timestamp(EventTime::parse(&t).map_err(|e| e.to_string())?)
        }
        "json" | "jsonb" => Value::Json(text()?),
        _ => Value::String(text()?),
    })
}

/// PostgreSQL's `2024-05-01 12:00:00.123+08` (offset hours with optional minutes).
fn pg_timestamp(text: &str) -> Result<EventTime, String> {
    DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z")
        .map(|t| EventTime::from_micros(t.timestamp_micros()))
        .map_err(|_| format!("`{text}` is not a PostgreSQL timestamp with time zone"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn server_errors_keep_their_detail_and_hint() {
        let said = server_said(
            "library \"wal2json\" may not be used as an output plugin",
            Some(
                "The configuration parameter \"output_plugin_libraries\" (currently 'pgoutput, test_decoding') does not name this library as a trusted output plugin.",
            ),
            Some(
                "If it is safe for all REPLICATION users to use this library as an output plugin,\nadd it to \"output_plugin_libraries\" and reload the server configuration.",
            ),
        );
        assert_eq!(
            said,
            "library \"wal2json\" may not be used as an output plugin (DETAIL: The configuration parameter \"output_plugin_libraries\" (currently 'pgoutput, test_decoding') does not name this library as a trusted output plugin.) (HINT: If it is safe for all REPLICATION users to use this library as an output plugin, add it to \"output_plugin_libraries\" and reload the server configuration.)"
        );
        assert_eq!(
            server_said("could not access file \"wal2json\": No such file or directory", None, Some(" ")),
            "could not access file \"wal2json\": No such file or directory"
        );
    }

    #[test]
    fn wal2json_transactions_decode_exactly() {
        let rows: Vec<(String, String)> = [
            ("0/1", r#"{"action":"B","timestamp":"2026-11-25 21:12:28.605848+00"}"#),
            ("0/1", r#"{"action":"I","timestamp":"2026-11-25 21:12:28.605848+00","schema":"public","table":"t","columns":[{"name":"id","type":"bigint","value":1},{"name":"amount","type":"numeric(20,2)","value":12345678901234567.25},{"name":"ok","type":"boolean","value":true},{"name":"at","type":"timestamp with time zone","value":"2026-11-25 21:12:28.605151+08"},{"name":"j","type":"jsonb","value":"{\"a\": 1}"}]}"#),
            ("0/2", r#"{"action":"C","timestamp":"2026-11-25 21:12:28.605848+00"}"#),
            ("0/2", r#"{"action":"B","timestamp":"2026-11-25 21:12:29+00"}"#),
            ("0/3", r#"{"action":"D","timestamp":"2026-11-25 21:12:29+00","schema":"public","table":"t","identity":[{"name":"id","type":"bigint","value":1}]}"#),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let out = decode_changes(&Arc::from("pg"), &rows);
        // The delete's transaction has not committed in these rows: it waits for the next.
        assert_eq!(out.confirm.as_deref(), Some("0/2"));
        assert_eq!(out.batch.events.len(), 1);
        let event = &out.batch.events[0];
        assert_eq!(&*event.table, "public.t");
        let after = event.after.as_ref().unwrap();
        assert_eq!(after.get("amount").unwrap().to_string(), "12345678901234567.25");
        assert_eq!(after.get("ok"), Some(&Value::Bool(true)));
        assert_eq!(after.get("at").unwrap().to_string(), "2026-11-25T13:12:28.605151Z");
        assert_eq!(after.get("j"), Some(&Value::Json("{\"a\": 1}".into())));
        assert_eq!(event.commit_time.to_string(), "2026-11-25T21:12:28.605848Z");
        assert_eq!(event.position.to_string(), "pg@0/2", "placed at its transaction's commit");
    }

    #[test]
    fn interleaved_transactions_order_by_commit() {
        // T2 wrote its row after T1 began but committed first: the slot hands T2 out first,
        // with a change LSN higher than T1's. Positions follow the commits.
        let rows: Vec<(String, String)> = [
            ("0/300", r#"{"action":"B"}"#),
            ("0/300", r#"{"action":"I","schema":"s","table":"t","columns":[{"name":"id","type":"bigint","value":2}]}"#),
            ("0/FFFF", r#"{"action":"C"}"#),
            ("0/100", r#"{"action":"B"}"#),
            ("0/100", r#"{"action":"I","schema":"s","table":"t","columns":[{"name":"id","type":"bigint","value":1}]}"#),
            ("0/200", r#"{"action":"I","schema":"s","table":"t","columns":[{"name":"id","type":"bigint","value":3}]}"#),
            ("0/10000", r#"{"action":"C"}"#),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let out = decode_changes(&Arc::from("pg"), &rows);
        let positions: Vec<_> = out.batch.events.iter().map(|e| e.position.clone()).collect();
        let shown: Vec<_> = positions.iter().map(|p| p.to_string()).collect();
        assert_eq!(shown, ["pg@0/FFFF", "pg@0/10000", "pg@0/10000#1"]);
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{shown:?}");
    }

    #[test]
    fn bad_records_are_dead_letters_of_their_transaction() {
        let rows: Vec<(String, String)> = [
            ("0/1", r#"{"action":"B"}"#),
            ("0/1", r#"{"action":"I","schema":"public","table":"t","columns":[{"name":"n","type":"numeric","value":"NaN"}]}"#),
            ("0/1", r#"not json"#),
            ("0/2", r#"{"action":"C"}"#),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let out = decode_changes(&Arc::from("pg"), &rows);
        assert_eq!(out.batch.events.len(), 0);
        assert_eq!(out.batch.dead_letters.len(), 2);
        assert!(out.batch.dead_letters[0].reason.contains("NaN"), "{}", out.batch.dead_letters[0].reason);
        assert_eq!(out.confirm.as_deref(), Some("0/2"));
    }

    /// What the server sends after a (re)connection: whole transactions from the slot's
    /// confirmed position, here until at least `n` rows.
    fn resent(log: &[Vec<(String, String)>], confirmed: usize, n: usize) -> Vec<(String, String)> {
        let mut rows = Vec::new();
        for transaction in &log[confirmed..] {
            if rows.len() >= n {
                break;
            }
            rows.extend(transaction.iter().cloned());
        }
        rows
    }

    /// Transaction `t` of `sizes`: B, one insert per row, C at a growing LSN.
    fn transactions(sizes: &[usize]) -> Vec<Vec<(String, String)>> {
        let mut lsn = 0x100u64;
        let mut ids = 0;
        sizes
            .iter()
            .map(|&size| {
                let mut rows = vec![(format!("0/{lsn:X}"), r#"{"action":"B"}"#.to_string())];
                for _ in 0..size {
                    ids += 1;
                    let insert = format!(
                        r#"{{"action":"I","schema":"s","table":"t","columns":[{{"name":"id","type":"bigint","value":{ids}}}]}}"#
                    );
                    rows.push((format!("0/{lsn:X}"), insert));
                    lsn += 0x28;
                }
                lsn += 0x1000;
                rows.push((format!("0/{lsn:X}"), r#"{"action":"C"}"#.to_string()));
                rows
            })
            .collect()
    }

    /// The index of the transaction that commits at `lsn`.
    fn transaction_of(log: &[Vec<(String, String)>], lsn: &str) -> usize {
        log.iter().position(|t| t.last().is_some_and(|(at, _)| at == lsn)).unwrap()
    }

    #[test]
    fn a_reconnection_skips_the_transactions_already_delivered() {
        let log = transactions(&[2, 1, 3]);
        let mut delivered = Delivered::default();
        let first = delivered.decode_after(&Arc::from("pg"), &resent(&log, 0, 1));
        assert_eq!(first.batch.events.len(), 2);
        // Nothing confirmed yet: after a reconnection the server starts at the same place.
        let second = delivered.decode_after(&Arc::from("pg"), &resent(&log, 0, first.rows + 1));
        let ids: Vec<_> =
            second.batch.events.iter().map(|e| e.after.as_ref().unwrap().get("id").unwrap().to_string()).collect();
        assert_eq!(ids, ["3"], "the first transaction is not delivered again");
        delivered.confirmed(&LogPoint::parse(first.confirm.as_deref().unwrap()));
        assert_eq!(delivered.0.len(), 1);
        let third = delivered.decode_after(&Arc::from("pg"), &resent(&log, 1, second.rows + 10));
        assert_eq!(third.batch.events.len(), 3);
        let idle = delivered.decode_after(&Arc::from("pg"), &resent(&log, 1, 100));
        assert!(idle.confirm.is_none() && idle.batch.events.is_empty());
    }

    proptest! {
        #[test]
        fn reconnections_deliver_every_transaction_once_in_order(
            sizes in proptest::collection::vec(1usize..6, 1..30),
            steps in proptest::collection::vec((1usize..12, any::<bool>()), 1..80),
        ) {
            let log = transactions(&sizes);
            let everything: Vec<(String, String)> = log.iter().flatten().cloned().collect();
            let expected: Vec<String> = decode_changes(&Arc::from("pg"), &everything).batch.events.iter().map(|e| e.position.to_string()).collect();
            let mut delivered = Delivered::default();
            let mut confirmed = 0; // transactions the slot has confirmed
            let mut seen: Vec<String> = Vec::new();
            let mut commits: Vec<String> = Vec::new();
            for (max, confirm) in steps.into_iter().chain(std::iter::repeat_n((12, true), sizes.len())) {
                let delivered_to = commits.last().map_or(confirmed, |lsn| transaction_of(&log, lsn) + 1);
                let ahead: usize = log[confirmed..delivered_to].iter().map(Vec::len).sum();
                let out = delivered.decode_after(&Arc::from("pg"), &resent(&log, confirmed, ahead + max));
                seen.extend(out.batch.events.iter().map(|e| e.position.to_string()));
                commits.extend(out.confirm);
                if confirm && let Some(lsn) = commits.last() {
                    delivered.confirmed(&LogPoint::parse(lsn));
                    confirmed = transaction_of(&log, lsn) + 1;
                }
            }
            prop_assert_eq!(seen, expected);
        }

        #[test]
        fn no_record_panics(text in ".{0,200}", ty in "(numeric|bigint|boolean|date|jsonb|text|timestamp with time zone)") {
            let _ = decode_changes(&Arc::from("pg"), &[("0/1".into(), text.clone()), ("0/2".into(), "{\"action\":\"C\"}".into())]);
            let _ = pg_value(&ty, &text);
        }

        #[test]
        fn numerics_keep_every_digit(units in any::<i64>(), scale in 0u32..12) {
            let d = Decimal::new(units, scale);
            prop_assert_eq!(pg_value("numeric(30,12)", &d.to_string()).unwrap(), Value::Decimal(d));
        }
    }
}
