//! `fundguard demo`: a simulated shop with injected incidents, checked by the built-in example rules.
//!
//! The simulator's events are written as Debezium JSON and read back through the
//! same decoder and pipeline a backtest uses, so the demo exercises the real path.
//! It ends with the per-rule table and, per incident kind, how many injected
//! incidents the rules caught.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use fundguard_core::{Finding, Position, Value};
use fundguard_engine::Engine;
use fundguard_formats::{Format, debezium};
use fundguard_sim::{Expected, Incident, IncidentKind, SimConfig, Simulator, schema};

use crate::examples::example_rules;
use crate::pipeline::{JsonLines, Pipeline};
use crate::summary;

#[derive(clap::Args)]
pub struct Args {
    /// Number of simulated orders.
    #[arg(long, default_value_t = 3000)]
    orders: u64,
    /// Fraction of orders carrying an incident.
    #[arg(long, default_value_t = 0.02)]
    incident_rate: f64,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Also write the findings here as JSON lines.
    #[arg(long)]
    findings: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let rules = example_rules().map_err(|d| anyhow::anyhow!("built-in rules are invalid: {d:?}"))?;
    let tables = schema();
    let engine = Engine::new(&rules, &tables).map_err(|d| anyhow::anyhow!("built-in rules are invalid: {d:?}"))?;
    let mut sim = Simulator::new(SimConfig {
        seed: args.seed,
        orders: args.orders,
        incident_rate: args.incident_rate,
        ..SimConfig::default()
    });
    let mut lines = Vec::new();
    let options = debezium::EncodeOptions { schema_wrapper: true, decimal_mode: debezium::DecimalMode::Precise };
    let empty = BTreeMap::new();
    sim.run(|e| lines.push(debezium::encode(&e, tables.table(&e.table).unwrap_or(&empty), options)));

    let mut findings: Vec<Finding> = Vec::new();
    let dead_letter = std::env::temp_dir().join("fundguard-demo-dead-letter.jsonl");
    let mut pipeline =
        Pipeline::new(Format::Debezium.decoder(Arc::new(tables)), engine, &mut findings, 8192, dead_letter, true);
    let input: Arc<str> = Arc::from("demo:debezium");
    for (i, line) in lines.iter().enumerate() {
        let position = Position::Line { input: input.clone(), line: i as u64 + 1, index: 0 };
        pipeline.push(line.as_bytes(), &position)?;
    }
    let (counters, engine) = pipeline.finish()?;
    if let Some(path) = &args.findings {
        let mut sink = JsonLines(std::io::BufWriter::new(std::fs::File::create(path)?));
        for f in &findings {
            crate::pipeline::FindingSink::write(&mut sink, f)?;
        }
        crate::pipeline::FindingSink::flush(&mut sink)?;
    }

    let mut out = std::io::stdout();
    println!("fundguard demo: {} simulated orders, {} rules (built in)\n", args.orders, rules.len());
    summary::write_table(&mut out, engine.stats())?;
    println!();
    summary::write_counters(&mut out, &counters, started.elapsed().as_secs_f64())?;
    println!();
    println!("{:<28}  {:>8}  {:>8}  expected findings", "injected incident", "injected", "caught");
    for (kind, injected, caught) in recall(sim.incidents(), &findings) {
        let rules: Vec<String> = kind.expected(&Default::default()).into_iter().map(|e| e.rule).collect();
        println!("{:<28}  {injected:>8}  {caught:>8}  {}", format!("{kind:?}"), rules.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

/// Per incident kind: how many were injected and how many produced every finding they should.
pub fn recall(incidents: &[Incident], findings: &[Finding]) -> Vec<(IncidentKind, usize, usize)> {
    let mut table: BTreeMap<IncidentKind, (usize, usize)> = BTreeMap::new();
    for incident in incidents {
        let entry = table.entry(incident.kind).or_default();
        entry.0 += 1;
        if incident.expected.iter().all(|e| findings.iter().any(|f| explains(e, f))) {
            entry.1 += 1;
        }
    }
    table.into_iter().map(|(k, (i, c))| (k, i, c)).collect()
}

/// An expected finding is met by a finding of its rule whose key has every expected column.
pub fn explains(expected: &Expected, finding: &Finding) -> bool {
    expected.rule == finding.rule && expected.key.iter().all(|(k, v)| finding.key.get(k).is_some_and(|fv| same(v, fv)))
}

fn same(a: &Value, b: &Value) -> bool {
    a == b || a.to_string() == b.to_string()
}
