//! Debezium change events (JSON converter), with or without the `schema`/`payload` wrapper.
//!
//! What we read, per the Debezium MySQL and PostgreSQL connector documentation:
//! - `op`: `c` create, `r` snapshot read (both inserts), `u` update, `d` delete;
//!   `t` truncate and `m` logical-decoding message are skipped as control events.
//! - The commit time is `source.ts_us` when present (Debezium 2.6+), else
//!   `source.ts_ms`; the envelope's own `ts_ms` is when Debezium processed it.
//! - The table is `source.db` + `.` + `source.table` (MySQL), or
//!   `source.schema` + `.` + `source.table` (PostgreSQL).
//! - With the wrapper, column types come from the schema's logical names:
//!   `org.apache.kafka.connect.data.Decimal` (base64 big-endian unscaled bytes,
//!   scale in `parameters`), `io.debezium.data.VariableScaleDecimal`,
//!   `io.debezium.time.{Timestamp,MicroTimestamp,NanoTimestamp,ZonedTimestamp,Date}`,
//!   `org.apache.kafka.connect.data.{Timestamp,Date}` and `io.debezium.data.Json`.
//!   A `string` column whose `__debezium.source.column.type` is DECIMAL or NUMERIC
//!   (`decimal.handling.mode=string` with `column.propagate.source.type`) is read as a decimal.
//! - A tombstone (`null`, or a wrapper whose `payload` is null) carries no row.

use std::borrow::Cow;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use base64::Engine as _;
use fundguard_core::{ChangeEvent, ColumnType, Decimal, EventTime, ImageAt, Op, Position, Row, Value};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::json::{RawRow, excerpt, string_from_raw, value_from_raw, write_str, write_value};
use crate::rows::Rows;
use crate::{DecodeError, Decoded, Skip, commit_time};

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    schema: Option<&'a RawValue>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
    #[serde(borrow, default)]
    before: Option<RawRow<'a>>,
    #[serde(borrow, default)]
    after: Option<RawRow<'a>>,
    #[serde(borrow, default)]
    source: Option<Source<'a>>,
    #[serde(borrow, default)]
    op: Option<Cow<'a, str>>,
    #[serde(default)]
    ts_ms: Option<i64>,
}

#[derive(Deserialize, Default)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    before: Option<RawRow<'a>>,
    #[serde(borrow, default)]
    after: Option<RawRow<'a>>,
    #[serde(borrow, default)]
    source: Option<Source<'a>>,
    #[serde(borrow, default)]
    op: Option<Cow<'a, str>>,
    #[serde(default)]
    ts_ms: Option<i64>,
}

#[derive(Deserialize)]
struct Source<'a> {
    #[serde(borrow, default)]
    connector: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    db: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    schema: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    table: Option<Cow<'a, str>>,
    #[serde(default)]
    ts_ms: Option<i64>,
    #[serde(default)]
    ts_us: Option<i64>,
}

/// How a column's JSON value is to be read, from its schema.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Logical {
    Plain,
    Decimal { scale: u32 },
    VariableScaleDecimal,
    DecimalText,
    EpochMillis,
    EpochMicros,
    EpochNanos,
    EpochDays,
    ZonedText,
    Json,
}

#[derive(Deserialize)]
struct SchemaNode {
    #[serde(rename = "type", default)]
    ty: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    fields: Vec<SchemaNode>,
    #[serde(default)]
    parameters: HashMap<String, String>,
}

type ColumnLogicals = HashMap<String, Logical>;

/// Keeps the column types of each distinct schema seen, so a stream of messages
/// sharing one schema parses it once.
#[derive(Default)]
pub struct DebeziumDecoder {
    schemas: HashMap<u64, Arc<ColumnLogicals>>,
}

impl DebeziumDecoder {
    pub(crate) fn decode(
        &mut self,
        text: &str,
        position: &Position,
        rows: &mut Rows,
        out: &mut Vec<ChangeEvent>,
    ) -> Result<Decoded, DecodeError> {
        let message: Message = serde_json::from_str(text)?;
        let (envelope, logicals) = match (message.schema, message.payload) {
            (_, Some(payload)) => {
                let logicals = match message.schema {
                    Some(schema) => Some(self.logicals(schema)?),
                    None => None,
                };
                (serde_json::from_str::<Envelope>(payload.get())?, logicals)
            }
            (Some(_), None) => return Ok(Decoded::Skipped(Skip::Tombstone)),
            (None, None) => (
                Envelope {
                    before: message.before,
                    after: message.after,
                    source: message.source,
                    op: message.op,
                    ts_ms: message.ts_ms,
                },
                None,
            ),
        };
        let op = match envelope.op.as_deref() {
            Some("c" | "r") => Op::Insert,
            Some("u") => Op::Update,
            Some("d") => Op::Delete,
            Some("t" | "m") => return Ok(Decoded::Skipped(Skip::Control)),
            Some(other) => {
                return Err(DecodeError::invalid(format!(
                    "unknown Debezium op `{}`: expected c, r, u, d, t or m",
                    excerpt(other)
                )));
            }
            None => {
                return Err(DecodeError::invalid("no `op` field: expected a Debezium change event envelope"));
            }
        };
        let source = envelope
            .source
            .ok_or_else(|| DecodeError::invalid("no `source` block: cannot tell the table or commit time"))?;
        let table = source.table.as_deref().ok_or_else(|| DecodeError::invalid("`source.table` is missing"))?;
        let namespace = match source.connector.as_deref() {
            Some("postgresql") => source.schema.as_deref().or(source.db.as_deref()),
            _ => source.db.as_deref(),
        }
        .ok_or_else(|| DecodeError::invalid("`source.db` is missing"))?;
        let commit_time = match (source.ts_us, source.ts_ms, envelope.ts_ms) {
            (Some(us), _, _) => commit_time("source.ts_us", EventTime::commit_from_micros(us))?,
            (None, Some(ms), _) => commit_time("source.ts_ms", EventTime::commit_from_millis(ms))?,
            (None, None, Some(ms)) => commit_time("ts_ms", EventTime::commit_from_millis(ms))?,
            (None, None, None) => {
                return Err(DecodeError::invalid("no commit time: expected `source.ts_ms`"));
            }
        };
        let table = rows.interner.intern_table(namespace, table);
        let mut read = |raw_row: &RawRow, before: bool| {
            let at = ImageAt { index: 0, before };
            rows.convert(text, &table, at, raw_row, None, |name, raw| {
                let logical = logicals.as_ref().and_then(|l| l.get(name).copied()).unwrap_or(Logical::Plain);
                read_value(logical, raw).map_err(|e| DecodeError::invalid(format!("column `{name}`: {e}")))
            })
        };
        let before = envelope.before.as_ref().map(|r| read(r, true)).transpose()?;
        let after = envelope.after.as_ref().map(|r| read(r, false)).transpose()?;
        match op {
            Op::Insert | Op::Update if after.is_none() => {
                return Err(DecodeError::invalid(format!("`{}` event without an `after` image", op)));
            }
            Op::Delete if before.is_none() => {
                return Err(DecodeError::invalid("delete event without a `before` image"));
            }
            _ => {}
        }
        out.push(ChangeEvent { table, op, before, after, commit_time, position: position.clone() });
        Ok(Decoded::Events(1))
    }

    fn logicals(&mut self, schema: &RawValue) -> Result<Arc<ColumnLogicals>, DecodeError> {
        let mut hasher = DefaultHasher::new();
        schema.get().hash(&mut hasher);
        let id = hasher.finish();
        if let Some(found) = self.schemas.get(&id) {
            return Ok(found.clone());
        }
        let node: SchemaNode = serde_json::from_str(schema.get())?;
        let mut columns = ColumnLogicals::new();
        for image in node.fields.iter().filter(|f| matches!(f.field.as_deref(), Some("before" | "after"))) {
            for column in &image.fields {
                if let Some(name) = &column.field {
                    columns.insert(name.clone(), logical_of(column)?);
                }
            }
        }
        let columns = Arc::new(columns);
        if self.schemas.len() > 1024 {
            self.schemas.clear(); // a stream of ever-changing schemas must not grow memory
        }
        self.schemas.insert(id, columns.clone());
        Ok(columns)
    }
}

fn logical_of(column: &SchemaNode) -> Result<Logical, DecodeError> {
    Ok(match column.name.as_deref() {
        Some("org.apache.kafka.connect.data.Decimal") => {
            let scale = column
                .parameters
                .get("scale")
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| DecodeError::invalid("Decimal schema without a numeric `scale` parameter"))?;
            Logical::Decimal { scale }
        }
        Some("io.debezium.data.VariableScaleDecimal") => Logical::VariableScaleDecimal,
        Some("io.debezium.time.Timestamp" | "org.apache.kafka.connect.data.Timestamp") => Logical::EpochMillis,
        Some("io.debezium.time.MicroTimestamp") => Logical::EpochMicros,
        Some("io.debezium.time.NanoTimestamp") => Logical::EpochNanos,
        Some("io.debezium.time.ZonedTimestamp") => Logical::ZonedText,
        Some("io.debezium.time.Date" | "org.apache.kafka.connect.data.Date") => Logical::EpochDays,
        Some("io.debezium.data.Json") => Logical::Json,
        _ if column.ty == "string"
            && column
                .parameters
                .get("__debezium.source.column.type")
                .is_some_and(|t| t.eq_ignore_ascii_case("DECIMAL") || t.eq_ignore_ascii_case("NUMERIC")) =>
        {
            Logical::DecimalText
        }
        _ => Logical::Plain,
    })
}

fn read_value(logical: Logical, raw: &RawValue) -> Result<Value, DecodeError> {
    if raw.get() == "null" {
        return Ok(Value::Null);
    }
    let int = |raw: &RawValue| -> Result<i64, DecodeError> {
        raw.get()
            .parse::<i64>()
            .map_err(|_| DecodeError::invalid(format!("expected a 64-bit integer, found `{}`", excerpt(raw.get()))))
    };
    Ok(match logical {
        Logical::Plain => value_from_raw(raw)?,
        Logical::Decimal { scale } => Value::Decimal(decimal_from_base64(&string_from_raw(raw)?, scale)?),
        Logical::VariableScaleDecimal => {
            #[derive(Deserialize)]
            struct Variable<'a> {
                scale: u32,
                #[serde(borrow)]
                value: Cow<'a, str>,
            }
            let v: Variable = serde_json::from_str(raw.get())?;
            Value::Decimal(decimal_from_base64(&v.value, v.scale)?)
        }
        Logical::DecimalText => {
            let text = string_from_raw(raw)?;
            Value::parse_number(&text)
                .map(|v| match v {
                    Value::Int(i) => Value::Decimal(i.into()),
                    other => other,
                })
                .ok_or_else(|| DecodeError::invalid(format!("`{}` is not an exact decimal", excerpt(&text))))?
        }
        Logical::EpochMillis => Value::Timestamp(EventTime::from_millis(int(raw)?)),
        Logical::EpochMicros => Value::Timestamp(EventTime::from_micros(int(raw)?)),
        Logical::EpochNanos => Value::Timestamp(EventTime::from_micros(int(raw)?.div_euclid(1_000))),
        Logical::EpochDays => Value::Timestamp(EventTime::from_secs(int(raw)?.saturating_mul(86_400))),
        Logical::ZonedText => {
            Value::Timestamp(EventTime::parse(&string_from_raw(raw)?).map_err(|e| DecodeError::invalid(e.to_string()))?)
        }
        Logical::Json => Value::Json(string_from_raw(raw)?.into_owned()),
    })
}

/// Decodes Kafka Connect's Decimal: base64 of the big-endian two's-complement unscaled value.
fn decimal_from_base64(text: &str, scale: u32) -> Result<Decimal, DecodeError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| DecodeError::invalid(format!("`{text}` is not base64 decimal bytes: {e}")))?;
    if bytes.is_empty() {
        return Err(DecodeError::invalid("empty decimal bytes"));
    }
    let negative = bytes[0] & 0x80 != 0;
    let significant = bytes.len().saturating_sub(16);
    if bytes[..significant].iter().any(|&b| b != if negative { 0xff } else { 0 }) {
        return Err(DecodeError::invalid("decimal wider than 128 bits"));
    }
    let mut buf = if negative { [0xffu8; 16] } else { [0u8; 16] };
    let tail = &bytes[significant..];
    buf[16 - tail.len()..].copy_from_slice(tail);
    let unscaled = i128::from_be_bytes(buf);
    Decimal::try_from_i128_with_scale(unscaled, scale)
        .map_err(|e| DecodeError::invalid(format!("decimal out of range (scale {scale}): {e}")))
}

fn decimal_to_base64(d: &Decimal) -> String {
    let unscaled = d.mantissa();
    let bytes = unscaled.to_be_bytes();
    // Shortest two's-complement form, as Kafka Connect writes it.
    let mut start = 0;
    while start < 15 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    base64::engine::general_purpose::STANDARD.encode(&bytes[start..])
}

/// How the encoder writes DECIMAL columns, mirroring Debezium's `decimal.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalMode {
    /// Base64 bytes typed by the schema (needs the wrapper to be readable).
    Precise,
    /// Plain strings.
    String,
}

/// Options for [`encode`].
#[derive(Debug, Clone, Copy)]
pub struct EncodeOptions {
    pub schema_wrapper: bool,
    pub decimal_mode: DecimalMode,
}

/// Writes an event as one Debezium JSON line. `columns` gives each column's type
/// (needed for the schema and to encode timestamps and decimals the way Debezium does).
pub fn encode(event: &ChangeEvent, columns: &BTreeMap<String, ColumnType>, options: EncodeOptions) -> String {
    let (db, table) = event.table.split_once('.').unwrap_or(("", &event.table));
    let op = match event.op {
        Op::Insert | Op::Message => "c",
        Op::Update => "u",
        Op::Delete => "d",
    };
    let ms = event.commit_time.as_millis();
    let mut payload = String::with_capacity(512);
    payload.push_str("{\"before\":");
    write_image(&mut payload, event.before.as_ref(), options);
    payload.push_str(",\"after\":");
    write_image(&mut payload, event.after.as_ref(), options);
    payload.push_str(",\"source\":{\"version\":\"2.7.3.Final\",\"connector\":\"mysql\",\"name\":\"shop\",");
    payload.push_str(&format!(
        "\"ts_ms\":{ms},\"ts_us\":{},\"snapshot\":\"false\",\"db\":",
        event.commit_time.as_micros()
    ));
    write_str(&mut payload, db);
    payload.push_str(",\"table\":");
    write_str(&mut payload, table);
    let pos = match &event.position {
        Position::Line { line, .. } => *line,
        Position::Stream { offset, .. } => *offset,
        Position::Log { index, .. } => u64::from(*index),
        Position::Synthetic { seq } => *seq,
        Position::Query { row, .. } => *row,
    };
    payload.push_str(&format!(
        ",\"server_id\":1,\"gtid\":null,\"file\":\"mysql-bin.000001\",\"pos\":{pos},\"row\":0,\"thread\":null,\"query\":null}},\"op\":\"{op}\",\"ts_ms\":{},\"transaction\":null}}",
        ms + 3
    ));
    if !options.schema_wrapper {
        return payload;
    }
    let value_schema = row_schema(&event.table, columns, event, options);
    format!(
        "{{\"schema\":{{\"type\":\"struct\",\"fields\":[{b},{a},{{\"type\":\"struct\",\"fields\":[{{\"type\":\"string\",\"optional\":false,\"field\":\"connector\"}},{{\"type\":\"int64\",\"optional\":false,\"field\":\"ts_ms\"}},{{\"type\":\"string\",\"optional\":false,\"field\":\"db\"}},{{\"type\":\"string\",\"optional\":true,\"field\":\"table\"}}],\"optional\":false,\"name\":\"io.debezium.connector.mysql.Source\",\"field\":\"source\"}},{{\"type\":\"string\",\"optional\":false,\"field\":\"op\"}},{{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ms\"}}],\"optional\":false,\"name\":\"{t}.Envelope\",\"version\":1}},\"payload\":{payload}}}",
        b = value_schema.replace("@FIELD@", "before"),
        a = value_schema.replace("@FIELD@", "after"),
        t = event.table,
    )
}

fn write_image(out: &mut String, row: Option<&Row>, options: EncodeOptions) {
    let Some(row) = row else {
        out.push_str("null");
        return;
    };
    out.push('{');
    for (i, (name, value)) in row.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, name);
        out.push(':');
        match value {
            Value::Decimal(d) if options.decimal_mode == DecimalMode::Precise => write_str(out, &decimal_to_base64(d)),
            Value::Decimal(d) => write_str(out, &d.to_string()),
            Value::Timestamp(t) => out.push_str(&t.as_micros().to_string()),
            Value::Json(j) => write_str(out, j),
            other => write_value(out, other),
        }
    }
    out.push('}');
}

/// The `Value` struct schema of a table. A DECIMAL column's scale is a property of the
/// column, so it is taken from whichever image holds a value for it.
fn row_schema(
    table: &str,
    columns: &BTreeMap<String, ColumnType>,
    event: &ChangeEvent,
    options: EncodeOptions,
) -> String {
    let mut fields = Vec::new();
    let row = event.current_row();
    let scale_of = |name: &str| {
        [event.after.as_ref(), event.before.as_ref()].into_iter().flatten().find_map(|r| match r.get(name) {
            Some(Value::Decimal(d)) => Some(d.scale()),
            _ => None,
        })
    };
    let type_of = |name: &str| {
        [event.after.as_ref(), event.before.as_ref()]
            .into_iter()
            .flatten()
            .find_map(|r| r.get(name).and_then(ColumnType::of))
    };
    for (name, _) in row.into_iter().flat_map(|r| r.iter()) {
        let ty = columns.get(name).copied().or_else(|| type_of(name)).unwrap_or(ColumnType::String);
        let field = match ty {
            ColumnType::Int => {
                format!("{{\"type\":\"int64\",\"optional\":true,\"field\":\"{name}\"}}")
            }
            ColumnType::Decimal => {
                let scale = scale_of(name).unwrap_or(0);
                match options.decimal_mode {
                    DecimalMode::Precise => format!(
                        "{{\"type\":\"bytes\",\"optional\":true,\"name\":\"org.apache.kafka.connect.data.Decimal\",\"version\":1,\"parameters\":{{\"scale\":\"{scale}\",\"connect.decimal.precision\":\"20\"}},\"field\":\"{name}\"}}"
                    ),
                    DecimalMode::String => format!(
                        "{{\"type\":\"string\",\"optional\":true,\"parameters\":{{\"__debezium.source.column.type\":\"DECIMAL\",\"__debezium.source.column.length\":\"20\",\"__debezium.source.column.scale\":\"{scale}\"}},\"field\":\"{name}\"}}"
                    ),
                }
            }
            ColumnType::String => {
                format!("{{\"type\":\"string\",\"optional\":true,\"field\":\"{name}\"}}")
            }
            ColumnType::Bool => {
                format!("{{\"type\":\"boolean\",\"optional\":true,\"field\":\"{name}\"}}")
            }
            // A date's value is an instant (midnight UTC), written like a timestamp's.
            ColumnType::Timestamp | ColumnType::Date => format!(
                "{{\"type\":\"int64\",\"optional\":true,\"name\":\"io.debezium.time.MicroTimestamp\",\"version\":1,\"field\":\"{name}\"}}"
            ),
            ColumnType::Json => {
                format!(
                    "{{\"type\":\"string\",\"optional\":true,\"name\":\"io.debezium.data.Json\",\"version\":1,\"field\":\"{name}\"}}"
                )
            }
        };
        fields.push(field);
    }
    format!(
        "{{\"type\":\"struct\",\"fields\":[{}],\"optional\":true,\"name\":\"{table}.Value\",\"field\":\"@FIELD@\"}}",
        fields.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_bytes_round_trip() {
        for text in ["0", "12.34", "-12.34", "-0.01", "99999999999.99", "-128", "127", "128"] {
            let d: Decimal = text.parse().unwrap();
            let enc = decimal_to_base64(&d);
            assert_eq!(decimal_from_base64(&enc, d.scale()).unwrap(), d, "{text} via {enc}");
        }
        // Debezium documentation example: 1.00 with scale 2 is "AGQ=" (0x00 0x64).
        assert_eq!(decimal_from_base64("AGQ=", 2).unwrap().to_string(), "1.00");
    }
}
