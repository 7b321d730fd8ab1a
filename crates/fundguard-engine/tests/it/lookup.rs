//! Lookups: reference rows read as `lookup.<name>.<column>` — from a snapshot (optionally
//! effective-dated) or kept current from the stream, with `missing:` deciding what a row
//! without a reference row is.

use std::sync::Arc;

use fundguard_core::{ChangeEvent, EventTime, Finding, Op, Position, TableSchemas, Value};
use fundguard_engine::{Engine, LookupSnapshot};
use fundguard_rules::Rule;

use crate::{dec, insert, row, rule};

/// A check on `shop.t` reading the `rates` lookup by merchant.
fn fee_rule(missing: &str) -> Rule {
    rule(&format!(
        "id: fee\nowner: team\nseverity: high\nlookups:\n  rates:\n    match: {{ merchant_id: after.merchant_id }}\n    missing: {missing}\n\
         check:\n  tables: [shop.t]\n  assert: \"after.fee = after.amount * lookup.rates.rate\"\n"
    ))
}

fn rates(pairs: &[(i64, &str)]) -> LookupSnapshot {
    LookupSnapshot {
        rows: pairs.iter().map(|(m, r)| row(&[("merchant_id", Value::Int(*m)), ("rate", dec(r))])).collect(),
        as_of: None,
    }
}

fn payment(seq: u64, merchant: Value, amount: &str, fee: &str) -> ChangeEvent {
    insert(
        seq,
        &[("id", Value::Int(seq as i64)), ("merchant_id", merchant), ("amount", dec(amount)), ("fee", dec(fee))],
    )
}

fn run_with(engine: &mut Engine, events: &[ChangeEvent], batch: usize) -> Vec<Finding> {
    let mut out = Vec::new();
    for chunk in events.chunks(batch) {
        engine.process(chunk, EventTime::default(), &mut out).unwrap();
    }
    out
}

fn ids(findings: &[Finding]) -> Vec<String> {
    findings.iter().map(|f| f.key.values().map(ToString::to_string).collect::<Vec<_>>().join(",")).collect()
}

#[test]
fn a_check_reads_the_reference_row_its_key_matches() {
    let mut engine = Engine::new(&[fee_rule("report")], &TableSchemas::default()).unwrap();
    assert!(engine.set_lookup("rates", rates(&[(1, "0.006"), (2, "0.01")])));
    let events = [
        payment(1, Value::Int(1), "1000.00", "6.00"),
        // The key as text meets the integer key of the lookup.
        payment(2, Value::String("2".into()), "1000.00", "10.00"),
        payment(3, Value::Int(2), "1000.00", "6.00"),
    ];
    let found = run_with(&mut engine, &events, 10);
    assert_eq!(ids(&found), ["3"], "{found:#?}");
}

#[test]
fn a_missing_reference_row_is_reported_skipped_or_judged_as_null() {
    let events = [payment(1, Value::Int(7), "1000.00", "6.00"), payment(2, Value::Int(1), "1000.00", "6.00")];
    let mut reporting = Engine::new(&[fee_rule("report")], &TableSchemas::default()).unwrap();
    reporting.set_lookup("rates", rates(&[(1, "0.006")]));
    let found = run_with(&mut reporting, &events, 10);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].key.get("merchant_id"), Some(&Value::Int(7)));
    assert!(found[0].message.contains("no `rates` row for merchant_id=7"), "{}", found[0].message);

    let mut skipping = Engine::new(&[fee_rule("skip")], &TableSchemas::default()).unwrap();
    skipping.set_lookup("rates", rates(&[(1, "0.006")]));
    assert!(run_with(&mut skipping, &events, 10).is_empty());

    // NULL columns: the assert is NULL, which is a violation of the check's own key.
    let mut null = Engine::new(&[fee_rule("judge")], &TableSchemas::default()).unwrap();
    null.set_lookup("rates", rates(&[(1, "0.006")]));
    let found = run_with(&mut null, &events, 10);
    assert_eq!(ids(&found), ["1"], "{found:#?}");
    assert!(!found[0].message.contains("no `rates` row"));
}

#[test]
fn effective_dated_rates_are_read_as_of_the_event() {
    let mut engine = Engine::new(&[fee_rule("report")], &TableSchemas::default()).unwrap();
    let from = |m: i64, rate: &str, at: &str| {
        row(&[("merchant_id", Value::Int(m)), ("rate", dec(rate)), ("valid_from", Value::String(at.into()))])
    };
    // Events are at 2023-11-14T22:13:2xZ (1_700_000_000 + seq): the second rate is in force
    // from seq 3 on.
    engine.set_lookup(
        "rates",
        LookupSnapshot {
            rows: vec![from(1, "0.006", "2023-01-01"), from(1, "0.01", "2023-11-14T22:13:23Z")],
            as_of: Some("valid_from".into()),
        },
    );
    let events = [
        payment(1, Value::Int(1), "1000.00", "6.00"),
        payment(2, Value::Int(1), "1000.00", "10.00"),
        payment(3, Value::Int(1), "1000.00", "10.00"),
        payment(4, Value::Int(1), "1000.00", "6.00"),
    ];
    assert_eq!(ids(&run_with(&mut engine, &events, 10)), ["2", "4"]);
}

/// `shop.orders` rows, kept as the `orders` lookup, and payments that must name one.
fn order_exists_rule() -> Rule {
    rule(
        "id: paid-order-exists\nowner: team\nseverity: critical\nlookups:\n  orders:\n    match: { id: after.order_id }\n\
         check:\n  tables: [shop.payments]\n  key: { payment_id: after.id }\n  assert: \"after.amount = lookup.orders.amount\"\n",
    )
}

fn at(
    seq: u64,
    table: &str,
    op: Op,
    before: Option<fundguard_core::Row>,
    after: Option<fundguard_core::Row>,
) -> ChangeEvent {
    ChangeEvent {
        table: Arc::from(table),
        op,
        before,
        after,
        // Ties in commit time: the place in the input decides, not the clock.
        commit_time: EventTime::from_secs(1_700_000_000 + (seq / 3) as i64),
        position: Position::Synthetic { seq },
    }
}

fn order(id: i64, amount: &str) -> fundguard_core::Row {
    row(&[("id", Value::Int(id)), ("amount", dec(amount))])
}

fn pay(id: i64, order_id: i64, amount: &str) -> fundguard_core::Row {
    row(&[("id", Value::Int(id)), ("order_id", Value::Int(order_id)), ("amount", dec(amount))])
}

/// A log where payments come before, with and after their orders, orders change amount and
/// one is deleted.
fn shop_log() -> Vec<ChangeEvent> {
    let mut seq = 0;
    let mut next = |table: &str, op: Op, before, after| {
        seq += 1;
        at(seq, table, op, before, after)
    };
    vec![
        next("shop.payments", Op::Insert, None, Some(pay(100, 1, "10.00"))), // before its order: missing
        next("shop.orders", Op::Insert, None, Some(order(1, "10.00"))),
        next("shop.payments", Op::Insert, None, Some(pay(101, 1, "10.00"))), // ok
        next("shop.orders", Op::Update, Some(order(1, "10.00")), Some(order(1, "12.00"))),
        next("shop.payments", Op::Insert, None, Some(pay(102, 1, "10.00"))), // the order now says 12: mismatch
        next("shop.orders", Op::Insert, None, Some(order(2, "5.00"))),
        next("shop.payments", Op::Insert, None, Some(pay(103, 2, "5.00"))), // ok
        next("shop.orders", Op::Delete, Some(order(2, "5.00")), None),
        next("shop.payments", Op::Insert, None, Some(pay(104, 2, "5.00"))), // deleted: missing
        next("shop.payments", Op::Insert, None, Some(pay(105, 3, "1.00"))), // never existed
    ]
}

fn stream_engine() -> Engine {
    let mut engine = Engine::new(&[order_exists_rule()], &TableSchemas::default()).unwrap();
    assert!(engine.maintain_lookup("orders", "shop.orders", None));
    engine
}

fn verdicts(found: &[Finding]) -> Vec<String> {
    found
        .iter()
        .map(|f| {
            let what = if f.message.contains("no `orders` row") { "missing" } else { "mismatch" };
            format!("{what} {}", f.evidence[0].after.as_ref().and_then(|r| r.get("id")).cloned().unwrap_or(Value::Null))
        })
        .collect()
}

#[test]
fn a_stream_lookup_is_read_as_of_each_events_place_in_the_input() {
    let found = run_with(&mut stream_engine(), &shop_log(), 100);
    assert_eq!(verdicts(&found), ["missing 100", "mismatch 102", "missing 104", "missing 105"], "{found:#?}");
}

#[test]
fn batching_changes_nothing_for_stream_lookups() {
    let whole = verdicts(&run_with(&mut stream_engine(), &shop_log(), 100));
    for batch in 1..=4 {
        assert_eq!(verdicts(&run_with(&mut stream_engine(), &shop_log(), batch)), whole, "batch size {batch}");
    }
}

#[test]
fn a_stream_lookup_survives_a_checkpoint() {
    let log = shop_log();
    let mut first = stream_engine();
    let mut found = run_with(&mut first, &log[..7], 3);
    let saved = first.save_state().unwrap();
    let mut second = stream_engine();
    second.restore_state(&saved).unwrap();
    found.extend(run_with(&mut second, &log[7..], 3));
    assert_eq!(verdicts(&found), verdicts(&run_with(&mut stream_engine(), &log, 100)));
}

#[test]
fn a_rule_reading_an_undeclared_lookup_is_refused_at_its_expression() {
    let (rule, problems) = fundguard_rules::parse_rule(
        Arc::from("r.yaml"),
        "id: r\nowner: t\nseverity: high\ncheck:\n  tables: [shop.t]\n  assert: \"after.fee = lookup.fees.rate\"\n",
    );
    assert!(problems.is_empty(), "{problems:?}");
    let errors = Engine::new(&[rule.unwrap()], &TableSchemas::default()).err().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].message.contains("unknown lookup `fees`"), "{}", errors[0]);
    assert_eq!(errors[0].location.line, 6);
}

#[test]
fn a_declared_lookup_schema_catches_unknown_columns_and_types() {
    let schemas: TableSchemas = fundguard_rules::parse_schemas(
        Arc::from("s.yaml"),
        "tables:\n  rates:\n    merchant_id: int\n    rate: decimal\n",
    )
    .unwrap();
    let bad = rule(
        "id: r\nowner: t\nseverity: high\nlookups:\n  rates:\n    match: { merchant_id: after.merchant_id }\n\
         check:\n  tables: [shop.t]\n  assert: \"after.fee = lookup.rates.fee_rate\"\n",
    );
    let errors = Engine::new(&[bad], &schemas).err().unwrap();
    assert!(errors.iter().any(|e| e.message.contains("unknown column `fee_rate` of lookup `rates`")), "{errors:?}");
    assert!(Engine::new(&[fee_rule("report")], &schemas).is_ok());
}

mod property {
    use fundguard_core::{ChangeEvent, EventTime, TableSchemas};
    use fundguard_engine::Engine;
    use fundguard_sim::{IncidentKind, SimConfig, Simulator};
    use proptest::prelude::*;

    use crate::rule;

    /// Over the simulator's shop: a payment's order exists (as of the payment) and agrees
    /// on currency; a refund's payment exists.
    fn rules() -> Vec<fundguard_rules::Rule> {
        vec![
            rule(
                "id: payment-order\nowner: t\nseverity: high\nlookups:\n  orders: { match: { id: after.order_id } }\n\
                 check:\n  tables: [shop.payments]\n  assert: \"after.currency = lookup.orders.currency\"\n",
            ),
            rule(
                "id: refund-payment\nowner: t\nseverity: high\nlookups:\n  payments: { match: { id: after.payment_id }, missing: judge }\n\
                 check:\n  tables: [shop.refunds]\n  assert: \"lookup.payments.id IS NOT NULL AND after.amount <= lookup.payments.amount\"\n",
            ),
        ]
    }

    fn findings(events: &[ChangeEvent], batch: usize) -> Vec<String> {
        let mut engine = Engine::new(&rules(), &TableSchemas::default()).unwrap();
        assert!(engine.maintain_lookup("orders", "shop.orders", None));
        assert!(engine.maintain_lookup("payments", "shop.payments", None));
        let mut out = Vec::new();
        for chunk in events.chunks(batch) {
            engine.process(chunk, EventTime::default(), &mut out).unwrap();
        }
        out.iter().map(|f| format!("{} {:?} {}", f.rule, f.key, f.message)).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(8))]

        #[test]
        fn stream_lookups_do_not_depend_on_batch_size(seed in 0u64..1000, batch in 1usize..400) {
            let mut sim = Simulator::new(SimConfig {
                seed,
                orders: 200,
                hours: 1,
                incident_rate: 0.2,
                kinds: IncidentKind::ALL.to_vec(),
                ..SimConfig::default()
            });
            let mut events = Vec::new();
            sim.run(|e| events.push(e));
            let whole = findings(&events, events.len().max(1));
            prop_assert!(!whole.is_empty(), "orphan payments and bad currencies are found");
            prop_assert_eq!(findings(&events, batch), whole);
        }
    }
}

#[test]
fn a_script_reads_the_lookup_rows_its_rule_declares() {
    let script = rule(
        "id: fee-script\nowner: team\nseverity: high\nlookups:\n  rates:\n    match: { merchant_id: after.merchant_id }\n\
         script:\n  table: shop.t\n  source: |\n    let expected = after.amount * lookup.rates.rate;\n    \
         if after.fee != expected { report(`fee ${after.fee}, contracted ${expected}`); }\n",
    );
    let mut engine = Engine::new(&[script], &TableSchemas::default()).unwrap();
    engine.set_lookup("rates", rates(&[(1, "0.006")]));
    let events = [
        payment(1, Value::Int(1), "1000.00", "6.00"),
        payment(2, Value::Int(1), "1000.00", "7.00"),
        payment(3, Value::Int(9), "1000.00", "6.00"),
    ];
    let found = run_with(&mut engine, &events, 10);
    let messages: Vec<&str> = found.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages.iter().any(|m| m.starts_with("fee 7.00, contracted 6.")), "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("no `rates` row for merchant_id=9")), "{messages:?}");

    // A script naming a lookup its rule does not declare is refused where it names it.
    let (bad, problems) = fundguard_rules::parse_rule(
        Arc::from("s.yaml"),
        "id: s\nowner: t\nseverity: high\nscript:\n  table: shop.t\n  source: |\n    if lookup.fees.rate > 1 { report(\"x\"); }\n",
    );
    assert!(problems.is_empty(), "{problems:?}");
    let errors = Engine::new(&[bad.unwrap()], &TableSchemas::default()).err().unwrap();
    assert!(errors.iter().any(|e| e.message.contains("unknown lookup `fees`") && e.location.line == 7), "{errors:?}");
}
