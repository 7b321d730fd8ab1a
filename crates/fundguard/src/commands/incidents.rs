//! `fundguard incidents`: alerts grouped by cause — list, show with the likely causes
//! ranked (dimensions and changes, with the figures behind each), work an incident as a
//! whole (acknowledge, resolve: every alert of it, each audited), and confirm or reject a
//! ranked cause.

use std::io::Write;
use std::process::ExitCode;

use fundguard_alerts::{Change, IncidentDetail, IncidentStatus};

use super::alerts::{Actor, Refused, refusals_exit_1};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: super::StoreArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Incidents, most recent first.
    List {
        /// open, acknowledged or resolved.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// `json`: one JSON object per line instead of a table.
        #[arg(long, default_value = "text")]
        format: Format,
    },
    /// One incident: its alerts, money at risk and likely causes, ranked.
    Show {
        id: i64,
        #[arg(long, default_value = "text")]
        format: Format,
    },
    /// Acknowledge every open alert of the incident.
    Ack {
        id: i64,
        #[command(flatten)]
        actor: Actor,
    },
    /// Resolve every active alert of the incident with its root cause.
    Resolve {
        id: i64,
        #[arg(long)]
        root_cause: String,
        #[command(flatten)]
        actor: Actor,
    },
    /// Confirm a ranked cause (its name as `show` prints it: `shop.payments.channel=card`,
    /// `change:12`).
    Confirm {
        id: i64,
        cause: String,
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        actor: Actor,
    },
    /// Reject a ranked cause: it did not cause the incident.
    Reject {
        id: i64,
        cause: String,
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        actor: Actor,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    refusals_exit_1(work(args))
}

fn work(args: Args) -> anyhow::Result<ExitCode> {
    let mut store = args.store.open()?.store;
    let now = crate::pipeline::wall_clock();
    let mut out = std::io::stdout().lock();
    match args.command {
        Command::List { status, limit, format } => {
            let status = status
                .map(|s| {
                    IncidentStatus::parse(&s)
                        .ok_or_else(|| Refused(format!("--status {s}: expected open, acknowledged or resolved")))
                })
                .transpose()?;
            let incidents = store.incidents(status, limit)?;
            if format == Format::Json {
                for i in &incidents {
                    writeln!(out, "{}", serde_json::to_string(i)?)?;
                }
            } else {
                writeln!(
                    out,
                    "{:<6} {:<13} {:<34} {:<16} {:>7}  {:<25} money at risk",
                    "id", "status", "flow", "owner", "alerts", "started"
                )?;
                for i in &incidents {
                    writeln!(
                        out,
                        "{:<6} {:<13} {:<34} {:<16} {:>7}  {:<25} {}",
                        i.id,
                        i.status.as_str(),
                        i.flow,
                        i.owner,
                        i.alerts,
                        i.started_at.to_string(),
                        i.money_display
                    )?;
                }
            }
        }
        Command::Show { id, format } => {
            let detail = store.incident(id)?;
            if format == Format::Json {
                writeln!(out, "{}", serde_json::to_string(&detail)?)?;
            } else {
                print_detail(&mut out, &detail)?;
            }
        }
        Command::Ack { id, actor } => {
            let n = store.change_incident(id, &Change::Acknowledge, &actor.name(), now)?;
            writeln!(out, "incident {id}: {n} alert(s) acknowledged")?;
        }
        Command::Resolve { id, root_cause, actor } => {
            let n = store.change_incident(id, &Change::Resolve { root_cause }, &actor.name(), now)?;
            writeln!(out, "incident {id}: {n} alert(s) resolved")?;
        }
        Command::Confirm { id, cause, note, actor } => {
            store.cause_feedback(id, &cause, true, note.as_deref(), &actor.name(), now)?;
            writeln!(out, "incident {id}: `{cause}` confirmed as a cause")?;
        }
        Command::Reject { id, cause, note, actor } => {
            store.cause_feedback(id, &cause, false, note.as_deref(), &actor.name(), now)?;
            writeln!(out, "incident {id}: `{cause}` rejected as a cause")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An incident for people: its figures, then each kind of cause with what backs it.
fn print_detail(out: &mut impl Write, d: &IncidentDetail) -> std::io::Result<()> {
    let i = &d.incident;
    writeln!(out, "incident {} — {} ({}, team {}, {})", i.id, i.flow, i.status.as_str(), i.owner, i.severity.as_str())?;
    writeln!(out, "  {} alert(s) over {} key(s), money at risk {}", i.alerts, d.keys, i.money_display)?;
    writeln!(out, "  from {} to {} (opened {})", i.started_at, i.last_at, i.opened_at)?;
    if let Some(cause) = &i.root_cause {
        writeln!(out, "  root cause: {cause}")?;
    }
    writeln!(out, "\nlikely causes — dimensions (share of the incident vs of the traffic):")?;
    if d.dimensions.is_empty() {
        writeln!(out, "  none stands out (or no baseline yet: the alert store's sink counts the traffic)")?;
    }
    for (n, r) in d.dimensions.iter().enumerate() {
        let c = &r.cause;
        writeln!(
            out,
            "  {}. {}  {:.1} % of the incident ({}/{}), {:.2} % of the traffic, lift {:.1}, score {:.2}{}",
            n + 1,
            c.name,
            c.support * 100.0,
            c.incident_rows,
            c.incident_total,
            c.baseline_share * 100.0,
            c.lift,
            c.score,
            verdict(&r.feedback)
        )?;
    }
    writeln!(out, "\nlikely causes — changes before it:")?;
    if d.changes.is_empty() {
        writeln!(out, "  no change recorded in the 24 h before it (`fundguard changes add`)")?;
    }
    for (n, r) in d.changes.iter().enumerate() {
        let c = &r.cause;
        let version = c.change.version.as_deref().map(|v| format!(" {v}")).unwrap_or_default();
        writeln!(
            out,
            "  {}. {} ({} {}{} at {}, {:.0} min before): {}; score {:.2}{}",
            n + 1,
            c.name,
            c.change.kind,
            c.change.service,
            version,
            c.change.at,
            c.minutes_before,
            c.reason,
            c.score,
            verdict(&r.feedback)
        )?;
    }
    for f in &d.feedback {
        writeln!(out, "  {} {} by {} at {}", f.cause, f.verdict, f.actor, f.at)?;
    }
    Ok(())
}

fn verdict(feedback: &Option<fundguard_alerts::Feedback>) -> String {
    feedback.as_ref().map(|f| format!(" — {} by {}", f.verdict, f.actor)).unwrap_or_default()
}
