//! Alibaba Canal flat messages (`canal.mq.flatMessage=true`), as Canal writes them to Kafka.
//!
//! One message carries one statement's rows of one table: `data` holds the rows
//! (after images; for DELETE the deleted rows), `old` holds, per row, the previous
//! values of the columns an UPDATE changed. Every value is a string (or null),
//! typed by `mysqlType` (`decimal(12,2)`, `bigint(20) unsigned`, ...) and, where that
//! is missing, by `sqlType` (java.sql.Types codes). `es` is the binlog commit time in
//! milliseconds, `ts` when Canal processed it. DDL messages (`isDdl: true`) carry no
//! rows and are skipped and counted. DATETIME and TIMESTAMP text is read as UTC.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use fundguard_core::{ChangeEvent, ColumnType, EventTime, ImageAt, Op, Position, Value};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::json::{RawRow, excerpt, opt_string_from_raw, write_str};
use crate::rows::Rows;
use crate::{DecodeError, Decoded, Skip, commit_time};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FlatMessage<'a> {
    #[serde(borrow, default)]
    database: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    table: Option<Cow<'a, str>>,
    #[serde(default)]
    is_ddl: bool,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    es: Option<i64>,
    #[serde(default)]
    ts: Option<i64>,
    #[serde(borrow, default)]
    mysql_type: Option<HashMap<Cow<'a, str>, Cow<'a, str>>>,
    #[serde(default)]
    sql_type: Option<HashMap<Cow<'a, str>, i32>>,
    #[serde(borrow, default)]
    data: Option<Vec<RawRow<'a>>>,
    #[serde(borrow, default)]
    old: Option<Vec<Option<RawRow<'a>>>>,
}

pub(crate) fn decode(
    text: &str,
    position: &Position,
    rows: &mut Rows,
    out: &mut Vec<ChangeEvent>,
) -> Result<Decoded, DecodeError> {
    let message: FlatMessage = serde_json::from_str(text)?;
    let op = match message.kind.as_ref() {
        _ if message.is_ddl => return Ok(Decoded::Skipped(Skip::Ddl)),
        "INSERT" => Op::Insert,
        "UPDATE" => Op::Update,
        "DELETE" => Op::Delete,
        "CREATE" | "ALTER" | "ERASE" | "RENAME" | "TRUNCATE" | "CINDEX" | "DINDEX" | "QUERY" => {
            return Ok(Decoded::Skipped(Skip::Ddl));
        }
        other => {
            return Err(DecodeError::invalid(format!(
                "unknown Canal message type `{}`: expected INSERT, UPDATE, DELETE or a DDL type",
                excerpt(other)
            )));
        }
    };
    let database = message.database.as_deref().ok_or_else(|| DecodeError::invalid("`database` is missing"))?;
    let table = message.table.as_deref().ok_or_else(|| DecodeError::invalid("`table` is missing"))?;
    let commit_time = match (message.es, message.ts) {
        (Some(es), _) => commit_time("es", EventTime::commit_from_millis(es))?,
        (None, Some(ts)) => commit_time("ts", EventTime::commit_from_millis(ts))?,
        (None, None) => return Err(DecodeError::invalid("no commit time: expected `es` (milliseconds)")),
    };
    let images = message.data.as_deref().unwrap_or_default();
    if images.is_empty() {
        return Err(DecodeError::invalid(format!("{op} message with no rows in `data`")));
    }
    let column_type = |name: &str| -> ColumnType {
        if let Some(t) = message.mysql_type.as_ref().and_then(|m| m.get(name)) {
            return type_of_mysql(t);
        }
        message.sql_type.as_ref().and_then(|m| m.get(name)).map_or(ColumnType::String, |code| type_of_sql(*code))
    };
    let table_name = rows.interner.intern_table(database, table);
    let start = out.len();
    for (i, data) in images.iter().enumerate() {
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        let read = |name: &str, value: &RawValue| read_value(column_type(name), value, name);
        let row = rows.convert(text, &table_name, ImageAt { index, before: op == Op::Delete }, data, None, read)?;
        let (before, after) = match op {
            Op::Insert => (None, Some(row)),
            Op::Delete => (Some(row), None),
            _ => {
                let old = message.old.as_ref().and_then(|o| o.get(i)).and_then(Option::as_ref);
                let before = if row.is_projected() {
                    rows.convert(text, &table_name, ImageAt { index, before: true }, data, old, read)?
                } else {
                    let mut before = row.clone();
                    for (name, raw) in old.iter().flat_map(|old| &old.0) {
                        before.set(rows.interner.intern(name), read_value(column_type(name), raw, name)?);
                    }
                    before
                };
                (Some(before), Some(row))
            }
        };
        out.push(ChangeEvent {
            table: table_name.clone(),
            op,
            before,
            after,
            commit_time,
            position: position.with_index(index),
        });
    }
    Ok(Decoded::Events(out.len() - start))
}

fn read_value(ty: ColumnType, raw: &RawValue, name: &str) -> Result<Value, DecodeError> {
    let Some(text) = opt_string_from_raw(raw).map_err(|_| {
        DecodeError::invalid(format!(
            "column `{name}`: Canal values are strings or null, found `{}`",
            excerpt(raw.get())
        ))
    })?
    else {
        return Ok(Value::Null);
    };
    let value = match ty {
        ColumnType::Decimal => Value::parse_number(&text).map(|v| match v {
            Value::Int(i) => Value::Decimal(i.into()),
            other => other,
        }),
        ColumnType::Int => Value::parse_number(&text),
        ColumnType::Bool => ColumnType::Bool.coerce(Value::String(text.clone().into_owned())),
        ColumnType::Timestamp => EventTime::parse(&text).ok().map(Value::Timestamp),
        ColumnType::Date => ColumnType::Date.coerce(Value::String(text.clone().into_owned())),
        ColumnType::Json => Some(Value::Json(text.clone().into_owned())),
        ColumnType::String => Some(Value::String(text.clone().into_owned())),
    };
    value.ok_or_else(|| DecodeError::invalid(format!("column `{name}`: `{}` is not a valid {ty}", excerpt(&text))))
}

/// Reads a MySQL column type as Canal prints it: `bigint(20) unsigned`, `decimal(12,2)`, `varchar(32)`.
fn type_of_mysql(mysql_type: &str) -> ColumnType {
    let lower = mysql_type.to_ascii_lowercase();
    // MySQL's BOOLEAN is TINYINT(1); like JDBC's default, read it as a boolean.
    if lower.starts_with("tinyint(1)") {
        return ColumnType::Bool;
    }
    let base = lower.split(['(', ' ']).next().unwrap_or("");
    match base {
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "year" => ColumnType::Int,
        "decimal" | "numeric" | "float" | "double" | "real" => ColumnType::Decimal,
        "datetime" | "timestamp" => ColumnType::Timestamp,
        "date" => ColumnType::Date,
        "json" => ColumnType::Json,
        "bool" | "boolean" => ColumnType::Bool,
        _ => ColumnType::String,
    }
}

/// Reads a `java.sql.Types` code, Canal's fallback typing.
fn type_of_sql(code: i32) -> ColumnType {
    match code {
        -6 | 5 | 4 | -5 => ColumnType::Int,
        2 | 3 | 6 | 7 | 8 => ColumnType::Decimal,
        91 => ColumnType::Date,
        93 => ColumnType::Timestamp,
        16 => ColumnType::Bool,
        _ => ColumnType::String,
    }
}

fn mysql_type_of(ty: ColumnType, value: Option<&Value>) -> (String, i32) {
    match ty {
        ColumnType::Int => ("bigint(20)".into(), -5),
        ColumnType::Decimal => {
            let scale = match value {
                Some(Value::Decimal(d)) => d.scale(),
                _ => 2,
            };
            (format!("decimal(20,{scale})"), 3)
        }
        ColumnType::Timestamp => ("datetime(3)".into(), 93),
        ColumnType::Date => ("date".into(), 91),
        ColumnType::Bool => ("tinyint(1)".into(), -6),
        ColumnType::Json => ("json".into(), 12),
        ColumnType::String => ("varchar(64)".into(), 12),
    }
}

/// Writes rows of one statement (same table and op) as one flat message.
/// `id` is Canal's batch id; `columns` gives each column's type.
pub fn encode(id: u64, events: &[&ChangeEvent], columns: &BTreeMap<String, ColumnType>) -> String {
    let Some(first) = events.first() else {
        return String::new();
    };
    let (db, table) = first.table.split_once('.').unwrap_or(("", &first.table));
    let kind = match first.op {
        Op::Insert | Op::Message => "INSERT",
        Op::Update => "UPDATE",
        Op::Delete => "DELETE",
    };
    let sample = first.current_row();
    let mut mysql = Vec::new();
    let mut sql = Vec::new();
    for (name, value) in sample.into_iter().flat_map(|r| r.iter()) {
        let ty = columns.get(name).copied().or_else(|| ColumnType::of(value)).unwrap_or(ColumnType::String);
        let (m, s) = mysql_type_of(ty, Some(value));
        mysql.push(format!("\"{name}\":\"{m}\""));
        sql.push(format!("\"{name}\":{s}"));
    }
    let mut data = Vec::new();
    let mut old = Vec::new();
    for e in events {
        let Some(row) = e.current_row() else { continue };
        data.push(string_row(row.iter()));
        if e.op == Op::Update {
            let changed: Vec<(&str, &Value)> = match &e.before {
                Some(before) => before.iter().filter(|(n, v)| row.get(n) != Some(v)).collect(),
                None => Vec::new(),
            };
            old.push(string_row(changed.into_iter()));
        }
    }
    let ms = first.commit_time.as_millis();
    let pk = if sample.is_some_and(|r| r.get("id").is_some()) { "[\"id\"]" } else { "[]" };
    let mut out = format!("{{\"data\":[{}],\"database\":", data.join(","));
    write_str(&mut out, db);
    out.push_str(&format!(
        ",\"es\":{ms},\"id\":{id},\"isDdl\":false,\"mysqlType\":{{{}}},\"old\":{},\"pkNames\":{pk},\"sql\":\"\",\"sqlType\":{{{}}},\"table\":",
        mysql.join(","),
        if old.is_empty() { "null".to_string() } else { format!("[{}]", old.join(",")) },
        sql.join(","),
    ));
    write_str(&mut out, table);
    out.push_str(&format!(",\"ts\":{},\"type\":\"{kind}\"}}", ms + 5));
    out
}

fn string_row<'a>(columns: impl Iterator<Item = (&'a str, &'a Value)>) -> String {
    let mut out = String::from("{");
    for (i, (name, value)) in columns.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(&mut out, name);
        out.push(':');
        match value {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "\"1\"" } else { "\"0\"" }),
            Value::Timestamp(t) => {
                let text = t.to_string();
                // Canal prints DATETIME as `yyyy-MM-dd HH:mm:ss.SSS`, without a zone.
                write_str(&mut out, &text.trim_end_matches('Z').replacen('T', " ", 1));
            }
            other => write_str(&mut out, &other.to_string()),
        }
    }
    out.push('}');
    out
}
