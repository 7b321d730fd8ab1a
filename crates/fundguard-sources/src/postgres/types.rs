//! PostgreSQL column types and how their text becomes a [`Value`], shared by both output
//! plugins: wal2json names each column's type (`numeric(12,2)`), pgoutput gives its OID in
//! a relation message. Both hand over a value as the type's text output (wal2json writes
//! numbers and booleans bare in JSON), so one conversion serves both and a column decodes
//! to the same value whichever plugin the slot uses.

use chrono::DateTime;
use fundguard_core::{Decimal, EventTime, Value};

/// How a column's text is read. Types not listed (text, enums, arrays, domains, UUIDs…)
/// stay text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PgType {
    Integer,
    /// `numeric`, `real`, `double precision`, `money`: kept exactly as a decimal.
    Number,
    Boolean,
    /// `timestamp with time zone`: an instant.
    TimestampTz,
    /// `timestamp without time zone` and `date`: read as UTC.
    Timestamp,
    Json,
    Text,
}

impl PgType {
    /// The type of a column as PostgreSQL's `format_type` names it (wal2json's
    /// `include-types`), typmod included: `numeric(12,2)`, `character varying(16)`.
    pub(super) fn named(name: &str) -> PgType {
        if name.ends_with("[]") {
            return PgType::Text; // arrays stay text, as pgoutput's array OIDs do
        }
        // The typmod may sit inside the name: `timestamp(3) with time zone`.
        let mut base = String::with_capacity(name.len());
        let mut depth = 0u32;
        for c in name.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                c if depth == 0 => base.push(c),
                _ => {}
            }
        }
        match base.split_whitespace().collect::<Vec<_>>().join(" ").as_str() {
            "smallint" | "integer" | "bigint" => PgType::Integer,
            "numeric" | "real" | "double precision" | "money" => PgType::Number,
            "boolean" => PgType::Boolean,
            "timestamp with time zone" => PgType::TimestampTz,
            "timestamp without time zone" | "date" => PgType::Timestamp,
            "json" | "jsonb" => PgType::Json,
            _ => PgType::Text,
        }
    }

    /// The type of a built-in type OID (`pg_type.oid`, fixed for every PostgreSQL
    /// release), with the name [`PgType::named`] knows it by; other OIDs (user types) are
    /// text.
    pub(super) fn of_oid(oid: u32) -> (PgType, &'static str) {
        match oid {
            20 => (PgType::Integer, "bigint"),
            21 => (PgType::Integer, "smallint"),
            23 => (PgType::Integer, "integer"),
            700 => (PgType::Number, "real"),
            701 => (PgType::Number, "double precision"),
            790 => (PgType::Number, "money"),
            1700 => (PgType::Number, "numeric"),
            16 => (PgType::Boolean, "boolean"),
            1184 => (PgType::TimestampTz, "timestamp with time zone"),
            1114 => (PgType::Timestamp, "timestamp without time zone"),
            1082 => (PgType::Timestamp, "date"),
            114 => (PgType::Json, "json"),
            3802 => (PgType::Json, "jsonb"),
            _ => (PgType::Text, "text"),
        }
    }

    /// Converts the type's text output; `shown` names the type in errors.
    pub(super) fn value(self, text: &str, shown: &str) -> Result<Value, String> {
        Ok(match self {
            PgType::Integer => Value::Int(text.parse().map_err(|_| format!("{shown} `{text}` is not an integer"))?),
            PgType::Number => Value::Decimal(
                Decimal::from_str_exact(text).or_else(|_| Decimal::from_scientific(text)).map_err(|_| {
                    format!(
                        "{shown} `{text}` is not a number fundguard can keep exactly (28 digits; no NaN or infinity)"
                    )
                })?,
            ),
            // wal2json writes JSON's `true`; the type's own output (pgoutput) is `t`.
            PgType::Boolean => match text {
                "true" | "t" => Value::Bool(true),
                "false" | "f" => Value::Bool(false),
                _ => return Err(format!("{shown} `{text}` is not a boolean")),
            },
            PgType::TimestampTz => Value::Timestamp(pg_timestamp(text)?),
            PgType::Timestamp => Value::Timestamp(EventTime::parse(text).map_err(|e| e.to_string())?),
            PgType::Json => Value::Json(text.to_string()),
            PgType::Text => Value::String(text.to_string()),
        })
    }
}

/// PostgreSQL's `2024-05-01 12:00:00.123+08` (offset hours with optional minutes), the
/// ISO `DateStyle` the replication connection asks for.
pub(super) fn pg_timestamp(text: &str) -> Result<EventTime, String> {
    DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z")
        .map(|t| EventTime::from_micros(t.timestamp_micros()))
        .map_err(|_| format!("`{text}` is not a PostgreSQL timestamp with time zone"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn oids_and_names_agree() {
        for oid in [16, 20, 21, 23, 114, 700, 701, 790, 1082, 1114, 1184, 1700, 3802] {
            let (ty, name) = PgType::of_oid(oid);
            assert_eq!(PgType::named(name), ty, "{oid} {name}");
        }
        assert_eq!(PgType::of_oid(25).0, PgType::Text);
        assert_eq!(PgType::named("numeric(12,2)"), PgType::Number);
        // wal2json names carry the typmod inside, or mark arrays; pgoutput's OIDs agree.
        assert_eq!(PgType::named("timestamp(3) with time zone"), PgType::of_oid(1184).0);
        assert_eq!(PgType::named("time(3) without time zone"), PgType::Text);
        assert_eq!(PgType::named("numeric(10,2)[]"), PgType::Text);
        assert_eq!(PgType::named("character varying(16)"), PgType::Text);
    }

    #[test]
    fn booleans_read_both_spellings() {
        assert_eq!(PgType::Boolean.value("t", "boolean"), Ok(Value::Bool(true)));
        assert_eq!(PgType::Boolean.value("false", "boolean"), Ok(Value::Bool(false)));
        assert!(PgType::Boolean.value("yes", "boolean").is_err());
    }

    proptest! {
        #[test]
        fn numbers_keep_every_digit(units in any::<i64>(), scale in 0u32..12) {
            let d = Decimal::new(units, scale);
            prop_assert_eq!(PgType::Number.value(&d.to_string(), "numeric"), Ok(Value::Decimal(d)));
        }

        #[test]
        fn no_text_panics(text in ".{0,64}", oid in 0u32..4000) {
            let (ty, name) = PgType::of_oid(oid);
            let _ = ty.value(&text, name);
        }
    }
}
