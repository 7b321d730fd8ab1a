//! What a check reports, row by row.

use fundguard_core::{Op, Value};

use crate::{check, dec, event, insert, row, run};

#[test]
fn a_row_violates_when_assert_is_false_or_null() {
    let r = check("positive", "  assert: after.amount > 0\n");
    let events = vec![
        insert(1, &[("id", 1.into()), ("amount", 5.into())]),
        insert(2, &[("id", 2.into()), ("amount", (-5).into())]),
        insert(3, &[("id", 3.into()), ("amount", Value::Null)]),
        insert(4, &[("id", 4.into())]),
    ];
    let keys: Vec<_> = run(&[r], &events, 100).iter().map(|f| f.key["id"].clone()).collect();
    assert_eq!(keys, vec![Value::Int(2), Value::Int(3), Value::Int(4)], "false, NULL and missing all violate");
}

#[test]
fn when_filters_rows_and_null_when_skips() {
    let r = check("paid-positive", "  when: \"after.status = 'PAID'\"\n  assert: after.amount > 0\n");
    let events = vec![
        insert(1, &[("id", 1.into()), ("status", "PAID".into()), ("amount", 0.into())]),
        insert(2, &[("id", 2.into()), ("status", "INIT".into()), ("amount", 0.into())]),
        insert(3, &[("id", 3.into()), ("status", Value::Null), ("amount", 0.into())]),
    ];
    let found = run(&[r], &events, 100);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].key["id"], Value::Int(1));
}

#[test]
fn before_and_after_images_and_op() {
    let r = check(
        "no-regression",
        "  when: \"op = 'update' AND before.status = 'PAID'\"\n  assert: \"after.status <> 'PAYING'\"\n",
    );
    let s = |v: &str| -> Value { v.into() };
    let events = vec![
        event(
            1,
            Op::Update,
            Some(row(&[("id", 1.into()), ("status", s("PAID"))])),
            Some(row(&[("id", 1.into()), ("status", s("PAYING"))])),
        ),
        event(
            2,
            Op::Update,
            Some(row(&[("id", 2.into()), ("status", s("PAYING"))])),
            Some(row(&[("id", 2.into()), ("status", s("PAID"))])),
        ),
        event(3, Op::Delete, Some(row(&[("id", 3.into()), ("status", s("PAID"))])), None),
    ];
    let found = run(&[r], &events, 100);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].key["id"], Value::Int(1), "the default key reads after.id, then before.id");
    assert_eq!(found[0].evidence[0].before.as_ref().unwrap().get("status"), Some(&s("PAID")));
}

#[test]
fn decimals_compare_exactly_with_integers() {
    let r = check("units", "  assert: after.fen = after.yuan * 100\n");
    let events = vec![
        insert(1, &[("id", 1.into()), ("fen", 1999.into()), ("yuan", dec("19.99"))]),
        insert(2, &[("id", 2.into()), ("fen", 1999.into()), ("yuan", dec("1999.00"))]),
        // 0.1 + 0.2 = 0.3 holds in decimals (it would not in binary floats).
        insert(3, &[("id", 3.into()), ("fen", 30.into()), ("yuan", dec("0.30"))]),
        insert(4, &[("id", 4.into()), ("fen", 1.into()), ("yuan", dec("0.0100000001"))]),
    ];
    let keys: Vec<_> = run(&[r], &events, 100).iter().map(|f| f.key["id"].clone()).collect();
    assert_eq!(keys, vec![Value::Int(2), Value::Int(4)]);
}

#[test]
fn key_message_and_money_at_risk() {
    let r = check(
        "refund-positive",
        "  assert: after.amount > 0\n  key: { order_id: after.order_id, refund_id: after.id }\n  message: \"refund {{ after.id }} of {{ key.order_id }}: {{ after.amount }}\"\n  money: { amount: after.amount, currency: after.currency }\n",
    );
    let found = run(
        &[r],
        &[insert(
            1,
            &[("id", 9.into()), ("order_id", 42.into()), ("amount", dec("-12.50")), ("currency", "CNY".into())],
        )],
        10,
    );
    let f = &found[0];
    assert_eq!(f.key.len(), 2);
    assert_eq!(f.key["order_id"], Value::Int(42));
    assert_eq!(f.message, "refund 9 of 42: -12.50");
    let money = f.money_at_risk.as_ref().unwrap();
    assert_eq!(money.amount, "-1250".parse().unwrap(), "minor units (fen) of a decimal in yuan");
    assert_eq!(money.currency.as_deref(), Some("CNY"));
    let json = serde_json::to_value(f).unwrap();
    assert_eq!(json["money_at_risk"]["amount_minor"], "-1250", "money is serialized as an exact string");
    assert_eq!(json["money_at_risk"]["display"], "\u{2212}12.50 CNY");
    assert_eq!(json["key"]["order_id"], 42);
    assert_eq!(json["rule"], "refund-positive");
    assert_eq!(json["severity"], "critical");
}

#[test]
fn other_tables_are_ignored_and_stats_count() {
    let r = check("positive", "  assert: after.amount > 0\n");
    let mut other = insert(2, &[("amount", (-1).into())]);
    other.table = "shop.other".into();
    let events = vec![
        insert(1, &[("id", 1.into()), ("amount", (-1).into())]),
        other,
        insert(3, &[("id", 1.into()), ("amount", (-2).into())]),
    ];
    let mut engine = fundguard_engine::Engine::new(&[r], &Default::default()).unwrap();
    let mut out = Vec::new();
    engine.process(&events, Default::default(), &mut out).unwrap();
    assert_eq!(out.len(), 2);
    let stats = &engine.stats()[0];
    assert_eq!((stats.events, stats.findings, stats.distinct_keys), (2, 2, 1));
}

#[test]
fn a_column_that_changes_type_widens_instead_of_failing() {
    let r = check("positive", "  assert: after.amount > 0\n");
    let events = vec![
        insert(1, &[("id", 1.into()), ("amount", 5.into())]),
        insert(2, &[("id", 2.into()), ("amount", dec("-0.01"))]),
        insert(3, &[("id", 3.into()), ("amount", dec("0.001"))]),
    ];
    let keys: Vec<_> = run(&[r], &events, 1).iter().map(|f| f.key["id"].clone()).collect();
    assert_eq!(keys, vec![Value::Int(2)]);
}

#[test]
fn runtime_errors_are_counted_not_fatal() {
    // Division by zero in exact decimals is an error in DataFusion: the rule reports it and the run goes on.
    let bad = check("div", "  assert: after.a / after.b > 0\n");
    let good = check("positive", "  assert: after.a > 0\n");
    let events = vec![insert(1, &[("id", 1.into()), ("a", dec("-1.0")), ("b", dec("0.0"))])];
    let mut engine = fundguard_engine::Engine::new(&[bad, good], &Default::default()).unwrap();
    let mut out = Vec::new();
    engine.process(&events, Default::default(), &mut out).unwrap();
    assert_eq!(out.len(), 1, "the healthy rule still reports");
    assert_eq!(out[0].rule, "positive");
    assert_eq!(engine.stats()[0].errors, 1);
    assert!(engine.stats()[0].last_error.as_ref().unwrap().to_lowercase().contains("divide by zero"));
}

#[test]
fn disabled_rules_do_not_run() {
    let mut r = check("positive", "  assert: after.amount > 0\n");
    r.enabled = false;
    assert!(run(&[r], &[insert(1, &[("amount", (-1).into())])], 10).is_empty());
}

/// `once: per_key` reports a key's first violating row; the key is reported again only
/// after `state_ttl` without a violation. Batching and a restart from saved state change
/// nothing.
#[test]
fn once_per_key_reports_a_keys_first_violation_until_it_has_been_quiet_for_the_ttl() {
    let rule = crate::rule(
        "id: positive\nowner: team\nseverity: high\nstate_ttl: 10s\ncheck:\n  tables: [shop.t]\n  assert: after.amount > 0\n  once: per_key\n",
    );
    let amounts: &[(u64, i64, i64)] = &[
        (0, 1, -1),  // id 1: first violation, reported
        (1, 2, 5),   // id 2: fine
        (2, 1, -2),  // id 1 again within the TTL: not reported
        (3, 2, -1),  // id 2: first violation, reported
        (9, 1, 7),   // id 1 fine (a passing row does not count as a violation)
        (12, 1, -3), // id 1: 10 s after its latest violation at 2 s — still within: not reported
        (23, 1, -4), // id 1: 11 s after its latest violation: reported again
    ];
    let events: Vec<_> =
        amounts.iter().map(|&(s, id, amount)| insert(s, &[("id", id.into()), ("amount", amount.into())])).collect();
    let shown = |found: &[fundguard_core::Finding]| -> Vec<(i64, Value)> {
        found.iter().map(|f| (f.event_time.as_micros() / 1_000_000 - 1_700_000_000, f.key["id"].clone())).collect()
    };
    let expected = vec![(0, Value::Int(1)), (3, Value::Int(2)), (23, Value::Int(1))];
    for batch in [1, 2, 3, 100] {
        assert_eq!(shown(&run(std::slice::from_ref(&rule), &events, batch)), expected, "batches of {batch}");
    }
    let every_row = crate::rule(
        "id: positive\nowner: team\nseverity: high\ncheck:\n  tables: [shop.t]\n  assert: after.amount > 0\n",
    );
    assert_eq!(run(&[every_row], &events, 100).len(), 5, "by default every violating row is a finding");

    // A restart between the two halves keeps the keys already reported.
    let schemas = fundguard_core::TableSchemas::default();
    let mut engine = fundguard_engine::Engine::new(std::slice::from_ref(&rule), &schemas).unwrap();
    let mut found = Vec::new();
    engine.process(&events[..3], fundguard_core::EventTime::default(), &mut found).unwrap();
    let saved = engine.save_state().unwrap();
    let mut engine = fundguard_engine::Engine::new(std::slice::from_ref(&rule), &schemas).unwrap();
    assert_eq!(engine.restore_state(&saved).unwrap().kept, vec!["positive".to_string()]);
    engine.process(&events[3..], fundguard_core::EventTime::default(), &mut found).unwrap();
    assert_eq!(shown(&found), expected);
}

/// Without a `message`, a check whose assert compares two columns names the two values that
/// disagree, in major units of the money's currency, and their difference — not its SQL.
#[test]
fn the_default_message_names_two_compared_values_and_their_difference() {
    let r = check(
        "paid-in-full",
        "  assert: after.paid >= after.due AND after.currency = 'CNY'\n  money: { amount: after.due - after.paid, currency: after.currency }\n",
    );
    let events = vec![
        insert(1, &[("id", 1.into()), ("paid", dec("4198.45")), ("due", dec("4200.00")), ("currency", "CNY".into())]),
        insert(2, &[("id", 2.into()), ("paid", 1_500.into()), ("due", 1_500.into()), ("currency", "JPY".into())]),
        // Integers are minor units (fen).
        insert(3, &[("id", 3.into()), ("paid", 1_450.into()), ("due", 1_500.into()), ("currency", "CNY".into())]),
    ];
    let found = run(&[r], &events, 100);
    let messages: Vec<&str> = found.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(
        messages,
        vec![
            "paid-in-full does not hold for id=1: after.paid 4,198.45 CNY vs after.due 4,200.00 CNY: \u{2212}1.55",
            // The comparison holds; the currency test failed: the values read, as before.
            "paid-in-full: `after.paid >= after.due AND after.currency = 'CNY'` does not hold for id=2 (after.paid=1500, after.due=1500, after.currency=JPY)",
            "paid-in-full does not hold for id=3: after.paid 14.50 CNY vs after.due 15.00 CNY: \u{2212}0.50",
        ]
    );
    assert_eq!(found[0].money_at_risk.as_ref().unwrap().display(), "1.55 CNY");
}

/// Without a `message`, a finding names the values its assert read (and a column the row
/// lacks), not only the SQL text.
#[test]
fn the_default_message_shows_the_values_the_assert_read() {
    let r = check("positive", "  assert: after.amount > 0 AND after.currency = 'CNY'\n");
    let events = vec![
        insert(1, &[("id", 1.into()), ("amount", dec("-4198.45")), ("currency", "CNY".into())]),
        insert(2, &[("id", 2.into()), ("amount", 5.into())]),
    ];
    let found = run(&[r], &events, 100);
    let messages: Vec<&str> = found.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(
        messages,
        vec![
            "positive: `after.amount > 0 AND after.currency = 'CNY'` does not hold for id=1 (after.amount=-4198.45, after.currency=CNY)",
            "positive: `after.amount > 0 AND after.currency = 'CNY'` does not hold for id=2 (after.amount=5, after.currency=absent)",
        ]
    );
}
