//! The `wal2json` output plugin (format version 2): one JSON record per begin, row change
//! and commit, each column with its type's name (`include-types`).

use std::sync::Arc;

use fundguard_core::{Op, Row, Value};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::types::{PgType, pg_timestamp};
use super::{PostgresBatch, Record, Rejected, RowChange, decode_records};

/// The plugin options fundguard streams with; `include` becomes `add-tables` (wal2json
/// matches its `*` wildcards on the server).
pub(super) fn options(include: &[String]) -> Vec<(&'static str, String)> {
    let mut options: Vec<(&'static str, String)> = [
        ("format-version", "2"),
        ("include-timestamp", "1"),
        ("include-types", "1"),
        ("include-transaction", "1"),
        ("include-type-oids", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect();
    if !include.is_empty() {
        options.push(("add-tables", include.join(",")));
    }
    options
}

/// One wal2json (format 2) record.
#[derive(Deserialize)]
struct Change<'a> {
    action: &'a str,
    #[serde(default)]
    timestamp: Option<&'a str>,
    #[serde(default)]
    schema: Option<&'a str>,
    #[serde(default)]
    table: Option<&'a str>,
    #[serde(default, borrow)]
    columns: Vec<Column<'a>>,
    #[serde(default, borrow)]
    identity: Vec<Column<'a>>,
}

#[derive(Deserialize)]
struct Column<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    ty: &'a str,
    #[serde(borrow)]
    value: &'a RawValue,
}

/// Reads one record. Never fails: a record that is not wal2json, or a change that cannot
/// be converted, is a [`Rejected`] change of its transaction (a dead letter at its commit).
pub(super) fn record(data: &str) -> Record {
    let rejected = |reason: String| Record::Change(Err(Rejected { payload: data.as_bytes().to_vec(), reason }));
    let change: Change<'_> = match serde_json::from_str(data) {
        Ok(c) => c,
        Err(e) => return rejected(format!("not a wal2json format-version 2 record: {e}")),
    };
    match change.action {
        "C" => Record::Commit { time: change.timestamp.and_then(|t| pg_timestamp(t).ok()) },
        "I" | "U" | "D" => match row_change(&change) {
            Ok(change) => Record::Change(Ok(change)),
            Err(reason) => rejected(reason),
        },
        _ => Record::Other, // begins, truncates and logical messages carry no rows
    }
}

fn row_change(change: &Change<'_>) -> Result<RowChange, String> {
    let table = match (change.schema, change.table) {
        (Some(schema), Some(table)) => format!("{schema}.{table}"),
        _ => return Err("a row change without schema and table".into()),
    };
    let row = |columns: &[Column<'_>]| -> Result<Row, String> {
        let mut row = Row::with_capacity(columns.len());
        for c in columns {
            let value = json_value(c.ty, c.value.get()).map_err(|e| format!("column `{table}.{}`: {e}", c.name))?;
            row.push(Arc::from(c.name), value);
        }
        Ok(row)
    };
    let (op, before, after) = match change.action {
        "I" => (Op::Insert, None, Some(row(&change.columns)?)),
        "U" => {
            let before = if change.identity.is_empty() { None } else { Some(row(&change.identity)?) };
            (Op::Update, before, Some(row(&change.columns)?))
        }
        _ => (Op::Delete, Some(row(&change.identity)?), None),
    };
    let time = change.timestamp.map(pg_timestamp).transpose()?;
    Ok(RowChange { table: Arc::from(table), op, before, after, time })
}

/// Converts one wal2json value by its PostgreSQL type; `raw` is the JSON text (numbers and
/// booleans bare, so `numeric` keeps every digit).
fn json_value(ty: &str, raw: &str) -> Result<Value, String> {
    if raw == "null" {
        return Ok(Value::Null);
    }
    let text = if raw.starts_with('"') {
        serde_json::from_str::<String>(raw).map_err(|e| e.to_string())?
    } else {
        raw.to_string()
    };
    PgType::named(ty).value(&text, ty)
}

/// Turns `(lsn, wal2json record)` rows into events, up to the last whole transaction (see
/// [`decode_records`]). Pure (no server), for tests and fuzzing.
pub fn decode_changes(source: &Arc<str>, rows: &[(String, String)]) -> PostgresBatch {
    let records: Vec<(String, Record)> = rows.iter().map(|(lsn, data)| (lsn.clone(), record(data))).collect();
    decode_records(source, records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fundguard_core::Decimal;
    use proptest::prelude::*;

    fn rows(records: &[(&str, &str)]) -> Vec<(String, String)> {
        records.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn wal2json_transactions_decode_exactly() {
        let rows = rows(&[
            ("0/1", r#"{"action":"B","timestamp":"2026-11-25 21:12:28.605848+00"}"#),
            (
                "0/1",
                r#"{"action":"I","timestamp":"2026-11-25 21:12:28.605848+00","schema":"public","table":"t","columns":[{"name":"id","type":"bigint","value":1},{"name":"amount","type":"numeric(20,2)","value":12345678901234567.25},{"name":"ok","type":"boolean","value":true},{"name":"at","type":"timestamp with time zone","value":"2026-11-25 21:12:28.605151+08"},{"name":"j","type":"jsonb","value":"{\"a\": 1}"}]}"#,
            ),
            ("0/2", r#"{"action":"C","timestamp":"2026-11-25 21:12:28.605848+00"}"#),
            ("0/2", r#"{"action":"B","timestamp":"2026-11-25 21:12:29+00"}"#),
            (
                "0/3",
                r#"{"action":"D","timestamp":"2026-11-25 21:12:29+00","schema":"public","table":"t","identity":[{"name":"id","type":"bigint","value":1}]}"#,
            ),
        ]);
        let out = decode_changes(&Arc::from("pg"), &rows);
        // The delete's transaction has not committed in these rows: it waits for the next.
        assert_eq!(out.confirm.as_deref(), Some("0/2"));
        assert_eq!(out.batch.events.len(), 1);
        let event = &out.batch.events[0];
        assert_eq!(&*event.table, "public.t");
        let after = event.after.as_ref().unwrap();
        assert_eq!(after.get("amount").unwrap().to_string(), "12345678901234567.25");
        assert_eq!(after.get("ok"), Some(&Value::Bool(true)));
        assert_eq!(after.get("at").unwrap().to_string(), "2026-11-25T13:12:28.605151Z");
        assert_eq!(after.get("j"), Some(&Value::Json("{\"a\": 1}".into())));
        assert_eq!(event.commit_time.to_string(), "2026-11-25T21:12:28.605848Z");
        assert_eq!(event.position.to_string(), "pg@0/2", "placed at its transaction's commit");
    }

    #[test]
    fn bad_records_are_dead_letters_of_their_transaction() {
        let rows = rows(&[
            ("0/1", r#"{"action":"B"}"#),
            (
                "0/1",
                r#"{"action":"I","schema":"public","table":"t","columns":[{"name":"n","type":"numeric","value":"NaN"}]}"#,
            ),
            ("0/1", r#"not json"#),
            ("0/2", r#"{"action":"C"}"#),
        ]);
        let out = decode_changes(&Arc::from("pg"), &rows);
        assert_eq!(out.batch.events.len(), 0);
        assert_eq!(out.batch.dead_letters.len(), 2);
        assert!(out.batch.dead_letters[0].reason.contains("NaN"), "{}", out.batch.dead_letters[0].reason);
        assert_eq!(out.batch.dead_letters[1].payload, b"not json");
        assert_eq!(out.confirm.as_deref(), Some("0/2"));
    }

    proptest! {
        #[test]
        fn no_record_panics(text in ".{0,200}", ty in "(numeric|bigint|boolean|date|jsonb|text|timestamp with time zone)") {
            let _ = decode_changes(&Arc::from("pg"), &[("0/1".into(), text.clone()), ("0/2".into(), "{\"action\":\"C\"}".into())]);
            let _ = json_value(&ty, &text);
        }

        #[test]
        fn numerics_keep_every_digit(units in any::<i64>(), scale in 0u32..12) {
            let d = Decimal::new(units, scale);
            prop_assert_eq!(json_value("numeric(30,12)", &d.to_string()).unwrap(), Value::Decimal(d));
        }
    }
}
