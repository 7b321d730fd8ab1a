//! `fundguard simulate`: writes simulated shop change logs, an answer key and the schema.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::ValueEnum;
use fundguard_core::{ChangeEvent, Op, TableSchemas};
use fundguard_formats::{canal, debezium, maxwell};
use fundguard_sim::{IncidentKind, Outage, SimConfig, Simulator, Slice, schema};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutFormat {
    Debezium,
    Canal,
    Maxwell,
}

#[derive(clap::Args)]
pub struct Args {
    /// Directory for the logs (`debezium.jsonl`, ...), `answer-key.jsonl`, `schema.yaml`
    /// (and `changes.jsonl` with `--bad-deploy`).
    #[arg(long)]
    out: PathBuf,
    /// Formats to write.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "debezium,canal,maxwell")]
    format: Vec<OutFormat>,
    /// Number of orders (about 10 change events each).
    #[arg(long, default_value_t = 2000, conflicts_with = "events")]
    orders: u64,
    /// Approximate number of change events instead of a number of orders.
    #[arg(long)]
    events: Option<u64>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Hours of simulated time over which orders arrive.
    #[arg(long, default_value_t = 4)]
    hours: u32,
    /// Fraction of orders carrying an injected incident; 0 writes a clean shop.
    #[arg(long, default_value_t = 0.01)]
    incident_rate: f64,
    /// Debezium: wrap each event in the JSON converter's `schema`/`payload` envelope.
    #[arg(long)]
    schema_wrapper: bool,
    /// A bad deploy of `payment-gateway` from 30 % to 45 % of the hours: payments of this
    /// channel carry one fen more than their order (`changes.jsonl` lists the deploy, its
    /// rollback and an unrelated earlier deploy).
    #[arg(long, value_name = "CHANNEL")]
    bad_deploy: Option<String>,
    /// From 70 % to 85 % of the hours, this merchant's orders stay in PAYING after their
    /// payment succeeded (a partner's outage: no change behind it).
    #[arg(long, value_name = "MERCHANT")]
    merchant_outage: Option<i64>,
}

/// Events per order, measured on the simulator's defaults (used to turn `--events` into orders).
pub const EVENTS_PER_ORDER: u64 = 10;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let orders = args.events.map_or(args.orders, |e| (e / EVENTS_PER_ORDER).max(1));
    let mut outages = Vec::new();
    if let Some(channel) = &args.bad_deploy {
        let service = Some("payment-gateway".to_string());
        outages.push(Outage { slice: Slice::Channel(channel.clone()), from: 0.30, until: 0.45, service });
    }
    if let Some(merchant) = args.merchant_outage {
        outages.push(Outage { slice: Slice::Merchant(merchant), from: 0.70, until: 0.85, service: None });
    }
    let config = SimConfig {
        seed: args.seed,
        hours: args.hours,
        orders,
        incident_rate: args.incident_rate,
        kinds: IncidentKind::ALL.to_vec(),
        outages,
        ..SimConfig::default()
    };
    let tables = schema();
    let mut writers = LogWriters::create(&args.out, &args.format, args.schema_wrapper)?;
    let mut sim = Simulator::new(config);
    let mut failure = None;
    sim.run(|e| {
        if failure.is_none()
            && let Err(err) = writers.write(e, &tables)
        {
            failure = Some(err);
        }
    });
    if let Some(err) = failure {
        return Err(err);
    }
    let events = writers.finish(&tables)?;
    let mut key = BufWriter::new(File::create(args.out.join("answer-key.jsonl"))?);
    for incident in sim.incidents() {
        serde_json::to_writer(&mut key, incident)?;
        key.write_all(b"\n")?;
    }
    key.flush()?;
    if !sim.changes().is_empty() {
        let mut changes = BufWriter::new(File::create(args.out.join("changes.jsonl"))?);
        for change in sim.changes() {
            serde_json::to_writer(&mut changes, change)?;
            changes.write_all(b"\n")?;
        }
        changes.flush()?;
    }
    std::fs::write(args.out.join("schema.yaml"), schema_yaml(&tables))?;
    println!(
        "{events} change events of {orders} orders, {} incidents, written to {}",
        sim.incidents().len(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The schema as the YAML `--schema` reads.
pub fn schema_yaml(tables: &TableSchemas) -> String {
    let mut out = String::from("# Column types of the simulated shop (fundguard --schema).\ntables:\n");
    for (table, columns) in &tables.tables {
        out.push_str(&format!("  {table}:\n"));
        for (column, ty) in columns {
            out.push_str(&format!("    {column}: {ty}\n"));
        }
    }
    out
}

/// Writes each event in every requested format. Canal batches the rows of one
/// statement (same table, op and commit time) into one message, as Canal does.
pub struct LogWriters {
    debezium: Option<BufWriter<File>>,
    canal: Option<BufWriter<File>>,
    maxwell: Option<BufWriter<File>>,
    options: debezium::EncodeOptions,
    pending_canal: Vec<ChangeEvent>,
    canal_id: u64,
    xid: u64,
    count: u64,
}

impl LogWriters {
    pub fn create(dir: &std::path::Path, formats: &[OutFormat], schema_wrapper: bool) -> anyhow::Result<Self> {
        let open = |f: OutFormat, name: &str| -> anyhow::Result<Option<BufWriter<File>>> {
            if !formats.contains(&f) {
                return Ok(None);
            }
            let path = dir.join(name);
            Ok(Some(BufWriter::with_capacity(
                1 << 20,
                File::create(&path).with_context(|| format!("creating {}", path.display()))?,
            )))
        };
        Ok(LogWriters {
            debezium: open(OutFormat::Debezium, "debezium.jsonl")?,
            canal: open(OutFormat::Canal, "canal.jsonl")?,
            maxwell: open(OutFormat::Maxwell, "maxwell.jsonl")?,
            options: debezium::EncodeOptions {
                schema_wrapper,
                decimal_mode: if schema_wrapper {
                    debezium::DecimalMode::Precise
                } else {
                    debezium::DecimalMode::String
                },
            },
            pending_canal: Vec::new(),
            canal_id: 0,
            xid: 0,
            count: 0,
        })
    }

    pub fn write(&mut self, event: ChangeEvent, tables: &TableSchemas) -> anyhow::Result<()> {
        self.count += 1;
        let empty = Default::default();
        let columns = tables.table(&event.table).unwrap_or(&empty);
        if let Some(w) = &mut self.debezium {
            writeln!(w, "{}", debezium::encode(&event, columns, self.options))?;
        }
        if let Some(w) = &mut self.maxwell {
            self.xid += 1;
            writeln!(w, "{}", maxwell::encode(&event, self.xid))?;
        }
        if self.canal.is_some() {
            let same_statement = self.pending_canal.first().is_some_and(|p| {
                p.table == event.table
                    && p.op == event.op
                    && p.commit_time == event.commit_time
                    && event.op != Op::Update
            });
            if !same_statement {
                self.flush_canal(tables)?;
            }
            self.pending_canal.push(event);
        }
        Ok(())
    }

    fn flush_canal(&mut self, tables: &TableSchemas) -> anyhow::Result<()> {
        if let (Some(w), Some(first)) = (&mut self.canal, self.pending_canal.first()) {
            self.canal_id += 1;
            let empty = Default::default();
            let columns = tables.table(&first.table).unwrap_or(&empty);
            let refs: Vec<&ChangeEvent> = self.pending_canal.iter().collect();
            writeln!(w, "{}", canal::encode(self.canal_id, &refs, columns))?;
        }
        self.pending_canal.clear();
        Ok(())
    }

    /// Flushes every file; returns the number of events written.
    pub fn finish(mut self, tables: &TableSchemas) -> anyhow::Result<u64> {
        self.flush_canal(tables)?;
        for w in [&mut self.debezium, &mut self.canal, &mut self.maxwell].into_iter().flatten() {
            w.flush()?;
        }
        Ok(self.count)
    }
}
