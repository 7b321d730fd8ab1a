//! Stateful kinds on event time: timelines for the edge cases, and determinism.

use std::sync::Arc;

use fundguard_core::{ChangeEvent, EventTime, Finding, Op, Position, TableSchemas, Value};
use fundguard_engine::Engine;
use fundguard_rules::Rule;

use crate::{dec, rule};

fn at(secs: i64, table: &str, op: Op, after: &[(&str, Value)]) -> ChangeEvent {
    ChangeEvent {
        table: Arc::from(table),
        op,
        before: None,
        after: Some(crate::row(after)),
        commit_time: EventTime::from_secs(1_700_000_000 + secs),
        position: Position::Synthetic { seq: secs as u64 },
    }
}

fn run_all(rules: &[Rule], events: &[ChangeEvent]) -> (Vec<Finding>, Engine) {
    let mut engine = Engine::new(rules, &TableSchemas::default()).unwrap();
    let mut out = Vec::new();
    engine.process(events, EventTime::default(), &mut out).unwrap();
    engine.finish(EventTime::default(), &mut out);
    (out, engine)
}

fn reconcile(extra: &str) -> Rule {
    rule(&format!(
        "id: r\nowner: t\nseverity: critical\nreconcile:\n  left: {{ table: s.pay, key: after.order_id }}\n  right: {{ table: s.ord, key: after.id }}\n  within: 1m\n  key_type: integer\n{extra}"
    ))
}

#[test]
fn tolerance_bounds_are_inclusive() {
    let r = reconcile("  tolerance: { left: left.amount, right: right.amount, absolute: 2, relative: \"0.01\" }\n");
    let case = |pay: Value, ord: i64| {
        let events = vec![
            at(0, "s.ord", Op::Insert, &[("id", 1.into()), ("amount", ord.into())]),
            at(1, "s.pay", Op::Insert, &[("id", 9.into()), ("order_id", 1.into()), ("amount", pay)]),
        ];
        run_all(std::slice::from_ref(&r), &events).0.len()
    };
    // 1% of 1000 is 10, above the absolute 2: the bound is 10.
    assert_eq!(case(1010.into(), 1000), 0);
    assert_eq!(case(990.into(), 1000), 0);
    assert_eq!(case(1011.into(), 1000), 1);
    assert_eq!(case(dec("1010.01"), 1000), 1, "exact decimals: one hundredth over the bound");
    // For 100, 1% is 1, below the absolute 2: the bound is 2.
    assert_eq!(case(102.into(), 100), 0);
    assert_eq!(case(103.into(), 100), 1);
}

#[test]
fn keys_of_different_types_match_when_normalised() {
    let r = reconcile("  expect: \"left.amount = right.amount\"\n");
    let events = vec![
        at(0, "s.ord", Op::Insert, &[("id", 42.into()), ("amount", 5.into())]),
        at(1, "s.pay", Op::Insert, &[("id", 1.into()), ("order_id", " 42".into()), ("amount", 5.into())]),
        at(120, "s.ord", Op::Insert, &[("id", 43.into()), ("amount", 5.into())]),
    ];
    let (found, _) = run_all(&[r], &events);
    // 42 matched across string/integer; 43 has no payment yet, but its deadline is after the last event.
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn missing_counterpart_fires_at_the_deadline_with_money_and_evidence() {
    let r = reconcile("  money: { amount: \"coalesce(left.amount, right.amount)\" }\n");
    let events = vec![
        at(0, "s.pay", Op::Insert, &[("id", 1.into()), ("order_id", 7.into()), ("amount", dec("12.50"))]),
        at(61, "s.ord", Op::Insert, &[("id", 8.into()), ("amount", 1.into())]),
    ];
    let (found, _) = run_all(&[r], &events);
    assert_eq!(found.len(), 1, "{found:?}");
    let f = &found[0];
    assert_eq!(f.key["order_id"], Value::Int(7));
    assert_eq!(f.event_time, EventTime::from_secs(1_700_000_060), "a finding is dated at the deadline");
    // No currency: the amount is kept as given.
    assert_eq!(Value::Decimal(f.money_at_risk.as_ref().unwrap().amount), dec("12.50"));
    assert_eq!(f.evidence.len(), 1);
    assert_eq!(&*f.evidence[0].table, "s.pay");
    assert!(f.message.contains("no counterpart"), "{}", f.message);
}

/// A counterpart at the window's end is in time; one after it is paired and judged by
/// `expect` (`late_counterpart: pair`, the default) or starts the key anew and is missing
/// its own counterpart (`late_counterpart: missing`).
#[test]
fn a_late_counterpart_is_paired_or_missing_as_the_rule_says() {
    let verdicts = |late: &str, pay_at: i64, amount: i64| {
        let r = reconcile(&format!("  expect: \"left.amount = right.amount\"\n{late}"));
        let events = vec![
            at(0, "s.ord", Op::Insert, &[("id", 1.into()), ("amount", 100.into())]),
            at(pay_at, "s.pay", Op::Insert, &[("id", 9.into()), ("order_id", 1.into()), ("amount", amount.into())]),
            at(500, "s.ord", Op::Insert, &[("id", 2.into()), ("amount", 1.into())]),
        ];
        let (found, _) = run_all(std::slice::from_ref(&r), &events);
        let mut shown: Vec<String> = found
            .iter()
            .filter(|f| f.key.values().next() == Some(&Value::Int(1)))
            .map(|f| {
                let kind = if f.message.contains("no counterpart") { "missing" } else { "mismatch" };
                format!("{kind}@{}", f.event_time.as_micros() / 1_000_000 - 1_700_000_000)
            })
            .collect();
        shown.sort();
        shown
    };
    for late in ["", "  late_counterpart: pair\n", "  late_counterpart: missing\n"] {
        // At the window's end (60 s after the order): in time, paired, judged.
        assert_eq!(verdicts(late, 60, 100), Vec::<String>::new(), "{late}");
        assert_eq!(verdicts(late, 60, 99), vec!["mismatch@60"], "{late}");
    }
    for late in ["", "  late_counterpart: pair\n"] {
        assert_eq!(verdicts(late, 61, 100), vec!["missing@60"], "{late}");
        assert_eq!(verdicts(late, 61, 99), vec!["mismatch@61", "missing@60"], "{late}");
    }
    let missing = "  late_counterpart: missing\n";
    assert_eq!(verdicts(missing, 61, 100), vec!["missing@121", "missing@60"]);
    assert_eq!(verdicts(missing, 61, 99), vec!["missing@121", "missing@60"], "never paired, never judged");
}

/// A message may name any column of either side, also one no expression reads: it is
/// kept with the row and rendered, never an empty string; a column the rows do not have
/// renders as NULL would, not as a failure of the rule.
#[test]
fn a_reconcile_message_renders_columns_only_the_message_names() {
    let r = reconcile(
        "  expect: \"left.amount = right.amount\"\n  message: \"{{ left.channel }} paid {{ left.amount }}, order {{ right.amount }} ({{ right.region }})\"\n",
    );
    let events = vec![
        at(0, "s.ord", Op::Insert, &[("id", 1.into()), ("amount", 100.into())]),
        at(
            1,
            "s.pay",
            Op::Insert,
            &[("id", 9.into()), ("order_id", 1.into()), ("amount", 90.into()), ("channel", "card".into())],
        ),
    ];
    let (found, engine) = run_all(std::slice::from_ref(&r), &events);
    assert_eq!(engine.stats()[0].errors, 0, "{:?}", engine.stats()[0].last_error);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].message, "card paid 90, order 100 (None)");
}

/// Without a `message`, a mismatch names the two sides' values that disagree, in major
/// units of the money's currency, and their difference.
#[test]
fn the_default_reconcile_message_names_the_values_that_disagree() {
    let r = reconcile(
        "  expect: \"left.amount = right.amount AND left.currency = right.currency\"\n  money: { amount: left.amount, currency: left.currency }\n",
    );
    let events = vec![
        at(0, "s.ord", Op::Insert, &[("id", 1.into()), ("amount", dec("4200.00")), ("currency", "CNY".into())]),
        at(
            1,
            "s.pay",
            Op::Insert,
            &[("id", 9.into()), ("order_id", 1.into()), ("amount", dec("4198.45")), ("currency", "CNY".into())],
        ),
    ];
    let (found, _) = run_all(std::slice::from_ref(&r), &events);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].message,
        "r: s.pay and s.ord disagree for order_id=1: s.pay amount 4,198.45 CNY vs s.ord amount 4,200.00 CNY: \u{2212}1.55"
    );
    let money = found[0].money_at_risk.as_ref().unwrap();
    assert_eq!((money.amount, money.display()), ("419845".parse().unwrap(), "4,198.45 CNY".to_string()));
}

/// A tolerance compares the amounts too; an `expect` that is not a simple comparison of two
/// columns keeps the listing of every compared value.
#[test]
fn the_default_reconcile_message_with_a_tolerance_or_a_complex_expect() {
    let events = vec![
        at(0, "s.ord", Op::Insert, &[("id", 1.into()), ("amount", 420_000.into()), ("currency", "CNY".into())]),
        at(
            1,
            "s.pay",
            Op::Insert,
            &[("id", 9.into()), ("order_id", 1.into()), ("amount", 419_845.into()), ("currency", "USD".into())],
        ),
    ];
    let r = reconcile(
        "  expect: \"left.currency = right.currency\"\n  tolerance: { left: left.amount, right: right.amount, absolute: 100 }\n  money: { amount: left.amount, currency: right.currency, unit: minor }\n",
    );
    let (found, _) = run_all(std::slice::from_ref(&r), &events);
    assert_eq!(
        found[0].message,
        "r: s.pay and s.ord disagree for order_id=1: s.pay currency USD vs s.ord currency CNY; s.pay amount 419845 vs s.ord amount 420000: \u{2212}155",
        "the currencies disagree: the amounts are shown as given"
    );
    let r = reconcile("  expect: \"left.amount = right.amount OR left.currency = 'EUR'\"\n");
    let (found, _) = run_all(std::slice::from_ref(&r), &events);
    assert_eq!(
        found[0].message,
        "r: s.pay and s.ord disagree for order_id=1: s.pay amount=419845, currency=USD; s.ord amount=420000: `left.amount = right.amount OR left.currency = 'EUR'` does not hold"
    );
}

#[test]
fn optional_sides_do_not_report_missing() {
    let r = rule(
        "id: r\nowner: t\nseverity: low\nreconcile:\n  left: { table: s.pay, key: after.order_id, required: false }\n  right: { table: s.ord, key: after.id, required: false }\n  within: 1m\n",
    );
    let events =
        vec![at(0, "s.pay", Op::Insert, &[("order_id", 7.into())]), at(600, "s.ord", Op::Insert, &[("id", 8.into())])];
    assert!(run_all(&[r], &events).0.is_empty());
}

#[test]
fn deletes_carry_no_after_row_and_are_not_matched() {
    let r = reconcile("");
    let mut del = at(0, "s.ord", Op::Delete, &[]);
    del.after = None;
    del.before = Some(crate::row(&[("id", 7.into())]));
    let events = vec![del, at(120, "s.ord", Op::Insert, &[("id", 99.into())])];
    let (found, _) = run_all(&[r], &events);
    // Order 99's window is still open at the end; the delete has no after.id, so no key at all.
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn timeout_fires_when_the_clock_moves_on_an_idle_source() {
    let r = rule(
        "id: stuck\nowner: t\nseverity: high\ntimeout:\n  table: s.ord\n  key: after.id\n  enter: \"after.status = 'PAYING'\"\n  exit: \"after.status <> 'PAYING'\"\n  within: 30m\n",
    );
    let mut engine = Engine::new(&[r], &TableSchemas::default()).unwrap();
    let mut out = Vec::new();
    engine
        .process(
            &[at(0, "s.ord", Op::Update, &[("id", 1.into()), ("status", "PAYING".into())])],
            EventTime::default(),
            &mut out,
        )
        .unwrap();
    assert!(out.is_empty());
    // No event for 29 minutes: nothing. The clock passes the deadline (plus lateness): the finding fires.
    engine.advance_to(EventTime::from_secs(1_700_000_000 + 29 * 60), EventTime::default(), &mut out);
    assert!(out.is_empty());
    engine.advance_to(EventTime::from_secs(1_700_000_000 + 30 * 60 + 6), EventTime::default(), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].key["id"], Value::Int(1));
}

#[test]
fn transition_keeps_state_per_entity() {
    let r = rule(
        "id: sm\nowner: t\nseverity: high\ntransition:\n  table: s.ord\n  key: after.id\n  status: after.status\n  forbidden: [\"PAID -> PAYING\"]\n",
    );
    let s = |id: i64, status: &str, t: i64| at(t, "s.ord", Op::Update, &[("id", id.into()), ("status", status.into())]);
    let events = vec![s(1, "PAID", 0), s(2, "PAYING", 1), s(2, "PAID", 2), s(1, "PAYING", 3), s(2, "PAID", 4)];
    let (found, _) = run_all(&[r], &events);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].key["id"], Value::Int(1));
    assert_eq!(found[0].evidence.len(), 2, "the previous and the offending row");
}

/// Regression: the previous row of a transition finding showed only key and status.
#[test]
fn transition_evidence_is_the_previous_row_in_full_then_the_offending_row() {
    let r = rule(
        "id: sm\nowner: t\nseverity: high\ntransition:\n  table: s.ord\n  key: after.id\n  status: after.status\n  forbidden: [\"PAID -> PAYING\"]\n  frozen:\n    - { once: [PAID], fields: [pay_amount] }\n  money: { amount: after.pay_amount, currency: after.currency }\n",
    );
    let paid = at(
        0,
        "s.ord",
        Op::Insert,
        &[("id", 1.into()), ("status", "PAID".into()), ("pay_amount", dec("10.50")), ("currency", "CNY".into())],
    );
    let paying = at(
        7,
        "s.ord",
        Op::Update,
        &[("id", 1.into()), ("status", "PAYING".into()), ("pay_amount", dec("9.00")), ("currency", "CNY".into())],
    );
    let expect_rows = |found: &[Finding]| {
        assert_eq!(found.len(), 1, "{found:?}");
        let [previous, offending] = &found[0].evidence[..] else { panic!("two rows: {:?}", found[0].evidence) };
        let shown = |e: &fundguard_core::Evidence| -> Vec<(String, String)> {
            e.after.as_ref().unwrap().iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
        };
        let row = |status: &str, amount: &str| -> Vec<(String, String)> {
            [
                ("key", "1"),
                ("status", status),
                ("pay_amount", amount),
                ("money_amount", amount),
                ("money_currency", "CNY"),
                // The row's dimension values the rule does not name, for alarm attribution.
                ("id", "1"),
                ("currency", "CNY"),
            ]
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
        };
        assert_eq!(shown(previous), row("PAID", "10.50"));
        assert_eq!((&*previous.table, previous.op), ("s.ord", Op::Insert));
        assert_eq!(previous.commit_time, EventTime::from_secs(1_700_000_000));
        assert_eq!(previous.position, Position::Synthetic { seq: 0 });
        assert_eq!(shown(offending), row("PAYING", "9.00"));
        assert_eq!((offending.op, offending.position.clone()), (Op::Update, Position::Synthetic { seq: 7 }));
        assert!(found[0].message.contains("PAID -> PAYING is forbidden"), "{}", found[0].message);
        assert!(found[0].message.contains("pay_amount changed from 10.50 to 9.00"), "{}", found[0].message);
    };
    let (found, _) = run_all(std::slice::from_ref(&r), &[paid.clone(), paying.clone()]);
    expect_rows(&found);

    // The previous row survives a checkpoint: saved after the first change, restored into a new engine.
    let mut engine = Engine::new(std::slice::from_ref(&r), &TableSchemas::default()).unwrap();
    let mut out = Vec::new();
    engine.process(&[paid], EventTime::default(), &mut out).unwrap();
    engine.finish(EventTime::default(), &mut out);
    let saved = engine.save_state().unwrap();
    let mut restored = Engine::new(&[r], &TableSchemas::default()).unwrap();
    restored.restore_state(&saved).unwrap();
    restored.process(&[paying], EventTime::default(), &mut out).unwrap();
    restored.finish(EventTime::default(), &mut out);
    expect_rows(&out);
}

#[test]
fn rate_judges_full_windows_only_above_min_volume() {
    let r = rule(
        "id: fail\nowner: t\nseverity: high\nrate:\n  table: s.pay\n  group: after.channel\n  numerator: \"after.status = 'FAILED'\"\n  window: 1m\n  min_volume: 4\n  max_ratio: \"0.5\"\n",
    );
    let p = |t: i64, ch: &str, st: &str| at(t, "s.pay", Op::Update, &[("channel", ch.into()), ("status", st.into())]);
    let events = vec![
        // window 0: card 3 of 4 failed (0.75 > 0.5); wallet 3 of 3 failed but below min_volume
        p(1, "card", "FAILED"),
        p(2, "card", "FAILED"),
        p(3, "card", "FAILED"),
        p(4, "card", "SUCCESS"),
        p(5, "wallet", "FAILED"),
        p(6, "wallet", "FAILED"),
        p(7, "wallet", "FAILED"),
        // window 1: card 2 of 4 failed (0.5, not above)
        p(61, "card", "FAILED"),
        p(62, "card", "FAILED"),
        p(63, "card", "SUCCESS"),
        p(64, "card", "SUCCESS"),
        p(200, "card", "SUCCESS"),
    ];
    let (found, _) = run_all(&[r], &events);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key["channel"], Value::String("card".into()));
    assert!(found[0].message.contains("3 of 4 rows"), "{}", found[0].message);
}

#[test]
fn rate_baseline_is_relative_to_previous_windows() {
    let r = rule(
        "id: vol\nowner: t\nseverity: high\nrate:\n  table: s.pay\n  group: after.channel\n  window: 1m\n  baseline: { windows: 3, factor: \"2\" }\n",
    );
    let mut events = Vec::new();
    let mut t = 0;
    for (minute, n) in [(0, 4), (1, 5), (2, 3), (3, 13), (4, 4)] {
        for i in 0..n {
            t += 1;
            events.push(at(
                minute * 60 + i,
                "s.pay",
                Op::Insert,
                &[("channel", "card".into()), ("n", (t as i64).into())],
            ));
        }
    }
    events.push(at(400, "s.pay", Op::Insert, &[("channel", "card".into())]));
    let (found, _) = run_all(&[r], &events);
    // Minute 3 has 13 rows against a mean of 4: above 2x. Minute 4 (4 rows) is not.
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].message.contains("baseline"), "{}", found[0].message);
}

/// `count` rows of channel `card` in the window starting `start` seconds in.
fn card_rows(start: i64, count: i64) -> Vec<ChangeEvent> {
    (0..count).map(|i| at(start + i, "s.pay", Op::Insert, &[("channel", "card".into())])).collect()
}

/// The windows found, by their row counts ("0 of 23 rows" → 23).
fn window_sizes(found: &[Finding]) -> Vec<u64> {
    found
        .iter()
        .map(|f| {
            let (_, rest) = f.message.split_once(" of ").unwrap();
            rest.split_whitespace().next().unwrap().parse().unwrap()
        })
        .collect()
}

#[test]
fn a_z_score_baseline_fires_on_a_rise_beyond_the_groups_own_spread() {
    let r = rule(
        "id: vol\nowner: t\nseverity: high\nrate:\n  table: s.pay\n  group: after.channel\n  window: 1m\n  baseline: { windows: 4, z_score: \"3\", min_history: 4 }\n",
    );
    // History 10, 14, 10, 14: mean 12, σ 2 — the bound is 18. Window 4 has 18 (not above),
    // then the history is 14, 10, 14, 18 (mean 14, σ ≈ 2.83, bound ≈ 22.5): 23 is above.
    let mut events = Vec::new();
    for (minute, n) in [(0, 10), (1, 14), (2, 10), (3, 14), (4, 18), (5, 23)] {
        events.extend(card_rows(minute * 60, n));
    }
    events.extend(card_rows(600, 1));
    let (found, _) = run_all(&[r], &events);
    assert_eq!(window_sizes(&found), vec![23], "{found:?}");
    assert!(
        found[0].message.contains("more than 3 standard deviations above the baseline 14 of 4 window(s)"),
        "{}",
        found[0].message
    );

    // Before min_history windows the baseline does not judge: 4 windows of history needed.
    let r = rule(
        "id: vol\nowner: t\nseverity: high\nrate:\n  table: s.pay\n  group: after.channel\n  window: 1m\n  baseline: { windows: 4, z_score: \"3\", min_history: 4 }\n",
    );
    let mut events = Vec::new();
    for (minute, n) in [(0, 10), (1, 10), (2, 50)] {
        events.extend(card_rows(minute * 60, n));
    }
    events.extend(card_rows(600, 1));
    assert_eq!(run_all(&[r], &events).0.len(), 0);
}

#[test]
fn a_seasonal_baseline_compares_a_window_with_the_same_window_of_previous_days() {
    let r = rule(
        "id: vol\nowner: t\nseverity: high\nrate:\n  table: s.pay\n  group: after.channel\n  window: 1h\n  baseline: { days: 2, factor: \"2\", min_history: 2 }\n",
    );
    const DAY: i64 = 86_400;
    // 1_700_000_000 is 22:13:20 UTC: hour windows start at 22:00 (-800 s) and 23:00.
    let (at_22, at_23) = (-800 + 3600, 2800 + 3600);
    let mut events = Vec::new();
    for day in 0..3 {
        // The 23:00 hour is always busy; the next day's hour after is quiet, except on day 2.
        events.extend(card_rows(day * DAY + at_22, 30));
        events.extend(card_rows(day * DAY + at_23, if day == 2 { 9 } else { 4 }));
    }
    events.extend(card_rows(3 * DAY, 1));
    let (found, _) = run_all(std::slice::from_ref(&r), &events);
    // Day 2's quiet hour has 9 rows against 4 and 4 the days before: above 2 x. Its busy
    // hour (30) is never compared with the quiet one.
    assert_eq!(window_sizes(&found), vec![9], "{found:?}");

    // The history survives a restart: saved after day 1, restored, the same finding.
    let schemas = TableSchemas::default();
    let split = events
        .iter()
        .position(|e| e.commit_time.as_micros() >= EventTime::from_secs(1_700_000_000 + 2 * DAY).as_micros())
        .unwrap();
    let mut engine = Engine::new(std::slice::from_ref(&r), &schemas).unwrap();
    let mut out = Vec::new();
    engine.process(&events[..split], EventTime::default(), &mut out).unwrap();
    let saved = engine.save_state().unwrap();
    let mut engine = Engine::new(std::slice::from_ref(&r), &schemas).unwrap();
    engine.restore_state(&saved).unwrap();
    engine.process(&events[split..], EventTime::default(), &mut out).unwrap();
    engine.finish(EventTime::default(), &mut out);
    assert_eq!(out, found);
}

/// A burst across the boundary of two tumbling windows is split between them and missed;
/// a sliding window judged every slide sees it whole.
#[test]
fn a_sliding_window_sees_a_burst_that_straddles_two_tumbling_windows() {
    let rate = |slide: &str| {
        rule(&format!(
            "id: burst\nowner: t\nseverity: high\nrate:\n  table: s.pay\n  group: after.channel\n  window: 3m\n{slide}  max_count: 5\n"
        ))
    };
    // 1_700_000_100 is a multiple of 3 minutes: tumbling windows are [0, 3m) and [3m, 6m) from it.
    let base = 100;
    let mut events = Vec::new();
    events.extend(card_rows(base + 2 * 60, 3));
    events.extend(card_rows(base + 3 * 60, 3));
    events.extend(card_rows(base + 20 * 60, 1));
    let (tumbling, _) = run_all(&[rate("")], &events);
    assert!(tumbling.is_empty(), "3 and 3 rows, each window under 6: {tumbling:?}");

    let (sliding, _) = run_all(&[rate("  slide: 1m\n")], &events);
    // The windows [1m, 4m) and [2m, 5m) from the base hold all 6 rows.
    assert_eq!(window_sizes(&sliding), vec![6, 6], "{sliding:?}");
    let starts: Vec<i64> =
        sliding.iter().map(|f| (f.event_time.as_micros() / 1_000_000 - 1_700_000_000 - base) / 60).collect();
    assert_eq!(starts, vec![4, 5], "judged at the ends of the windows");
    assert!(sliding[0].message.contains("count 6 above 5"), "{}", sliding[0].message);
    assert_eq!(sliding[0].evidence.len(), 0, "a plain count keeps no numerator sample");
}

#[test]
fn events_later_than_the_allowed_lateness_are_counted() {
    let r = reconcile("");
    let mut engine = Engine::new(&[r], &TableSchemas::default()).unwrap();
    let mut out = Vec::new();
    engine.process(&[at(100, "s.ord", Op::Insert, &[("id", 1.into())])], EventTime::default(), &mut out).unwrap();
    // 100 s behind the newest event: far beyond the default 5 s lateness.
    engine.process(&[at(0, "s.pay", Op::Insert, &[("order_id", 1.into())])], EventTime::default(), &mut out).unwrap();
    assert_eq!(engine.stats()[0].late_events, 1);
}

#[test]
fn state_over_its_budget_raises_one_overload_finding() {
    let r = rule(
        "id: big\nowner: t\nseverity: low\nmax_state_bytes: 2000\ntimeout:\n  table: s.ord\n  key: after.id\n  enter: \"after.status = 'PAYING'\"\n  exit: \"after.status <> 'PAYING'\"\n  within: 1d\n",
    );
    let events: Vec<_> =
        (0..100).map(|i| at(i, "s.ord", Op::Update, &[("id", i.into()), ("status", "PAYING".into())])).collect();
    let (found, engine) = run_all(&[r], &events);
    let overloads: Vec<_> = found.iter().filter(|f| f.key.contains_key("overload")).collect();
    assert_eq!(overloads.len(), 1, "{found:?}");
    assert!(engine.stats()[0].state_bytes > 2000);
}

#[test]
fn the_memory_budget_warns_then_sheds_the_oldest_keys_and_says_so() {
    let r = rule(
        "id: big\nowner: payments\nseverity: low\ntimeout:\n  table: s.ord\n  key: after.id\n  enter: \"after.status = 'PAYING'\"\n  exit: \"after.status <> 'PAYING'\"\n  within: 1d\n",
    );
    let mut engine = Engine::new(&[r], &TableSchemas::default()).unwrap();
    engine.set_state_budget(Some(100_000));
    let mut out = Vec::new();
    for i in 0..2000 {
        let e = at(i, "s.ord", Op::Update, &[("id", i.into()), ("status", "PAYING".into())]);
        engine.process(&[e], EventTime::default(), &mut out).unwrap();
        assert!(engine.stats()[0].state_bytes <= 100_000 + 1000, "state held under the budget");
    }
    let budget: Vec<_> = out.iter().filter(|f| f.rule == fundguard_engine::STATE_MEMORY_RULE).collect();
    assert_eq!(budget[0].key["budget"], Value::from("near"), "{budget:?}");
    assert_eq!(budget[0].owner, "payments");
    assert!(budget.iter().skip(1).all(|f| f.key["budget"] == Value::from("shed")));
    assert!(budget.iter().any(|f| f.message.contains("least recently touched")), "{budget:?}");
    // The newest entities are still armed: the last one times out at the end.
    engine.finish(EventTime::default(), &mut out);
    engine.advance_to(EventTime::from_secs(4_000_000_000), EventTime::default(), &mut out);
    let timed_out: Vec<_> = out.iter().filter(|f| f.rule == "big").map(|f| f.key["id"].clone()).collect();
    assert!(timed_out.contains(&Value::Int(1999)), "{timed_out:?}");
    assert!(!timed_out.contains(&Value::Int(0)), "the oldest key was shed: {timed_out:?}");
}

fn from(source: &str, mut e: ChangeEvent) -> ChangeEvent {
    e.position = Position::Line { input: Arc::from(source), line: e.commit_time.as_micros() as u64, index: 0 };
    e
}

#[test]
fn event_time_follows_the_slowest_running_source() {
    let r = reconcile("  expect: \"left.amount = right.amount\"\n");
    let payments: Vec<_> = (0..50)
        .map(|i| {
            from(
                "payments.jsonl",
                at(i * 10, "s.pay", Op::Insert, &[("id", i.into()), ("order_id", i.into()), ("amount", 5.into())]),
            )
        })
        .collect();
    let orders: Vec<_> = (0..50)
        .map(|i| from("orders.jsonl", at(i * 10 + 1, "s.ord", Op::Insert, &[("id", i.into()), ("amount", 5.into())])))
        .collect();
    // Read one input after the other, as a backtest of two files does.
    let mut engine = Engine::new(&[r], &TableSchemas::default()).unwrap();
    engine.expect_source("payments.jsonl");
    engine.expect_source("orders.jsonl");
    let mut out = Vec::new();
    engine.process(&payments, EventTime::default(), &mut out).unwrap();
    engine.finish_source("payments.jsonl", EventTime::default(), &mut out);
    assert!(out.is_empty(), "nothing is missing while orders.jsonl has not been read: {out:?}");
    engine.process(&orders, EventTime::default(), &mut out).unwrap();
    engine.finish_source("orders.jsonl", EventTime::default(), &mut out);
    engine.finish(EventTime::default(), &mut out);
    assert_eq!(engine.stats()[0].late_events, 0);
    assert!(out.is_empty(), "every payment met its order: {out:?}");
}

#[test]
fn an_idle_source_stops_holding_event_time_back() {
    let r = rule(
        "id: stuck\nowner: t\nseverity: high\ntimeout:\n  table: s.ord\n  key: after.id\n  enter: \"after.status = 'PAYING'\"\n  exit: \"after.status <> 'PAYING'\"\n  within: 1m\n",
    );
    let mut engine = Engine::new(&[r], &TableSchemas::default()).unwrap();
    let mut out = Vec::new();
    let busy = |t: i64| from("busy", at(t, "s.other", Op::Insert, &[("id", 1.into())]));
    engine
        .process(
            &[from("quiet", at(0, "s.ord", Op::Update, &[("id", 7.into()), ("status", "PAYING".into())]))],
            EventTime::default(),
            &mut out,
        )
        .unwrap();
    engine.process(&[busy(0), busy(600)], EventTime::default(), &mut out).unwrap();
    assert!(out.is_empty(), "the quiet source still holds event time at 0");
    engine.source_idle("quiet", EventTime::from_secs(1_700_000_000 + 600), EventTime::default(), &mut out);
    assert_eq!(out.len(), 1, "once idle, the busy source's time lets the deadline fire");
}

#[test]
fn a_reload_keeps_the_state_and_clocks_of_unchanged_rules_only() {
    let pay = at(0, "s.pay", Op::Insert, &[("id", 1.into()), ("order_id", 7.into())]);
    let ord = at(10, "s.ord", Op::Insert, &[("id", 7.into())]);
    // Moves event time past every deadline of order 7.
    let later = at(300, "s.pay", Op::Insert, &[("id", 2.into()), ("order_id", 99.into())]);
    // `within` changed: a different rule, whose state starts empty.
    let changed = rule(
        "id: r\nowner: t\nseverity: critical\nreconcile:\n  left: { table: s.pay, key: after.order_id }\n  right: { table: s.ord, key: after.id }\n  within: 2m\n  key_type: integer\n",
    );
    for (reloaded, kept) in [(reconcile(""), true), (changed, false)] {
        let mut engine = Engine::new(&[reconcile("")], &TableSchemas::default()).unwrap();
        let mut out = Vec::new();
        engine.process(std::slice::from_ref(&pay), EventTime::default(), &mut out).unwrap();
        let mut next = Engine::new(&[reloaded], &TableSchemas::default()).unwrap();
        let carried = next.carry_over(engine);
        assert_eq!(carried == ["r"], kept, "{carried:?}");
        next.process(&[ord.clone(), later.clone()], EventTime::default(), &mut out).unwrap();
        next.finish(EventTime::default(), &mut out);
        if kept {
            assert!(out.is_empty(), "the payment before the reload meets its order after it: {out:?}");
            assert_eq!(next.stats()[0].events, 3, "counters carry over too");
        } else {
            assert_eq!(out.len(), 1, "the order alone has no counterpart: {out:?}");
            assert_eq!(out[0].key["order_id"], Value::Int(7));
        }
    }
}

/// Orders, successful payments and successful refunds: what was received must stay the
/// order's amount net of refunds, and never go negative — three tables in one `expect`.
fn net_received(evaluate: &str) -> Rule {
    rule(&format!(
        "id: net\nowner: t\nseverity: critical\nreconcile:\n  left: {{ table: s.ord, key: after.id }}\n  right: {{ table: s.pay, key: after.order_id }}\n\
         \x20 sides:\n    refunds: {{ table: s.ref, key: after.order_id, when: \"after.status = 'SUCCESS'\", required: false }}\n\
         \x20 within: 1m\n  key_type: integer\n  cardinality: one_to_many\n  evaluate: {evaluate}\n\
         \x20 aggregates:\n    paid: sum(right.amount)\n    refunded: sum(refunds.amount)\n    refund_count: count(refunds)\n\
         \x20 expect: \"agg.paid - coalesce(agg.refunded, 0) >= 0 AND agg.paid = left.amount\"\n"
    ))
}

fn order_with(id: i64, amount: i64, refunds: &[(i64, &str)], start: i64) -> Vec<ChangeEvent> {
    let mut events = vec![
        at(start, "s.ord", Op::Insert, &[("id", id.into()), ("amount", amount.into())]),
        at(
            start + 1,
            "s.pay",
            Op::Insert,
            &[("id", (100 + id).into()), ("order_id", id.into()), ("amount", amount.into())],
        ),
    ];
    for (i, (refund, status)) in refunds.iter().enumerate() {
        let t = start + 2 + i as i64;
        let rid = 1000 + id * 10 + i as i64;
        events.push(at(
            t,
            "s.ref",
            Op::Insert,
            &[("id", rid.into()), ("order_id", id.into()), ("amount", (*refund).into()), ("status", (*status).into())],
        ));
    }
    events
}

#[test]
fn an_expected_amount_can_combine_three_tables_in_the_stream() {
    let mut events = order_with(1, 100, &[(60, "SUCCESS"), (40, "SUCCESS")], 0);
    // Over-refunded: 60 + 60 of 100.
    events.extend(order_with(2, 100, &[(60, "SUCCESS"), (60, "SUCCESS")], 10));
    // The second refund failed: it does not count.
    events.extend(order_with(3, 100, &[(60, "SUCCESS"), (60, "FAILED")], 20));
    events.extend(order_with(4, 100, &[], 30));
    // Moves event time past every window, so deadlines fire.
    events.push(at(500, "s.ord", Op::Insert, &[("id", 99.into()), ("amount", 1.into())]));
    events.sort_by_key(|e| e.commit_time);
    for evaluate in ["on_match", "at_deadline"] {
        let (found, _) = run_all(&[net_received(evaluate)], &events);
        let keys: Vec<Value> = found.iter().map(|f| f.key["id"].clone()).collect();
        assert_eq!(keys, [Value::Int(2)], "{evaluate}: {found:#?}");
        let f = &found[0];
        assert!(f.evidence.iter().filter(|e| &*e.table == "s.ref").count() == 2, "the refunds are evidence: {f:#?}");
        assert!(f.message.contains("paid=100") && f.message.contains("refunded=120"), "{}", f.message);
    }
}

#[test]
fn a_required_further_side_without_rows_is_missing_at_the_deadline() {
    let r = rule(
        "id: settled\nowner: t\nseverity: high\nreconcile:\n  left: { table: s.ord, key: after.id }\n  right: { table: s.pay, key: after.order_id }\n\
         \x20 sides:\n    settlements: { table: s.set, key: after.order_id }\n  within: 1m\n  key_type: integer\n  evaluate: at_deadline\n\
         \x20 aggregates: { settled: sum(settlements.gross) }\n  expect: \"agg.settled = right.amount\"\n",
    );
    let mut events = order_with(1, 100, &[], 0);
    events.push(at(3, "s.set", Op::Insert, &[("id", 1.into()), ("order_id", 1.into()), ("gross", 100.into())]));
    events.extend(order_with(2, 100, &[], 5));
    events.push(at(200, "s.ord", Op::Insert, &[("id", 9.into()), ("amount", 1.into())]));
    let (found, _) = run_all(&[r], &events);
    let missing: Vec<&Finding> = found.iter().filter(|f| f.message.contains("s.set has no counterpart")).collect();
    assert_eq!(missing.len(), 1, "{found:#?}");
    assert_eq!(missing[0].key["id"], Value::Int(2));
    // Judged when the window closes: order 1's settlement arrived after its payment, in time.
    assert!(found.iter().all(|f| f.key["id"] != Value::Int(1)), "{found:#?}");
}

#[test]
fn further_sides_are_named_in_aggregates_and_a_bad_name_is_refused() {
    let (_, problems) = fundguard_rules::parse_rule(
        Arc::from("r.yaml"),
        "id: r\nowner: t\nseverity: high\nreconcile:\n  left: { table: s.a, key: after.id }\n  right: { table: s.b, key: after.id }\n\
         \x20 sides:\n    left: { table: s.c, key: after.id }\n  within: 1m\n  aggregates: { x: sum(nope.amount) }\n",
    );
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(text.iter().any(|p| p.contains("side name `left`")), "{text:?}");
    assert!(
        text.iter().any(|p| p.contains("aggregate `sum(nope.amount)`") && p.contains("a side being left, right")),
        "{text:?}"
    );
}
