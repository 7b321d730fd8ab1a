//! MySQL / MariaDB binlog: fundguard connects as a replica and reads row changes as the
//! server commits them.
//!
//! The server must write ROW events with FULL row images (checked on connect, with an
//! error naming the setting). Column names come from `binlog_row_metadata=FULL`, else
//! from information_schema (looked up again after DDL). Events are handed out in
//! batches that end on a transaction boundary, each with the position after it: the
//! caller stores that position once the pipeline has processed the batch, so a
//! restart resumes after the last whole transaction processed — at-least-once, never
//! skipping. MariaDB resumes by GTID (`@slave_connect_state`), MySQL with `gtid_mode=ON`
//! by GTID set (`COM_BINLOG_DUMP_GTID`), others by file and offset.

mod compressed;
mod payload;
mod position;
mod row;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fundguard_core::{ChangeEvent, EventTime, LogPoint, Op, Position};
use futures::{FutureExt, StreamExt};
use mysql_async::binlog::events::{Event, EventData, RowsEventData};
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn, Opts, OptsBuilder};

pub use self::position::{BinlogPosition, GtidParseError, GtidState};
use self::row::TableInfo;
pub use self::row::{Images, decode_rows_event};
use crate::batch::{clock_offset, hex, local_micros, table_matches};
use crate::tls::Verify;
use crate::{DeadLetter, DecodedBatch, SourceError};

/// MariaDB's own GTID event (not decoded by mysql_common): sequence u64, domain u32, flags u8.
const MARIADB_GTID_EVENT: u8 = 162;
/// The server's keep-alive while there is nothing to send (`@master_heartbeat_period`).
const HEARTBEAT_EVENT: u8 = 27;
/// How long the server waits with nothing to send before a heartbeat, in nanoseconds:
/// a quiet server moves event time on this often, so deadlines fire within about it.
const HEARTBEAT_PERIOD_NANOS: u64 = 100_000_000;
/// A transaction's binlog time is when its COMMIT (or its only statement) began, not when
/// it reached the binlog; a heartbeat vouches only for what began this long before it.
const COMMIT_MARGIN_MICROS: i64 = 200_000;
/// MariaDB GTID flag: the transaction is a single statement (DDL) without BEGIN/COMMIT.
const MARIADB_FL_STANDALONE: u8 = 1;
/// No event, not even a heartbeat, for this long means the connection is dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(30);

/// Where to read from and what to keep.
#[derive(Debug, Clone)]
pub struct BinlogConfig {
    /// `mysql://user@host:port`; the password comes separately (from the environment).
    pub url: String,
    pub password: Option<String>,
    /// TLS to the server (`None`: clear text).
    pub tls: Option<crate::tls::TlsConfig>,
    /// The replica id fundguard registers with; unique among the server's replicas.
    pub server_id: u32,
    /// Where to start when no position is stored.
    pub start: StartAt,
    /// `db.table` patterns (`*` wildcards); empty means every table.
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// The zone of DATETIME values (seconds east of UTC); TIMESTAMPs are instants anyway.
    pub datetime_offset_secs: i32,
}

/// Where a source without a stored position starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAt {
    /// The server's current end: only changes committed from now on.
    End,
    /// The oldest binlog the server still has.
    Beginning,
    /// A given file and offset, or GTID.
    At(BinlogPosition),
}

fn failed(message: impl Into<String>, retryable: bool) -> SourceError {
    SourceError::new("binlog", message, retryable)
}

/// Classifies a client error: server refusals that reconnecting cannot fix are final.
fn client_error(what: &str, e: mysql_async::Error) -> SourceError {
    match &e {
        mysql_async::Error::Server(s) => {
            let hint = match s.code {
                1045 => " (check the user and the password environment variable)",
                1227 | 1142 | 1044 => " (grant the user REPLICATION SLAVE, REPLICATION CLIENT and SELECT)",
                1236 => {
                    " (the server no longer has that binlog position: move `checkpoint` out of the data directory to start from the source's `start`, and replay what was lost from a backup of the binlog)"
                }
                _ => "",
            };
            // 1236 and grant/auth problems need a person; other server errors may pass.
            let retryable = !matches!(s.code, 1045 | 1227 | 1142 | 1044 | 1236);
            failed(format!("{what}: {e}{hint}"), retryable)
        }
        mysql_async::Error::Url(_) => failed(format!("{what}: {e}"), false),
        _ => failed(format!("{what}: {e}"), true),
    }
}

/// The client's TLS settings (OpenSSL through native-tls, the backend the warehouse's
/// MySQL tables already use): only `ca_file`'s CAs are trusted when it is given (the
/// system's otherwise); verify-ca skips the host name check, never the CA's. A client
/// certificate is handed over as the PKCS#12 archive mysql_async asks for, built in
/// memory from the PEM files. TLS also means TCP: mysql_async would otherwise move a local
/// connection to the server's Unix socket, which it does not encrypt.
fn ssl_opts(tls: &crate::tls::TlsConfig) -> Result<mysql_async::SslOpts, SourceError> {
    let mut ssl = mysql_async::SslOpts::default().with_danger_skip_domain_validation(tls.verify == Verify::Ca);
    if let Some(ca) = &tls.ca_file {
        ssl = ssl.with_root_certs(vec![ca.clone().into()]).with_disable_built_in_roots(true);
    }
    if let Some(client) = &tls.client {
        let archive = crate::tls::pkcs12(client).map_err(|e| failed(e, false))?;
        ssl = ssl.with_client_identity(Some(mysql_async::ClientIdentity::new(archive.into()).with_password("")));
    }
    Ok(ssl)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    MariaDb,
    MySql,
}

/// A connected replication stream.
pub struct BinlogSource {
    stream: BinlogStream,
    /// A second connection for information_schema lookups (servers without FULL metadata).
    metadata: Conn,
    config: BinlogConfig,
    source: Arc<str>,
    /// Table maps seen, by table id.
    tables: HashMap<u64, TableInfo>,
    /// Column names from information_schema, by `db.table`; cleared on DDL.
    column_names: HashMap<Arc<str>, Vec<Arc<str>>>,
    /// The binlog file being read.
    file: String,
    /// `file` as base name and sequence number, which event positions compare by.
    file_number: Option<(Arc<str>, u64)>,
    /// GTID state after the last whole transaction.
    gtid: GtidState,
    /// The GTID of the open transaction, applied to `gtid` at its commit.
    open_gtid: Option<(u32, u32, u64)>,
    open_mysql_gtid: Option<([u8; 16], u64)>,
    in_transaction: bool,
    standalone: bool,
    /// Where the open transaction's events start in `pending`.
    transaction_start: usize,
    /// Position after the last whole transaction read.
    committed: BinlogPosition,
    pending: DecodedBatch,
    /// The server's clock minus ours, in microseconds (measured on connect).
    clock_offset: i64,
}

impl BinlogSource {
    /// Connects, checks the server's binlog settings and requests the stream from
    /// `resume` (a stored position) or else the configured start. `name` is the
    /// source's name in positions and event time.
    pub async fn connect(
        name: &str,
        config: &BinlogConfig,
        resume: Option<&BinlogPosition>,
    ) -> Result<BinlogSource, SourceError> {
        let opts = Opts::from_url(&config.url).map_err(|e| failed(format!("`url` {}: {e}", config.url), false))?;
        let mut opts = OptsBuilder::from_opts(opts);
        if let Some(password) = &config.password {
            opts = opts.pass(Some(password.clone()));
        }
        if let Some(tls) = &config.tls {
            opts = opts.ssl_opts(Some(ssl_opts(tls)?)).prefer_socket(false);
        }
        let opts: Opts = opts.into();
        let host = opts.ip_or_hostname().to_string();
        let mut conn = Conn::new(opts.clone()).await.map_err(|e| match &config.tls {
            Some(tls) => match crate::tls::explain_refusal(tls, &host, &e.to_string()) {
                Some(why) => failed(format!("connecting with TLS: {why}"), false),
                None => client_error("connecting with TLS", e),
            },
            None => client_error("connecting", e),
        })?;
        let flavor = check_server(&mut conn).await?;
        let start = match (resume, &config.start) {
            (Some(stored), _) => stored.clone(),
            (None, StartAt::At(at)) => at.clone(),
            (None, StartAt::Beginning) => BinlogPosition { file: String::new(), offset: 4, gtid: GtidState::default() },
            (None, StartAt::End) => current_end(&mut conn, flavor).await?,
        };
        // Heartbeats tell a quiet server from a dead link, and move event time on (see
        // `caught_up`): a tenth of a second, so deadlines fire soon after they fall due.
        conn.query_drop(format!("SET @master_heartbeat_period = {HEARTBEAT_PERIOD_NANOS}"))
            .await
            .map_err(|e| client_error("setting the heartbeat", e))?;
        let before = local_micros();
        let server: Option<i64> = conn
            .query_first("SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)")
            .await
            .map_err(|e| client_error("reading the server's clock", e))?;
        let clock_offset = clock_offset(before, server.unwrap_or(before), local_micros());
        let mut file = start.file.clone();
        let mut offset = start.offset.max(4);
        if flavor == Flavor::MariaDb {
            // Without this capability MariaDB turns GTID events into BEGIN queries.
            conn.query_drop("SET @mariadb_slave_capability = 4")
                .await
                .map_err(|e| client_error("asking for MariaDB GTID events", e))?;
            if let Some(state) = start.gtid.mariadb_connect_state() {
                conn.query_drop(format!("SET @slave_connect_state = '{state}'"))
                    .await
                    .map_err(|e| client_error("setting the GTID to resume from", e))?;
                conn.query_drop("SET @slave_gtid_strict_mode = 0")
                    .await
                    .map_err(|e| client_error("setting the GTID mode", e))?;
                file.clear();
                offset = 4;
            }
        }
        let mut sids = Vec::new();
        if flavor == Flavor::MySql && !start.gtid.mysql_executed().is_empty() {
            let mode: Option<String> = conn.query_first("SELECT @@gtid_mode").await.ok().flatten();
            if mode.as_deref() == Some("ON") {
                sids = start
                    .gtid
                    .mysql_executed()
                    .into_iter()
                    .map(|(uuid, last)| {
                        mysql_async::Sid::new(uuid).with_interval(mysql_async::GnoInterval::new(1, last + 1))
                    })
                    .collect();
                file.clear();
                offset = 4;
            }
        }
        let metadata = Conn::new(opts).await.map_err(|e| client_error("connecting for metadata", e))?;
        let mut request = BinlogStreamRequest::new(config.server_id).with_filename(file.as_bytes()).with_pos(offset);
        if !sids.is_empty() {
            request = request.with_gtid().with_gtid_set(sids);
        }
        let stream = conn.get_binlog_stream(request).await.map_err(|e| client_error("requesting the binlog", e))?;
        Ok(BinlogSource {
            stream,
            metadata,
            config: config.clone(),
            source: Arc::from(name),
            tables: HashMap::new(),
            column_names: HashMap::new(),
            file_number: file_number(&start.file),
            file: start.file.clone(),
            gtid: start.gtid.clone(),
            open_gtid: None,
            open_mysql_gtid: None,
            in_transaction: false,
            standalone: false,
            transaction_start: 0,
            committed: start,
            pending: DecodedBatch::default(),
            clock_offset,
        })
    }

    /// The position after the last whole transaction read.
    pub fn position(&self) -> &BinlogPosition {
        &self.committed
    }

    /// The next batch of changes, ending on a transaction boundary, with the position
    /// after it. Returns as soon as the server has nothing more ready (low latency
    /// when live), or at about `max` events (throughput when catching up); an empty
    /// batch on a heartbeat while the server is quiet.
    pub async fn next_batch(&mut self, max: usize) -> Result<(DecodedBatch, BinlogPosition), SourceError> {
        loop {
            let at_boundary = !self.in_transaction;
            let ready_to_send = at_boundary && !self.pending.is_empty();
            let event = if ready_to_send {
                if self.pending.len() >= max {
                    return Ok(self.take());
                }
                // Anything more already here? If not, send what we have now.
                match self.stream.next().now_or_never() {
                    None => return Ok(self.take()),
                    Some(next) => next,
                }
            } else {
                match tokio::time::timeout(SILENCE_LIMIT, self.stream.next()).await {
                    Ok(next) => next,
                    Err(_) => return Err(failed(format!("no event or heartbeat for {SILENCE_LIMIT:?}"), true)),
                }
            };
            let event = match event {
                Some(Ok(event)) => event,
                Some(Err(e)) => return Err(client_error("reading the binlog", e)),
                None => return Err(failed("the server closed the binlog stream", true)),
            };
            let heartbeat = event.header().event_type_raw() == HEARTBEAT_EVENT;
            self.handle(&event).await?;
            // A quiet server still beats: an empty batch lets the caller store the position
            // it has processed, and says how far event time may move.
            if heartbeat && self.pending.is_empty() && !self.in_transaction {
                self.pending.caught_up = Some(self.caught_up());
                return Ok(self.take());
            }
            // A huge transaction is sent in parts; its position moves only at its end.
            if self.pending.len() >= max * 4 {
                return Ok(self.take());
            }
        }
    }

    /// How far event time may move on a heartbeat: the server has written nothing more,
    /// so a transaction it writes later began its COMMIT now or later — less the margin
    /// for one that began just before the heartbeat and is being written, and cut to
    /// the whole second, since binlog times have no fraction. A statement that ran longer
    /// than the margin before committing arrives behind event time (a late event).
    fn caught_up(&self) -> EventTime {
        let server_now = local_micros().saturating_add(self.clock_offset).saturating_sub(COMMIT_MARGIN_MICROS);
        EventTime::from_secs(server_now.div_euclid(1_000_000))
    }

    fn take(&mut self) -> (DecodedBatch, BinlogPosition) {
        self.transaction_start = 0;
        (std::mem::take(&mut self.pending), self.committed.clone())
    }

    /// A dead letter for an event that does not decode: its bytes (hex) and why.
    fn undecodable(&mut self, event: &Event, reason: String) {
        let header = event.header();
        let position = self.event_position(header.log_pos());
        self.pending.dead_letters.push(DeadLetter {
            payload: hex(event.data()).into_bytes(),
            position,
            reason: format!("undecodable binlog event (type {}): {reason}", header.event_type_raw()),
        });
    }

    /// Handles one event from the stream: a MySQL 8 compressed transaction is its events,
    /// one by one.
    async fn handle(&mut self, event: &Event) -> Result<(), SourceError> {
        if event.header().event_type_raw() != payload::TRANSACTION_PAYLOAD_EVENT {
            return self.handle_event(event).await;
        }
        let unreadable = match payload::InnerEvents::of(event) {
            Ok(mut inner) => loop {
                match inner.next_event() {
                    Ok(Some(inner)) => self.handle_event(&inner).await?,
                    Ok(None) => return Ok(()),
                    Err(reason) => break reason,
                }
            },
            Err(reason) => reason,
        };
        // Loud, never skipped: the payload is kept in the dead letter, and the transaction
        // ends there (its GTID recorded, the position past it), so a restart does not read
        // it again.
        self.undecodable(event, unreadable);
        let header = event.header();
        self.commit(header.log_pos(), header.timestamp());
        Ok(())
    }

    async fn handle_event(&mut self, event: &Event) -> Result<(), SourceError> {
        let plain;
        let event = match compressed::decompress(event) {
            Ok(None) => event,
            Ok(Some(inflated)) => {
                plain = inflated;
                &plain
            }
            Err(reason) => {
                self.undecodable(event, reason);
                return Ok(());
            }
        };
        let header = event.header();
        if header.event_type_raw() == MARIADB_GTID_EVENT {
            let data = event.data();
            if data.len() >= 13 {
                let sequence = u64::from_le_bytes(data[0..8].try_into().unwrap_or_default());
                let domain = u32::from_le_bytes(data[8..12].try_into().unwrap_or_default());
                self.open_gtid = Some((domain, header.server_id(), sequence));
                self.standalone = data[12] & MARIADB_FL_STANDALONE != 0;
                self.begin();
            }
            return Ok(());
        }
        let data = match event.read_data() {
            Ok(Some(data)) => data,
            Ok(None) => return Ok(()),
            Err(e) => {
                self.undecodable(event, e.to_string());
                return Ok(());
            }
        };
        match data {
            EventData::RotateEvent(rotate) => {
                self.file = binlog_file_name(&rotate.name());
                self.file_number = file_number(&self.file);
                if !self.in_transaction {
                    self.committed =
                        BinlogPosition { file: self.file.clone(), offset: rotate.position(), gtid: self.gtid.clone() };
                }
            }
            EventData::GtidEvent(gtid) => self.open_mysql_gtid = Some((gtid.sid(), gtid.gno())),
            EventData::QueryEvent(query) => {
                let text = query.query();
                let text = text.trim();
                if text.eq_ignore_ascii_case("BEGIN") {
                    self.begin();
                } else if text.eq_ignore_ascii_case("COMMIT") || text.eq_ignore_ascii_case("ROLLBACK") {
                    self.commit(header.log_pos(), header.timestamp());
                } else {
                    // DDL: table maps and names may have changed.
                    self.tables.clear();
                    self.column_names.clear();
                    if crate::batch::is_schema_statement(text) {
                        self.pending.schema_statements.push(crate::batch::SchemaStatement {
                            at: EventTime::from_secs(i64::from(header.timestamp())),
                            database: query.schema().to_string(),
                            statement: text.to_string(),
                        });
                    }
                    if !self.in_transaction || self.standalone {
                        self.commit(header.log_pos(), header.timestamp());
                    }
                }
            }
            EventData::XidEvent(_) => self.commit(header.log_pos(), header.timestamp()),
            EventData::TableMapEvent(map) => {
                let id = map.table_id();
                if self.tables.get(&id).is_some_and(|t| t.map_bytes == event.data()) {
                    return Ok(());
                }
                let (mut info, named) = TableInfo::from_map(&map, event.data());
                info.included = self.included(&info.name);
                if !named && info.included {
                    self.name_columns(&mut info, map.database_name().as_ref(), map.table_name().as_ref()).await?;
                }
                self.tables.insert(id, info);
            }
            EventData::RowsEvent(rows) => self.rows(&rows, header.log_pos(), header.timestamp()),
            _ => {}
        }
        Ok(())
    }

    fn begin(&mut self) {
        self.in_transaction = true;
        self.transaction_start = self.pending.events.len();
    }

    /// A transaction ended at `log_pos`: its events get its commit time, and the
    /// position after it becomes the resumable one.
    fn commit(&mut self, log_pos: u32, timestamp: u32) {
        if let Some((domain, server, sequence)) = self.open_gtid.take() {
            self.gtid.mariadb(domain, server, sequence);
        }
        if let Some((uuid, number)) = self.open_mysql_gtid.take() {
            self.gtid.mysql(uuid, number);
        }
        let commit_time = EventTime::from_secs(i64::from(timestamp));
        for event in self.pending.events.get_mut(self.transaction_start..).unwrap_or_default() {
            event.commit_time = commit_time;
        }
        self.in_transaction = false;
        self.standalone = false;
        self.transaction_start = self.pending.events.len();
        self.committed =
            BinlogPosition { file: self.file.clone(), offset: u64::from(log_pos), gtid: self.gtid.clone() };
    }

    fn event_position(&self, log_pos: u32) -> Position {
        let at = match &self.file_number {
            Some((base, file)) => LogPoint::Binlog { base: base.clone(), file: *file, offset: u64::from(log_pos) },
            None => LogPoint::Text(Arc::from(format!("{}:{log_pos}", self.file))),
        };
        Position::Log { source: self.source.clone(), at, index: 0 }
    }

    fn rows(&mut self, rows: &RowsEventData<'_>, log_pos: u32, timestamp: u32) {
        let id = rows.table_id();
        let position = self.event_position(log_pos);
        let Some(info) = self.tables.get(&id) else {
            self.pending.dead_letters.push(DeadLetter {
                payload: hex(rows.rows_data()).into_bytes(),
                position,
                reason: format!("rows of table id {id} arrived without its table map"),
            });
            return;
        };
        if !info.included {
            return;
        }
        let op = match rows {
            RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => Op::Insert,
            RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => Op::Delete,
            _ => Op::Update,
        };
        let commit_time = EventTime::from_secs(i64::from(timestamp));
        let offset = self.config.datetime_offset_secs;
        for (index, converted) in info.rows_of(rows, offset).into_iter().enumerate() {
            let position = position.with_index(index as u32);
            let describe = || format!("{op} on {} in {position}", info.name).into_bytes();
            match converted {
                Ok((before, after)) => self.pending.events.push(ChangeEvent {
                    table: info.name.clone(),
                    op,
                    before,
                    after,
                    commit_time,
                    position,
                }),
                Err(reason) => self.pending.dead_letters.push(DeadLetter { payload: describe(), position, reason }),
            }
        }
    }

    fn included(&self, table: &str) -> bool {
        let include = self.config.include.is_empty() || self.config.include.iter().any(|p| table_matches(p, table));
        include && !self.config.exclude.iter().any(|p| table_matches(p, table))
    }

    /// Names columns from information_schema when the binlog does not carry them.
    async fn name_columns(&mut self, info: &mut TableInfo, database: &str, table: &str) -> Result<(), SourceError> {
        if !self.column_names.contains_key(&info.name) {
            let names: Vec<String> = self
                .metadata
                .exec(
                    "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
                     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                    (database, table),
                )
                .await
                .map_err(|e| client_error(&format!("reading the columns of {}", info.name), e))?;
            self.column_names.insert(info.name.clone(), names.into_iter().map(Arc::from).collect());
        }
        let names = &self.column_names[&info.name];
        if names.len() == info.columns.len() {
            for (column, name) in info.columns.iter_mut().zip(names) {
                column.name = name.clone();
            }
        }
        Ok(())
    }
}

/// Checks that the server writes what fundguard can read; tells which setting to change.
async fn check_server(conn: &mut Conn) -> Result<Flavor, SourceError> {
    let settings: Option<(String, String, String, String)> = conn
        .query_first("SELECT CAST(@@log_bin AS CHAR), @@binlog_format, @@binlog_row_image, VERSION()")
        .await
        .map_err(|e| client_error("reading the server's binlog settings", e))?;
    let Some((log_bin, format, image, version)) = settings else {
        return Err(failed("the server did not report its binlog settings", true));
    };
    if !matches!(log_bin.as_str(), "1" | "ON") {
        return Err(failed(
            "binary logging is off on the server: start it with log_bin (e.g. --log-bin=mysql-bin)",
            false,
        ));
    }
    if !format.eq_ignore_ascii_case("ROW") {
        return Err(failed(
            format!("binlog_format is {format}; fundguard reads row events: set binlog_format=ROW on the server"),
            false,
        ));
    }
    if !image.eq_ignore_ascii_case("FULL") {
        return Err(failed(
            format!("binlog_row_image is {image}; fundguard needs whole rows: set binlog_row_image=FULL on the server"),
            false,
        ));
    }
    let metadata: Option<String> = conn.query_first("SELECT @@binlog_row_metadata").await.ok().flatten();
    if !metadata.as_deref().is_some_and(|m| m.eq_ignore_ascii_case("FULL")) {
        tracing::warn!(
            "binlog_row_metadata is not FULL: column names come from information_schema, \
             which shows the current schema, not the one of older events; set binlog_row_metadata=FULL"
        );
    }
    Ok(if version.contains("MariaDB") { Flavor::MariaDb } else { Flavor::MySql })
}

/// The server's current end of binlog, with MariaDB's GTID position there.
async fn current_end(conn: &mut Conn, flavor: Flavor) -> Result<BinlogPosition, SourceError> {
    let status: Option<mysql_async::Row> =
        conn.query_first("SHOW MASTER STATUS").await.map_err(|e| client_error("SHOW MASTER STATUS", e))?;
    let status = status.ok_or_else(|| failed("SHOW MASTER STATUS is empty: is log_bin on?", false))?;
    let file: String = status.get(0).unwrap_or_default();
    let offset: u64 = status.get(1).unwrap_or(4);
    let gtid = if flavor == Flavor::MariaDb {
        let text: Option<String> = conn
            .query_first("SELECT @@gtid_binlog_pos")
            .await
            .map_err(|e| client_error("reading gtid_binlog_pos", e))?;
        GtidState::parse(text.as_deref().unwrap_or_default()).map_err(|e| failed(e.to_string(), false))?
    } else {
        GtidState::default()
    };
    Ok(BinlogPosition { file, offset, gtid })
}

/// A binlog file name `base.NNNNNN` split into its base and sequence number; `None` for
/// a name in another form (its events' positions then compare as text).
fn file_number(file: &str) -> Option<(Arc<str>, u64)> {
    match LogPoint::parse(&format!("{file}:0")) {
        LogPoint::Binlog { base, file, .. } => Some((base, file)),
        _ => None,
    }
}

/// The server's first (artificial) rotate event arrives before the format description,
/// so its name still carries the 4 checksum bytes: keep `base.NNNNNN` only.
fn binlog_file_name(raw: &str) -> String {
    match raw.rfind('.') {
        Some(dot) => {
            let digits = raw[dot + 1..].bytes().take_while(u8::is_ascii_digit).count();
            raw[..dot + 1 + digits].to_string()
        }
        None => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotate_names_lose_their_checksum_bytes() {
        assert_eq!(binlog_file_name("mysql-bin.000001\u{1f}\u{e}\u{fffd}h"), "mysql-bin.000001");
        assert_eq!(binlog_file_name("mysql-bin.000012"), "mysql-bin.000012");
        assert_eq!(binlog_file_name("odd"), "odd");
    }

    #[test]
    fn file_names_split_into_base_and_number() {
        assert_eq!(file_number("mysql-bin.000012"), Some((Arc::from("mysql-bin"), 12)));
        assert_eq!(file_number("odd"), None);
        assert_eq!(file_number(""), None);
    }
}
