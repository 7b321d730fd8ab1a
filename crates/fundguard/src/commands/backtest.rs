//! `fundguard backtest`: replays recorded change logs through rules and writes the findings.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::ValueEnum;
use fundguard_engine::Engine;
use fundguard_formats::Format;
use fundguard_formats::plain::{PlainConfig, TableFrom};
use fundguard_sources::open_lines;
use indicatif::{ProgressBar, ProgressStyle};

use crate::pipeline::{AlertSink, BatchPipeline, FindingSink, QueuedLines, Sinks};
use crate::summary;

#[derive(Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Debezium,
    Canal,
    Maxwell,
    Json,
}

impl FormatArg {
    /// The decoder's format; for `json`, which field (or fixed name) gives the table and
    /// which the event time (`--table`, `--table-field`, `--time-field`).
    pub fn format(self, table: Option<&str>, table_field: Option<&str>, time_field: &str) -> Format {
        match self {
            FormatArg::Debezium => Format::Debezium,
            FormatArg::Canal => Format::Canal,
            FormatArg::Maxwell => Format::Maxwell,
            FormatArg::Json => Format::Json(PlainConfig {
                table: match (table, table_field) {
                    (Some(t), _) => TableFrom::Fixed(t.to_string()),
                    (None, Some(f)) => TableFrom::Field(f.to_string()),
                    (None, None) => TableFrom::Field("type".into()),
                },
                time_field: time_field.to_string(),
            }),
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// Rule files or directories of them.
    #[arg(long, required = true, num_args = 1..)]
    rules: Vec<PathBuf>,
    /// Recorded logs, one message per line, plain or gzip; `-` is stdin.
    #[arg(long, required = true, num_args = 1..)]
    input: Vec<PathBuf>,
    #[arg(long, value_enum)]
    format: FormatArg,
    /// Write findings here as JSON lines (default: stdout).
    #[arg(long)]
    findings: Option<PathBuf>,
    /// Also record findings as alerts in this SQLite alert store (a backtest's own store:
    /// keep it apart from the live one so history is not polluted).
    #[arg(long)]
    alerts: Option<PathBuf>,
    /// Where undecodable messages go (default: dead-letter.jsonl, or FINDINGS.dead-letter.jsonl).
    #[arg(long)]
    dead_letter: Option<PathBuf>,
    /// Fail on the first undecodable message instead of dead-lettering it.
    #[arg(long)]
    strict: bool,
    /// Declared column types for loosely typed sources.
    #[arg(long)]
    schema: Option<PathBuf>,
    /// Events per micro-batch.
    #[arg(long, default_value_t = 8192)]
    batch_size: usize,
    /// Longer messages (lines) are dead-lettered unread; at most this much of one is held in memory.
    #[arg(long, default_value_t = fundguard_formats::MAX_MESSAGE_BYTES)]
    max_message_bytes: usize,
    /// json format: every message belongs to this table (message type).
    #[arg(long, conflicts_with = "table_field")]
    table: Option<String>,
    /// json format: the field that names the message's table (default `type`).
    #[arg(long)]
    table_field: Option<String>,
    /// json format: the field with the event time (epoch ms or RFC 3339; default `ts`).
    #[arg(long, default_value = "ts")]
    time_field: String,
    /// Go on to the end of the input when a rule fails to evaluate (the run still exits
    /// non-zero); by default the backtest stops at the first batch a rule fails on.
    #[arg(long)]
    keep_going: bool,
    /// The input is a complete period: at its end every deadline still pending fires (a
    /// missing counterpart, an unfinished timeout), each saying it fired at end of input.
    #[arg(long = "final")]
    final_at_end: bool,
    /// The fundguard.yaml whose `lookups:` (and `warehouse:` tables) provide the reference
    /// data the rules read, and whose `incidents:` shape the `--alerts` store's incidents.
    #[arg(long)]
    config: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let schemas = crate::schemas::load(args.schema.as_ref())?;
    let rules = super::rules(&args.rules)?;
    let mut engine = Engine::new(&rules, &schemas).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("{}", list.join("\n"))
    })?;
    crate::lookups::fill_from(&mut engine, args.config.as_deref())?;
    let format = args.format.format(args.table.as_deref(), args.table_field.as_deref(), &args.time_field);
    let dead_letter = args.dead_letter.clone().unwrap_or_else(|| match &args.findings {
        Some(f) => PathBuf::from(format!("{}.dead-letter.jsonl", f.display())),
        None => PathBuf::from("dead-letter.jsonl"),
    });
    // A findings file that cannot be written (disk full, permission) fails the backtest,
    // naming the file: findings are never dropped silently.
    let json: Box<dyn FindingSink + Send> = match &args.findings {
        Some(path) => Box::new(QueuedLines::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
            path.display().to_string(),
        )),
        None => Box::new(QueuedLines::new(std::io::stdout(), "stdout")),
    };
    let mut sinks = vec![json];
    if let Some(path) = &args.alerts {
        // With a config, its incidents (flows, burst, services) shape the backtest's store too.
        let policy = match &args.config {
            Some(config) => super::load_config(config)?.store_policy_for(&rules),
            None => crate::config::with_fixed_columns(fundguard_alerts::Policy::default(), &rules),
        };
        sinks.push(Box::new(AlertSink::new(fundguard_alerts::SqliteStore::open(path)?.with_policy(policy))));
    }
    let mut sink = Sinks(sinks);
    let started = Instant::now();
    let progress = progress_bar();
    let mut decoder = format.decoder(schemas.clone()).with_max_message_bytes(args.max_message_bytes);
    decoder.set_projection(engine.projection());
    let mut pipeline = BatchPipeline::new(decoder, engine, &mut sink, args.batch_size, dead_letter, args.strict)
        .final_at_end(args.final_at_end);
    // Inputs are read one after another; declaring them all first makes event time wait
    // for every input, so a later file's older events are not late.
    for input in &args.input {
        pipeline.expect_source(&input.display().to_string());
    }
    let mut stopped = false;
    'inputs: for input in &args.input {
        let lines = open_lines(input).with_context(|| format!("opening {}", input.display()))?;
        let mut lines = lines.with_max_line(args.max_message_bytes);
        while let Some((line, position)) = lines.next_line()? {
            pipeline.push(line, &position)?;
            if !args.keep_going && pipeline.rule_failed() {
                stopped = true;
                break 'inputs;
            }
            if let Some(bar) = &progress
                && pipeline.counters.messages.is_multiple_of(65_536)
            {
                bar.set_position(pipeline.counters.events);
            }
        }
        pipeline.finish_source(lines.name())?;
    }
    let dead_letter = pipeline.dead_letter_path().clone();
    let (counters, engine) = pipeline.finish()?;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    // The report goes to stderr when findings take stdout, so they stay parseable.
    let mut report: Box<dyn Write> =
        if args.findings.is_some() { Box::new(std::io::stdout()) } else { Box::new(std::io::stderr()) };
    summary::write_table(&mut report, engine.stats())?;
    summary::write_counters(&mut report, &counters, started.elapsed().as_secs_f64())?;
    if counters.dead_letters > 0 {
        writeln!(report, "{} undecodable message(s) written to {}", counters.dead_letters, dead_letter.display())?;
    }
    if summary::write_rule_errors(&mut report, engine.stats())? {
        let what = if stopped {
            "stopped at the first batch a rule failed on (--keep-going runs to the end)"
        } else {
            "rules failed: their findings are incomplete"
        };
        eprintln!(
            "error: {what}; fix the rule — `fundguard validate --schema` finds type errors before any data is read"
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// A progress bar with events/s, only when a person is watching.
fn progress_bar() -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {human_pos} events  {per_sec}  {elapsed}").ok()?);
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    Some(bar)
}
