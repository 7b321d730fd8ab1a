//! Typed column values. Money is exact: integers or decimals, never floats.

use std::fmt;

use rust_decimal::Decimal;
use serde::de::{Deserialize, Deserializer};
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
/// Reads decimal text (scientific notation included) exactly: `None` when a digit would be
/// lost — more than 28 decimal places or significant digits, or beyond ±79228162514264337593543950335 —
/// rather than rounding money (`Decimal::from_str` rounds excess fraction digits).
pub(crate) fn parse_decimal(text: &str) -> Option<Decimal> {
    let Some((base, exponent)) = text.split_once(['e', 'E']) else {
        return Decimal::from_str_exact(text).ok();
    };
    let base = Decimal::from_str_exact(base).ok()?;
    let exponent: i64 = exponent.parse().ok()?;
    let scale = i64::from(base.scale()).checked_sub(exponent)?;
    if scale >= 0 {
        let scale = u32::try_from(scale).ok().filter(|s| *s <= Decimal::MAX_SCALE)?;
        Decimal::try_from_i128_with_scale(base.mantissa(), scale).ok()
    } else {
        let factor = 10i128.checked_pow(u32::try_from(-scale).ok()?)?;
        Decimal::try_from_i128_with_scale(base.mantissa().checked_mul(factor)?, 0).ok()
    }
}

/// Human-readable formats (findings, evidence) get [`Value::to_json`]: decimals as
/// strings, timestamps as RFC 3339. Binary formats (checkpoints of rule state) get the
/// exact form, which keeps every variant and reads back to the same value.
impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            return self.to_json().serialize(serializer);
        }
        match self {
            Value::Null => Exact::Null,
            Value::Bool(b) => Exact::Bool(*b),
            Value::Int(i) => Exact::Int(*i),
            Value::Decimal(d) => Exact::Decimal(d.serialize()),
            Value::String(s) => Exact::String(s.as_str().into()),
            Value::Timestamp(t) => Exact::Timestamp(t.as_micros()),
            Value::Json(s) => Exact::Json(s.as_str().into()),
        }
        .serialize(serializer)
    }
}

/// Reads the exact form back. JSON loses the difference between a decimal and a string,
/// so human-readable formats are refused rather than guessed at.
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            return Err(serde::de::Error::custom(
                "values are read back only from binary formats (checkpoints); JSON does not keep their types",
            ));
        }
        Ok(match Exact::deserialize(deserializer)? {
            Exact::Null => Value::Null,
            Exact::Bool(b) => Value::Bool(b),
            Exact::Int(i) => Value::Int(i),
            Exact::Decimal(bytes) => Value::Decimal(Decimal::deserialize(bytes)),
            Exact::String(s) => Value::String(s.into_owned()),
            Exact::Timestamp(t) => Value::Timestamp(EventTime::from_micros(t)),
            Exact::Json(s) => Value::Json(s.into_owned()),
        })
    }
}

/// The exact, type-keeping form of a [`Value`] in binary formats.
#[derive(serde::Serialize, serde::Deserialize)]
enum Exact<'a> {
    Null,
    Bool(bool),
    Int(i64),
    /// `rust_decimal`'s 16-byte representation: sign, scale and the 96-bit digits.
    Decimal([u8; 16]),
    String(std::borrow::Cow<'a, str>),
    Timestamp(i64),
    Json(std::borrow::Cow<'a, str>),
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
    use proptest::prelude::*;

    fn any_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            (any::<i64>(), 0u32..=28).prop_map(|(m, s)| Value::Decimal(Decimal::new(m, s))),
            ".{0,12}".prop_map(Value::String),
            any::<i64>().prop_map(|t| Value::Timestamp(EventTime::from_micros(t))),
            ".{0,12}".prop_map(Value::Json),
        ]
    }

    proptest! {
        /// Checkpoints keep every value exactly: type, scale and digits.
        #[test]
        fn binary_form_reads_back_the_same_value(values in proptest::collection::vec(any_value(), 0..8)) {
            let bytes = rmp_serde::to_vec_named(&values).unwrap();
            let back: Vec<Value> = rmp_serde::from_slice(&bytes).unwrap();
            prop_assert_eq!(&back, &values);
            for (a, b) in back.iter().zip(&values) {
                if let (Value::Decimal(a), Value::Decimal(b)) = (a, b) {
                    prop_assert_eq!(a.scale(), b.scale());
                }
            }
        }
    }

    #[test]
    fn json_keeps_its_lossy_form_and_is_not_read_back() {
        let v = Value::Decimal("12.30".parse().unwrap());
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"12.30\"");
        assert!(serde_json::from_str::<Value>("\"12.30\"").is_err());
    }

    #[test]
    fn rows_and_positions_read_back_from_the_binary_form() {
        let row: crate::Row =
            [("id", Value::Int(7)), ("amount", Value::Decimal("0.10".parse().unwrap()))].into_iter().collect();
        let position =
            crate::Position::Log { source: "db".into(), at: crate::LogPoint::parse("bin.000001:4"), index: 2 };
        let bytes = rmp_serde::to_vec_named(&(&row, &position)).unwrap();
        let (r, p): (crate::Row, crate::Position) = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!((r, p), (row, position));
    }

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
        assert_eq!(Value::parse_number("1.20e1"), Some(Value::Decimal("12.0".parse().unwrap())));
        assert_eq!(
            Value::parse_number("12e-28"),
            Some(Value::Decimal("0.0000000000000000000000000012".parse().unwrap()))
        );
    }

    /// Regression: `Decimal::from_str` rounded a 29th decimal place away, and scientific
    /// notation went through it too; money must never be rounded on the way in.
    #[test]
    fn numbers_that_do_not_fit_exactly_are_refused_not_rounded() {
        for text in [
            "0.12345678901234567890123456789",
            "79228162514264337593543950336",
            "-79228162514264337593543950336",
            "1e29",
            "1e-29",
            "1.5e-28",
            "1e9223372036854775807",
            "1e-9223372036854775808",
            "1e99999999999999999999",
            "123456789012345678901234567890e-5",
        ] {
            assert_eq!(Value::parse_number(text), None, "{text}");
        }
        assert_eq!(
            Value::parse_number("79228162514264337593543950335"),
            Some(Value::Decimal(Decimal::MAX)),
            "the largest decimal still fits"
        );
    }

    #[test]
    fn decimals_serialize_as_strings() {
        let v = Value::Decimal("0.30".parse().unwrap());
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"0.30\"");
    }
}
