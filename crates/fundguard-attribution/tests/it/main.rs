//! Attribution over synthetic traffic: the injected slice ranks first, alone or as a pair.

use std::sync::Arc;

use fundguard_attribution::{Baseline, INCIDENT_CAPACITY, Profile, rank_dimensions};
use fundguard_core::{ChangeEvent, EventTime, Op, Position, Row, Value};

/// A payment of the synthetic shop: channel, currency and merchant spread evenly.
fn payment(i: i64) -> ChangeEvent {
    let mut row = Row::new();
    row.push(Arc::from("id"), Value::Int(i));
    row.push(Arc::from("channel"), Value::from(["alipay", "wechat", "card"][(i % 3) as usize]));
    row.push(Arc::from("currency"), Value::from(if i % 4 == 0 { "USD" } else { "CNY" }));
    row.push(Arc::from("merchant_id"), Value::Int(i % 97));
    row.push(Arc::from("status"), Value::from(if i % 10 == 0 { "FAILED" } else { "SUCCESS" }));
    ChangeEvent {
        table: Arc::from("shop.payments"),
        op: Op::Insert,
        before: None,
        after: Some(row),
        commit_time: EventTime::from_secs(i),
        position: Position::Synthetic { seq: i as u64 },
    }
}

fn baseline(n: i64) -> Baseline {
    let events: Vec<_> = (0..n).map(payment).collect();
    let mut baseline = Baseline::default();
    for batch in events.chunks(8192) {
        baseline.observe(batch);
    }
    baseline
}

fn incident_of(events: impl Iterator<Item = ChangeEvent>, baseline: &Baseline) -> Profile {
    let paired = baseline.profile.paired_columns();
    let mut incident = Profile::new(INCIDENT_CAPACITY);
    for e in events {
        let pairs = paired.get(&*e.table).map(Vec::as_slice).unwrap_or(&[]);
        incident.observe(&e.table, e.after.as_ref().unwrap(), Some(pairs));
    }
    incident
}

#[test]
fn the_one_broken_channel_ranks_first_and_ids_and_amount_like_columns_never_do() {
    let baseline = baseline(100_000);
    let broken =
        (0..100_000).map(payment).filter(|e| e.after.as_ref().unwrap().get("channel") == Some(&Value::from("card")));
    let incident = incident_of(broken.take(2000), &baseline);
    let ranked = rank_dimensions(&incident, &baseline.profile, 5);
    assert_eq!(ranked[0].name, "shop.payments.channel=card", "{ranked:#?}");
    assert!((ranked[0].support - 1.0).abs() < 1e-9 && (ranked[0].lift - 3.0).abs() < 0.1, "{:?}", ranked[0]);
    assert!(ranked.iter().all(|c| c.attributes.iter().all(|a| a.column != "id")), "{ranked:#?}");
    // A value as frequent in the traffic as in the incident explains nothing, alone or paired.
    assert!(ranked.iter().all(|c| !c.name.contains("currency=CNY")), "{ranked:#?}");
}

#[test]
fn one_merchant_outranks_the_channels_its_payments_happen_to_use() {
    let baseline = baseline(100_000);
    let merchant =
        (0..100_000).map(payment).filter(|e| e.after.as_ref().unwrap().get("merchant_id") == Some(&Value::Int(42)));
    let incident = incident_of(merchant, &baseline);
    let ranked = rank_dimensions(&incident, &baseline.profile, 5);
    assert_eq!(ranked[0].name, "shop.payments.merchant_id=42", "{ranked:#?}");
}

#[test]
fn a_pair_is_named_when_the_two_together_explain_more_than_either() {
    let baseline = baseline(100_000);
    let both = (0..100_000).map(payment).filter(|e| {
        let row = e.after.as_ref().unwrap();
        row.get("channel") == Some(&Value::from("card")) && row.get("currency") == Some(&Value::from("USD"))
    });
    let incident = incident_of(both, &baseline);
    let ranked = rank_dimensions(&incident, &baseline.profile, 5);
    assert_eq!(ranked[0].attributes.len(), 2, "{ranked:#?}");
    assert_eq!(ranked[0].name, "shop.payments.channel=card & shop.payments.currency=USD");
}

#[test]
fn an_incident_of_a_table_the_baseline_never_saw_has_no_dimension_causes() {
    let baseline = Baseline::default();
    let incident = incident_of((0..100).map(payment), &baseline);
    assert!(rank_dimensions(&incident, &baseline.profile, 5).is_empty());
}

#[test]
fn an_incident_from_one_table_of_the_traffic_names_its_origin() {
    // The traffic: as many orders as payments, from two sources.
    let order = |i: i64| {
        let mut e = payment(i);
        e.table = Arc::from("shop.orders");
        e.position = Position::Line { input: Arc::from("orders.jsonl"), line: i as u64, index: 0 };
        e
    };
    let events: Vec<_> = (0..20_000).map(|i| if i % 2 == 0 { payment(i) } else { order(i) }).collect();
    let mut baseline = Baseline::default();
    baseline.observe(&events);
    let mut incident = Profile::new(INCIDENT_CAPACITY);
    for e in events.iter().filter(|e| &*e.table == "shop.orders").take(500) {
        incident.observe_origin(&e.table, e.position.source());
    }
    let ranked = rank_dimensions(&incident, &baseline.profile, 5);
    let names: Vec<&str> = ranked.iter().map(|c| c.name.as_str()).collect();
    assert!(names.contains(&"(origin).table=shop.orders"), "{names:?}");
    assert!(names.contains(&"(origin).source=orders.jsonl"), "{names:?}");
}
