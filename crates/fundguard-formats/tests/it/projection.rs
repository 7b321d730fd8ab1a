//! Decoding under a projection: the rows converted are the columns asked for, and to every
//! reader each row is still the whole row the same message decodes to without one.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use fundguard_core::{ChangeEvent, ColumnType, Op, Position, Projection, TableColumns, TableSchemas, Value};
use fundguard_formats::plain::PlainConfig;
use fundguard_formats::{Format, canal, debezium, maxwell};
use proptest::prelude::*;

use super::props::{event, types_of};

fn decode(format: &Format, schemas: &TableSchemas, projection: Projection, message: &str) -> Vec<ChangeEvent> {
    let mut decoder = format.decoder(Arc::new(schemas.clone()));
    decoder.set_projection(projection);
    let mut out = Vec::new();
    decoder.decode(message.as_bytes(), &Position::Synthetic { seq: 1 }, &mut out).unwrap();
    out
}

/// The message each format writes for `events` (one message; Canal's holds them all).
fn message(format: &Format, events: &[ChangeEvent], types: &BTreeMap<String, ColumnType>) -> String {
    match format {
        Format::Debezium => {
            let options =
                debezium::EncodeOptions { schema_wrapper: true, decimal_mode: debezium::DecimalMode::Precise };
            debezium::encode(&events[0], types, options)
        }
        Format::Canal => canal::encode(1, &events.iter().collect::<Vec<_>>(), types),
        Format::Maxwell => maxwell::encode(&events[0], 1),
        Format::Json(_) => {
            let mut object = events[0].after.as_ref().map_or_else(serde_json::Map::new, |row| {
                row.iter().map(|(n, v)| (n.to_string(), v.to_json())).collect()
            });
            object.insert("type".into(), "shop.t".into());
            object.insert("ts".into(), events[0].commit_time.as_millis().into());
            serde_json::Value::Object(object).to_string()
        }
    }
}

fn formats() -> Vec<Format> {
    vec![Format::Debezium, Format::Canal, Format::Maxwell, Format::Json(PlainConfig::default())]
}

fn project(table: &str, columns: &[String]) -> Projection {
    let columns = TableColumns::Only(Arc::new(columns.iter().map(|c| c.as_str().into()).collect()));
    Projection::only(HashMap::from([(table.into(), columns)]))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn projected_rows_are_the_whole_rows(
        events in prop::collection::vec(event(), 1..4),
        pick in prop::collection::vec(any::<bool>(), 8),
        declare in any::<bool>(),
    ) {
        // Canal's message holds one statement: one op for all its rows.
        let op = events[0].op;
        let events: Vec<ChangeEvent> = events.into_iter().filter(|e| e.op == op).collect();
        let mut types = BTreeMap::new();
        for e in &events {
            types.extend(types_of(e));
        }
        let names: Vec<String> = types.keys().cloned().collect();
        let asked: Vec<String> = names.iter().zip(pick.iter().cycle()).filter(|(_, p)| **p).map(|(n, _)| n.clone()).collect();
        // Declared types convert read and unread columns alike (here: every decimal as text).
        let mut schemas = TableSchemas::default();
        if declare {
            let declared = types.iter().filter(|(_, t)| **t == ColumnType::Decimal).map(|(n, _)| (n.clone(), ColumnType::String));
            schemas.tables.insert("shop.t".into(), declared.collect());
        }
        for format in formats() {
            let line = message(&format, &events, &types);
            let whole = decode(&format, &schemas, Projection::all(), &line);
            let projected = decode(&format, &schemas, project("shop.t", &asked), &line);
            prop_assert_eq!(&projected, &whole, "{} {}", format.name(), line);
            for (p, w) in projected.iter().zip(&whole) {
                for (row, whole_row) in [(&p.before, &w.before), (&p.after, &w.after)] {
                    let (Some(row), Some(whole_row)) = (row, whole_row) else { continue };
                    prop_assert!(row.is_projected(), "{}: a table read in part keeps the message", format.name());
                    prop_assert!(!whole_row.is_projected());
                    let order: Vec<&str> = row.iter().map(|(n, _)| n).collect();
                    let whole_order: Vec<&str> = whole_row.iter().map(|(n, _)| n).collect();
                    prop_assert_eq!(order, whole_order, "the source's column order");
                    // A column asked for is answered from what was converted (never by a second read).
                    for name in &asked {
                        prop_assert_eq!(row.get(name), whole_row.get(name), "{} `{}` {}", format.name(), name, line);
                    }
                }
            }
            // A table the projection does not name is read whole when asked, all the same.
            let other = decode(&format, &schemas, project("shop.other", &asked), &line);
            prop_assert_eq!(&other, &whole);
        }
    }
}

#[test]
fn a_column_no_one_reads_is_not_checked() {
    // `fee` is not a number Debezium's schema allows; a rule set that reads only `amount`
    // does not refuse the message for it, and the whole row shows what could be read.
    let line = r#"{"schema":{"type":"struct","fields":[{"field":"after","type":"struct","fields":[
        {"field":"amount","type":"int64"},
        {"field":"fee","type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}}]}]},
      "payload":{"op":"c","after":{"amount":500,"fee":"not base64!"},
      "source":{"db":"shop","table":"t","ts_ms":1700000000000}}}"#
        .replace('\n', "");
    let schemas = TableSchemas::default();
    let mut whole = Format::Debezium.decoder(Arc::new(schemas.clone()));
    let error = whole.decode(line.as_bytes(), &Position::Synthetic { seq: 1 }, &mut Vec::new()).unwrap_err();
    assert!(error.to_string().contains("fee"), "{error}");
    let events = decode(&Format::Debezium, &schemas, project("shop.t", &["amount".into()]), &line);
    let after = events[0].after.as_ref().unwrap();
    assert_eq!(after.get("amount"), Some(&Value::Int(500)));
    assert_eq!(after.get("fee"), None, "the message cannot be read whole: the read columns stand");
    assert_eq!(events[0].op, Op::Insert);
}
