//! What alarm attribution's bookkeeping costs the pipeline: the example rules over the
//! simulator's events, with and without counting the traffic into the baseline (what the
//! `alerts` sink does for every batch), in alternating rounds; and what ranking an incident
//! of 100,000 findings costs (its profile built from their evidence rows, then ranked
//! against the baseline).
//!
//! Rerun: `cargo run --release -p fundguard-engine --example attribution_cost [ORDERS] [ROUNDS]`

use std::time::{Duration, Instant};

use fundguard_attribution::{Baseline, INCIDENT_CAPACITY, Profile, rank_dimensions};
use fundguard_core::{EventTime, Value};
use fundguard_engine::Engine;
use fundguard_rules::load_paths;
use fundguard_sim::{SimConfig, Simulator, schema};

const BATCH: usize = 8192;
const INCIDENT: usize = 100_000;

fn main() {
    let mut args = std::env::args().skip(1);
    let orders: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/rules");
    let (rules, problems) = load_paths(&[root]);
    assert!(problems.is_empty(), "{problems:?}");
    let schemas = schema();
    let mut events = Vec::new();
    Simulator::new(SimConfig { orders, hours: 24, incident_rate: 0.01, ..SimConfig::default() })
        .run(|e| events.push(e));
    println!("{} events of {orders} orders, {} rules, batches of {BATCH}, best of {rounds}", events.len(), rules.len());

    let (mut plain, mut counted, mut alone) = (Vec::new(), Vec::new(), Vec::new());
    let mut baseline = Baseline::default();
    for _ in 0..rounds {
        for with_baseline in [false, true] {
            let mut engine = Engine::new(&rules, &schemas).expect("the example rules compile");
            let mut out = Vec::new();
            baseline = Baseline::default();
            let started = Instant::now();
            for batch in events.chunks(BATCH) {
                if with_baseline {
                    baseline.observe(batch);
                }
                engine.process(batch, EventTime::from_micros(0), &mut out).expect("evaluates");
                out.clear();
            }
            if with_baseline { counted.push(started.elapsed()) } else { plain.push(started.elapsed()) }
        }
        let mut only = Baseline::default();
        let started = Instant::now();
        for batch in events.chunks(BATCH) {
            only.observe(batch);
        }
        alone.push(started.elapsed());
    }
    let best = |d: &[Duration]| d.iter().min().copied().unwrap_or_default();
    let (plain, counted, alone) = (best(&plain), best(&counted), best(&alone));
    let rate = |d: Duration| events.len() as f64 / d.as_secs_f64();
    println!("pipeline (decode excluded): {:.3} s, {:.0} events/s", plain.as_secs_f64(), rate(plain));
    println!("pipeline + baseline:        {:.3} s, {:.0} events/s", counted.as_secs_f64(), rate(counted));
    println!(
        "baseline alone: {:.3} s ({:.0} ns per event) = {:.2} % of the pipeline's time",
        alone.as_secs_f64(),
        alone.as_secs_f64() * 1e9 / events.len() as f64,
        100.0 * alone.as_secs_f64() / plain.as_secs_f64()
    );

    // An incident of 100,000 findings: card payments, each with its payment as evidence.
    let card = Value::from("card");
    let rows: Vec<_> = events
        .iter()
        .filter(|e| &*e.table == "shop.payments")
        .filter_map(|e| e.after.as_ref())
        .filter(|r| r.get("channel") == Some(&card))
        .cycle()
        .take(INCIDENT)
        .collect();
    let paired = baseline.profile.paired_columns();
    let started = Instant::now();
    let mut incident = Profile::new(INCIDENT_CAPACITY);
    for row in &rows {
        incident.observe("shop.payments", row, Some(paired.get("shop.payments").map_or(&[][..], Vec::as_slice)));
    }
    let profiled = started.elapsed();
    let started = Instant::now();
    let ranked = rank_dimensions(&incident, &baseline.profile, 5);
    let ranking = started.elapsed();
    println!(
        "incident of {INCIDENT} findings: profile {:.1} ms (as they join), ranking {:.3} ms; first cause {}",
        profiled.as_secs_f64() * 1e3,
        ranking.as_secs_f64() * 1e3,
        ranked.first().map_or("none", |c| c.name.as_str())
    );
}
