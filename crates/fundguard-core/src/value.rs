//! Typed column values. Money is exact: integers or decimals, never floats.

use std::fmt;

use rust_decimal::Decimal;
use serde::ser::{Serialize, Serializer};

use crate::EventTime;

/// One column value of a row.
///
/// Numbers that are not integers are kept as exact [`Decimal`]s, whatever the
/// source wrote (a JSON number `12.30`, a DECIMAL string, Debezium's base64
/// bytes): the unscaled digits are never squeezed through an `f64`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Decimal(Decimal),
    String(String),
    /// Microseconds since the Unix epoch, UTC.
    Timestamp(EventTime),
    /// A JSON document, kept as its text.
    Json(String),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Parses the text of a JSON number exactly: an integer when it has no
    /// fraction and fits in `i64`, otherwise a decimal (scientific notation included).
    pub fn parse_number(text: &str) -> Option<Value> {
        if !text.contains(['.', 'e', 'E'])
            && let Ok(i) = text.parse::<i64>()
        {
            return Some(Value::Int(i));
        }
        parse_decimal(text).map(Value::Decimal)
    }

    /// Converts to JSON for findings and evidence. Decimals become strings so
    /// that no reader turns them into floats; timestamps become RFC 3339 text.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::Decimal(d) => d.to_string().into(),
            Value::String(s) => s.clone().into(),
            Value::Timestamp(t) => t.to_string().into(),
            Value::Json(text) => serde_json::from_str(text).unwrap_or_else(|_| text.clone().into()),
        }
    }

    /// Short name of the value's type, used in error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Decimal(_) => "decimal",
            Value::String(_) => "string",
            Value::Timestamp(_) => "timestamp",
            Value::Json(_) => "json",
        }
    }
}

/// Parses a decimal literal, accepting scientific notation (`1.5E+3`).
pub(crate) fn parse_decimal(text: &str) -> Option<Decimal> {
    if text.contains(['e', 'E']) { Decimal::from_scientific(text).ok() } else { text.parse::<Decimal>().ok() }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::String(s) | Value::Json(s) => f.write_str(s),
            Value::Timestamp(t) => write!(f, "{t}"),
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v)
    }
}

impl From<Decimal> for Value {
    fn from(v: Decimal) -> Self {
        Value::Decimal(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_exactly() {
        assert_eq!(Value::parse_number("42"), Some(Value::Int(42)));
        assert_eq!(Value::parse_number("-0.10"), Some(Value::Decimal("-0.10".parse().unwrap())));
        assert_eq!(Value::parse_number("1.5E+3"), Some(Value::Decimal(Decimal::from(1500))));
        // Larger than i64: still exact.
        assert_eq!(
            Value::parse_number("18446744073709551615"),
            Some(Value::Decimal("18446744073709551615".parse().unwrap()))
        );
        assert_eq!(Value::parse_number("abc"), None);
    }

    #[test]
    fn decimals_serialize_as_strings() {
        let v = Value::Decimal("0.30".parse().unwrap());
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"0.30\"");
    }
}
