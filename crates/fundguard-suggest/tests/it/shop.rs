//! Suggestions from a small synthetic shop (orders and their payments): the kinds expected
//! are proposed, every file loads and passes its tests, and too few rows say so.

use fundguard_core::{Op, Value};
use fundguard_suggest::backtest::check;
use fundguard_suggest::layout::SchemaIntake;
use fundguard_suggest::{Options, Profiler, suggest};

use crate::event;

/// `n` orders: CREATED → PAYING → PAID (every tenth FAILED and CANCELLED), each with a payment.
fn shop(n: i64) -> Vec<fundguard_core::ChangeEvent> {
    let mut events = Vec::new();
    let mut seq = 0;
    let mut push = |table: &str, op, at: i64, cols: &[(&str, Value)]| {
        seq += 1;
        events.push(event(table, op, at, seq, cols));
    };
    for i in 1..=n {
        let t = i * 15;
        let amount = Value::Int(1000 + i * 7);
        let currency = Value::String(if i % 3 == 0 { "USD" } else { "CNY" }.into());
        let fails = i % 10 == 0;
        let order = |status: &str| {
            vec![
                ("id", Value::Int(i)),
                ("status", Value::String(status.into())),
                ("pay_amount", amount.clone()),
                ("currency", currency.clone()),
            ]
        };
        let payment = |status: &str| {
            vec![
                ("id", Value::Int(i + 500)),
                ("order_id", Value::Int(i)),
                ("status", Value::String(status.into())),
                ("amount", amount.clone()),
                ("currency", currency.clone()),
                ("channel", Value::String(if i % 2 == 0 { "card" } else { "wallet" }.into())),
            ]
        };
        push("s.orders", Op::Insert, t, &order("CREATED"));
        push("s.orders", Op::Update, t + 5, &order("PAYING"));
        push("s.payments", Op::Insert, t + 6, &payment("INIT"));
        push("s.payments", Op::Update, t + 10 + i % 7, &payment(if fails { "FAILED" } else { "SUCCESS" }));
        push("s.orders", Op::Update, t + 11 + i % 7, &order(if fails { "CANCELLED" } else { "PAID" }));
    }
    events.sort_by_key(|e| e.commit_time);
    events
}

fn suggestions(events: &[fundguard_core::ChangeEvent]) -> fundguard_suggest::suggest::Suggestions {
    let mut intake = SchemaIntake::new(Vec::new());
    for e in events {
        intake.observe(e);
    }
    let mut p = Profiler::new(intake.layout());
    for e in events {
        p.observe(e);
    }
    let layout = p.layout().clone();
    suggest(&p.finish(), &layout, &Options::default())
}

#[test]
fn a_small_shop_gets_sign_currency_state_machine_timeout_and_reconcile_rules() {
    let made = suggestions(&shop(400));
    let ids: Vec<&str> = made.made.iter().map(|s| s.id.as_str()).collect();
    for id in [
        "orders-pay-amount-positive",
        "payments-amount-positive",
        "orders-currency-known",
        "orders-state-machine",
        "orders-stuck-in-paying",
        "payments-stuck-in-init",
        "payments-failed-rate-by-channel",
        "payments-matches-orders",
    ] {
        assert!(ids.contains(&id), "{id} not in {ids:?}");
    }
    let (checked, rejected) = check(made.made, &Default::default());
    assert!(rejected.is_empty(), "{rejected:?}");
    assert!(checked.len() >= 8);
    let reconcile = checked.iter().find(|c| c.suggestion.id == "payments-matches-orders").unwrap();
    assert!(reconcile.file.contains("when: \"after.status = 'SUCCESS'\""), "{}", reconcile.file);
    assert!(
        reconcile.file.contains("expect: \"left.amount = right.pay_amount AND left.currency = right.currency\""),
        "{}",
        reconcile.file
    );
}

#[test]
fn too_few_rows_get_no_suggestion_and_say_why() {
    let made = suggestions(&shop(5));
    assert!(made.made.iter().all(|s| s.kind != "sign"), "{:?}", made.made);
    let why = made.skipped.iter().find(|s| s.subject == "s.orders.pay_amount").unwrap();
    assert!(why.reason.contains("only 15 row(s)"), "{}", why.reason);
}
