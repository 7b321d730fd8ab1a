//! Change-log formats: bytes of one message in, [`ChangeEvent`]s out, and back.
//!
//! Each format is one module with a decoder (and an encoder, which the simulator
//! uses to write realistic logs). Formats know nothing about transports: a line of
//! a file, a Kafka record and an HTTP body are all just `&[u8]` here.
//!
//! **Invariant:** no decoder panics on any input; bad input is a [`DecodeError`]
//! that says what was expected, and the caller dead-letters the message. That includes
//! input built to hurt: a message over [`MAX_MESSAGE_BYTES`], nesting deeper than
//! serde_json's recursion limit (128), numbers beyond `i64` or 28 exact decimal digits,
//! invalid UTF-8, and commit times outside 1970..=9999 (see [`EventTime::commit_from_secs`]).

pub mod canal;
pub mod debezium;
mod json;
pub mod maxwell;
pub mod plain;
mod rows;

use std::collections::HashMap;
use std::sync::Arc;

use fundguard_core::{
    ChangeEvent, ColumnType, CommitTimeError, EventTime, ImageAt, Position, Projection, ReadAgain, TableSchemas, Value,
};

pub use json::Interner;

/// The largest message a decoder reads unless told otherwise (`limits.max_message_bytes`,
/// `--max-message-bytes`): anything larger is refused before it is parsed.
pub const MAX_MESSAGE_BYTES: usize = 4 << 20;

/// Why a message could not be decoded. The message says what was expected.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not valid JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("{0}")]
    Invalid(String),
}

impl DecodeError {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        DecodeError::Invalid(msg.into())
    }
}

/// A message's commit time read from `field`, or why the message is refused.
pub(crate) fn commit_time(field: &str, time: Result<EventTime, CommitTimeError>) -> Result<EventTime, DecodeError> {
    time.map_err(|e| DecodeError::invalid(format!("`{field}`: {e}")))
}

/// A message that decoded fine but carries no row change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    /// A Kafka tombstone (`null` value) or an empty line.
    Tombstone,
    /// A schema change (DDL); counted, not evaluated.
    Ddl,
    /// Anything else with no rows: truncates, heartbeats, bootstrap markers, transaction markers.
    Control,
}

/// What one message turned into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    Events(usize),
    Skipped(Skip),
}

/// The formats fundguard reads. Adding one means a module above and a variant here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    Debezium,
    Canal,
    Maxwell,
    /// Plain JSON business messages.
    Json(plain::PlainConfig),
}

impl Format {
    /// Builds a decoder; `schemas` declares column types for sources that cannot.
    pub fn decoder(&self, schemas: Arc<TableSchemas>) -> Decoder {
        let rows = rows::Rows::new(Arc::new(ReadWhole { format: self.clone(), schemas: schemas.clone() }));
        let inner = match self {
            Format::Debezium => Inner::Debezium(debezium::DebeziumDecoder::default()),
            Format::Canal => Inner::Canal,
            Format::Maxwell => Inner::Maxwell,
            Format::Json(config) => Inner::Plain(config.clone()),
        };
        Decoder { inner, rows, declared: DeclaredTypes::new(schemas), max_message_bytes: MAX_MESSAGE_BYTES }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Format::Debezium => "debezium",
            Format::Canal => "canal",
            Format::Maxwell => "maxwell",
            Format::Json(_) => "json",
        }
    }
}

enum Inner {
    Debezium(debezium::DebeziumDecoder),
    Canal,
    Maxwell,
    Plain(plain::PlainConfig),
}

/// Decodes messages of one format. Keeps caches (interned column names, parsed
/// Debezium schemas) across messages, so reuse one per stream.
pub struct Decoder {
    inner: Inner,
    rows: rows::Rows,
    declared: DeclaredTypes,
    max_message_bytes: usize,
}

impl Decoder {
    /// Refuses messages over `bytes` (default [`MAX_MESSAGE_BYTES`]).
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// Converts only the columns `projection` names; the rest of each row is read from the
    /// message when someone asks for it (see [`fundguard_core::Row`]). A value in a column
    /// left unread is not checked: the message is not refused for it, and if it cannot be
    /// read later the row shows the columns that were read.
    pub fn set_projection(&mut self, projection: Projection) {
        self.rows.set_projection(projection);
    }

    /// Decodes one message, appending its events to `out`. On error nothing is appended.
    pub fn decode(
        &mut self,
        message: &[u8],
        position: &Position,
        out: &mut Vec<ChangeEvent>,
    ) -> Result<Decoded, DecodeError> {
        let start = out.len();
        if message.len() > self.max_message_bytes {
            return Err(DecodeError::invalid(format!(
                "message over the limit of {} bytes (`max_message_bytes`): not decoded",
                self.max_message_bytes
            )));
        }
        let text =
            std::str::from_utf8(message).map_err(|e| DecodeError::invalid(format!("not UTF-8 text: {e}")))?.trim();
        if text.is_empty() || text == "null" {
            return Ok(Decoded::Skipped(Skip::Tombstone));
        }
        // Every format's message is one object; serde would read a struct from an array too.
        if !text.starts_with('{') {
            return Err(DecodeError::invalid(format!("expected a JSON object, found `{}`", json::excerpt(text))));
        }
        self.rows.start_message();
        let rows = &mut self.rows;
        let result = match &mut self.inner {
            Inner::Debezium(d) => d.decode(text, position, rows, out),
            Inner::Canal => canal::decode(text, position, rows, out),
            Inner::Maxwell => maxwell::decode(text, position, rows, out),
            Inner::Plain(config) => plain::decode(config, text, position, rows, out),
        };
        if result.is_err() {
            out.truncate(start);
            return result;
        }
        if let Err(e) = out[start..].iter_mut().try_for_each(|event| self.declared.apply(event)) {
            out.truncate(start);
            return Err(e);
        }
        result
    }
}

/// Reads a message again with no projection, for the columns a projected row left unread.
struct ReadWhole {
    format: Format,
    schemas: Arc<TableSchemas>,
}

impl ReadAgain for ReadWhole {
    fn read_again(&self, message: &str, at: ImageAt) -> Option<Vec<(Arc<str>, Value)>> {
        let mut decoder = self.format.decoder(self.schemas.clone()).with_max_message_bytes(usize::MAX);
        let mut events = Vec::new();
        decoder.decode(message.as_bytes(), &Position::Synthetic { seq: 0 }, &mut events).ok()?;
        let event = events.into_iter().nth(usize::try_from(at.index).ok()?)?;
        let row = if at.before { event.before } else { event.after }?;
        Some(row.into_columns())
    }
}

/// Converts values of declared columns (`schema.yaml`) to their declared types. Every
/// decoder applies it; sources that decode themselves (binlog, logical decoding) too.
pub struct DeclaredTypes {
    schemas: Arc<TableSchemas>,
    index: DeclaredIndex,
}

impl DeclaredTypes {
    pub fn new(schemas: Arc<TableSchemas>) -> Self {
        DeclaredTypes { schemas, index: DeclaredIndex::default() }
    }

    /// Converts `event`'s declared columns in place; a value that cannot be read as its
    /// declared type is an error naming the column (the caller dead-letters the event).
    pub fn apply(&mut self, event: &mut ChangeEvent) -> Result<(), DecodeError> {
        if self.schemas.is_empty() || self.schemas.table(&event.table).is_none() {
            return Ok(());
        }
        let (schemas, index) = (&self.schemas, &mut self.index);
        let table = event.table.clone();
        // Only the columns the decoder read: a projected row's reader declares the rest.
        for row in [event.before.as_mut(), event.after.as_mut()].into_iter().flatten() {
            row.try_map_read_values(|name, value| {
                let Some(ty) = index.lookup(schemas, &table, name) else { return Ok(value) };
                // Most values already have their declared type: keep them without a copy.
                if value.is_null() || ColumnType::of(&value) == Some(ty) {
                    return Ok(value);
                }
                let shown = value.to_string();
                ty.coerce(value).ok_or_else(|| {
                    DecodeError::invalid(format!("column `{table}.{name}` is declared {ty} but holds `{shown}`"))
                })
            })?;
        }
        Ok(())
    }
}

/// Declared column types indexed for the hot path: by the addresses of the interned
/// table and column names (rows of a stream share one `Arc<str>` per name). The index
/// keeps a clone of every name it keys by, so no address can be reused for another name.
#[derive(Default)]
struct DeclaredIndex {
    entries: HashMap<(usize, usize), Declared>,
}

/// The declared type of one (table, column), with the names that key it kept alive.
struct Declared {
    _table: Arc<str>,
    _column: Arc<str>,
    ty: Option<ColumnType>,
}

impl DeclaredIndex {
    fn lookup(&mut self, schemas: &TableSchemas, table: &Arc<str>, column: &Arc<str>) -> Option<ColumnType> {
        let key = (Arc::as_ptr(table) as *const u8 as usize, Arc::as_ptr(column) as *const u8 as usize);
        if let Some(d) = self.entries.get(&key) {
            return d.ty;
        }
        if self.entries.len() > 100_000 {
            self.entries.clear();
        }
        let ty = schemas.column(table, column);
        self.entries.insert(key, Declared { _table: table.clone(), _column: column.clone(), ty });
        ty
    }
}
