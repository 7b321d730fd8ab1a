//! From binlog rows to fundguard rows: table maps give each column its name and
//! type, and every value is converted exactly (DECIMAL as a decimal, ENUM and SET
//! as their names, TIMESTAMP as the instant it is, DATETIME in the configured zone).

use std::sync::Arc;

use chrono::NaiveDate;
use fundguard_core::{Decimal, EventTime, Row, Value};
use mysql_async::binlog::events::{
    Event, EventData, FormatDescriptionEvent, OptionalMetaExtractor, OptionalMetadataField, RowsEventData,
    TableMapEvent,
};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::binlog::{BinlogVersion, EventType};
use mysql_async::consts::ColumnType;
use mysql_common::io::ParseBuf;

/// The `(before, after)` images of one row change.
pub type Images = (Option<Row>, Option<Row>);

/// A table as its latest table-map event describes it.
pub(super) struct TableInfo {
    /// `database.table`.
    pub name: Arc<str>,
    /// Whether the include/exclude filters let its rows through.
    pub included: bool,
    pub columns: Vec<ColumnInfo>,
    /// The table map's bytes: a transaction repeats the map, and an identical one
    /// needs no new `TableInfo`.
    pub map_bytes: Vec<u8>,
}

pub(super) struct ColumnInfo {
    pub name: Arc<str>,
    pub kind: Kind,
    /// How the binlog writes its values, or why the table map does not say.
    pub codec: Result<Codec, String>,
}

/// What mysql_common needs to parse one column's value in a row image, resolved from the
/// table map once: the type, its metadata bytes (found by walking the metadata of every
/// column before it) and whether an integer column is unsigned.
pub(super) struct Codec {
    ty: ColumnType,
    meta: Box<[u8]>,
    unsigned: bool,
}

/// How to read a column's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    Plain,
    Float,
    Decimal,
    /// TIMESTAMP: seconds since the epoch, an instant.
    Timestamp,
    /// DATETIME: a wall-clock time in the server's zone (`datetime_offset`).
    DateTime,
    Date,
    Time,
    Year,
    Bit,
    Enum(Vec<String>),
    Set(Vec<String>),
    Json,
}

impl TableInfo {
    /// Reads a table map. Column names come from `binlog_row_metadata=FULL`; without
    /// it they are `None` and the caller asks information_schema.
    pub fn from_map(map: &TableMapEvent<'_>, map_bytes: &[u8]) -> (TableInfo, bool) {
        let count = map.columns_count() as usize;
        let types: Vec<Result<ColumnType, String>> = (0..count)
            .map(|i| match map.get_column_type(i) {
                Ok(Some(ty)) => Ok(ty),
                Ok(None) => Err("No column type".to_string()),
                Err(e) => Err(e.to_string()),
            })
            .collect();
        let mut kinds: Vec<Kind> = types.iter().map(|ty| ty.as_ref().map_or(Kind::Plain, |ty| kind_of(*ty))).collect();
        let codecs = codecs(map, &types);
        let mut names: Vec<Option<Arc<str>>> = vec![None; count];
        let mut enums = Vec::new();
        let mut sets = Vec::new();
        for field in map.iter_optional_meta().flatten() {
            match field {
                OptionalMetadataField::ColumnName(columns) => {
                    for (slot, name) in names.iter_mut().zip(columns.iter_names().flatten()) {
                        *slot = Some(Arc::from(name.name().as_ref()));
                    }
                }
                OptionalMetadataField::EnumStrValue(values) => {
                    for column in values.iter_values().flatten() {
                        enums.push(column.values().iter().map(|v| v.value().into_owned()).collect::<Vec<_>>());
                    }
                }
                OptionalMetadataField::SetStrValue(values) => {
                    for column in values.iter_values().flatten() {
                        sets.push(column.values().iter().map(|v| v.value().into_owned()).collect::<Vec<_>>());
                    }
                }
                _ => {}
            }
        }
        let (mut enums, mut sets) = (enums.into_iter(), sets.into_iter());
        for kind in &mut kinds {
            match kind {
                Kind::Enum(names) => *names = enums.next().unwrap_or_default(),
                Kind::Set(names) => *names = sets.next().unwrap_or_default(),
                _ => {}
            }
        }
        let named = names.iter().all(Option::is_some);
        let columns = kinds
            .into_iter()
            .zip(names)
            .zip(codecs)
            .enumerate()
            .map(|(i, ((kind, name), codec))| ColumnInfo {
                name: name.unwrap_or_else(|| Arc::from(format!("@{i}"))),
                kind,
                codec,
            })
            .collect();
        let name = Arc::from(format!("{}.{}", map.database_name(), map.table_name()));
        (TableInfo { name, included: true, columns, map_bytes: map_bytes.to_vec() }, named)
    }
}

impl TableInfo {
    /// Converts every row of a rows event: its images, or why the row cannot become an
    /// event (the source dead-letters it and goes on). A row image that cannot be parsed
    /// ends the list: the rows share one buffer, so the rest cannot be found.
    ///
    /// The images are walked here, column by column with what the table map resolved
    /// once ([`ColumnInfo::codec`]); mysql_common parses each value. (Its own row
    /// iterator re-reads the table map's metadata and builds a column descriptor for
    /// every row: most of the decoding time on a catch-up.)
    ///
    /// A rows event whose column count is not its table map's is one bad row. And there
    /// are at most as many rows as bytes of row data: an image of no column takes no
    /// bytes, and would repeat without end (found by fuzzing). A panic of the value
    /// parser (mysql_common's; `datetime_from_packed` negates `i64::MIN` on hostile
    /// DATETIME2 bytes, an overflow panic in debug builds — found by fuzzing) is an
    /// undecodable image too, not the end of the source.
    pub fn rows_of(&self, rows: &RowsEventData<'_>, offset_secs: i32) -> Vec<Result<Images, String>> {
        if rows.num_columns() != self.columns.len() as u64 {
            return vec![Err(format!(
                "the rows event has {} columns, the table map of {} {}",
                rows.num_columns(),
                self.name,
                self.columns.len()
            ))];
        }
        // As mysql_common does: a table map that does not say how to read one column makes
        // every row of the event unreadable (later columns' metadata cannot be found either).
        if let Some(problem) = self.columns.iter().find_map(|c| c.codec.as_ref().err())
            && !rows.rows_data().is_empty()
        {
            return vec![Err(format!("undecodable row image: {problem}"))];
        }
        let count = self.columns.len();
        let before: Option<Vec<bool>> =
            rows.columns_before_image().map(|bits| bits.iter().by_vals().take(count).collect());
        let after: Option<Vec<bool>> =
            rows.columns_after_image().map(|bits| bits.iter().by_vals().take(count).collect());
        let shared_after_image = matches!(rows, RowsEventData::PartialUpdateRowsEvent(_));
        let data = rows.rows_data();
        let mut buf = ParseBuf(data);
        let mut out = Vec::new();
        while !buf.is_empty() && out.len() < data.len() {
            let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let before = before.as_deref().map(|present| self.image(&mut buf, present, false, offset_secs));
                let before = before.transpose()?;
                let after =
                    after.as_deref().map(|present| self.image(&mut buf, present, shared_after_image, offset_secs));
                Ok::<_, std::io::Error>((before, after.transpose()?))
            }));
            match parsed {
                Ok(Ok((before, after))) => {
                    out.push(before.transpose().and_then(|before| Ok((before, after.transpose()?))));
                }
                Ok(Err(e)) => {
                    out.push(Err(format!("undecodable row image: {e}")));
                    break;
                }
                Err(_) => {
                    out.push(Err("undecodable row image: the binlog parser failed on it".to_string()));
                    break;
                }
            }
        }
        out
    }

    /// Reads one row image from `buf`: the outer error when its bytes cannot be parsed
    /// (the rest of the event is lost), the inner one when they parse but do not make a
    /// row (this row is dead-lettered). `present` says which columns the image holds;
    /// `shared` that it starts with MySQL's partial-JSON header (`PARTIAL_UPDATE_ROWS_EVENT`).
    fn image<'a>(
        &'a self,
        buf: &mut ParseBuf<'a>,
        present: &[bool],
        shared: bool,
        offset_secs: i32,
    ) -> std::io::Result<Result<Row, String>> {
        let mut partial_json = Vec::new();
        if shared {
            let options = buf.checked_eat_lenenc_int().ok_or_else(|| truncated("partial JSON options"))?;
            if options & PARTIAL_JSON_UPDATES != 0 {
                let json_columns = self.columns.iter().filter(|c| c.kind == Kind::Json).count();
                let bytes =
                    buf.checked_eat(json_columns.div_ceil(8)).ok_or_else(|| truncated("partial JSON bitmap"))?;
                partial_json = (0..json_columns).map(|i| bytes[i / 8] & (1 << (i % 8)) != 0).collect();
            }
        }
        let held = present.iter().filter(|p| **p).count();
        let nulls = buf.checked_eat(held.div_ceil(8)).ok_or_else(|| truncated("null bitmap"))?;
        let mut row = Row::with_capacity(held);
        let mut problem = (held != self.columns.len()).then(|| {
            format!(
                "the row image of {} has {} of its {} columns: set binlog_row_image=FULL on the server",
                self.name,
                held,
                self.columns.len()
            )
        });
        let (mut image_index, mut json_index) = (0, 0);
        for (column, present) in self.columns.iter().zip(present) {
            let partial = column.kind == Kind::Json && {
                json_index += 1;
                partial_json.get(json_index - 1).copied().unwrap_or(false)
            };
            if !present {
                continue;
            }
            let null = nulls[image_index / 8] & (1 << (image_index % 8)) != 0;
            image_index += 1;
            if null {
                row.push(column.name.clone(), Value::Null);
                continue;
            }
            let codec =
                column.codec.as_ref().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.as_str()))?;
            let value: BinlogValue<'_> = buf.parse((codec.ty, &codec.meta[..], codec.unsigned, partial))?;
            if problem.is_none() {
                match convert(&column.kind, value, offset_secs) {
                    Ok(value) => row.push(column.name.clone(), value),
                    Err(e) => problem = Some(format!("column `{}.{}`: {e}", self.name, column.name)),
                }
            }
        }
        Ok(match problem {
            Some(problem) => Err(problem),
            None => Ok(row),
        })
    }
}

/// MySQL's `binlog_row_value_options` bit for JSON columns written as partial updates.
const PARTIAL_JSON_UPDATES: u64 = 1;

fn truncated(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("the row data ends inside a {what}"))
}

/// Decodes one rows event against its table map exactly as the binlog source does, without
/// a server: `table_map` and `rows` are event bodies (what follows the 19-byte header;
/// no checksum), `rows_type` the rows event's type code (`WRITE_ROWS_EVENT` is 30). Per
/// row, its images or the reason it would be dead-lettered; `Err` when either event
/// cannot be read at all. Row images come from the server: fuzzing holds this to never
/// panicking, whatever the bytes.
pub fn decode_rows_event(
    table_map: &[u8],
    rows_type: u8,
    rows: &[u8],
    datetime_offset_secs: i32,
) -> Result<Vec<Result<Images, String>>, String> {
    let fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
    let read = |event_type: u8, body: &[u8]| -> Result<Event, String> {
        let size = u32::try_from(body.len() + 19).map_err(|_| "event over 4 GiB".to_string())?;
        let mut bytes = Vec::with_capacity(body.len() + 19);
        bytes.extend_from_slice(&0u32.to_le_bytes()); // timestamp
        bytes.push(event_type);
        bytes.extend_from_slice(&1u32.to_le_bytes()); // server id
        bytes.extend_from_slice(&size.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes()); // position of the next event
        bytes.extend_from_slice(&0u16.to_le_bytes()); // flags
        bytes.extend_from_slice(body);
        Event::read(&fde, bytes.as_slice()).map_err(|e| format!("unreadable event: {e}"))
    };
    let map_event = read(EventType::TABLE_MAP_EVENT as u8, table_map)?;
    let map = map_event.read_event::<TableMapEvent<'_>>().map_err(|e| format!("unreadable table map: {e}"))?;
    let (info, _) = TableInfo::from_map(&map, table_map);
    let rows_event = read(rows_type, rows)?;
    let Some(EventData::RowsEvent(rows)) = rows_event.read_data().map_err(|e| format!("unreadable rows: {e}"))? else {
        return Err(format!("event type {rows_type} is not a rows event"));
    };
    if rows.table_id() != map.table_id() {
        return Err(format!("rows of table id {} arrived without its table map", rows.table_id()));
    }
    Ok(info.rows_of(&rows, datetime_offset_secs))
}

/// Each column's [`Codec`], as mysql_common's own row parser derives it: unsigned flags
/// come from the optional metadata, one per numeric column in order.
fn codecs(map: &TableMapEvent<'_>, types: &[Result<ColumnType, String>]) -> Vec<Result<Codec, String>> {
    let signedness: Result<Vec<bool>, String> = OptionalMetaExtractor::new(map.iter_optional_meta())
        .map(|meta| meta.iter_signedness().collect())
        .map_err(|e| format!("unreadable optional metadata: {e}"));
    let mut unsigned_flags = signedness.as_deref().unwrap_or_default().iter().copied();
    types
        .iter()
        .enumerate()
        .map(|(i, ty)| {
            let ty = *ty.as_ref().map_err(String::clone)?;
            signedness.as_ref().map_err(String::clone)?;
            let unsigned = ty.is_numeric_type().then(|| unsigned_flags.next()).flatten().unwrap_or_default();
            let meta = map.get_column_metadata(i).unwrap_or(&[]).into();
            Ok(Codec { ty, meta, unsigned })
        })
        .collect()
}

fn kind_of(ty: ColumnType) -> Kind {
    use ColumnType::*;
    match ty {
        MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => Kind::Decimal,
        MYSQL_TYPE_FLOAT | MYSQL_TYPE_DOUBLE => Kind::Float,
        MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => Kind::Timestamp,
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => Kind::DateTime,
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => Kind::Date,
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => Kind::Time,
        MYSQL_TYPE_YEAR => Kind::Year,
        MYSQL_TYPE_BIT => Kind::Bit,
        MYSQL_TYPE_ENUM => Kind::Enum(Vec::new()),
        MYSQL_TYPE_SET => Kind::Set(Vec::new()),
        MYSQL_TYPE_JSON => Kind::Json,
        _ => Kind::Plain,
    }
}

/// Converts one binlog value. Never rounds: a value that does not fit exactly is an error.
pub(super) fn convert(kind: &Kind, value: BinlogValue<'_>, offset_secs: i32) -> Result<Value, String> {
    use mysql_async::Value as My;
    let value = match value {
        BinlogValue::Value(v) => v,
        BinlogValue::Jsonb(j) => {
            let json = serde_json::Value::try_from(j).map_err(|e| format!("JSON value: {e}"))?;
            return Ok(Value::Json(json.to_string()));
        }
        BinlogValue::JsonDiff(_) => {
            return Err("a partial JSON update carries no full value: set binlog_row_value_options='' (MySQL)".into());
        }
    };
    Ok(match (kind, value) {
        (_, My::NULL) => Value::Null,
        (Kind::Enum(names), My::Int(i)) => match usize::try_from(i).ok().and_then(|i| i.checked_sub(1)) {
            Some(at) if at < names.len() => Value::String(names[at].clone()),
            // Index 0 is MySQL's "invalid value" marker: its name is the empty string.
            _ if i == 0 => Value::String(String::new()),
            // Without FULL metadata the names are unknown: keep the index.
            _ if names.is_empty() => Value::Int(i),
            _ => return Err(format!("ENUM index {i} is beyond the column's {} values", names.len())),
        },
        (Kind::Set(names), My::Bytes(bits)) => {
            let mut mask = 0u64;
            for (i, b) in bits.iter().enumerate().take(8) {
                mask |= u64::from(*b) << (8 * i);
            }
            if names.is_empty() {
                Value::Int(mask as i64)
            } else {
                let chosen: Vec<&str> =
                    names.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, n)| n.as_str()).collect();
                Value::String(chosen.join(","))
            }
        }
        (Kind::Timestamp, My::Int(secs)) => Value::Timestamp(EventTime::from_secs(secs)),
        (Kind::Timestamp, My::Bytes(text)) => Value::Timestamp(epoch_text(&text)?),
        (Kind::Decimal, My::Bytes(text)) => {
            let text = std::str::from_utf8(&text).map_err(|_| "DECIMAL is not text".to_string())?;
            Value::Decimal(
                Decimal::from_str_exact(text)
                    .map_err(|e| format!("DECIMAL {text} does not fit fundguard's 28 digits exactly: {e}"))?,
            )
        }
        (Kind::Float, My::Float(f)) => float(f64::from(f).to_string().as_str(), f.is_finite())?,
        (Kind::Float, My::Double(d)) => float(d.to_string().as_str(), d.is_finite())?,
        (Kind::Year, My::Bytes(text)) => {
            Value::Int(std::str::from_utf8(&text).ok().and_then(|t| t.parse().ok()).ok_or("YEAR is not a number")?)
        }
        (Kind::Bit, My::Bytes(bytes)) => {
            if bytes.len() > 8 {
                return Err(format!("BIT({}) is wider than 64 bits", bytes.len() * 8));
            }
            Value::Int(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)) as i64)
        }
        (Kind::DateTime | Kind::Date, My::Date(0, 0, 0, ..)) => Value::Null, // MySQL's zero date
        (_, My::Date(y, m, d, h, mi, s, us)) => {
            let at = NaiveDate::from_ymd_opt(i32::from(y), u32::from(m), u32::from(d))
                .and_then(|date| date.and_hms_micro_opt(u32::from(h), u32::from(mi), u32::from(s), us))
                .ok_or_else(|| format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02} is not a valid date and time"))?;
            let micros = at.and_utc().timestamp_micros() - i64::from(offset_secs) * 1_000_000;
            Value::Timestamp(EventTime::from_micros(micros))
        }
        (_, My::Time(negative, days, h, m, s, us)) => {
            let hours = u64::from(days) * 24 + u64::from(h);
            let sign = if negative { "-" } else { "" };
            let fraction = if us == 0 { String::new() } else { format!(".{us:06}") };
            Value::String(format!("{sign}{hours:02}:{m:02}:{s:02}{fraction}"))
        }
        (_, My::Int(i)) => Value::Int(i),
        (_, My::UInt(u)) => match i64::try_from(u) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Decimal(Decimal::from(u)),
        },
        (_, My::Float(f)) => float(f64::from(f).to_string().as_str(), f.is_finite())?,
        (_, My::Double(d)) => float(d.to_string().as_str(), d.is_finite())?,
        (Kind::Json, My::Bytes(text)) => Value::Json(String::from_utf8_lossy(&text).into_owned()),
        (_, My::Bytes(bytes)) => Value::String(match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }),
    })
}

/// FLOAT and DOUBLE are approximate at the source already; fundguard keeps the shortest
/// decimal that prints the same number, so they never turn into binary floats downstream.
fn float(text: &str, finite: bool) -> Result<Value, String> {
    if !finite {
        return Err(format!("{text} is not a finite number"));
    }
    Decimal::from_str_exact(text)
        .or_else(|_| Decimal::from_scientific(text))
        .map(Value::Decimal)
        .map_err(|e| format!("{text} does not fit a decimal: {e}"))
}

/// `seconds[.micros]` since the epoch, as the binlog writes TIMESTAMP(n).
fn epoch_text(text: &[u8]) -> Result<EventTime, String> {
    let text = std::str::from_utf8(text).map_err(|_| "TIMESTAMP is not text".to_string())?;
    let (secs, micros) = text.split_once('.').unwrap_or((text, "0"));
    let secs: i64 = secs.parse().map_err(|_| format!("TIMESTAMP `{text}` is not seconds since the epoch"))?;
    let micros: i64 = format!("{micros:0<6}")
        .get(..6)
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| format!("TIMESTAMP `{text}` has a bad fraction"))?;
    Ok(EventTime::from_micros(secs.saturating_mul(1_000_000).saturating_add(micros)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::Value as My;
    use proptest::prelude::*;

    fn value(kind: Kind, v: My) -> Result<Value, String> {
        convert(&kind, BinlogValue::Value(v), 0)
    }

    #[test]
    fn values_convert_exactly() {
        assert_eq!(
            value(Kind::Decimal, My::Bytes(b"12345678901234567890.12".to_vec())).unwrap().to_string(),
            "12345678901234567890.12"
        );
        assert!(value(Kind::Decimal, My::Bytes(b"1234567890123456789012345678901.5".to_vec())).is_err());
        let enum_kind = Kind::Enum(vec!["PAYING".into(), "PAID".into()]);
        assert_eq!(value(enum_kind.clone(), My::Int(2)).unwrap(), Value::from("PAID"));
        assert!(value(enum_kind, My::Int(3)).is_err());
        let set = Kind::Set(vec!["a".into(), "b".into(), "c".into()]);
        assert_eq!(value(set, My::Bytes(vec![0b101])).unwrap(), Value::from("a,c"));
        assert_eq!(
            value(Kind::Timestamp, My::Bytes(b"1700000000.5".to_vec())).unwrap(),
            Value::Timestamp(EventTime::from_micros(1_700_000_000_500_000))
        );
        let datetime =
            convert(&Kind::DateTime, BinlogValue::Value(My::Date(2024, 5, 1, 8, 0, 0, 0)), 8 * 3600).unwrap();
        assert_eq!(datetime.to_string(), "2024-05-01T00:00:00Z");
        assert_eq!(value(Kind::DateTime, My::Date(0, 0, 0, 0, 0, 0, 0)).unwrap(), Value::Null);
        assert!(value(Kind::DateTime, My::Date(2024, 2, 30, 0, 0, 0, 0)).is_err());
        assert_eq!(value(Kind::Plain, My::UInt(u64::MAX)).unwrap().to_string(), "18446744073709551615");
        assert_eq!(value(Kind::Float, My::Double(0.1)).unwrap().to_string(), "0.1");
        assert_eq!(value(Kind::Bit, My::Bytes(vec![1, 0])).unwrap(), Value::Int(256));
        assert_eq!(value(Kind::Time, My::Time(true, 1, 2, 3, 4, 0)).unwrap(), Value::from("-26:03:04"));
    }

    /// Regression (found by fuzzing): a row image of no column takes no bytes, and the
    /// parser repeated it until memory ran out.
    #[test]
    fn rows_of_no_column_end_with_the_row_data() {
        let map = b"\x01\0\0\0\0\0\0\0\x04shop\0\x01t\0\x01\x08\x00\xff";
        let rows = b"\x01\0\0\0\0\0\0\0\x02\0\x01\x00\0\0\0";
        let decoded = decode_rows_event(map, 30, rows, 0).unwrap();
        assert_eq!(decoded.len(), 3, "{decoded:?}");
        assert!(decoded[0].as_ref().unwrap_err().contains("has 0 of its 1 columns"), "{decoded:?}");
        let other_count = b"\x01\0\0\0\0\0\0\0\x02\0\x02\x03\0\0";
        let decoded = decode_rows_event(map, 30, other_count, 0).unwrap();
        assert_eq!(decoded.len(), 1);
        assert!(decoded[0].as_ref().unwrap_err().contains("has 2 columns, the table map of shop.t 1"), "{decoded:?}");
        let good = b"\x01\0\0\0\0\0\0\0\x02\0\x01\x01\x00\x07\0\0\0\0\0\0\0";
        let decoded = decode_rows_event(map, 30, good, 0).unwrap();
        assert_eq!(decoded.len(), 1);
        let (before, after) = decoded[0].as_ref().unwrap();
        assert!(before.is_none());
        assert_eq!(after.as_ref().unwrap().get("@0"), Some(&Value::Int(7)));
    }

    /// A table map body for `shop.t` with these (type, metadata) columns, all nullable,
    /// and optional metadata saying which numeric columns are unsigned (one bit each, from
    /// the most significant).
    fn table_map(columns: &[(u8, &[u8])], unsigned: u8) -> Vec<u8> {
        let mut map = b"\x01\0\0\0\0\0\0\0\x04shop\0\x01t\0".to_vec();
        map.push(columns.len() as u8);
        map.extend(columns.iter().map(|(ty, _)| *ty));
        let meta: Vec<u8> = columns.iter().flat_map(|(_, meta)| meta.iter().copied()).collect();
        map.push(meta.len() as u8);
        map.extend(meta);
        map.extend(std::iter::repeat_n(0xff, columns.len().div_ceil(8)));
        map.extend([1, 1, unsigned]); // SIGNEDNESS: type, length, bitmap
        map
    }

    /// BIGINT, INT, TINYINT, VARCHAR(20), DECIMAL(10,2), DATETIME(6), DOUBLE, VARCHAR(300).
    const COLUMNS: [(u8, &[u8]); 8] = [
        (8, b""),
        (3, b""),
        (1, b""),
        (15, b"\x14\0"),
        (246, b"\x0a\x02"),
        (18, b"\x06"),
        (5, b"\x08"),
        (15, b"\x2c\x01"),
    ];

    /// One column's value as a row image writes it: fixed widths, or a length then bytes.
    fn encoded(column: usize, bytes: &[u8]) -> Vec<u8> {
        let fixed = [8, 4, 1, 0, 5, 8, 8, 0][column];
        match column {
            3 => [&[bytes.len().min(20) as u8][..], &bytes[..bytes.len().min(20)]].concat(),
            7 => [&(bytes.len() as u16).to_le_bytes()[..], bytes].concat(),
            _ => bytes.iter().copied().cycle().take(fixed).chain(std::iter::repeat(0)).take(fixed).collect(),
        }
    }

    /// What mysql_common's own row iterator makes of a rows event, converted as the
    /// source converted rows before it walked images itself: the oracle for `rows_of`.
    fn through_the_library(map: &[u8], rows_type: u8, rows: &[u8]) -> Vec<Result<Images, String>> {
        let fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
        let event = |event_type: u8, body: &[u8]| {
            let mut bytes = vec![0, 0, 0, 0, event_type, 1, 0, 0, 0];
            bytes.extend_from_slice(&((body.len() + 19) as u32).to_le_bytes());
            bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
            bytes.extend_from_slice(body);
            Event::read(&fde, bytes.as_slice()).unwrap()
        };
        let map_event = event(EventType::TABLE_MAP_EVENT as u8, map);
        let map = map_event.read_event::<TableMapEvent<'_>>().unwrap();
        let (info, _) = TableInfo::from_map(&map, &[]);
        let rows_event = event(rows_type, rows);
        let Some(EventData::RowsEvent(rows)) = rows_event.read_data().unwrap() else { panic!("not a rows event") };
        let convert_row = |row: mysql_async::binlog::row::BinlogRow| -> Result<Row, String> {
            let values = row.unwrap();
            if values.len() != info.columns.len() {
                return Err(format!(
                    "the row image of {} has {} of its {} columns: set binlog_row_image=FULL on the server",
                    info.name,
                    values.len(),
                    info.columns.len()
                ));
            }
            let mut out = Row::with_capacity(values.len());
            for (column, value) in info.columns.iter().zip(values) {
                let value = convert(&column.kind, value, 0)
                    .map_err(|e| format!("column `{}.{}`: {e}", info.name, column.name))?;
                out.push(column.name.clone(), value);
            }
            Ok(out)
        };
        let mut out = Vec::new();
        let mut parsed = rows.rows(&map).take(rows.rows_data().len());
        loop {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parsed.next())) {
                Ok(None) => break,
                Ok(Some(Ok((before, after)))) => {
                    out.push((|| Ok((before.map(convert_row).transpose()?, after.map(convert_row).transpose()?)))())
                }
                Ok(Some(Err(e))) => {
                    out.push(Err(format!("undecodable row image: {e}")));
                    break;
                }
                Err(_) => {
                    out.push(Err("undecodable row image: the parser panicked".into()));
                    break;
                }
            }
        }
        out
    }

    proptest! {
        /// Row images walked with the table map's resolved codecs read exactly what
        /// mysql_common's row iterator reads: the same rows, values and refusals, for
        /// inserts, updates and deletes, NULLs, signed and unsigned integers, strings of one-
        /// and two-byte lengths, and images that leave columns out.
        #[test]
        fn images_walked_once_per_map_read_as_the_library_reads_them(
            rows in proptest::collection::vec(
                proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..40)), 8),
                1..6,
            ),
            rows_type in prop_oneof![Just(30u8), Just(31u8), Just(32u8)],
            tail in proptest::collection::vec(any::<u8>(), 0..3),
            unsigned in any::<u8>(),
            present in prop_oneof![3 => Just(0xffu8), 1 => any::<u8>()],
        ) {
            let map = table_map(&COLUMNS, unsigned);
            let mut event = b"\x01\0\0\0\0\0\0\0\x02\0\x08".to_vec();
            let images = if rows_type == 31 { 2 } else { 1 };
            // Mostly FULL images; sometimes some columns left out (a MINIMAL image).
            event.extend(std::iter::repeat_n(present, images));
            for row in &rows {
                for _ in 0..images {
                    let (mut nulls, mut held) = (0u8, 0);
                    let mut values = Vec::new();
                    for (i, (null, bytes)) in row.iter().enumerate().filter(|(i, _)| present & (1 << i) != 0) {
                        if *null {
                            nulls |= 1 << held;
                        } else {
                            values.extend(encoded(i, bytes));
                        }
                        held += 1;
                    }
                    event.push(nulls);
                    event.extend(values);
                }
            }
            // Trailing garbage: a truncated image ends the list the same way in both.
            event.extend(&tail);
            let ours = decode_rows_event(&map, rows_type, &event, 0).unwrap();
            let theirs = through_the_library(&map, rows_type, &event);
            let same_values = |a: &Vec<Result<Images, String>>, b: &Vec<Result<Images, String>>| {
                a.len() == b.len() && a.iter().zip(b).all(|(a, b)| match (a, b) {
                    (Ok(a), Ok(b)) => a == b,
                    (Err(a), Err(b)) if a.starts_with("undecodable") => b.starts_with("undecodable"),
                    (Err(a), Err(b)) => a == b,
                    _ => false,
                })
            };
            prop_assert!(same_values(&ours, &theirs), "ours {ours:?}\ntheirs {theirs:?}");
        }
    }

    proptest! {
        #[test]
        fn no_value_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40), i in any::<i64>(), kind in 0usize..13) {
            let kinds = [Kind::Plain, Kind::Float, Kind::Decimal, Kind::Timestamp, Kind::DateTime, Kind::Date, Kind::Time,
                Kind::Year, Kind::Bit, Kind::Enum(vec!["x".into()]), Kind::Set(vec!["x".into()]), Kind::Json, Kind::Enum(vec![])];
            let kind = &kinds[kind];
            let _ = convert(kind, BinlogValue::Value(My::Bytes(bytes.clone())), 0);
            let _ = convert(kind, BinlogValue::Value(My::Int(i)), 0);
            let _ = convert(kind, BinlogValue::Value(My::UInt(i as u64)), 0);
            let _ = convert(kind, BinlogValue::Value(My::Date((i as u16) % 10000, bytes.len() as u8, (i >> 8) as u8, (i >> 16) as u8, 61, (i >> 24) as u8, (i as u32) % 2_000_000)), -3600);
        }

        #[test]
        fn decimals_round_trip(units in any::<i64>(), scale in 0u32..10) {
            let d = Decimal::new(units, scale);
            prop_assert_eq!(value(Kind::Decimal, My::Bytes(d.to_string().into_bytes())).unwrap(), Value::Decimal(d));
        }
    }
}
