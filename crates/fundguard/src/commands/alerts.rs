//! `fundguard alerts`: the alert lifecycle from the command line — list, show,
//! acknowledge, resolve with a root cause, close as false positive or expected,
//! assign, note. Every change is written to the alert's timeline with its actor.

use std::io::Write;
use std::process::ExitCode;

use fundguard_alerts::{Alert, AlertError, AlertStore, Change, Filter, SloFigures, SloReport, Status};
use fundguard_core::Severity;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: super::StoreArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Alerts, most recently seen first.
    List {
        /// open, acknowledged, resolved, false_positive or expected.
        #[arg(long)]
        status: Option<String>,
        /// The owning team.
        #[arg(long)]
        team: Option<String>,
        #[arg(long)]
        rule: Option<String>,
        /// critical, high, medium or low.
        #[arg(long)]
        severity: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// SLO figures per team and per rule: alerts, open, overdue, false positives, MTTD/MTTA/MTTR
    /// (default deadlines: critical 1 min detect, 5 min respond, 10 min resolve; `slo:` in
    /// the --config file changes them).
    Slo {
        #[arg(long)]
        json: bool,
    },
    /// The notification outbox: how many are pending, delivered and failed for good, and
    /// the failed ones with their errors (exit 1 when any failed).
    Outbox {
        /// How many failed notifications to list.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// One alert with its evidence, SLO clocks and timeline.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Take an open alert: the clock to respond stops.
    Ack {
        id: i64,
        #[command(flatten)]
        actor: Actor,
    },
    /// Close an alert with its root cause.
    Resolve {
        id: i64,
        #[arg(long)]
        root_cause: String,
        #[command(flatten)]
        actor: Actor,
    },
    /// Close an alert that was not a real problem; later findings only count.
    FalsePositive {
        id: i64,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        actor: Actor,
    },
    /// Close an alert for a known, accepted situation; later findings only count.
    Expected {
        id: i64,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        actor: Actor,
    },
    Assign {
        id: i64,
        #[arg(long)]
        to: String,
        #[command(flatten)]
        actor: Actor,
    },
    Note {
        id: i64,
        #[arg(long)]
        text: String,
        #[command(flatten)]
        actor: Actor,
    },
    /// Let the alert's containment action that waits for approval run.
    Approve {
        id: i64,
        #[command(flatten)]
        actor: Actor,
    },
    /// Cancel the alert's containment action that waits for approval.
    Reject {
        id: i64,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        actor: Actor,
    },
}

#[derive(clap::Args)]
pub(crate) struct Actor {
    /// Who makes the change (default: $USER).
    #[arg(long)]
    by: Option<String>,
}

impl Actor {
    pub(crate) fn name(&self) -> String {
        self.by.clone().or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "cli".into())
    }
}

/// A request the store refuses (an unknown id, a change the status does not allow, a bad
/// filter) exits 1 with the reason; a broken store exits 2 like every other failure.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    refusals_exit_1(work(args))
}

/// A refusal (an unknown id, a change the status does not allow, a bad argument) exits 1
/// with the reason; a closed pipe (`| head`) is success; anything else stays an error.
pub(crate) fn refusals_exit_1(result: anyhow::Result<ExitCode>) -> anyhow::Result<ExitCode> {
    match result {
        Err(e) if e.downcast_ref::<Refused>().is_some() || e.downcast_ref::<AlertError>().is_some_and(refused) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) => {
            Ok(ExitCode::SUCCESS) // the reader (`| head`) has what it wanted
        }
        other => other,
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Refused(pub(crate) String);

fn refused(e: &AlertError) -> bool {
    matches!(e, AlertError::InvalidChange(_) | AlertError::NotFound(_) | AlertError::IncidentNotFound(_))
}

fn work(args: Args) -> anyhow::Result<ExitCode> {
    let super::AlertsAt { mut store, slo, .. } = args.store.open()?;
    let now = crate::pipeline::wall_clock();
    let (id, change, actor) = match args.command {
        Command::List { status, team, rule, severity, limit, offset, json } => {
            let status = status
                .map(|s| {
                    Status::parse(&s).ok_or_else(|| {
                        Refused(format!(
                            "--status {s}: expected one of open, acknowledged, resolved, false_positive, expected"
                        ))
                    })
                })
                .transpose()?;
            let severity = severity
                .map(|s| {
                    serde_json::from_value::<Severity>(serde_json::Value::String(s.clone()))
                        .map_err(|_| Refused(format!("--severity {s}: expected critical, high, medium or low")))
                })
                .transpose()?;
            let alerts = store.list(&Filter { status, owner: team, rule, severity, since: None, limit, offset })?;
            let mut out = std::io::stdout().lock();
            if json {
                for a in &alerts {
                    writeln!(out, "{}", serde_json::to_string(a)?)?;
                }
            } else {
                print_table(&mut out, &alerts)?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::Slo { json } => {
            let alerts = store.list(&Filter { limit: usize::MAX >> 1, ..Filter::default() })?;
            let report = SloReport::compute(&alerts, &slo, now);
            let mut out = std::io::stdout().lock();
            if json {
                writeln!(out, "{}", serde_json::to_string(&report)?)?;
            } else {
                print_slo(&mut out, "team", &report.by_team)?;
                writeln!(out)?;
                print_slo(&mut out, "rule", &report.by_rule)?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::Outbox { limit } => {
            let (pending, delivered, failed) = store.notification_counts()?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "pending {pending}, delivered {delivered}, failed {failed}")?;
            for n in store.failed_notifications(limit)? {
                let error = n.last_error.as_deref().unwrap_or("-");
                writeln!(
                    out,
                    "  failed #{}: alert {} {} to {} after {} attempt(s): {error}",
                    n.id, n.alert_id, n.event, n.channel, n.attempts
                )?;
            }
            return Ok(if failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS });
        }
        Command::Show { id, json } => {
            let (alert, timeline) = store.get(id)?;
            let overdue = slo.overdue(&alert, now);
            let mut out = std::io::stdout().lock();
            if json {
                writeln!(out, "{}", serde_json::json!({ "alert": alert, "overdue": overdue, "timeline": timeline }))?;
            } else {
                print_alert(&mut out, &alert)?;
                writeln!(
                    out,
                    "  overdue:     detect {}, respond {}, resolve {}",
                    overdue.detect, overdue.respond, overdue.resolve
                )?;
                writeln!(out, "timeline:")?;
                for t in timeline {
                    let detail = t.detail.map(|d| format!(": {d}")).unwrap_or_default();
                    writeln!(out, "  {}  {:<24} by {}{detail}", t.at, t.action, t.actor)?;
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::Ack { id, actor } => (id, Change::Acknowledge, actor),
        Command::Resolve { id, root_cause, actor } => (id, Change::Resolve { root_cause }, actor),
        Command::FalsePositive { id, reason, actor } => (id, Change::FalsePositive { reason }, actor),
        Command::Expected { id, reason, actor } => (id, Change::Expected { reason }, actor),
        Command::Assign { id, to, actor } => (id, Change::Assign { to }, actor),
        Command::Note { id, text, actor } => (id, Change::Note { text }, actor),
        Command::Approve { id, actor } => (id, Change::ApproveAction, actor),
        Command::Reject { id, reason, actor } => (id, Change::RejectAction { reason }, actor),
    };
    let alert = store.change(id, &change, &actor.name(), now)?;
    println!("alert {}: {} ({})", alert.id, alert.status, change.action());
    Ok(ExitCode::SUCCESS)
}

fn print_table(out: &mut impl Write, alerts: &[Alert]) -> std::io::Result<()> {
    let header = ("id", "status", "severity", "team", "rule", "count", "last seen");
    writeln!(
        out,
        "{:>6}  {:<13} {:<8} {:<12} {:<30} {:>5}  {:<27} message",
        header.0, header.1, header.2, header.3, header.4, header.5, header.6
    )?;
    for a in alerts {
        writeln!(
            out,
            "{:>6}  {:<13} {:<8} {:<12} {:<30} {:>5}  {:<27} {}",
            a.id,
            a.status.as_str(),
            a.severity.as_str(),
            a.owner,
            a.rule,
            a.count,
            a.last_seen.to_string(),
            a.message
        )?;
    }
    Ok(())
}

fn print_alert(out: &mut impl Write, a: &Alert) -> std::io::Result<()> {
    writeln!(out, "alert {} — {} {} ({})", a.id, a.severity, a.rule, a.status)?;
    writeln!(out, "  team:        {}", a.owner)?;
    writeln!(out, "  key:         {}", a.key)?;
    writeln!(out, "  message:     {}", a.message)?;
    writeln!(out, "  findings:    {} (first {}, last {})", a.count, a.first_seen, a.last_seen)?;
    writeln!(out, "  detected in: {} ms after the commit", a.detection_micros() / 1000)?;
    if let Some(m) = &a.money_at_risk {
        let exact = if m.minor { format!("{} minor units", m.amount.normalize()) } else { "as given".to_string() };
        writeln!(out, "  money:       {} ({exact})", m.display())?;
    }
    if !a.tags.is_empty() {
        writeln!(out, "  tags:        {}", a.tags.join(", "))?;
    }
    if let Some(who) = &a.assignee {
        writeln!(out, "  assignee:    {who}")?;
    }
    if let Some(cause) = &a.root_cause {
        writeln!(out, "  root cause:  {cause}")?;
    }
    writeln!(out, "  evidence:    {}", a.evidence)
}

fn print_slo(
    out: &mut impl Write,
    by: &str,
    rows: &std::collections::BTreeMap<String, SloFigures>,
) -> std::io::Result<()> {
    let ms = |v: Option<i64>| v.map_or_else(|| "-".to_string(), |v| format!("{:.1} s", v as f64 / 1000.0));
    writeln!(
        out,
        "{by:<32} {:>7} {:>6} {:>8} {:>6} {:>10} {:>10} {:>10}",
        "alerts", "open", "overdue", "false+", "MTTD", "MTTA", "MTTR"
    )?;
    for (name, f) in rows {
        writeln!(
            out,
            "{name:<32} {:>7} {:>6} {:>8} {:>6} {:>10} {:>10} {:>10}",
            f.alerts,
            f.open,
            f.overdue,
            f.false_positives,
            ms(f.mttd_ms),
            ms(f.mtta_ms),
            ms(f.mttr_ms)
        )?;
    }
    Ok(())
}
