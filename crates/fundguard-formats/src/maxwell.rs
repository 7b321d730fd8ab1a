//! Maxwell's daemon JSON: one row change per message.
//!
//! `type` is `insert`, `update`, `delete` or `bootstrap-insert` (a row of an initial
//! load); `bootstrap-start`/`bootstrap-complete` and heartbeats are control
//! messages; `table-create`, `table-alter`, `database-create` and the other schema
//! changes (with `output_ddl`) are skipped and counted as DDL. `data` holds the row
//! with JSON-typed values (DECIMAL as a JSON number, whose digits we keep exactly;
//! DATETIME as text), `old` the previous values of the columns an update changed.
//! `ts` is the commit time in seconds; `ts_ms`, when present, refines it.

use std::borrow::Cow;

use fundguard_core::{ChangeEvent, EventTime, ImageAt, Op, Position, Value};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::json::{RawRow, excerpt, value_from_raw, write_str, write_value};
use crate::rows::Rows;
use crate::{DecodeError, Decoded, Skip, commit_time};

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    database: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    table: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    ts: Option<i64>,
    #[serde(default)]
    ts_ms: Option<i64>,
    #[serde(borrow, default)]
    data: Option<RawRow<'a>>,
    #[serde(borrow, default)]
    old: Option<RawRow<'a>>,
}

pub(crate) fn decode(
    text: &str,
    position: &Position,
    rows: &mut Rows,
    out: &mut Vec<ChangeEvent>,
) -> Result<Decoded, DecodeError> {
    let message: Message = serde_json::from_str(text)?;
    let op = match message.kind.as_ref() {
        "insert" | "bootstrap-insert" => Op::Insert,
        "update" => Op::Update,
        "delete" => Op::Delete,
        "bootstrap-start" | "bootstrap-complete" | "heartbeat" => {
            return Ok(Decoded::Skipped(Skip::Control));
        }
        kind if kind.starts_with("table-") || kind.starts_with("database-") => {
            return Ok(Decoded::Skipped(Skip::Ddl));
        }
        other => {
            return Err(DecodeError::invalid(format!(
                "unknown Maxwell type `{}`: expected insert, update, delete or a bootstrap/DDL type",
                excerpt(other)
            )));
        }
    };
    let database = message.database.as_deref().ok_or_else(|| DecodeError::invalid("`database` is missing"))?;
    let table = message.table.as_deref().ok_or_else(|| DecodeError::invalid("`table` is missing"))?;
    let commit_time = match (message.ts_ms, message.ts) {
        (Some(ms), _) => commit_time("ts_ms", EventTime::commit_from_millis(ms))?,
        (None, Some(s)) => commit_time("ts", EventTime::commit_from_secs(s))?,
        (None, None) => {
            return Err(DecodeError::invalid("no commit time: expected `ts` (seconds)"));
        }
    };
    let data = message.data.as_ref().ok_or_else(|| DecodeError::invalid("`data` is missing"))?;
    let table = rows.interner.intern_table(database, table);
    let read = |_: &str, raw: &RawValue| value_from_raw(raw);
    let row = rows.convert(text, &table, ImageAt { index: 0, before: op == Op::Delete }, data, None, read)?;
    let (before, after) = match op {
        Op::Delete => (Some(row), None),
        Op::Update => {
            let before = if row.is_projected() {
                rows.convert(text, &table, ImageAt { index: 0, before: true }, data, message.old.as_ref(), read)?
            } else {
                let mut before = row.clone();
                for (name, raw) in message.old.iter().flat_map(|old| &old.0) {
                    before.set(rows.interner.intern(name), value_from_raw(raw)?);
                }
                before
            };
            (Some(before), Some(row))
        }
        _ => (None, Some(row)),
    };
    out.push(ChangeEvent { table, op, before, after, commit_time, position: position.clone() });
    Ok(Decoded::Events(1))
}

/// Writes an event as one Maxwell message (`xid` groups the rows of one transaction).
pub fn encode(event: &ChangeEvent, xid: u64) -> String {
    let (db, table) = event.table.split_once('.').unwrap_or(("", &event.table));
    let kind = match event.op {
        Op::Insert | Op::Message => "insert",
        Op::Update => "update",
        Op::Delete => "delete",
    };
    let mut out = String::with_capacity(400);
    out.push_str("{\"database\":");
    write_str(&mut out, db);
    out.push_str(",\"table\":");
    write_str(&mut out, table);
    out.push_str(&format!(
        ",\"type\":\"{kind}\",\"ts\":{},\"ts_ms\":{},\"xid\":{xid},\"commit\":true,\"data\":",
        event.commit_time.as_micros().div_euclid(1_000_000),
        event.commit_time.as_millis()
    ));
    let Some(row) = event.current_row() else {
        out.push_str("{}}");
        return out;
    };
    write_row(&mut out, row.iter());
    if let (Op::Update, Some(before)) = (event.op, &event.before) {
        out.push_str(",\"old\":");
        write_row(&mut out, before.iter().filter(|(n, v)| row.get(n) != Some(v)));
    }
    out.push('}');
    out
}

fn write_row<'a>(out: &mut String, columns: impl Iterator<Item = (&'a str, &'a Value)>) {
    out.push('{');
    for (i, (name, value)) in columns.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, name);
        out.push(':');
        match value {
            // Maxwell prints DATETIME(3) as `yyyy-MM-dd HH:mm:ss.SSS`.
            Value::Timestamp(t) => write_str(out, &t.to_string().trim_end_matches('Z').replacen('T', " ", 1)),
            other => write_value(out, other),
        }
    }
    out.push('}');
}
