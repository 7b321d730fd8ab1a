//! Drift of a rule's input: a column it reads goes missing or changes type, a transition
//! rule meets a status it never mentions. Each reported once per rule, kind and subject;
//! a finding for the rule's owner only when drift findings are switched on; business
//! messages not watched for missing columns.

use fundguard_core::{Op, TableSchemas, Value};
use fundguard_engine::{DriftKind, Engine, HEALTH_TAG};

use crate::{check, event, row, rule};

fn insert(seq: u64, cols: &[(&str, Value)]) -> fundguard_core::ChangeEvent {
    event(seq, Op::Insert, None, Some(row(cols)))
}

fn states() -> fundguard_rules::Rule {
    rule(
        "id: states\nowner: team\nseverity: high\ntransition:\n  table: shop.t\n  key: after.id\n  status: after.status\n  initial: [NEW]\n  allowed: { NEW: [PAID] }\n",
    )
}

#[test]
fn a_missing_or_retyped_column_and_an_unknown_status_are_reported_once_each() {
    let amount = check("amount", "  assert: \"after.amount >= 0 OR after.note = 'x'\"\n  key: { id: after.id }\n");
    let mut engine = Engine::new(&[amount, states()], &TableSchemas::default()).unwrap();
    engine.report_drift(true);
    let mut out = Vec::new();
    let whole = |id: i64, note: Value| {
        vec![("id", Value::Int(id)), ("amount", Value::Int(5)), ("status", Value::from("NEW")), ("note", note)]
    };
    engine
        .process(
            &[insert(1, &whole(1, Value::Null)), insert(2, &whole(2, Value::from("a")))],
            Default::default(),
            &mut out,
        )
        .unwrap();
    assert!(out.is_empty(), "nothing drifted yet: {out:?}");
    assert!(engine.stats().iter().all(|s| s.drifts.is_empty()));

    // `note` dropped: twice in two batches, reported once.
    let without = |id: i64| vec![("id", Value::Int(id)), ("amount", Value::Int(5)), ("status", Value::from("NEW"))];
    engine.process(&[insert(3, &without(3))], Default::default(), &mut out).unwrap();
    engine.process(&[insert(4, &without(4))], Default::default(), &mut out).unwrap();
    let drifts: Vec<_> = out.iter().filter(|f| f.tags.iter().any(|t| t == HEALTH_TAG)).collect();
    assert_eq!(drifts.len(), 1, "{out:?}");
    assert_eq!(drifts[0].rule, "amount");
    assert_eq!(drifts[0].key["drift"], Value::from("column_missing"));
    assert_eq!(drifts[0].key["subject"], Value::from("shop.t.note"));
    assert_eq!(drifts[0].owner, "team");

    // `amount` becomes text; a status the state machine never names.
    out.clear();
    let retyped = vec![("id", Value::Int(5)), ("amount", Value::from("5.00")), ("status", Value::from("ON_HOLD"))];
    engine.process(&[insert(5, &retyped)], Default::default(), &mut out).unwrap();
    let stats = |id: &str| engine.stats().iter().find(|s| s.rule == id).unwrap().clone();
    let kinds: Vec<_> = stats("amount").drifts.iter().map(|d| d.kind).collect();
    assert_eq!(kinds, [DriftKind::ColumnMissing, DriftKind::TypeChanged]);
    let states = stats("states");
    assert_eq!(states.drifts.len(), 1);
    assert_eq!(
        (states.drifts[0].kind, states.drifts[0].subject.as_str()),
        (DriftKind::NewStatusValue, "status=ON_HOLD")
    );
    assert!(states.drifts[0].detail.contains("ON_HOLD"));
}

#[test]
fn without_drift_findings_drifts_are_only_counted_and_messages_are_not_watched() {
    let amount = check("amount", "  assert: \"after.amount >= 0\"\n  key: { id: after.id }\n");
    let mut engine = Engine::new(&[amount], &TableSchemas::default()).unwrap();
    let mut out = Vec::new();
    engine
        .process(&[insert(1, &[("id", Value::Int(1)), ("amount", Value::Int(1))])], Default::default(), &mut out)
        .unwrap();
    // A business message without the field: optional by nature, not drift.
    let message = crate::event(2, Op::Message, None, Some(row(&[("id", Value::Int(2))])));
    engine.process(&[message], Default::default(), &mut out).unwrap();
    assert!(engine.stats()[0].drifts.is_empty());
    engine.process(&[insert(3, &[("id", Value::Int(3))])], Default::default(), &mut out).unwrap();
    assert_eq!(engine.stats()[0].drifts.len(), 1);
    assert!(
        !out.iter().any(|f| f.tags.iter().any(|t| t == HEALTH_TAG)),
        "drift findings are off by default (a backtest): {out:?}"
    );
}

#[test]
fn counters_follow_the_when_and_the_tables() {
    let paid =
        check("paid", "  when: \"after.status = 'PAID'\"\n  assert: \"after.amount >= 0\"\n  key: { id: after.id }\n");
    let mut engine = Engine::new(&[paid], &TableSchemas::default()).unwrap();
    let mut out = Vec::new();
    let events: Vec<_> = (1..=10)
        .map(|i| {
            let status = if i % 5 == 0 { "PAID" } else { "NEW" };
            insert(i, &[("id", Value::Int(i as i64)), ("amount", Value::Int(-1)), ("status", Value::from(status))])
        })
        .collect();
    engine.process(&events, Default::default(), &mut out).unwrap();
    let s = &engine.stats()[0];
    assert_eq!((s.events, s.passed, s.findings), (10, 2, 2));
    assert_eq!(s.per_table[0].table, "shop.t");
    assert_eq!(s.per_table[0].events, 10);
    assert_eq!(s.last_event, Some(events[9].commit_time));
    assert_eq!(s.last_finding, Some(events[9].commit_time));
}

#[test]
fn a_value_new_after_the_baseline_that_a_when_never_names_is_drift() {
    let paid = check(
        "paid",
        "  when: \"after.status IN ('PAID', 'REFUNDED')\"\n  assert: \"after.amount >= 0\"\n  key: { id: after.id }\n",
    );
    let mut engine = Engine::new(&[paid], &TableSchemas::default()).unwrap();
    let mut out = Vec::new();
    let item = |i: u64, status: &str| {
        insert(i, &[("id", Value::Int(i as i64)), ("amount", Value::Int(1)), ("status", Value::from(status))])
    };
    // The baseline: NEW and PAID (NEW is not named by the `when`, and that is by design).
    let baseline: Vec<_> =
        (1..=fundguard_engine::BASELINE_EVENTS).map(|i| item(i, if i % 2 == 0 { "PAID" } else { "NEW" })).collect();
    engine.process(&baseline, Default::default(), &mut out).unwrap();
    engine.process(&[item(5000, "NEW"), item(5001, "REFUNDED")], Default::default(), &mut out).unwrap();
    assert!(engine.stats()[0].drifts.is_empty(), "{:?}", engine.stats()[0].drifts);
    // PAID renamed to SETTLED upstream: the filter goes quiet; the new value is drift.
    engine.process(&[item(5002, "SETTLED"), item(5003, "SETTLED")], Default::default(), &mut out).unwrap();
    let drifts = &engine.stats()[0].drifts;
    assert_eq!(drifts.len(), 1, "{drifts:?}");
    assert_eq!(drifts[0].subject, "status=SETTLED");
    assert!(drifts[0].detail.contains("`PAID`") && drifts[0].detail.contains("`REFUNDED`"), "{}", drifts[0].detail);
}

/// A restart (or a rule reload) must not report a drift again, nor take the events after it
/// as a new baseline: what the watch saw is part of the checkpoint.
#[test]
fn drifts_and_the_when_baseline_survive_a_checkpoint_and_a_reload() {
    let paid = || {
        check("paid", "  when: \"after.status = 'PAID'\"\n  assert: \"after.amount >= 0\"\n  key: { id: after.id }\n")
    };
    let item = |i: u64, status: &str| {
        insert(i, &[("id", Value::Int(i as i64)), ("amount", Value::Int(1)), ("status", Value::from(status))])
    };
    let drift_findings = |out: &[fundguard_core::Finding]| {
        out.iter()
            .filter(|f| f.tags.iter().any(|t| t == HEALTH_TAG))
            .map(|f| f.key["subject"].clone())
            .collect::<Vec<_>>()
    };
    let mut engine = Engine::new(&[paid(), states()], &TableSchemas::default()).unwrap();
    engine.report_drift(true);
    let mut out = Vec::new();
    let baseline: Vec<_> = (1..=fundguard_engine::BASELINE_EVENTS).map(|i| item(i, "PAID")).collect();
    engine.process(&baseline, Default::default(), &mut out).unwrap();
    engine.process(&[item(2000, "ON_HOLD")], Default::default(), &mut out).unwrap();
    assert_eq!(drift_findings(&out), [Value::from("shop.t.status=ON_HOLD"), Value::from("shop.t.status=ON_HOLD")]);
    let saved = engine.save_state().unwrap();

    let mut restarted = Engine::new(&[paid(), states()], &TableSchemas::default()).unwrap();
    restarted.report_drift(true);
    restarted.restore_state(&saved).unwrap();
    out.clear();
    // ON_HOLD again: already reported. NEW: not in the saved baseline, so new to the
    // `when` (the state machine names it) — a fresh baseline would have swallowed it.
    restarted.process(&[item(2001, "ON_HOLD"), item(2002, "NEW")], Default::default(), &mut out).unwrap();
    let subjects = drift_findings(&out);
    assert_eq!(subjects, [Value::from("shop.t.status=NEW")], "{out:?}");

    let mut reloaded = Engine::new(&[paid(), states()], &TableSchemas::default()).unwrap();
    reloaded.carry_over(restarted);
    out.clear();
    reloaded.process(&[item(2003, "ON_HOLD"), item(2004, "NEW")], Default::default(), &mut out).unwrap();
    assert!(drift_findings(&out).is_empty(), "{out:?}");
}
