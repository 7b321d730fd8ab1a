//! Benchmark: a storm of findings recorded into the SQLite alert store with dedup.
//!
//! `cargo run --release -p fundguard-alerts --example ingest_storm [FINDINGS] [FINGERPRINTS] [BATCH] [STORE]`
//! (defaults 1,000,000 / 10,000 / 1,000, SQLite in a temporary directory; STORE is a
//! PostgreSQL URL — an empty database — or `sqlite:PATH` for an SQLite file that is kept,
//! as the console benchmark does). Prints findings/s and what the store holds.
//! Findings spread over 20 rules, 5 teams and the 4 severities.

use std::collections::BTreeMap;
use std::time::Instant;

use fundguard_alerts::{AlertStore, StoreLocation};
use fundguard_core::{EventTime, Finding, Money, MoneyUnit, Severity, Value};

fn main() {
    let arg = |i: usize, default: usize| std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (total, fingerprints, batch) = (arg(1, 1_000_000), arg(2, 10_000), arg(3, 1_000));
    let dir = std::env::temp_dir().join(format!("fundguard-ingest-{}", std::process::id()));
    let location = match std::env::args().nth(4) {
        Some(path) if path.starts_with("sqlite:") => StoreLocation::Sqlite(path["sqlite:".len()..].into()),
        Some(url) => StoreLocation::Postgres(url),
        None => StoreLocation::Sqlite(dir.join("alerts.db")),
    };
    let mut store = location.open(fundguard_alerts::Policy::default()).expect("open the store");
    let started = Instant::now();
    let mut findings = Vec::with_capacity(batch);
    for i in 0..total {
        let id = (i * 7919) % fingerprints; // spread over the fingerprints
        findings.push(Finding {
            rule: format!("rule-{}", id % 20),
            owner: ["payments", "orders", "refunds", "settlement", "ledger"][id % 5].into(),
            severity: Severity::ALL[id % 4],
            key: BTreeMap::from([("order_id".to_string(), Value::Int(id as i64))]),
            event_time: EventTime::from_secs(1_700_000_000 + i as i64 / 1000),
            detected_at: EventTime::from_secs(1_700_000_001 + i as i64 / 1000),
            message: format!("order {id}: amount mismatch"),
            evidence: Vec::new(),
            money_at_risk: Some(Money::new(1999.into(), Some("CNY"), MoneyUnit::Minor)),
            tags: Default::default(),
            action: None,
            fingerprint_by: None,
        });
        if findings.len() == batch {
            store.record(&findings).expect("record");
            findings.clear();
        }
    }
    store.record(&findings).expect("record");
    let secs = started.elapsed().as_secs_f64();
    let alerts: u64 = store.status_counts().expect("count").iter().map(|(_, n)| n).sum();
    println!(
        "{location:?}: {total} findings over {fingerprints} fingerprints, batches of {batch}: {secs:.1} s = {:.0} findings/s; \
         {alerts} alerts",
        total as f64 / secs,
    );
    let _ = std::fs::remove_dir_all(dir);
}
