//! The product, ledger and daily-totals kinds on synthetic tables: found when the invariant
//! holds, not proposed (with the reason) when it does not or rows are too few, every file
//! loads and passes its tests, money is never a float in the rule, and the D+1 rules'
//! backtest over the sample's latest rows finds what is wrong, per day.

use fundguard_core::{ChangeEvent, Decimal, EventTime, Op, Value};
use fundguard_suggest::backtest::{Backtest, check, sql};
use fundguard_suggest::layout::SchemaIntake;
use fundguard_suggest::suggest::{Suggestion, Suggestions};
use fundguard_suggest::{Options, Profile, Profiler, suggest};
use rust_decimal::RoundingStrategy;

use crate::event;

fn profile(events: &[ChangeEvent]) -> (Profile, fundguard_suggest::Layout) {
    let mut intake = SchemaIntake::new(Vec::new());
    for e in events {
        intake.observe(e);
    }
    let mut p = Profiler::new(intake.layout());
    for e in events {
        p.observe(e);
    }
    let layout = p.layout().clone();
    (p.finish(), layout)
}

fn suggestions(events: &[ChangeEvent]) -> Suggestions {
    let (profile, layout) = profile(events);
    suggest(&profile, &layout, &Options::default())
}

fn of_kind<'a>(made: &'a Suggestions, kind: &str) -> Vec<&'a Suggestion> {
    made.made.iter().filter(|s| s.kind == kind).collect()
}

fn skipped_reason(made: &Suggestions, kind: &str) -> Vec<String> {
    made.skipped.iter().filter(|s| s.kind == kind).map(|s| format!("{}: {}", s.subject, s.reason)).collect()
}

/// The rule part of a rendered file (no comments, no tests) has no number with a fraction:
/// every amount, rate and tolerance is an integer or a column.
fn assert_no_float(file: &str) {
    let body: Vec<&str> =
        file.lines().filter(|l| !l.starts_with('#')).take_while(|l| !l.starts_with("tests:")).collect();
    for line in body {
        let bytes = line.as_bytes();
        let float = bytes.windows(3).any(|w| w[0].is_ascii_digit() && w[1] == b'.' && w[2].is_ascii_digit());
        assert!(!float, "a number with a fraction in the rule: {line}\n{file}");
    }
}

/// Settlements: commission = gross × rate rounded half away from zero (rates of four
/// places), and a fee in basis points; `broken` rows in a thousand have a commission off by 7.
fn settlements(n: i64, broken_every: Option<i64>) -> Vec<ChangeEvent> {
    (1..=n)
        .map(|i| {
            let gross = 1_000 + i * 37 % 90_000;
            let rate = Decimal::new(60 + (i * 37) % 441, 4);
            let exact = Decimal::from(gross) * rate;
            let mut commission =
                i64::try_from(exact.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)).unwrap();
            if broken_every.is_some_and(|k| i % k == 0) {
                commission += 7;
            }
            let bps = 5 + i % 20;
            let base = 10_000 * (1 + i % 9);
            event(
                "s.settlements",
                Op::Insert,
                i * 3,
                i as u64,
                &[
                    ("id", Value::Int(i)),
                    ("gross_amount", Value::Int(gross)),
                    ("commission_rate", Value::Decimal(rate)),
                    ("commission_amount", Value::Int(commission)),
                    ("base_amount", Value::Int(base)),
                    ("fee_bps", Value::Int(bps)),
                    ("fee_amount", Value::Int(base * bps / 10_000)),
                    ("currency", Value::String("CNY".into())),
                ],
            )
        })
        .collect()
}

#[test]
fn a_commission_that_is_gross_times_rate_is_found_in_exact_arithmetic() {
    let made = suggestions(&settlements(400, None));
    let products = of_kind(&made, "product");
    let commission = products
        .iter()
        .find(|s| s.columns.iter().any(|c| c == "s.settlements.commission_amount"))
        .unwrap_or_else(|| panic!("{products:?} {:?}", skipped_reason(&made, "product")));
    assert!(commission.columns.contains(&"s.settlements.commission_rate".to_string()), "{commission:?}");
    // A fee in basis points: the result scaled by 10^4 against the product.
    let fee = products
        .iter()
        .find(|s| s.columns.iter().any(|c| c == "s.settlements.fee_amount"))
        .unwrap_or_else(|| panic!("{products:?}"));
    assert!(fee.invariant.contains("basis points"), "{}", fee.invariant);
    let commission_id = commission.id.clone();
    let (checked, rejected) = check(products.iter().map(|s| (*s).clone()).collect(), &Default::default());
    assert!(rejected.is_empty(), "{rejected:?}");
    for c in &checked {
        assert_no_float(&c.file);
        assert!(c.file.contains("tests:"), "{}", c.file);
    }
    let file = &checked.iter().find(|c| c.suggestion.id == commission_id).unwrap().file;
    assert!(
        file.contains("abs(after.commission_amount - after.gross_amount * after.commission_rate) * 2 <= 1"),
        "{file}"
    );
}

#[test]
fn a_product_that_does_not_hold_or_has_too_few_rows_is_not_proposed_and_says_why() {
    let made = suggestions(&settlements(400, Some(10)));
    assert!(
        of_kind(&made, "product").iter().all(|s| !s.columns.contains(&"s.settlements.commission_amount".to_string())),
        "{:?}",
        made.made
    );
    let why = skipped_reason(&made, "product");
    assert!(why.iter().any(|w| w.contains("commission_amount") && w.contains("360 of 400 rows only")), "{why:?}");

    let made = suggestions(&settlements(12, None));
    assert!(of_kind(&made, "product").is_empty(), "{:?}", made.made);
    let why = skipped_reason(&made, "product");
    assert!(why.iter().any(|w| w.contains("on only 12 row(s); at least 30 are needed")), "{why:?}");
}

/// Ledger transactions: one debit against one or two credits, within two seconds; the
/// transactions in `unbalanced` have a credit one short; `updated` adds an update per row.
fn ledger(n: i64, unbalanced: &[i64], updated: bool) -> Vec<ChangeEvent> {
    let mut events = Vec::new();
    let mut id = 0;
    for t in 1..=n {
        let amount = 500 + t * 13 % 7_000;
        let currency = if t % 4 == 0 { "USD" } else { "CNY" };
        let short = i64::from(unbalanced.contains(&t));
        let credits = if t % 3 == 0 { vec![amount / 2, amount - amount / 2 - short] } else { vec![amount - short] };
        let at = t * 20;
        let mut rows = vec![("DEBIT", amount, at)];
        for (k, c) in credits.into_iter().enumerate() {
            rows.push(("CREDIT", c, at + 1 + k as i64));
        }
        for (direction, amount, at) in rows {
            id += 1;
            let row = [
                ("id", Value::Int(id)),
                ("txn_id", Value::String(format!("T{t}"))),
                ("direction", Value::String(direction.into())),
                ("amount", Value::Int(amount)),
                ("currency", Value::String(currency.into())),
                ("created_at", Value::Timestamp(EventTime::from_secs(1_700_000_000 + at))),
            ];
            events.push(event("s.ledger_entries", Op::Insert, at, id as u64, &row));
            if updated {
                events.push(event("s.ledger_entries", Op::Update, at + 1, id as u64, &row));
            }
        }
    }
    events.sort_by_key(|e| e.commit_time);
    events
}

#[test]
fn a_balanced_ledger_gets_a_many_to_many_reconciliation_and_a_daily_balance() {
    let made = suggestions(&ledger(300, &[], false));
    let ledgers = of_kind(&made, "ledger");
    assert_eq!(ledgers.len(), 1, "{:?} {:?}", made.made, skipped_reason(&made, "ledger"));
    assert!(ledgers[0].columns.contains(&"s.ledger_entries.txn_id".to_string()), "{:?}", ledgers[0]);
    let daily = of_kind(&made, "daily_totals");
    assert_eq!(daily.len(), 1, "{:?}", made.made);
    assert!(daily[0].review.iter().any(|r| r.contains("table `ledger_entries` of the warehouse entry `s`")));
    let (checked, rejected) = check(ledgers.into_iter().chain(daily).cloned().collect(), &Default::default());
    assert!(rejected.is_empty(), "{rejected:?}");
    for c in &checked {
        assert_no_float(&c.file);
    }
    let reconcile = &checked.iter().find(|c| c.suggestion.kind == "ledger").unwrap().file;
    assert!(reconcile.contains("cardinality: many_to_many"), "{reconcile}");
    assert!(reconcile.contains("expect: \"agg.debit = agg.credit\""), "{reconcile}");
    assert!(reconcile.contains("when: \"after.direction = 'DEBIT'\""), "{reconcile}");
    let sql_file = &checked.iter().find(|c| c.suggestion.kind == "daily_totals").unwrap().file;
    assert!(sql_file.contains("FROM s.ledger_entries"), "{sql_file}");
}

#[test]
fn an_unbalanced_or_updated_ledger_or_a_small_one_gets_no_suggestion_and_says_why() {
    let every_tenth: Vec<i64> = (1..=300).filter(|t| t % 10 == 0).collect();
    let made = suggestions(&ledger(300, &every_tenth, false));
    assert!(of_kind(&made, "ledger").is_empty(), "{:?}", made.made);
    assert!(of_kind(&made, "daily_totals").is_empty(), "{:?}", made.made);
    let why = skipped_reason(&made, "ledger");
    assert!(why.iter().any(|w| w.contains("txn_id: groups balanced on 268 of 297 rows only")), "{why:?}");

    let made = suggestions(&ledger(300, &[], true));
    assert!(of_kind(&made, "ledger").is_empty(), "{:?}", made.made);
    let why = skipped_reason(&made, "ledger");
    assert!(why.iter().any(|w| w.contains("a ledger is append-only")), "{why:?}");

    let made = suggestions(&ledger(10, &[], false));
    assert!(of_kind(&made, "ledger").is_empty(), "{:?}", made.made);
    let why = skipped_reason(&made, "ledger");
    assert!(why.iter().any(|w| w.contains("at least 30 are needed")), "{why:?}");
}

#[test]
fn the_daily_balance_backtest_runs_the_query_over_the_latest_rows_per_day() {
    // One transaction in 2000 a unit short: still suggested (an exception in a thousand),
    // and its day is the daily balance's one finding.
    let events = ledger(2000, &[777], false);
    let (profile, layout) = profile(&events);
    let made = suggest(&profile, &layout, &Options::default());
    let daily: Vec<Suggestion> = of_kind(&made, "daily_totals").into_iter().cloned().collect();
    assert_eq!(daily.len(), 1, "{:?}", made.made);
    let (checked, rejected) = check(daily, &Default::default());
    assert!(rejected.is_empty(), "{rejected:?}");
    let mut backtest = Backtest::new();
    sql(&checked, &profile, &Default::default(), &mut backtest);
    let result = backtest.result(&checked[0].suggestion.id);
    assert_eq!(result.errors, 0, "{:?}", result.last_error);
    // Transaction 777 is in CNY, on the sample's second UTC day (it starts at 22:13 on
    // 2023-11-14 and runs eleven hours).
    assert_eq!(result.findings, 1, "{result:?}");
    assert_eq!(result.per_day.get("2023-11-15"), Some(&1), "{result:?}");
    assert_eq!(result.examples[0].get("currency"), Some(&Value::String("CNY".into())), "{result:?}");
}

/// Orders paid by payments (one each, the same amount and currency), both with a creation
/// time; `missing` orders are PAID without their payment.
fn paid_orders(n: i64, missing: &[i64]) -> Vec<ChangeEvent> {
    let mut events = Vec::new();
    let mut seq = 0;
    for i in 1..=n {
        let t = i * 30;
        let created = Value::Timestamp(EventTime::from_secs(1_700_000_000 + t));
        let amount = Value::Int(1000 + i * 7);
        let currency = Value::String(if i % 3 == 0 { "USD" } else { "CNY" }.into());
        let order = |status: &str| {
            vec![
                ("id", Value::Int(i)),
                ("status", Value::String(status.into())),
                ("pay_amount", amount.clone()),
                ("currency", currency.clone()),
                ("created_at", created.clone()),
            ]
        };
        let payment = |status: &str| {
            vec![
                ("id", Value::Int(i + 10_000)),
                ("order_id", Value::Int(i)),
                ("status", Value::String(status.into())),
                ("amount", amount.clone()),
                ("currency", currency.clone()),
                ("created_at", created.clone()),
            ]
        };
        let mut push = |table: &str, op, at, row: Vec<(&str, Value)>| {
            seq += 1;
            events.push(event(table, op, at, seq, &row));
        };
        push("s.orders", Op::Insert, t, order("CREATED"));
        if !missing.contains(&i) {
            push("s.payments", Op::Insert, t + 1, payment("INIT"));
            push("s.payments", Op::Update, t + 2, payment("SUCCESS"));
        }
        push("s.orders", Op::Update, t + 3, order("PAID"));
        if i % 2 == 0 {
            push("s.orders", Op::Update, t + 10, order("SHIPPED"));
        }
    }
    events.sort_by_key(|e| e.commit_time);
    events
}

#[test]
fn related_tables_get_daily_totals_that_count_states_reached_since() {
    let events = paid_orders(300, &[]);
    let (profile, layout) = profile(&events);
    let made = suggest(&profile, &layout, &Options::default());
    let daily: Vec<Suggestion> = of_kind(&made, "daily_totals").into_iter().cloned().collect();
    assert_eq!(daily.len(), 1, "{:?} {:?}", made.made, skipped_reason(&made, "daily_totals"));
    let (checked, rejected) = check(daily, &Default::default());
    assert!(rejected.is_empty(), "{rejected:?}");
    let file = &checked[0].file;
    assert_no_float(file);
    // Orders PAID since shipped still count as paid.
    assert!(file.contains("status IN ('PAID', 'SHIPPED')"), "{file}");
    assert!(file.contains("FULL OUTER JOIN"), "{file}");
    let mut backtest = Backtest::new();
    sql(&checked, &profile, &Default::default(), &mut backtest);
    let result = backtest.result(&checked[0].suggestion.id);
    assert_eq!((result.findings, result.errors), (0, 0), "{result:?}");
}
