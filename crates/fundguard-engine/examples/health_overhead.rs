//! What rule health costs the engine: the example rules (checks and stateful kinds) over the
//! simulator's events, evaluated with health accounting on (as always) and off — the drift
//! watch, per-table counts and event times (`Engine::account_health`) — alternating rounds
//! so both see the same machine state. The rest of rule health (sending increments every
//! 2 s, the store, the judging) runs on other threads.
//!
//! Rerun: `cargo run --release -p fundguard-engine --example health_overhead [ORDERS] [ROUNDS]`

use std::time::{Duration, Instant};

use fundguard_core::{ChangeEvent, EventTime, TableSchemas};
use fundguard_engine::Engine;
use fundguard_rules::load_paths;
use fundguard_sim::{SimConfig, Simulator, schema};

const BATCH: usize = 8192;

fn run(rules: &[fundguard_rules::Rule], schemas: &TableSchemas, events: &[ChangeEvent], watch: bool) -> Duration {
    let mut engine = Engine::new(rules, schemas).expect("the example rules compile");
    engine.account_health(watch);
    let mut out = Vec::new();
    let started = Instant::now();
    for batch in events.chunks(BATCH) {
        engine.process(batch, EventTime::from_micros(0), &mut out).expect("evaluates");
        out.clear();
    }
    engine.finish(EventTime::from_micros(0), &mut out);
    started.elapsed()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let orders: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/rules");
    let (rules, problems) = load_paths(&[root]);
    assert!(problems.is_empty(), "{problems:?}");
    let schemas = schema();
    let mut events = Vec::new();
    let mut sim = Simulator::new(SimConfig { orders, hours: 24, incident_rate: 0.01, ..SimConfig::default() });
    sim.run(|e| events.push(e));
    println!("{} events of {orders} orders, {} rules, batches of {BATCH}", events.len(), rules.len());
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        off.push(run(&rules, &schemas, &events, false));
        on.push(run(&rules, &schemas, &events, true));
    }
    let best = |d: &[Duration]| d.iter().min().copied().unwrap_or_default();
    let rate = |d: Duration| events.len() as f64 / d.as_secs_f64();
    let (on, off) = (best(&on), best(&off));
    println!("without health accounting: {:.3} s, {:.0} events/s (best of {rounds})", off.as_secs_f64(), rate(off));
    println!("with health accounting:    {:.3} s, {:.0} events/s (best of {rounds})", on.as_secs_f64(), rate(on));
    println!("cost: {:.2} %", (on.as_secs_f64() / off.as_secs_f64() - 1.0) * 100.0);
}
