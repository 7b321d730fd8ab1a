//! What an incident of 100,000 findings costs the alert store: recording them (each alert
//! joining the incident, its evidence counted into the incident's profile once per batch)
//! and reading the incident back with its causes ranked — what `fundguard incidents show`
//! and `GET /api/v1/incidents/{id}` do.
//!
//! Rerun: `cargo run --release -p fundguard-alerts --example incident_cost [FINDINGS]`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use fundguard_alerts::{AlertStore, SqliteStore};
use fundguard_attribution::Baseline;
use fundguard_core::{ChangeEvent, EventTime, Evidence, Finding, Money, MoneyUnit, Op, Position, Row, Severity, Value};

const BATCH: usize = 8192;

fn payment(i: i64) -> Row {
    let mut row = Row::new();
    row.push(Arc::from("id"), Value::Int(i));
    row.push(Arc::from("order_id"), Value::Int(1_000_000 + i));
    row.push(Arc::from("channel"), Value::from(["alipay", "wechat", "card"][(i % 3) as usize]));
    row.push(Arc::from("currency"), Value::from(if i % 4 == 0 { "USD" } else { "CNY" }));
    row.push(Arc::from("merchant_id"), Value::Int(i % 197));
    row.push(Arc::from("amount"), Value::Int(100 + i % 50_000));
    row
}

fn event(i: i64) -> ChangeEvent {
    ChangeEvent {
        table: Arc::from("shop.payments"),
        op: Op::Insert,
        before: None,
        after: Some(payment(i)),
        commit_time: EventTime::from_secs(1_700_000_000 + i / 100),
        position: Position::Synthetic { seq: i as u64 },
    }
}

fn main() {
    let n: i64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let dir = std::env::temp_dir().join(format!("fg-incident-cost-{}", std::process::id()));
    let mut store = SqliteStore::open(&dir.join("alerts.db")).expect("the store opens");
    let mut baseline = Baseline::default();
    let traffic: Vec<_> = (0..3 * n).map(event).collect();
    for batch in traffic.chunks(BATCH) {
        baseline.observe(batch);
    }
    store.save_baseline(&baseline.profile, EventTime::from_secs(1)).unwrap();
    // The incident: every card payment breaks, one alert each, a hundred per second of events.
    let findings: Vec<Finding> = traffic
        .iter()
        .filter(|e| e.after.as_ref().and_then(|r| r.get("channel")) == Some(&Value::from("card")))
        .take(n as usize)
        .map(|e| Finding {
            rule: "payment-amount".into(),
            owner: "payments".into(),
            severity: Severity::Critical,
            key: BTreeMap::from([("id".to_string(), e.after.as_ref().unwrap().get("id").unwrap().clone())]),
            event_time: e.commit_time,
            detected_at: e.commit_time,
            message: "the payment does not match its order".into(),
            evidence: vec![Evidence::of(e)],
            money_at_risk: Some(Money::new(1.into(), Some("CNY"), MoneyUnit::Minor)),
            tags: Default::default(),
            action: None,
            fingerprint_by: None,
        })
        .collect();
    let started = Instant::now();
    for batch in findings.chunks(BATCH) {
        store.record(batch).unwrap();
    }
    let recorded = started.elapsed();
    let incidents = store.incidents(None, 10).unwrap();
    assert_eq!(incidents.len(), 1, "one incident");
    let started = Instant::now();
    let detail = store.incident(incidents[0].id).unwrap();
    let read = started.elapsed();
    println!(
        "{} findings recorded in {:.2} s ({:.0} per second, incident bookkeeping included)",
        findings.len(),
        recorded.as_secs_f64(),
        findings.len() as f64 / recorded.as_secs_f64()
    );
    println!(
        "incident {} ({} alerts, {} keys): read with its causes ranked in {:.1} ms; first cause {}",
        detail.incident.id,
        detail.incident.alerts,
        detail.keys,
        read.as_secs_f64() * 1e3,
        detail.dimensions.first().map_or("none", |c| c.cause.name.as_str())
    );
    let _ = std::fs::remove_dir_all(dir);
}
