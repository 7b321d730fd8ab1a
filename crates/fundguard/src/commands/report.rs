//! `fundguard report daily`: the daily clearing report per team, as text, Markdown or HTML;
//! `fundguard report freshness`: every team's rules by health (run it weekly).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use fundguard_alerts::{AlertStore, DailyReport, Filter};
use fundguard_core::EventTime;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    report: Report,
}

#[derive(clap::Subcommand)]
enum Report {
    /// Per team: new, open, overdue, resolved and false-positive alerts, MTTA/MTTR and money at risk.
    Daily {
        /// The day (UTC), `YYYY-MM-DD`; default yesterday.
        #[arg(long)]
        date: Option<String>,
        /// text, markdown or html.
        #[arg(long, default_value = "text")]
        format: String,
        #[command(flatten)]
        store: super::StoreArgs,
        /// Write the report here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Send the report through these notification channels of the --config file
        /// (email gets text and HTML; bots and webhooks the text), repeatable.
        #[arg(long = "send", requires = "config")]
        send: Vec<String>,
        /// A coverage report (`fundguard coverage --format json`) whose figures per team end
        /// the report; default: the config's `console.coverage_report`, when it exists.
        #[arg(long)]
        coverage: Option<PathBuf>,
    },
    /// Per team: its rules by health state (failing, drifted, stale, noisy, silent, ok) and
    /// every rule that needs a look, with the reasons — the weekly freshness report.
    Freshness {
        /// The service's fundguard.yaml: its rules, alert store, health thresholds and channels.
        #[arg(long)]
        config: PathBuf,
        /// text, markdown or html.
        #[arg(long, default_value = "text")]
        format: String,
        /// Write the report here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Send the report through these notification channels of the config, repeatable.
        #[arg(long = "send")]
        send: Vec<String>,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (date, format, store, out, send, coverage) = match args.report {
        Report::Daily { date, format, store, out, send, coverage } => (date, format, store, out, send, coverage),
        Report::Freshness { config, format, out, send } => return freshness(&config, &format, out, &send),
    };
    let now = crate::pipeline::wall_clock();
    const DAY: i64 = 24 * 3600 * 1_000_000;
    let start = match &date {
        Some(d) => EventTime::parse(d).map_err(|e| anyhow::anyhow!("--date: {e}"))?,
        None => EventTime::from_micros((now.as_micros().div_euclid(DAY) - 1) * DAY),
    };
    let label = start.to_string().get(..10).unwrap_or_default().to_string();
    let opened = store.open()?;
    let alerts = opened.store.list(&Filter { limit: usize::MAX >> 1, ..Filter::default() })?;
    let report =
        DailyReport::compute(&alerts, &label, start, &opened.slo, now).with_incidents(opened.store.as_ref(), start)?;
    let explicit = coverage.is_some();
    let coverage = coverage.or_else(|| opened.config.as_ref().and_then(|c| c.console.coverage_report.clone()));
    let coverage_text = match &coverage {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) if explicit => anyhow::bail!("--coverage {}: {e}", path.display()),
            Err(_) => None, // the config names one that was not written yet: no section
        },
        None => None,
    };
    let section = |format: &str| -> anyhow::Result<String> {
        match &coverage_text {
            Some(json) => fundguard_coverage::report::summary_of_json(json, format).ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: not a coverage report; write it with `fundguard coverage --format json`",
                    coverage.as_deref().unwrap_or_else(|| std::path::Path::new("")).display()
                )
            }),
            None => Ok(String::new()),
        }
    };
    let text = match format.as_str() {
        "text" => report.text() + section("text")?.as_str(),
        "markdown" | "md" => report.markdown() + section("markdown")?.as_str(),
        "html" => with_section(report.html(), &section("html")?),
        other => {
            eprintln!("error: --format {other}: expected text, markdown or html");
            return Ok(ExitCode::from(1));
        }
    };
    match out {
        Some(path) => std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?,
        None if send.is_empty() => print!("{text}"),
        None => {}
    }
    let mut sent = true;
    if let Some(config) = opened.config.filter(|_| !send.is_empty()) {
        let message = fundguard_notify::Report {
            title: format!("fundguard daily clearing report {label}"),
            text: report.text() + section("text")?.as_str(),
            html: with_section(report.html(), &section("html")?),
        };
        sent = send_report(&config, &send, &message)?;
    }
    Ok(if sent { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `report freshness`: judges every rule now and reports per owner.
fn freshness(
    config: &std::path::Path,
    format: &str,
    out: Option<PathBuf>,
    send: &[String],
) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config)?;
    let judged = crate::health::assess_config(&config)?;
    let label = format!("week to {}", crate::health::day_before(crate::pipeline::wall_clock(), 0));
    let report = fundguard_health::FreshnessReport::new(label.clone(), &judged);
    let text = match format {
        "text" => report.text(),
        "markdown" | "md" => report.markdown(),
        "html" => report.html(),
        other => anyhow::bail!("--format {other}: expected text, markdown or html"),
    };
    match out {
        Some(path) => std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?,
        None if send.is_empty() => print!("{text}"),
        None => {}
    }
    let message = fundguard_notify::Report {
        title: format!("fundguard rule freshness, {label}"),
        text: report.text(),
        html: report.html(),
    };
    let sent = if send.is_empty() { true } else { send_report(&config, send, &message)? };
    Ok(if sent { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Sends a report through the config's channels named in `send`; `false` when one failed
/// (each failure is printed).
fn send_report(
    config: &crate::config::Config,
    send: &[String],
    message: &fundguard_notify::Report,
) -> anyhow::Result<bool> {
    let channels = crate::alerting::channels(config)?;
    let mut all_sent = true;
    for name in send {
        let Some(channel) = channels.get(name) else {
            anyhow::bail!("--send {name}: the config declares no such channel (notify.channels)");
        };
        match channel.send_report(message) {
            Ok(()) => eprintln!("sent the report to `{name}`"),
            Err(e) => {
                eprintln!("error: sending the report to `{name}`: {e}");
                all_sent = false;
            }
        }
    }
    Ok(all_sent)
}

/// An HTML report with a section added before its end.
fn with_section(html: String, section: &str) -> String {
    match html.rfind("</body>") {
        Some(at) => format!("{}{section}{}", &html[..at], &html[at..]),
        None => html + section,
    }
}
