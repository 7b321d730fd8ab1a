//! PostgreSQL logical decoding through a replication slot, with the `wal2json` plugin
//! (`wal2json.rs`) or the built-in `pgoutput` (`pgoutput.rs`); both turn into the same
//! [`Record`]s, so positions, checkpoints and confirmation do not depend on the plugin.
//!
//! The slot remembers, on the server, how far fundguard has confirmed. Changes are read
//! over a replication connection (`replication.rs`): the server decodes each transaction
//! once, at its commit, and pushes it as soon as it is flushed. Only once a checkpoint
//! covering a batch is written does [`PostgresSource::confirm`] tell the server the slot
//! may move to that batch's last commit LSN. A crash before that re-reads the batch:
//! at-least-once, never skipping. A new connection starts again at the slot's confirmed
//! position, so the source skips the batches it already delivered (whole transactions,
//! in commit order: a prefix of what the server sends again).
//! Types are mapped exactly (`types.rs`): `numeric` keeps every digit.

mod pgoutput;
mod replication;
mod types;
mod wal2json;

pub use pgoutput::decode_messages;
pub use wal2json::decode_changes;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use fundguard_core::{ChangeEvent, EventTime, LogPoint, Op, Position, Row};
use tokio_postgres::{Client, NoTls};

use crate::batch::table_matches;
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
    /// The logical replication slot.
    pub slot: String,
    /// The slot's output plugin.
    pub plugin: Plugin,
    /// Create the slot when it does not exist (it then starts at the current end).
    pub create_slot: bool,
    /// `schema.table` patterns (`*` wildcards) to decode; empty decodes every table.
    pub include: Vec<String>,
    /// How long the slot may stay quiet before the source vouches that it has read every
    /// commit up to then (event time moves on: deadlines fire without new changes).
    pub poll_interval: Duration,
}

/// The output plugin a slot decodes with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plugin {
    /// `wal2json` (format version 2), an extension installed on the server.
    Wal2Json,
    /// `pgoutput`, built into PostgreSQL 10+: the tables come from a publication.
    PgOutput {
        publication: String,
        /// Create the publication (for the tables `include` matches) when it does not exist.
        create_publication: bool,
    },
}

impl Plugin {
    /// The plugin's name, as `pg_replication_slots.plugin` shows it.
    pub fn name(&self) -> &'static str {
        match self {
            Plugin::Wal2Json => "wal2json",
            Plugin::PgOutput { .. } => "pgoutput",
        }
    }
}

/// One output plugin record, decoded as far as it can be before its transaction commits.
#[derive(Debug, Clone)]
pub enum Record {
    /// A transaction's commit, with its time when the plugin gives one.
    Commit { time: Option<EventTime> },
    /// A row change of the open transaction, or why it cannot be one (a dead letter).
    Change(Result<RowChange, Rejected>),
    /// Begins, relation descriptions, truncates, messages: nothing to deliver.
    Other,
}

/// A row change before its transaction's commit places it.
#[derive(Debug, Clone)]
pub struct RowChange {
    pub table: Arc<str>,
    pub op: Op,
    pub before: Option<Row>,
    pub after: Option<Row>,
    /// The change's own time, when the plugin gives one (the commit's replaces it).
    pub time: Option<EventTime>,
}

/// A record that could not be decoded: what it was, and why.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub payload: Vec<u8>,
    pub reason: String,
}

/// The decoder of one replication connection's records.
enum Decoder {
    Wal2Json,
    /// Keeps the relations the connection described.
    PgOutput(pgoutput::PgOutput),
}

impl Decoder {
    fn record(&mut self, data: &[u8]) -> Record {
        match self {
            Decoder::Wal2Json => wal2json::record(&String::from_utf8_lossy(data)),
            Decoder::PgOutput(decoder) => decoder.record(data),
        }
    }
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
    /// The replication connection and its decoder, from the first read on.
    stream: Option<(Replication, Decoder)>,
    /// Records received and not yet delivered, with their LSNs.
    pending: Vec<(String, Record)>,
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
    fn decode_after(&mut self, source: &Arc<str>, mut rows: Vec<(String, Record)>) -> PostgresBatch {
        if let Some(delivered) = self.0.back() {
            rows.drain(..delivered_prefix(&rows, delivered));
        }
        let out = decode_records(source, rows);
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
        // The publication before the slot: pgoutput reads the publication as the catalog was
        // at each change, so a slot created before its publication fails on every change
        // made in between, for good.
        if let Plugin::PgOutput { publication, create_publication } = &config.plugin {
            ensure_publication(&client, publication, *create_publication, &config.include).await?;
        }
        let plugin: Option<String> = client
            .query_opt("SELECT plugin::text FROM pg_replication_slots WHERE slot_name = $1", &[&config.slot])
            .await
            .map_err(|e| client_error("looking up the slot", e))?
            .map(|row| row.get(0));
        let wanted = config.plugin.name();
        match plugin.as_deref() {
            Some(plugin) if plugin == wanted => {}
            Some(other) => {
                let fix = if matches!(other, "wal2json" | "pgoutput") {
                    format!("set `plugin: {other}` or use another slot")
                } else {
                    "use another slot (fundguard reads wal2json and pgoutput)".to_string()
                };
                return Err(failed(
                    format!("slot {} uses the plugin {other}, not {wanted}: {fix}", config.slot),
                    false,
                ));
            }
            None if config.create_slot => {
                client
                    .execute("SELECT pg_create_logical_replication_slot($1, $2)", &[&config.slot, &wanted])
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
            let rows: Vec<(String, Record)> = self.pending.drain(..self.whole).collect();
            self.whole = 0;
            let out = self.unconfirmed.decode_after(&self.source, rows);
            if out.confirm.is_some() {
                return Ok(out);
            }
            // Every transaction was one delivered before a reconnection: read on.
        }
    }

    /// Opens the replication connection and starts streaming the slot from its confirmed
    /// position, with a decoder that knows nothing of an earlier connection.
    async fn start_streaming(&mut self) -> Result<(Replication, Decoder), SourceError> {
        let mut stream = Replication::connect(&self.server, self.config.tls.as_ref()).await?;
        let (options, decoder) = match &self.config.plugin {
            Plugin::Wal2Json => (wal2json::options(&self.config.include), Decoder::Wal2Json),
            Plugin::PgOutput { publication, .. } => {
                (pgoutput::options(publication), Decoder::PgOutput(pgoutput::PgOutput::new(&self.config.include)))
            }
        };
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
        Ok((stream, decoder))
    }

    /// Takes one message off the stream (waiting at most `wait`); whether one came.
    async fn receive(&mut self, wait: Duration) -> Result<bool, SourceError> {
        let Some((stream, decoder)) = self.stream.as_mut() else { return Ok(false) };
        match stream.receive(wait).await? {
            Some(Received::Record { lsn, data }) => {
                let record = decoder.record(&data);
                let commit = matches!(record, Record::Commit { .. });
                self.pending.push((replication::lsn_text(lsn), record));
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
            Some((stream, _)) => stream.status(to, reply).await,
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

/// Makes sure the publication pgoutput streams exists and publishes inserts, updates and
/// deletes. Asked to create it, fundguard publishes the tables `include` matches (every
/// user table when it is empty) — never `FOR ALL TABLES`, and never a table without a
/// replica identity: the server refuses UPDATE and DELETE on a published table it cannot
/// identify rows of, and a checker must not break the application it watches.
async fn ensure_publication(
    client: &Client,
    publication: &str,
    create: bool,
    include: &[String],
) -> Result<(), SourceError> {
    let quoted = replication::quote_identifier(publication);
    let flags = client
        .query_opt("SELECT pubinsert, pubupdate, pubdelete FROM pg_publication WHERE pubname = $1", &[&publication])
        .await
        .map_err(|e| client_error("looking up the publication", e))?;
    if let Some(row) = flags {
        let missing: Vec<&str> = ["insert", "update", "delete"]
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !row.get::<_, bool>(*i))
            .map(|(_, what)| what)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        return Err(failed(
            format!(
                "publication {publication} does not publish {}: fundguard would never see those changes \
                 (ALTER PUBLICATION {quoted} SET (publish = 'insert, update, delete'))",
                missing.join(", ")
            ),
            false,
        ));
    }
    if !create {
        return Err(failed(
            format!(
                "publication {publication} does not exist: create it (CREATE PUBLICATION {quoted} FOR TABLE …) \
                 or set `create_publication: true`"
            ),
            false,
        ));
    }
    let tables = client
        .query(
            "SELECT n.nspname::text, c.relname::text, \
                    c.relreplident <> 'n' AND (c.relreplident <> 'd' OR EXISTS \
                      (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' \
             ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(|e| client_error("listing the tables to publish", e))?;
    let mut published = Vec::new();
    let mut unidentified = Vec::new();
    for row in &tables {
        let (schema, table, identified): (String, String, bool) = (row.get(0), row.get(1), row.get(2));
        let name = format!("{schema}.{table}");
        if !include.is_empty() && !include.iter().any(|p| table_matches(p, &name)) {
            continue;
        }
        let quoted_table =
            format!("{}.{}", replication::quote_identifier(&schema), replication::quote_identifier(&table));
        if identified { published.push(quoted_table) } else { unidentified.push(name) }
    }
    if !unidentified.is_empty() {
        return Err(failed(
            format!(
                "not creating publication {publication}: {} {} no primary key or replica identity, and once \
                 published PostgreSQL would refuse {} UPDATEs and DELETEs; give {} one \
                 (ALTER TABLE … REPLICA IDENTITY FULL), narrow `include`, or create the publication yourself",
                unidentified.join(", "),
                if unidentified.len() == 1 { "has" } else { "have" },
                if unidentified.len() == 1 { "its" } else { "their" },
                if unidentified.len() == 1 { "it" } else { "them" },
            ),
            false,
        ));
    }
    if published.is_empty() {
        return Err(failed(
            format!("not creating publication {publication}: no table matches `include` yet (retrying)"),
            true,
        ));
    }
    // A partitioned table's changes come under its own name, as rules know it, not under
    // the partition's (PostgreSQL 13+).
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(|e| client_error("reading the server version", e))?
        .get(0);
    let options = if version >= 130_000 { " WITH (publish_via_partition_root = true)" } else { "" };
    client
        .batch_execute(&format!("CREATE PUBLICATION {quoted} FOR TABLE {}{options}", published.join(", ")))
        .await
        .map_err(|e| client_error(&format!("creating the publication {publication}"), e))
}

/// How many leading rows belong to transactions already delivered: those up to
/// the last commit at or before `delivered` (transactions come whole, in commit order).
fn delivered_prefix(rows: &[(String, Record)], delivered: &LogPoint) -> usize {
    let mut prefix = 0;
    for (i, (lsn, record)) in rows.iter().enumerate() {
        if let Record::Commit { .. } = record {
            if LogPoint::parse(lsn) > *delivered {
                break;
            }
            prefix = i + 1;
        }
    }
    prefix
}

/// Turns `(lsn, record)` rows into events, up to the last whole transaction.
///
/// An event's position is its transaction's commit LSN and its place in the transaction:
/// transactions are decoded in commit order, while the LSNs of their changes interleave
/// with other transactions' changes, so only the commit LSN orders them as they happened.
/// A rejected record is a dead letter of its transaction, placed the same way.
pub fn decode_records(source: &Arc<str>, rows: Vec<(String, Record)>) -> PostgresBatch {
    let mut batch = DecodedBatch::default();
    let mut confirm = None;
    let mut taken = 0;
    // Events of the open transaction, moved to `batch` at its commit.
    let mut open: Vec<ChangeEvent> = Vec::new();
    let mut open_dead: Vec<DeadLetter> = Vec::new();
    for (row, (lsn, record)) in rows.into_iter().enumerate() {
        // Until its commit names it, a change is placed at its own LSN.
        let index = (open.len() + open_dead.len()) as u32;
        let position = Position::Log { source: source.clone(), at: LogPoint::parse(&lsn), index };
        match record {
            Record::Commit { time } => {
                let commit_lsn = LogPoint::parse(&lsn);
                let at_commit = |position: &mut Position| {
                    if let Position::Log { at, .. } = position {
                        *at = commit_lsn.clone();
                    }
                };
                for mut event in open.drain(..) {
                    if let Some(t) = time {
                        event.commit_time = t;
                    }
                    at_commit(&mut event.position);
                    batch.events.push(event);
                }
                for mut letter in open_dead.drain(..) {
                    at_commit(&mut letter.position);
                    batch.dead_letters.push(letter);
                }
                confirm = Some(lsn);
                taken = row + 1;
            }
            Record::Change(Ok(change)) => open.push(ChangeEvent {
                table: change.table,
                op: change.op,
                before: change.before,
                after: change.after,
                commit_time: change.time.unwrap_or_default(),
                position,
            }),
            Record::Change(Err(rejected)) => {
                open_dead.push(DeadLetter { payload: rejected.payload, position, reason: rejected.reason })
            }
            Record::Other => {}
        }
    }
    PostgresBatch { batch, confirm, rows: taken }
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

    /// What the server sends after a (re)connection: whole transactions from the slot's
    /// confirmed position, here until at least `n` rows (wal2json's, decoded).
    fn resent(log: &[Vec<(String, String)>], confirmed: usize, n: usize) -> Vec<(String, Record)> {
        let mut rows = Vec::new();
        for transaction in &log[confirmed..] {
            if rows.len() >= n {
                break;
            }
            rows.extend(transaction.iter().map(|(lsn, data)| (lsn.clone(), wal2json::record(data))));
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
        let first = delivered.decode_after(&Arc::from("pg"), resent(&log, 0, 1));
        assert_eq!(first.batch.events.len(), 2);
        // Nothing confirmed yet: after a reconnection the server starts at the same place.
        let second = delivered.decode_after(&Arc::from("pg"), resent(&log, 0, first.rows + 1));
        let ids: Vec<_> =
            second.batch.events.iter().map(|e| e.after.as_ref().unwrap().get("id").unwrap().to_string()).collect();
        assert_eq!(ids, ["3"], "the first transaction is not delivered again");
        delivered.confirmed(&LogPoint::parse(first.confirm.as_deref().unwrap()));
        assert_eq!(delivered.0.len(), 1);
        let third = delivered.decode_after(&Arc::from("pg"), resent(&log, 1, second.rows + 10));
        assert_eq!(third.batch.events.len(), 3);
        let idle = delivered.decode_after(&Arc::from("pg"), resent(&log, 1, 100));
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
                let out = delivered.decode_after(&Arc::from("pg"), resent(&log, confirmed, ahead + max));
                seen.extend(out.batch.events.iter().map(|e| e.position.to_string()));
                commits.extend(out.confirm);
                if confirm && let Some(lsn) = commits.last() {
                    delivered.confirmed(&LogPoint::parse(lsn));
                    confirmed = transaction_of(&log, lsn) + 1;
                }
            }
            prop_assert_eq!(seen, expected);
        }

    }
}
