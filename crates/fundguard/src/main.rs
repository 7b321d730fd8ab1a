//! `fundguard`: the command line. Every subcommand is one module in `commands/`.

mod alerting;
mod commands;
mod config;
mod examples;
mod health;
mod live;
mod logging;
mod lookups;
mod pipeline;
mod schemas;
mod summary;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Decoding allocates many small values; mimalloc serves them faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Real-time fund-safety verification: change events in, money invariants checked, findings out.
#[derive(Parser)]
#[command(name = "fundguard", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How the service logs to stderr: `text` for people, `json` for log collectors
    /// (levels and fields; `FUNDGUARD_LOG` filters, e.g. `warn`).
    #[arg(long, global = true, value_enum, default_value_t)]
    log_format: logging::LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate a shop with injected incidents and check the built-in example rules on it.
    Demo(commands::demo::Args),
    /// Write simulated shop change logs (Debezium, Canal, Maxwell) and an answer key.
    Simulate(commands::simulate::Args),
    /// Check rule files and report every problem with file, line and column.
    Validate(commands::validate::Args),
    /// Run the tests written inside rule files.
    Test(commands::test::Args),
    /// Replay recorded change logs through rules and write the findings.
    Backtest(commands::backtest::Args),
    /// Run as a service over live sources (see docs/sources.md).
    Run(commands::run::Args),
    /// List, show and work alerts: acknowledge, resolve with a root cause, close, assign, note.
    Alerts(commands::alerts::Args),
    /// Incidents: alerts grouped by cause, with the likely causes ranked; work them as a whole.
    Incidents(commands::incidents::Args),
    /// Changes (deploys, config, flags, migrations) that attribution ranks against incidents.
    Changes(commands::changes::Args),
    /// Reports over the alert store: `report daily` is the daily clearing per team.
    Report(commands::report::Args),
    /// Scheduled SQL rules by hand: `sql run RULE --date D` (or a --from/--to backfill), `sql runs`.
    Sql(commands::sql::Args),
    /// Which money fields, metrics and cross-system flows the rules protect; `--diff` gates a migration.
    Coverage(commands::coverage::Args),
    /// Suggest rules from a sample of change logs: profiled, tested, backtested, with a report.
    Suggest(commands::suggest::Args),
    /// Rule health: `rules health` judges every rule failing, drifted, stale, noisy, silent or ok.
    Rules(commands::rules::Args),
    /// Write the schema file rules need from DDL files or a live server: `schema import`.
    Schema(commands::schema::Args),
    /// Show (and verify) the checkpoint `fundguard run` keeps in its data directory.
    Checkpoint(commands::checkpoint::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let result = match cli.command {
        Command::Demo(args) => commands::demo::run(args),
        Command::Alerts(args) => commands::alerts::run(args),
        Command::Incidents(args) => commands::incidents::run(args),
        Command::Changes(args) => commands::changes::run(args),
        Command::Report(args) => commands::report::run(args),
        Command::Checkpoint(args) => commands::checkpoint::run(args),
        Command::Simulate(args) => commands::simulate::run(args),
        Command::Validate(args) => commands::validate::run(args),
        Command::Test(args) => commands::test::run(args),
        Command::Backtest(args) => commands::backtest::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Sql(args) => commands::sql::run(args),
        Command::Coverage(args) => commands::coverage::run(args),
        Command::Suggest(args) => commands::suggest::run(args),
        Command::Rules(args) => commands::rules::run(args),
        Command::Schema(args) => commands::schema::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
