//! `fundguard rules health`: every rule's health — failing, drifted, stale, noisy, silent
//! or ok, with the reasons and the figures behind them — from what the config's alert store
//! keeps (the statistics `fundguard run` writes). See docs/health.md.

use std::path::PathBuf;
use std::process::ExitCode;

use fundguard_health::{RuleHealth, State};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: RulesCommand,
}

#[derive(clap::Subcommand)]
enum RulesCommand {
    /// Each rule's health with its reasons and statistics (exit 1 when a rule is failing,
    /// drifted or stale).
    Health {
        /// The fundguard.yaml of the service: its rules, alert store and `health:` thresholds.
        #[arg(long)]
        config: PathBuf,
        /// text or json (one object per rule).
        #[arg(long, default_value = "text")]
        format: String,
        /// Only the rules of this owner.
        #[arg(long)]
        owner: Option<String>,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let RulesCommand::Health { config, format, owner } = args.command;
    if !matches!(format.as_str(), "text" | "json") {
        anyhow::bail!("--format {format}: expected text or json");
    }
    let mut judged = crate::health::assess_config(&super::load_config(&config)?)?;
    judged.retain(|h| owner.as_ref().is_none_or(|o| &h.owner == o));
    if format == "json" {
        println!("{}", serde_json::to_string_pretty(&judged)?);
    } else {
        print!("{}", text(&judged));
    }
    let urgent = judged.iter().any(|h| matches!(h.state, State::Failing | State::Drifted | State::Stale));
    Ok(if urgent { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// One line per rule, then its reasons indented.
fn text(judged: &[RuleHealth]) -> String {
    let mut out = String::new();
    for h in judged {
        let shadow = if h.mode == "shadow" { " (shadow)" } else { "" };
        out.push_str(&format!(
            "{:<8} {}{shadow}  owner {}  events {}  findings {}  alerts {}\n",
            h.state.as_str(),
            h.id,
            h.owner,
            h.totals.events,
            h.totals.findings,
            h.totals.alerts
        ));
        for r in &h.reasons {
            out.push_str(&format!("         - {}: {}\n", r.state.as_str(), r.message));
            for e in &r.evidence {
                out.push_str(&format!("             {e}\n"));
            }
        }
    }
    let count = |s: State| judged.iter().filter(|h| h.state == s).count();
    out.push_str(&format!(
        "\n{} rule(s): {}\n",
        judged.len(),
        State::ALL.iter().map(|s| format!("{} {}", count(*s), s.as_str())).collect::<Vec<_>>().join(", ")
    ));
    out
}
