//! A check moved from the stream to a batch query keeps its meaning: the example
//! `payment-minor-units-consistent` rule's `assert`, verbatim, over a table aliased
//! `after`, flags exactly the rows the streaming engine flags.

use std::collections::BTreeSet;
use std::sync::Arc;

use fundguard_core::{ChangeEvent, Decimal, EventTime, Op, Position, Row, TableSchemas, Value};
use fundguard_engine::Engine;
use fundguard_rules::{RuleBody, parse_rule};

use crate::support::{repo_root, rule, warehouse};

/// (id, amount in fen, amount in yuan as text; empty is NULL).
const PAYMENTS: &[(i64, Option<i64>, &str)] = &[
    (1, Some(1999), "19.99"), // consistent
    (2, Some(1999), "1999"),  // yuan column holds fen
    (3, Some(1999), "19.9"),  // a digit lost
    (4, Some(30), "0.30"),    // 0.1 + 0.2 would not be this in floating point
    (5, Some(1999), ""),      // NULL yuan: cannot be shown to hold
    (6, None, "19.99"),       // NULL fen
    (7, Some(100000000), "1000000.00"),
    (8, Some(1), "0.001"), // sub-fen yuan
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_moved_to_sql_flags_the_same_rows_as_on_the_stream() {
    let path = repo_root().join("examples/rules/payment-minor-units-consistent.yaml");
    let (stream_rule, problems) = parse_rule(Arc::from("rule.yaml"), &std::fs::read_to_string(path).unwrap());
    assert!(problems.is_empty());
    let stream_rule = stream_rule.unwrap();
    let RuleBody::Check(check) = &stream_rule.body else { panic!("a check") };

    // The stream: one insert per payment.
    let events: Vec<ChangeEvent> = PAYMENTS
        .iter()
        .enumerate()
        .map(|(i, (id, fen, yuan))| {
            let mut after = Row::new();
            after.push(Arc::from("id"), Value::Int(*id));
            after.push(Arc::from("amount"), fen.map_or(Value::Null, Value::Int));
            let yuan = if yuan.is_empty() { Value::Null } else { Value::Decimal(yuan.parse::<Decimal>().unwrap()) };
            after.push(Arc::from("amount_yuan"), yuan);
            ChangeEvent {
                table: Arc::from("shop.payments"),
                op: Op::Insert,
                before: None,
                after: Some(after),
                commit_time: EventTime::from_micros(0),
                position: Position::Synthetic { seq: i as u64 + 1 },
            }
        })
        .collect();
    let mut engine = Engine::new(std::slice::from_ref(&stream_rule), &TableSchemas::default()).unwrap();
    let mut found = Vec::new();
    engine.process(&events, EventTime::from_micros(0), &mut found).unwrap();
    let on_stream: BTreeSet<String> = found.iter().map(|f| f.key["id"].to_string()).collect();

    // The batch: the same rows in a CSV file, the assert text unchanged.
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<String> = PAYMENTS
        .iter()
        .map(|(id, fen, yuan)| format!("{id},{},{yuan}", fen.map_or(String::new(), |f| f.to_string())))
        .collect();
    std::fs::write(dir.path().join("payments.csv"), format!("id,amount,amount_yuan\n{}\n", rows.join("\n"))).unwrap();
    let warehouse = warehouse("- { name: payments, type: csv, path: payments.csv }", dir.path()).await;
    let batch_rule = rule(&format!(
        "id: moved\nowner: payments\nseverity: critical\nsql:\n  query: \"SELECT after.id FROM payments AS after WHERE ({}) IS NOT TRUE\"\n  key: [id]\n",
        check.assert.sql
    ));
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
    let outcome = fundguard_warehouse::run(&warehouse, &batch_rule, day, None, &chrono::Utc::now).await;
    assert_eq!(outcome.record.error, None);
    let in_batch: BTreeSet<String> = outcome.findings.iter().map(|f| f.key["id"].to_string()).collect();

    assert_eq!(on_stream, ["2", "3", "5", "6", "8"].map(String::from).into(), "the stream's verdicts");
    assert_eq!(in_batch, on_stream, "the batch query agrees with the stream");
}
