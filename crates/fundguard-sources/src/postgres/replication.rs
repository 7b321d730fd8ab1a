//! The PostgreSQL streaming replication protocol, as much of it as a logical slot reader
//! needs: a `replication=database` connection (TLS; password, MD5 or SCRAM-SHA-256),
//! `START_REPLICATION SLOT … LOGICAL`, then the server's records and keepalives in, and
//! our standby status updates (how far the slot may move) out.
//!
//! Why not SQL: `pg_logical_slot_peek_changes` starts at the slot's confirmed position on
//! every call, so a reader that reads ahead of its checkpoints has the server decode (and
//! send) the unconfirmed backlog again on each read. A replication connection decodes
//! every record once and pushes it as soon as it is flushed. tokio-postgres has no
//! copy-both mode, so the messages are framed here with postgres-protocol, its codec.

use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_postgres::config::Host;

use super::{failed, server_said};
use crate::SourceError;
use crate::tls::TlsConfig;

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01), the replication
/// protocol's clock.
pub(super) const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Longest a connection attempt (TCP, TLS, authentication) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

/// A replication connection.
pub(super) struct Replication {
    io: Box<dyn Io>,
    read: BytesMut,
    write: BytesMut,
}

/// What the server sent while streaming.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Received {
    /// One output plugin record, at its place in the WAL.
    Record { lsn: u64, data: Vec<u8> },
    /// The end of the WAL the server has sent; `reply`: it wants a status update now.
    Keepalive { wal_end: u64, reply: bool },
}

/// A backend message, or the copy-both response postgres-protocol does not know.
enum Frame {
    Message(Message),
    CopyBoth,
}

impl Replication {
    /// Connects to the server of `pg` as a logical replication client of its database.
    pub(super) async fn connect(
        pg: &tokio_postgres::Config,
        tls: Option<&TlsConfig>,
    ) -> Result<Replication, SourceError> {
        tokio::time::timeout(CONNECT_TIMEOUT, Self::open(pg, tls))
            .await
            .map_err(|_| failed(format!("replication connection: no answer within {CONNECT_TIMEOUT:?}"), true))?
    }

    async fn open(pg: &tokio_postgres::Config, tls: Option<&TlsConfig>) -> Result<Replication, SourceError> {
        let port = pg.get_ports().first().copied().unwrap_or(5432);
        let lost = |e: std::io::Error| failed(format!("replication connection: {e}"), true);
        let (io, host): (Box<dyn Io>, String) = match pg.get_hosts().first() {
            #[cfg(unix)]
            Some(Host::Unix(dir)) => {
                let path = dir.join(format!(".s.PGSQL.{port}"));
                (Box::new(tokio::net::UnixStream::connect(path).await.map_err(lost)?), "localhost".into())
            }
            other => {
                let host = match other {
                    Some(Host::Tcp(host)) => host.clone(),
                    _ => "localhost".to_string(),
                };
                let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(lost)?;
                let _ = tcp.set_nodelay(true);
                (Box::new(tcp), host)
            }
        };
        let mut connection = Replication { io, read: BytesMut::with_capacity(64 * 1024), write: BytesMut::new() };
        if let Some(tls) = tls {
            connection = connection.start_tls(tls, &host).await?;
        }
        connection.authenticate(pg).await?;
        Ok(connection)
    }

    /// Asks for TLS (SSLRequest) and wraps the connection: TLS or nothing, never a
    /// fallback to clear text.
    async fn start_tls(mut self, tls: &TlsConfig, host: &str) -> Result<Replication, SourceError> {
        frontend::ssl_request(&mut self.write);
        self.flush().await?;
        let mut answer = [0u8; 1];
        self.io.read_exact(&mut answer).await.map_err(|e| failed(format!("replication connection: {e}"), true))?;
        if answer[0] != b'S' {
            return Err(failed("the server does not accept TLS connections; `tls:` asks for TLS", false));
        }
        let connector = tokio_native_tls::TlsConnector::from(super::native_connector(tls)?);
        let stream = connector.connect(host, self.io).await.map_err(|e| {
            let said = crate::tls::error_chain(&e);
            match crate::tls::explain_refusal(tls, host, &said) {
                Some(why) => failed(format!("replication connection with TLS: {why}"), false),
                None => failed(format!("replication connection with TLS: {said}"), true),
            }
        })?;
        Ok(Replication { io: Box::new(stream), read: self.read, write: self.write })
    }

    /// The startup message and whichever password exchange the server asks for.
    async fn authenticate(&mut self, pg: &tokio_postgres::Config) -> Result<(), SourceError> {
        let user = pg.get_user().unwrap_or("postgres");
        let database = pg.get_dbname().unwrap_or(user);
        let mut parameters = vec![
            ("user", user),
            ("database", database),
            ("replication", "database"),
            ("application_name", pg.get_application_name().unwrap_or("fundguard")),
            // Values come as their types' text output: timestamps in ISO form with their
            // offset, whatever the server's defaults.
            ("DateStyle", "ISO"),
            ("TimeZone", "UTC"),
        ];
        parameters.retain(|(_, v)| !v.is_empty());
        frontend::startup_message(parameters, &mut self.write).map_err(bad_message)?;
        self.flush().await?;
        let password =
            || pg.get_password().ok_or_else(|| failed("the server asks for a password and none is configured", false));
        let mut scram: Option<ScramSha256> = None;
        loop {
            match self.frame().await? {
                Frame::Message(Message::AuthenticationOk) => {}
                Frame::Message(Message::AuthenticationCleartextPassword) => {
                    frontend::password_message(password()?, &mut self.write).map_err(bad_message)?;
                    self.flush().await?;
                }
                Frame::Message(Message::AuthenticationMd5Password(body)) => {
                    let hashed = md5_hash(user.as_bytes(), password()?, body.salt());
                    frontend::password_message(hashed.as_bytes(), &mut self.write).map_err(bad_message)?;
                    self.flush().await?;
                }
                Frame::Message(Message::AuthenticationSasl(body)) => {
                    let mut mechanisms = body.mechanisms();
                    let mut offered = false;
                    while let Some(mechanism) = mechanisms.next().map_err(bad_message)? {
                        offered |= mechanism == SCRAM_SHA_256;
                    }
                    if !offered {
                        return Err(failed(
                            "the server offers no SASL mechanism fundguard speaks (SCRAM-SHA-256)",
                            false,
                        ));
                    }
                    let exchange = ScramSha256::new(password()?, ChannelBinding::unsupported());
                    frontend::sasl_initial_response(SCRAM_SHA_256, exchange.message(), &mut self.write)
                        .map_err(bad_message)?;
                    self.flush().await?;
                    scram = Some(exchange);
                }
                Frame::Message(Message::AuthenticationSaslContinue(body)) => {
                    let exchange = scram.as_mut().ok_or_else(|| bad_message("SASL continue before SASL start"))?;
                    exchange.update(body.data()).map_err(|e| failed(format!("SCRAM authentication: {e}"), false))?;
                    frontend::sasl_response(exchange.message(), &mut self.write).map_err(bad_message)?;
                    self.flush().await?;
                }
                Frame::Message(Message::AuthenticationSaslFinal(body)) => {
                    let exchange = scram.as_mut().ok_or_else(|| bad_message("SASL final before SASL start"))?;
                    exchange.finish(body.data()).map_err(|e| failed(format!("SCRAM authentication: {e}"), false))?;
                }
                Frame::Message(Message::ErrorResponse(body)) => {
                    return Err(server_error("connecting for replication", &body));
                }
                Frame::Message(Message::ReadyForQuery(_)) => return Ok(()),
                Frame::Message(
                    Message::AuthenticationGss
                    | Message::AuthenticationKerberosV5
                    | Message::AuthenticationSspi
                    | Message::AuthenticationScmCredential
                    | Message::AuthenticationGssContinue(_),
                ) => {
                    return Err(failed(
                        "the server asks for GSS/SSPI/Kerberos authentication; fundguard authenticates with a password \
                         (password, md5 or scram-sha-256 in pg_hba.conf)",
                        false,
                    ));
                }
                _ => {} // parameter statuses, the backend key, notices
            }
        }
    }

    /// Sends `START_REPLICATION` and waits until the server streams.
    pub(super) async fn start(&mut self, command: &str) -> Result<(), SourceError> {
        frontend::query(command, &mut self.write).map_err(bad_message)?;
        self.flush().await?;
        loop {
            match self.frame().await? {
                Frame::CopyBoth => return Ok(()),
                Frame::Message(Message::ErrorResponse(body)) => {
                    return Err(server_error("starting replication", &body));
                }
                _ => {}
            }
        }
    }

    /// The next record or keepalive, waiting at most `wait` (zero: only what has arrived).
    /// `None` when nothing came in time. Cancel-safe: nothing read is lost.
    pub(super) async fn receive(&mut self, wait: Duration) -> Result<Option<Received>, SourceError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = match tokio::time::timeout_at(deadline, self.frame()).await {
                Ok(frame) => frame?,
                Err(_) => return Ok(None),
            };
            match frame {
                Frame::Message(Message::CopyData(body)) => {
                    if let Some(received) = parse_copy_data(body.data())? {
                        return Ok(Some(received));
                    }
                }
                Frame::Message(Message::ErrorResponse(body)) => return Err(server_error("replicating", &body)),
                Frame::Message(Message::CopyDone) => {
                    return Err(failed("the server ended replication (shutting down?)", true));
                }
                _ => {} // notices
            }
        }
    }

    /// Tells the server that everything up to `flushed` is safe (the slot may move there),
    /// asking for a keepalive back when `reply`.
    pub(super) async fn status(&mut self, flushed: u64, reply: bool) -> Result<(), SourceError> {
        let mut body = BytesMut::with_capacity(34);
        body.put_u8(b'r');
        body.put_u64(flushed); // written
        body.put_u64(flushed); // flushed
        body.put_u64(flushed); // applied
        body.put_i64(crate::batch::local_micros() - PG_EPOCH_MICROS);
        body.put_u8(u8::from(reply));
        frontend::CopyData::new(body.freeze()).map_err(bad_message)?.write(&mut self.write);
        self.flush().await
    }

    async fn flush(&mut self) -> Result<(), SourceError> {
        self.io.write_all(&self.write).await.map_err(|e| failed(format!("replication connection: {e}"), true))?;
        self.io.flush().await.map_err(|e| failed(format!("replication connection: {e}"), true))?;
        self.write.clear();
        Ok(())
    }

    /// The next whole message. Cancel-safe: bytes read stay in the buffer.
    async fn frame(&mut self) -> Result<Frame, SourceError> {
        loop {
            if let Some(frame) = next_frame(&mut self.read)? {
                return Ok(frame);
            }
            let read = self
                .io
                .read_buf(&mut self.read)
                .await
                .map_err(|e| failed(format!("replication connection: {e}"), true))?;
            if read == 0 {
                return Err(failed("the server closed the replication connection", true));
            }
        }
    }
}

/// Takes one whole message off the front of `buffer`, if it holds one.
fn next_frame(buffer: &mut BytesMut) -> Result<Option<Frame>, SourceError> {
    if buffer.len() < 5 {
        return Ok(None);
    }
    let length = u32::from_be_bytes([buffer[1], buffer[2], buffer[3], buffer[4]]) as usize;
    if length < 4 {
        return Err(bad_message(format!("a message of length {length}")));
    }
    if buffer.len() < length + 1 {
        buffer.reserve(length + 1 - buffer.len());
        return Ok(None);
    }
    if buffer[0] == b'W' {
        buffer.advance(length + 1); // CopyBothResponse: its column formats do not matter here
        return Ok(Some(Frame::CopyBoth));
    }
    match Message::parse(buffer) {
        Ok(Some(message)) => Ok(Some(Frame::Message(message))),
        Ok(None) => Ok(None),
        Err(e) => Err(bad_message(e)),
    }
}

/// A CopyData body while streaming: XLogData (`w`) or a primary keepalive (`k`); `None`
/// for anything else (the protocol may grow).
fn parse_copy_data(mut body: &[u8]) -> Result<Option<Received>, SourceError> {
    let Some((&kind, rest)) = body.split_first() else { return Ok(None) };
    body = rest;
    match kind {
        b'w' if body.len() >= 24 => {
            let lsn = body.get_u64();
            let _wal_end = body.get_u64();
            let _sent_at = body.get_i64();
            Ok(Some(Received::Record { lsn, data: body.to_vec() }))
        }
        b'k' if body.len() >= 17 => {
            let wal_end = body.get_u64();
            let _sent_at = body.get_i64();
            Ok(Some(Received::Keepalive { wal_end, reply: body.get_u8() == 1 }))
        }
        b'w' | b'k' => Err(bad_message(format!("a truncated `{}` message", kind as char))),
        _ => Ok(None),
    }
}

fn bad_message(e: impl std::fmt::Display) -> SourceError {
    failed(format!("replication protocol: {e}"), true)
}

/// An ErrorResponse as a source error, with its DETAIL and HINT; retryable like a
/// query's error (lost connection, shutdown, a slot still held by our previous session).
fn server_error(what: &str, body: &postgres_protocol::message::backend::ErrorResponseBody) -> SourceError {
    let (mut code, mut message, mut detail, mut hint) = (String::new(), String::new(), None, None);
    let mut fields = body.fields();
    while let Ok(Some(field)) = fields.next() {
        let value = String::from_utf8_lossy(field.value_bytes()).into_owned();
        match field.type_() {
            b'C' => code = value,
            b'M' => message = value,
            b'D' => detail = Some(value),
            b'H' => hint = Some(value),
            _ => {}
        }
    }
    let retryable = super::retryable_code(&code);
    failed(format!("{what}: {}", server_said(&message, detail.as_deref(), hint.as_deref())), retryable)
}

/// An LSN as PostgreSQL prints it (`16/B374D848`).
pub(super) fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// An LSN printed by PostgreSQL, as a number (`None` when it is not one).
pub(super) fn lsn_number(text: &str) -> Option<u64> {
    let (high, low) = text.trim().split_once('/')?;
    Some((u64::from_str_radix(high, 16).ok()? << 32) | u64::from_str_radix(low, 16).ok()?)
}

/// A string literal of the replication command language.
pub(super) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// An identifier of the replication command language (a slot name).
pub(super) fn quote_identifier(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn records_and_keepalives_are_read_off_copy_data() {
        let mut record = vec![b'w'];
        record.extend(0x16_B374_D848u64.to_be_bytes());
        record.extend(0x16_B374_D900u64.to_be_bytes());
        record.extend(7i64.to_be_bytes());
        record.extend(br#"{"action":"C"}"#);
        assert_eq!(
            parse_copy_data(&record).unwrap(),
            Some(Received::Record { lsn: 0x16_B374_D848, data: br#"{"action":"C"}"#.to_vec() })
        );
        let mut keepalive = vec![b'k'];
        keepalive.extend(42u64.to_be_bytes());
        keepalive.extend(0i64.to_be_bytes());
        keepalive.push(1);
        assert_eq!(parse_copy_data(&keepalive).unwrap(), Some(Received::Keepalive { wal_end: 42, reply: true }));
        assert!(parse_copy_data(&keepalive[..10]).is_err(), "a truncated keepalive is an error, not a panic");
        assert_eq!(parse_copy_data(b"z123").unwrap(), None, "unknown kinds are skipped");
    }

    #[test]
    fn frames_wait_for_their_whole_length() {
        let mut buffer = BytesMut::new();
        buffer.extend_from_slice(&[b'W', 0, 0, 0, 7, 0, 0]);
        assert!(next_frame(&mut buffer).unwrap().is_none());
        buffer.extend_from_slice(&[0, b'Z', 0, 0, 0, 5, b'I']);
        assert!(matches!(next_frame(&mut buffer).unwrap(), Some(Frame::CopyBoth)));
        assert!(matches!(next_frame(&mut buffer).unwrap(), Some(Frame::Message(Message::ReadyForQuery(_)))));
        assert!(buffer.is_empty());
    }

    #[test]
    fn commands_quote_their_names_and_values() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }

    proptest! {
        #[test]
        fn lsns_print_and_parse_as_postgresql_does(lsn in any::<u64>()) {
            prop_assert_eq!(lsn_number(&lsn_text(lsn)), Some(lsn));
        }

        #[test]
        fn no_message_bytes_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_copy_data(&bytes);
            let mut buffer = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = next_frame(&mut buffer) {}
        }
    }
}
