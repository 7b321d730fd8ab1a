//! `fundguard demo`: a simulated shop with injected incidents, checked by the built-in
//! example rules.
//!
//! By default it is the whole product, live: the simulator feeds change events in real
//! time through the example rules into an SQLite alert store, and the console is served
//! on 127.0.0.1 — a visitor sees alerts arrive within seconds. It is an ordinary
//! `fundguard run` over a config the demo writes (a `simulator` source), so it exercises
//! the real service.
//!
//! `--batch` runs the simulation at full speed instead: its events are written as
//! Debezium JSON and read back through the pipeline a backtest uses, ending with the
//! per-rule table and, per incident kind, how many injected incidents the rules caught.

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
use crate::pipeline::{BatchPipeline, JsonLines};
use crate::summary;

#[derive(clap::Args)]
pub struct Args {
    /// Run the simulation at full speed and print what the rules caught, instead of serving the console.
    #[arg(long)]
    batch: bool,
    /// Live demo: where the console listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Live demo: where the alert store, rules and positions go.
    #[arg(long, default_value = "fundguard-demo")]
    data_dir: PathBuf,
    /// Live demo: simulated seconds per real second.
    #[arg(long, default_value_t = 60)]
    speed: u32,
    /// Number of simulated orders (live default: 50,000 over a simulated day).
    #[arg(long)]
    orders: Option<u64>,
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
    if args.batch { batch(args) } else { live(args) }
}

/// The password of the demo's users: `FG_DEMO_PASSWORD`, or a fresh random one.
const PASSWORD_VAR: &str = "FG_DEMO_PASSWORD";

fn live(args: Args) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    let rules_dir = args.data_dir.join("rules");
    std::fs::create_dir_all(&rules_dir).with_context(|| format!("creating {}", rules_dir.display()))?;
    for (name, text) in crate::examples::EXAMPLE_RULES {
        std::fs::write(rules_dir.join(name), text)?;
    }
    let password = std::env::var(PASSWORD_VAR)
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| fundguard_server::auth::random_secret()[..16].to_string());
    // What the example rules protect of the simulator's schema, for the Coverage page.
    let schema = fundguard_coverage::schema::from_schema_file(&fundguard_sim::schema(), "the simulator's schema");
    let report = super::coverage::report_json(schema, std::slice::from_ref(&rules_dir));
    std::fs::write(args.data_dir.join("coverage.json"), report)?;
    let config_path = args.data_dir.join("fundguard.yaml");
    let orders = args.orders.unwrap_or(50_000);
    let users: String = ["admin", "operator", "viewer"]
        .iter()
        .map(|role| format!("    - {{ name: {role}, role: {role}, password_env: {PASSWORD_VAR} }}\n"))
        .collect();
    std::fs::write(
        &config_path,
        format!(
            "# Written by `fundguard demo`: a live shop simulator checked by the example rules.\n\
             rules: [rules]\ndata_dir: .\nlisten: {listen}\nidle_after: 2s\n\
             sources:\n  - {{ name: shop, type: simulator, orders: {orders}, incident_rate: {rate}, seed: {seed}, speed: {speed} }}\n\
             sinks:\n  - {{ type: alerts }}\nconsole:\n  coverage_report: coverage.json\n  users:\n{users}",
            listen = args.listen,
            rate = args.incident_rate,
            seed = args.seed,
            speed = args.speed,
        ),
    )?;
    let config = crate::config::load(&config_path, |var| {
        if var == PASSWORD_VAR { Some(password.clone()) } else { std::env::var(var).ok() }
    })
    .map_err(|problems| {
        anyhow::anyhow!("{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let result = runtime.block_on(async move {
        let listen = config.listen.clone().unwrap_or_default();
        println!("fundguard demo: a simulated shop ({orders} orders over a simulated day, {}x speed) checked by {} example rules", args.speed, crate::examples::EXAMPLE_RULES.len());
        println!("console: http://{listen}/  (users admin, operator, viewer; password {password})");
        println!("alerts are stored in {}; Ctrl-C stops", args.data_dir.join("alerts.db").display());
        crate::live::run(config).await
    });
    runtime.shutdown_background();
    result?;
    Ok(ExitCode::SUCCESS)
}

fn batch(args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let orders = args.orders.unwrap_or(3000);
    let rules = example_rules().map_err(|d| anyhow::anyhow!("built-in rules are invalid: {d:?}"))?;
    let tables = schema();
    let engine = Engine::new(&rules, &tables).map_err(|d| anyhow::anyhow!("built-in rules are invalid: {d:?}"))?;
    let mut sim = Simulator::new(SimConfig {
        seed: args.seed,
        orders,
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
        BatchPipeline::new(Format::Debezium.decoder(Arc::new(tables)), engine, &mut findings, 8192, dead_letter, true);
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
    println!("fundguard demo: {orders} simulated orders, {} rules (built in)\n", rules.len());
    summary::write_table(&mut out, engine.stats())?;
    summary::write_rule_errors(&mut out, engine.stats())?;
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
