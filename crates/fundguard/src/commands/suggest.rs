//! `fundguard suggest`: profiles a sample of change logs and of warehouse or database
//! tables, and writes suggested rules — each
//! loaded, compiled and tested like any rule file, then backtested over the same sample
//! through the batch pipeline `backtest` uses — with a report of the evidence.
//!
//! Two passes over the inputs, so the sample is never held in memory: the first decodes
//! and profiles (undecodable messages go to the dead-letter file), the second replays the
//! same messages through the engine with the suggested rules. Tables are read twice the
//! same way, each row an insert of the row as it stands.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use fundguard_core::{ChangeEvent, EventTime, Finding, Position};
use fundguard_engine::Engine;
use fundguard_formats::{Decoded, Decoder};
use fundguard_sources::open_lines;
use fundguard_suggest::backtest::{Backtest, check};
use fundguard_suggest::layout::SchemaIntake;
use fundguard_suggest::report::Report;
use fundguard_suggest::suggest::Skipped;
use fundguard_suggest::{Options, Profiler, suggest};

use super::backtest::FormatArg;
use crate::pipeline::{BatchPipeline, DeadLetters, FindingSink};

#[derive(clap::Args)]
pub struct Args {
    /// Recorded logs, one message per line, plain or gzip (files: they are read twice).
    #[arg(long, num_args = 1.., required_unless_present = "warehouse", requires = "format")]
    input: Vec<PathBuf>,
    /// The format of the --input logs.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// A fundguard.yaml whose `warehouse:` tables — files, and PostgreSQL, MySQL/MariaDB or
    /// SQLite databases — are profiled too: each table's rows as they stand (up to --limit
    /// rows per table, default 100,000). A table has no history: it gives column, unit, sum
    /// and relation suggestions, not state machines, timeouts or rates.
    #[arg(long)]
    warehouse: Option<PathBuf>,
    /// Declared column types (also classify columns: `tables: {db.table: {column: type}}`).
    #[arg(long)]
    schema: Option<PathBuf>,
    /// MySQL/PostgreSQL DDL files describing the tables (types, comments, foreign keys).
    #[arg(long, num_args = 1..)]
    ddl: Vec<PathBuf>,
    /// Profile at most this many change events of the logs (whole messages: the sample ends
    /// after the message that reaches it), and at most this many rows of each table.
    #[arg(long)]
    limit: Option<u64>,
    /// Directory for the rule files, report.md and report.json (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Where undecodable messages go (default: OUT/dead-letter.jsonl).
    #[arg(long)]
    dead_letter: Option<PathBuf>,
    /// Columns, states and relations with fewer rows get no suggestion.
    #[arg(long, default_value_t = 30)]
    min_rows: u64,
    /// The owner written into every rule (default: the table's name, for review).
    #[arg(long)]
    owner: Option<String>,
    /// The failure-rate rules' window.
    #[arg(long, default_value = "10m")]
    rate_window: String,
    /// Suggestions rejected in an earlier review (YAML, `rule-id: why`): not proposed again;
    /// the report lists each with its reason. Default: OUT/rejected.yaml, where the
    /// console's Suggestions page records rejections, when it exists.
    #[arg(long)]
    rejected: Option<PathBuf>,
    /// Events per micro-batch of the backtest.
    #[arg(long, default_value_t = 8192)]
    batch_size: usize,
    /// Longer messages (lines) are dead-lettered unread.
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
}

/// Events decoded before the tables are classified: the sample's own columns count.
const CLASSIFY_AFTER: usize = 20_000;

/// Rows read of each warehouse table without --limit.
const TABLE_ROWS: u64 = 100_000;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.input.iter().any(|i| i.as_os_str() == "-") {
        anyhow::bail!(
            "--input -: suggest reads its input twice (to profile, then to backtest), so it needs files, not stdin"
        );
    }
    if args.limit == Some(0) {
        anyhow::bail!("--limit 0 leaves nothing to profile: give a positive number of events, or leave it out");
    }
    let window = fundguard_rules::parse_duration(&args.rate_window)
        .map_err(|e| anyhow::anyhow!("--rate-window {}: {e}", args.rate_window))?;
    let window = i64::try_from(window.as_micros()).unwrap_or(i64::MAX);
    if window < 60_000_000 {
        anyhow::bail!("--rate-window {}: at least 1m (rates are counted per minute)", args.rate_window);
    }
    let rejected_before = match &args.rejected {
        Some(path) => rejected(path)?,
        None if args.out.join(REJECTED_FILE).exists() => rejected(&args.out.join(REJECTED_FILE))?,
        None => BTreeMap::new(),
    };
    let schemas = crate::schemas::load(args.schema.as_ref())?;
    let mut changes = Vec::new();
    if let Some(path) = &args.schema {
        changes.extend(fundguard_coverage::schema::from_schema_file(&schemas, &path.display().to_string()));
    }
    for path in &args.ddl {
        let (found, problems) = super::coverage::read_ddl(path)?;
        for p in problems {
            eprintln!("warning: {p}");
        }
        changes.extend(found);
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let dead_letter = args.dead_letter.clone().unwrap_or_else(|| args.out.join("dead-letter.jsonl"));
    let format = args.format.map(|f| f.format(args.table.as_deref(), args.table_field.as_deref(), &args.time_field));
    let tables = match &args.warehouse {
        Some(path) => Some(Tables::open(path, args.limit.unwrap_or(TABLE_ROWS))?),
        None => None,
    };

    // Pass 1: profile.
    let started = Instant::now();
    let mut sample = Sample::new(DeadLetters::new(dead_letter.clone()), SchemaIntake::new(changes), args.limit);
    if let Some(format) = &format {
        let mut decoder = format.decoder(schemas.clone()).with_max_message_bytes(args.max_message_bytes);
        for input in &args.input {
            let mut lines = open_lines(input)
                .with_context(|| format!("opening {}", input.display()))?
                .with_max_line(args.max_message_bytes);
            while !sample.full() {
                let Some((line, position)) = lines.next_line()? else { break };
                sample.push(&mut decoder, line, &position)?;
            }
        }
    }
    if let Some(tables) = &tables {
        tables.read(|events| events.into_iter().for_each(|e| sample.observe(e)))?;
    }
    let (profile, layout, messages, dead_letters) = sample.finish()?;
    if profile.events == 0 {
        anyhow::bail!(
            "no change events in the input ({messages} message(s), {dead_letters} undecodable: see {}; {} table row(s)); check --format and the tables",
            dead_letter.display(),
            tables.as_ref().map_or(0, |t| t.rows.get())
        );
    }
    let profiled = started.elapsed();
    let options = Options { min_rows: args.min_rows.max(1), owner: args.owner.clone(), rate_window_micros: window };
    let mut suggestions = suggest(&profile, &layout, &options);
    let (made, before): (Vec<_>, Vec<_>) =
        suggestions.made.into_iter().partition(|s| !rejected_before.contains_key(&s.id));
    for s in before {
        let why = &rejected_before[&s.id];
        suggestions.skipped.push(Skipped { kind: s.kind, subject: s.id, reason: format!("rejected in review: {why}") });
    }
    let (checked, rejected) = check(made, &schemas);
    let suggested = started.elapsed() - profiled;

    // Pass 2: backtest the same messages through the engine.
    let started = Instant::now();
    let rules: Vec<_> = checked.iter().map(|c| c.rule.clone()).collect();
    let engine = Engine::new(&rules, &schemas).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("the suggested rules do not compile together: {}", list.join("\n"))
    })?;
    let mut backtest = Counting(Backtest::new());
    // The tables first, through an engine of their own: their rows are not ordered in time
    // with the logs' events.
    let mut table_engine = None;
    if let Some(tables) = &tables {
        let mut engine =
            Engine::new(&rules, &schemas).map_err(|_| anyhow::anyhow!("the suggested rules do not compile"))?;
        let mut findings = Vec::new();
        let mut failed = None;
        tables.read(|events| {
            if let Err(e) = engine.process(&events, tables.read_at, &mut findings) {
                failed.get_or_insert(e);
            }
            findings.drain(..).for_each(|f| backtest.0.record(&f));
        })?;
        if let Some(e) = failed {
            anyhow::bail!("backtesting the suggestions over the tables: {e}");
        }
        engine.finish(tables.read_at, &mut findings);
        findings.drain(..).for_each(|f| backtest.0.record(&f));
        table_engine = Some(engine);
    }
    let mut engines = Vec::from_iter(table_engine);
    if let Some(format) = &format {
        let decoder = format.decoder(schemas.clone()).with_max_message_bytes(args.max_message_bytes);
        let mut pipeline =
            BatchPipeline::new(decoder, engine, &mut backtest, args.batch_size, dead_letter.clone(), false);
        for input in &args.input {
            pipeline.expect_source(&input.display().to_string());
        }
        let mut left = messages;
        for input in &args.input {
            let mut lines = open_lines(input)
                .with_context(|| format!("opening {}", input.display()))?
                .with_max_line(args.max_message_bytes);
            while left > 0 {
                let Some((line, position)) = lines.next_line()? else { break };
                pipeline.push(line, &position)?;
                left -= 1;
            }
            pipeline.finish_source(lines.name())?;
        }
        engines.push(pipeline.finish()?.1);
    }
    let mut backtest = backtest.0;
    for engine in &engines {
        for stats in engine.stats() {
            backtest.errors(&stats.rule, stats.errors, stats.last_error.clone());
        }
    }
    fundguard_suggest::backtest::sql(&checked, &profile, &schemas, &mut backtest);
    let backtested = started.elapsed();

    let report =
        Report::new(layout, profile, &checked, |id| backtest.result(id), rejected, suggestions.skipped, dead_letters);
    let written: Vec<String> = checked.iter().map(|c| format!("{}.yaml", c.suggestion.id)).collect();
    let stale = remove_stale(&args.out, &written)?;
    for (c, name) in checked.iter().zip(&written) {
        write(&args.out.join(name), &c.file)?;
    }
    write(&args.out.join("report.md"), &report.markdown())?;
    write(&args.out.join("report.json"), &report.json())?;
    print!("{}", report.summary());
    println!(
        "{} suggestion(s) written to {} ({} not written, {} subject(s) without a suggestion: see report.md)",
        checked.len(),
        args.out.display(),
        report.rejected.len(),
        report.skipped.len()
    );
    println!(
        "profiled {} events in {:.1}s; suggested and tested in {:.1}s; backtested in {:.1}s",
        report.sample.events,
        profiled.as_secs_f64(),
        suggested.as_secs_f64(),
        backtested.as_secs_f64()
    );
    if stale > 0 {
        println!(
            "{stale} file(s) of an earlier run's suggestions not made this time removed from {}",
            args.out.display()
        );
    }
    if dead_letters > 0 {
        println!("{dead_letters} undecodable message(s) written to {}", dead_letter.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Removes rule files an earlier run suggested (they start with the suggestion header) that
/// this run does not write, so DIR holds exactly this run's suggestions; other files stay.
fn remove_stale(dir: &Path, written: &[String]) -> anyhow::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if !name.ends_with(".yaml") || written.contains(&name) {
            continue;
        }
        let suggested = std::fs::read_to_string(&path)
            .map(|text| text.starts_with(fundguard_suggest::render::HEADER))
            .unwrap_or(false);
        if suggested {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The review's rejections: rule id → why.
/// Where the console's review records rejections, in the `--out` directory; read there
/// when `--rejected` is not given.
pub const REJECTED_FILE: &str = "rejected.yaml";

/// Reviewers' rejections: `rule-id: why it was rejected`, one per line.
pub fn rejected(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading --rejected {}", path.display()))?;
    if text.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    serde_saphyr::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}; expected one `rule-id: why it was rejected` per line", path.display()))
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The first pass: decodes messages (dead-lettering the bad ones), classifies the tables
/// once the first events are in, then profiles every event, up to the limit.
struct Sample {
    dead_letters: DeadLetters,
    intake: SchemaIntake,
    /// Events waiting for the classification.
    early: Vec<ChangeEvent>,
    profiler: Option<Profiler>,
    limit: Option<u64>,
    events: u64,
    messages: u64,
    bad: u64,
    scratch: Vec<ChangeEvent>,
}

impl Sample {
    fn new(dead_letters: DeadLetters, intake: SchemaIntake, limit: Option<u64>) -> Sample {
        Sample {
            dead_letters,
            intake,
            early: Vec::new(),
            profiler: None,
            limit,
            events: 0,
            messages: 0,
            bad: 0,
            scratch: Vec::new(),
        }
    }

    fn full(&self) -> bool {
        self.limit.is_some_and(|l| self.events >= l)
    }

    fn push(&mut self, decoder: &mut Decoder, message: &[u8], position: &Position) -> anyhow::Result<()> {
        self.messages += 1;
        self.scratch.clear();
        match decoder.decode(message, position, &mut self.scratch) {
            Ok(Decoded::Events(_)) => {}
            Ok(Decoded::Skipped(_)) => return Ok(()),
            Err(e) => {
                self.bad += 1;
                return self.dead_letters.write(message, position, &e.to_string());
            }
        }
        let mut events = std::mem::take(&mut self.scratch);
        for event in events.drain(..) {
            self.observe(event);
        }
        self.scratch = events;
        Ok(())
    }

    /// Profiles one event (a decoded message's, or a table row).
    fn observe(&mut self, event: ChangeEvent) {
        self.events += 1;
        match &mut self.profiler {
            Some(p) => p.observe(&event),
            None => {
                self.intake.observe(&event);
                self.early.push(event);
                if self.early.len() >= CLASSIFY_AFTER {
                    self.classify();
                }
            }
        }
    }

    fn classify(&mut self) {
        let mut profiler = Profiler::new(self.intake.layout());
        for event in self.early.drain(..) {
            profiler.observe(&event);
        }
        self.profiler = Some(profiler);
    }

    /// The profile, the layout it was made with, the messages read and the dead letters.
    fn finish(mut self) -> anyhow::Result<(fundguard_suggest::Profile, fundguard_suggest::Layout, u64, u64)> {
        if self.profiler.is_none() {
            self.classify();
        }
        self.dead_letters.flush()?;
        let profiler = self.profiler.take().context("no profiler")?;
        let layout = profiler.layout().clone();
        Ok((profiler.finish(), layout, self.messages, self.bad))
    }
}

/// Findings of the backtest counted, not written.
struct Counting(Backtest);

impl FindingSink for Counting {
    fn write(&mut self, finding: &Finding) -> anyhow::Result<()> {
        self.0.record(finding);
        Ok(())
    }
}

/// The tables of a config's `warehouse:`, read the same way in both passes.
struct Tables {
    runtime: tokio::runtime::Runtime,
    warehouse: fundguard_warehouse::Warehouse,
    names: Vec<String>,
    limit: usize,
    /// The moment every row is stamped with (a table has no history).
    read_at: EventTime,
    rows: std::cell::Cell<u64>,
}

impl Tables {
    fn open(config: &Path, limit: u64) -> anyhow::Result<Tables> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let config = super::load_config(config)?;
        let warehouse = super::open_warehouse(&runtime, &config)?;
        let names = warehouse.table_names();
        if names.is_empty() {
            anyhow::bail!("--warehouse: the config's `warehouse:` has no tables to profile");
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let read_at = EventTime::from_micros(i64::try_from(now.as_micros()).unwrap_or(i64::MAX));
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(Tables { runtime, warehouse, names, limit, read_at, rows: std::cell::Cell::new(0) })
    }

    /// Every table's rows, batch by batch.
    fn read(&self, mut each: impl FnMut(Vec<ChangeEvent>)) -> anyhow::Result<()> {
        let mut total = 0;
        for name in &self.names {
            total += self.runtime.block_on(self.warehouse.rows(name, self.limit, self.read_at, &mut each))?;
        }
        self.rows.set(total);
        Ok(())
    }
}
