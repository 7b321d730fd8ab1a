//! What a `script` rule costs against the equivalent SQL check: the settlement-fees script of
//! `examples/script-rules` and a check with the same verdict, each alone in an engine over the
//! simulator's events, in alternating rounds so both see the same machine state. A third
//! engine with a check that only filters rows of another table gives the floor: routing and
//! batching the events, which every rule set pays.
//!
//! Rerun: `cargo run --release -p fundguard-engine --example script_cost [ORDERS] [ROUNDS]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use fundguard_core::{ChangeEvent, EventTime, TableSchemas};
use fundguard_engine::Engine;
use fundguard_rules::{Rule, load_paths, parse_rule};
use fundguard_sim::{SimConfig, Simulator, schema};

const BATCH: usize = 8192;

/// The allocator the `fundguard` binary runs with (its `main.rs`): the engine is measured as it runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The SQL check with the settlement script's verdict: commission and net both as computed.
const CHECK: &str = r#"id: settlement-fees-add-up-sql
owner: settlement
severity: critical
check:
  tables: [shop.settlements]
  when: "op <> 'delete'"
  assert: "after.commission_amount = round(after.gross_amount * after.commission_rate) AND after.net_amount = after.gross_amount - round(after.gross_amount * after.commission_rate)"
  key: { id: after.id }
  message: "settlement {{ after.id }}: commission {{ after.commission_amount }}, net {{ after.net_amount }}"
  money: { amount: "after.commission_amount - round(after.gross_amount * after.commission_rate)", currency: after.currency }
"#;

fn run(rules: &[Rule], schemas: &TableSchemas, events: &[ChangeEvent]) -> (Duration, usize) {
    let mut engine = Engine::new(rules, schemas).expect("the rules compile");
    let mut out = Vec::new();
    let mut findings = 0;
    let started = Instant::now();
    for batch in events.chunks(BATCH) {
        engine.process(batch, EventTime::from_micros(0), &mut out).expect("evaluates");
        findings += out.len();
        out.clear();
    }
    let took = started.elapsed();
    assert!(engine.stats().iter().all(|s| s.errors == 0), "{:?}", engine.stats());
    (took, findings)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let orders: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(9).max(1);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/script-rules");
    let (rules, problems) = load_paths(&[root.join("settlement-fees-add-up.yaml")]);
    assert!(problems.is_empty(), "{problems:?}");
    let script = rules;
    let (check, problems) = parse_rule(Arc::from("check.yaml"), CHECK);
    assert!(problems.is_empty(), "{problems:?}");
    let check = vec![check.expect("the check parses")];
    let floor_text = "id: floor\nowner: t\nseverity: low\ncheck:\n  tables: [shop.settlements]\n  when: \"op = 'delete'\"\n  assert: \"after.id > 0\"\n";
    let floor = vec![parse_rule(Arc::from("floor.yaml"), floor_text).0.expect("the floor parses")];
    let schemas = schema();
    let mut events = Vec::new();
    let mut sim = Simulator::new(SimConfig { orders, hours: 24, incident_rate: 0.01, ..SimConfig::default() });
    sim.run(|e| events.push(e));
    let settlements = events.iter().filter(|e| &*e.table == "shop.settlements").count();
    println!(
        "{} events of {orders} orders ({settlements} settlements), batches of {BATCH}, best of {rounds}",
        events.len()
    );
    let (mut floors, mut checks, mut scripts) = (Vec::new(), Vec::new(), Vec::new());
    let (mut check_found, mut script_found) = (0, 0);
    for _ in 0..rounds {
        floors.push(run(&floor, &schemas, &events).0);
        let (t, n) = run(&check, &schemas, &events);
        checks.push(t);
        check_found = n;
        let (t, n) = run(&script, &schemas, &events);
        scripts.push(t);
        script_found = n;
    }
    assert_eq!(check_found, script_found, "the check and the script find the same settlements");
    let best = |d: &[Duration]| d.iter().min().copied().unwrap_or_default();
    let (floor, check, script) = (best(&floors), best(&checks), best(&scripts));
    let per_row = |d: Duration| (d.saturating_sub(floor)).as_secs_f64() * 1e9 / settlements.max(1) as f64;
    println!("floor (routing and batching, no row evaluated): {:.3} s", floor.as_secs_f64());
    println!(
        "SQL check:   {:.3} s  ({:.0} ns per settlement above the floor), {check_found} findings",
        check.as_secs_f64(),
        per_row(check)
    );
    println!(
        "script rule: {:.3} s  ({:.0} ns per settlement above the floor), {script_found} findings",
        script.as_secs_f64(),
        per_row(script)
    );
    println!("script / check: {:.2}× in all (best of each)", script.as_secs_f64() / check.as_secs_f64());
    // Each round runs both back to back, so its ratio is measured under one machine state:
    // the median of those is steadier than best against best on a machine whose speed drifts.
    let mut ratios: Vec<f64> = scripts.iter().zip(&checks).map(|(s, c)| s.as_secs_f64() / c.as_secs_f64()).collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "script / check per round: median {:.2}×, range {:.2}×–{:.2}×",
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1]
    );
    println!("script / check above the floor: {:.2}×", per_row(script) / per_row(check).max(1e-9));
}
