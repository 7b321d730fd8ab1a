//! `fundguard sql`: scheduled SQL rules by hand.
//!
//! - `sql run RULE --date D` runs a rule for one business date; `--from D1 --to D2`
//!   backfills a range, with a progress bar. Findings are printed as JSON lines (or
//!   written to `--out`); each run is recorded in the data directory's run history.
//! - `sql runs` lists that history.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::NaiveDate;
use fundguard_rules::RuleBody;
use fundguard_warehouse::{History, RunStatus};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Run a sql rule for a business date, or for every date of a range (a backfill).
    Run(RunArgs),
    /// List recorded runs, newest last.
    Runs(RunsArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// The rule id.
    rule: String,
    /// The fundguard.yaml that declares the rules and the warehouse tables.
    #[arg(long, default_value = "fundguard.yaml")]
    config: PathBuf,
    /// The business date (`{{ ds }}`), e.g. 2026-11-25.
    #[arg(long, conflicts_with_all = ["from", "to"], required_unless_present = "from")]
    date: Option<NaiveDate>,
    /// The first business date of a backfill.
    #[arg(long, requires = "to")]
    from: Option<NaiveDate>,
    /// The last business date of a backfill (included).
    #[arg(long, requires = "from")]
    to: Option<NaiveDate>,
    /// Write findings here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(clap::Args)]
struct RunsArgs {
    #[arg(long, default_value = "fundguard.yaml")]
    config: PathBuf,
    /// Only this rule's runs.
    #[arg(long)]
    rule: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Run(args) => run_rule(args),
        Command::Runs(args) => list_runs(args),
    }
}

fn run_rule(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&args.config)?;
    let rules = super::rules(&config.rules)?;
    let rule = rules.iter().find(|r| r.id == args.rule).with_context(|| {
        let sql: Vec<&str> = rules.iter().filter(|r| !r.body.is_streaming()).map(|r| r.id.as_str()).collect();
        format!("no rule `{}`: the sql rules are {}", args.rule, sql.join(", "))
    })?;
    anyhow::ensure!(
        matches!(rule.body, RuleBody::Sql(_)),
        "`{}` is a {} rule, not a sql rule",
        rule.id,
        rule.body.kind()
    );
    let dates: Vec<NaiveDate> = match (args.date, args.from, args.to) {
        (Some(d), _, _) => vec![d],
        (None, Some(from), Some(to)) => {
            anyhow::ensure!(from <= to, "--from {from} is after --to {to}");
            from.iter_days().take_while(|d| *d <= to).collect()
        }
        _ => anyhow::bail!("give --date, or --from and --to"),
    };
    let history = History::open(&config.data_dir).context("opening the run history in the data directory")?;
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let warehouse = super::open_warehouse(&runtime, &config)?;
    let progress = indicatif::ProgressBar::new(dates.len() as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} business dates {msg} [{elapsed}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (mut findings, mut failed) = (0u64, 0usize);
    for ds in dates {
        progress.set_message(ds.to_string());
        let outcome = runtime.block_on(fundguard_warehouse::run(&warehouse, rule, ds, None, &chrono::Utc::now));
        for finding in &outcome.findings {
            serde_json::to_writer(&mut out, finding)?;
            out.write_all(b"\n")?;
        }
        let r = &outcome.record;
        findings += r.findings;
        if r.status != RunStatus::Ok {
            failed += 1;
        }
        progress.suspend(|| eprintln!("{r}"));
        history.record(r).context("recording the run")?;
        progress.inc(1);
    }
    out.flush()?;
    progress.finish_and_clear();
    eprintln!("{findings} finding(s); {failed} failed run(s)");
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn list_runs(args: RunsArgs) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&args.config)?;
    let history = History::open(&config.data_dir)?;
    for r in history.runs()?.iter().filter(|r| args.rule.as_ref().is_none_or(|id| *id == r.rule)) {
        if args.json {
            println!("{}", serde_json::to_string(r)?);
        } else {
            println!("{} {r}", r.started.format("%Y-%m-%dT%H:%M:%SZ"));
        }
    }
    Ok(ExitCode::SUCCESS)
}
