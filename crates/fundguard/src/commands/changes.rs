//! `fundguard changes`: the deploys, configuration changes, flags and migrations that
//! attribution ranks against incidents — added by hand, from a JSON-lines file (what a
//! deploy pipeline or `fundguard simulate --bad-deploy` writes), and listed.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use fundguard_attribution::Change;
use fundguard_core::EventTime;

use super::alerts::{Refused, refusals_exit_1};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: super::StoreArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Record one change, or every change of a JSON-lines file (`--file`).
    Add(Box<AddArgs>),
    /// Changes of the last `--hours` (default 24), oldest first.
    List {
        #[arg(long, default_value_t = 24)]
        hours: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct AddArgs {
    /// One change per line: `{"service", "kind", "at", "version", "author", "link",
    /// "tables", "description"}`.
    #[arg(long, conflicts_with_all = ["service", "kind", "at"])]
    file: Option<PathBuf>,
    #[arg(long, required_unless_present = "file")]
    service: Option<String>,
    /// deploy, config, flag, migration or ddl.
    #[arg(long, required_unless_present = "file")]
    kind: Option<String>,
    /// When it took effect (RFC 3339; default: now).
    #[arg(long)]
    at: Option<String>,
    #[arg(long)]
    version: Option<String>,
    #[arg(long)]
    author: Option<String>,
    #[arg(long)]
    link: Option<String>,
    /// Tables it changes directly (a migration's), `db.table`.
    #[arg(long, value_delimiter = ',')]
    tables: Vec<String>,
    #[arg(long)]
    description: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    refusals_exit_1(work(args))
}

fn work(args: Args) -> anyhow::Result<ExitCode> {
    let mut store = args.store.open()?.store;
    let now = crate::pipeline::wall_clock();
    let mut out = std::io::stdout().lock();
    match args.command {
        Command::Add(add) if add.file.is_some() => {
            let file = add.file.unwrap_or_default();
            let reader = std::io::BufReader::new(
                std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?,
            );
            let mut changes = Vec::new();
            for (n, line) in reader.lines().enumerate() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                let change: Change =
                    serde_json::from_str(&line).map_err(|e| Refused(format!("{}:{}: {e}", file.display(), n + 1)))?;
                change.validate().map_err(|e| Refused(format!("{}:{}: {e}", file.display(), n + 1)))?;
                changes.push(change);
            }
            for change in &changes {
                store.add_change(change, now)?;
            }
            writeln!(out, "{} change(s) recorded", changes.len())?;
        }
        Command::Add(add) => {
            let AddArgs { service, kind, at, version, author, link, tables, description, .. } = *add;
            let at = match at {
                Some(text) => EventTime::parse(&text).map_err(|e| Refused(format!("--at {text}: {e}")))?,
                None => now,
            };
            let change = Change {
                id: 0,
                service: service.unwrap_or_default(),
                kind: kind.unwrap_or_default(),
                version,
                at,
                author,
                link,
                tables,
                description,
            };
            change.validate().map_err(Refused)?;
            let id = store.add_change(&change, now)?;
            writeln!(out, "change {id} recorded")?;
        }
        Command::List { hours, json } => {
            let from = EventTime::from_micros(now.as_micros().saturating_sub(hours.saturating_mul(3_600_000_000)));
            for c in store.changes(from, now)? {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&c)?)?;
                } else {
                    let version = c.version.as_deref().unwrap_or("-");
                    writeln!(out, "{:<6} {:<26} {:<10} {:<24} {}", c.id, c.at.to_string(), c.kind, c.service, version)?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
