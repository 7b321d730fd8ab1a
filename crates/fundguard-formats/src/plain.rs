//! Plain JSON business messages: one object per message, every top-level field a column.
//!
//! A business message has no database row behind it, so it becomes an event with
//! `op = message` and only an `after` image. Its "table" is either fixed by
//! configuration or read from a field (say `type`); its event time comes from a
//! field holding epoch milliseconds or RFC 3339 text.

use fundguard_core::{ChangeEvent, EventTime, ImageAt, Op, Position, Value};

use crate::json::{RawRow, value_from_raw};
use crate::rows::Rows;
use crate::{DecodeError, Decoded, commit_time};

/// Where a business message's table name and event time come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainConfig {
    pub table: TableFrom,
    /// The field with the event time: epoch milliseconds or RFC 3339 text.
    pub time_field: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableFrom {
    /// Every message belongs to this table (message type).
    Fixed(String),
    /// The table is the value of this field.
    Field(String),
}

impl Default for PlainConfig {
    fn default() -> Self {
        PlainConfig { table: TableFrom::Field("type".into()), time_field: "ts".into() }
    }
}

pub(crate) fn decode(
    config: &PlainConfig,
    text: &str,
    position: &Position,
    rows: &mut Rows,
    out: &mut Vec<ChangeEvent>,
) -> Result<Decoded, DecodeError> {
    let raw: RawRow = serde_json::from_str(text)?;
    // The table and the time are read first, whatever the projection converts of the row.
    let field = |name: &str| raw.0.iter().find(|(n, _)| n == name).map(|(_, v)| value_from_raw(v)).transpose();
    let table = match &config.table {
        TableFrom::Fixed(t) => rows.interner.intern(t),
        TableFrom::Field(f) => match field(f)? {
            Some(Value::String(t)) if !t.is_empty() => rows.interner.intern(&t),
            _ => {
                return Err(DecodeError::invalid(format!("field `{f}` must hold the message type as a string")));
            }
        },
    };
    let time_field = &config.time_field;
    let commit_time = match field(time_field)? {
        Some(Value::Int(ms)) => commit_time(time_field, EventTime::commit_from_millis(ms))?,
        Some(Value::String(s)) => {
            let t = EventTime::parse(&s).map_err(|e| DecodeError::invalid(e.to_string()))?;
            commit_time(time_field, t.checked_commit())?
        }
        Some(other) => {
            return Err(DecodeError::invalid(format!(
                "field `{}` holds a {}: expected epoch milliseconds or RFC 3339 text",
                config.time_field,
                other.type_name()
            )));
        }
        None => {
            return Err(DecodeError::invalid(format!("no `{}` field with the event time", config.time_field)));
        }
    };
    let row = rows.convert(text, &table, ImageAt { index: 0, before: false }, &raw, None, |_, v| value_from_raw(v))?;
    out.push(ChangeEvent {
        table,
        op: Op::Message,
        before: None,
        after: Some(row),
        commit_time,
        position: position.clone(),
    });
    Ok(Decoded::Events(1))
}
