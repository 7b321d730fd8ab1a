//! Declared column types: hints that make loosely typed sources exact.
//!
//! Some sources cannot say a column's type: Debezium without its schema wrapper
//! writes `decimal.handling.mode=string` DECIMALs as plain strings, Maxwell writes
//! DATETIMEs as text, business messages are whatever their sender wrote. A
//! [`TableSchemas`] names the type of such columns; [`ColumnType::coerce`] turns
//! the decoded value into it, and the engine uses the declared types for its
//! Arrow schemas, so expressions see the same types in every batch.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{EventTime, Value, value::parse_decimal};

/// The type of a column, as rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    #[serde(alias = "bigint", alias = "integer")]
    Int,
    #[serde(alias = "numeric")]
    Decimal,
    #[serde(alias = "text", alias = "varchar")]
    String,
    #[serde(alias = "boolean")]
    Bool,
    #[serde(alias = "datetime")]
    Timestamp,
    /// A calendar day (SQL `DATE`), read as midnight UTC of that day: from `YYYY-MM-DD`
    /// text, or from the days since 1970-01-01 that Debezium writes for a `DATE` (which
    /// read as a `timestamp` would be taken for seconds).
    Date,
    Json,
}

impl ColumnType {
    /// Converts a decoded value to this type; `None` when it cannot be read as one
    /// (the caller reports it: a value is never silently replaced).
    pub fn coerce(self, value: Value) -> Option<Value> {
        Some(match (self, value) {
            (_, Value::Null) => Value::Null,
            (ColumnType::Int, Value::Int(i)) => Value::Int(i),
            (ColumnType::Int, Value::String(s)) => Value::Int(s.trim().parse().ok()?),
            (ColumnType::Int, Value::Decimal(d)) if d.fract().is_zero() => Value::Int(i64::try_from(d).ok()?),
            (ColumnType::Decimal, Value::Decimal(d)) => Value::Decimal(d),
            (ColumnType::Decimal, Value::Int(i)) => Value::Decimal(i.into()),
            (ColumnType::Decimal, Value::String(s)) => Value::Decimal(parse_decimal(s.trim())?),
            (ColumnType::String, Value::String(s)) => Value::String(s),
            (ColumnType::String, other) => Value::String(other.to_string()),
            (ColumnType::Bool, Value::Bool(b)) => Value::Bool(b),
            (ColumnType::Bool, Value::Int(i)) => Value::Bool(i != 0),
            (ColumnType::Bool, Value::String(s)) => match s.as_str() {
                "true" | "1" => Value::Bool(true),
                "false" | "0" => Value::Bool(false),
                _ => return None,
            },
            (ColumnType::Timestamp, Value::Timestamp(t)) => Value::Timestamp(t),
            (ColumnType::Timestamp, Value::String(s)) => Value::Timestamp(EventTime::parse(&s).ok()?),
            (ColumnType::Timestamp, Value::Int(i)) => Value::Timestamp(epoch_by_magnitude(i)),
            (ColumnType::Date, Value::Timestamp(t)) => Value::Timestamp(t),
            (ColumnType::Date, Value::Int(days)) => Value::Timestamp(EventTime::from_secs(days.checked_mul(86_400)?)),
            (ColumnType::Date, Value::String(s)) => Value::Timestamp(parse_day(s.trim())?),
            (ColumnType::Json, Value::Json(j)) => Value::Json(j),
            (ColumnType::Json, Value::String(s)) => Value::Json(s),
            _ => return None,
        })
    }

    /// The natural type of a value, if it has one.
    pub fn of(value: &Value) -> Option<ColumnType> {
        Some(match value {
            Value::Null => return None,
            Value::Bool(_) => ColumnType::Bool,
            Value::Int(_) => ColumnType::Int,
            Value::Decimal(_) => ColumnType::Decimal,
            Value::String(_) => ColumnType::String,
            Value::Timestamp(_) => ColumnType::Timestamp,
            Value::Json(_) => ColumnType::Json,
        })
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ColumnType::Int => "int",
            ColumnType::Decimal => "decimal",
            ColumnType::String => "string",
            ColumnType::Bool => "bool",
            ColumnType::Timestamp => "timestamp",
            ColumnType::Date => "date",
            ColumnType::Json => "json",
        })
    }
}

/// Reads an epoch number whose unit is not stated, by its size: Debezium without its
/// schema writes DATETIME(0-3) as milliseconds and DATETIME(4-6) as microseconds.
/// For instants between 1973 and 2286 the units cannot be confused: seconds stay
/// below 10^10, milliseconds below 10^13, microseconds below 10^16.
fn epoch_by_magnitude(v: i64) -> EventTime {
    match v.unsigned_abs() {
        0..10_000_000_000 => EventTime::from_secs(v),
        10_000_000_000..10_000_000_000_000 => EventTime::from_millis(v),
        10_000_000_000_000..10_000_000_000_000_000 => EventTime::from_micros(v),
        _ => EventTime::from_micros(v / 1_000),
    }
}

/// Midnight UTC of a `YYYY-MM-DD` day (or the instant of a full timestamp's text).
fn parse_day(text: &str) -> Option<EventTime> {
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let secs = day.and_hms_opt(0, 0, 0)?.and_utc().timestamp();
        return Some(EventTime::from_secs(secs));
    }
    EventTime::parse(text).ok()
}

/// Declared column types per table (`db.table` → column → type).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSchemas {
    pub tables: BTreeMap<String, BTreeMap<String, ColumnType>>,
}

impl TableSchemas {
    pub fn table(&self, table: &str) -> Option<&BTreeMap<String, ColumnType>> {
        self.tables.get(table)
    }

    pub fn column(&self, table: &str, column: &str) -> Option<ColumnType> {
        self.tables.get(table)?.get(column).copied()
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_is_midnight_utc_of_its_day_from_epoch_days_or_text() {
        let day = EventTime::parse("2024-05-01T00:00:00Z").unwrap();
        // 19,844 days after 1970-01-01: as a timestamp it would be read as seconds (1970).
        assert_eq!(ColumnType::Date.coerce(Value::Int(19_844)), Some(Value::Timestamp(day)));
        assert_eq!(ColumnType::Date.coerce(Value::String("2024-05-01".into())), Some(Value::Timestamp(day)));
        assert_eq!(ColumnType::Date.coerce(Value::Int(-1)), Some(Value::Timestamp(EventTime::from_secs(-86_400))));
        assert_eq!(ColumnType::Date.coerce(Value::String("May 1st".into())), None);
        assert_eq!(ColumnType::Date.coerce(Value::Int(i64::MAX)), None, "overflow is an error, not a panic");
        let schemas: TableSchemas = serde_json::from_str(r#"{"tables": {"s.t": {"d": "date"}}}"#).unwrap();
        assert_eq!(schemas.column("s.t", "d"), Some(ColumnType::Date));
    }

    #[test]
    fn epoch_numbers_read_by_magnitude() {
        let t = EventTime::parse("2024-05-01T00:00:04.909652Z").unwrap();
        for raw in [1_714_521_604_909_652i64, 1_714_521_604_909_652_000] {
            assert_eq!(ColumnType::Timestamp.coerce(Value::Int(raw)), Some(Value::Timestamp(t)));
        }
        let ms = EventTime::parse("2024-05-01T00:00:04.909Z").unwrap();
        assert_eq!(ColumnType::Timestamp.coerce(Value::Int(1_714_521_604_909)), Some(Value::Timestamp(ms)));
        let s = EventTime::parse("2024-05-01T00:00:04Z").unwrap();
        assert_eq!(ColumnType::Timestamp.coerce(Value::Int(1_714_521_604)), Some(Value::Timestamp(s)));
    }

    #[test]
    fn coerces_strings_exactly() {
        assert_eq!(
            ColumnType::Decimal.coerce(Value::String("12.30".into())),
            Some(Value::Decimal("12.30".parse().unwrap()))
        );
        assert_eq!(ColumnType::Int.coerce(Value::String("x".into())), None);
        assert_eq!(ColumnType::Int.coerce(Value::Null), Some(Value::Null));
        assert_eq!(
            ColumnType::Timestamp.coerce(Value::String("2024-01-01 00:00:00".into())),
            Some(Value::Timestamp(EventTime::parse("2024-01-01T00:00:00Z").unwrap()))
        );
    }
}
