//! What the service says while it runs: `tracing` events with a level and fields
//! (`source`, `rule`, `position`, …), written to stderr.
//!
//! Two formats. `text` (the default) is for people at a terminal: one line per event,
//! `fundguard: ` and the message — the message itself names what it is about, so the
//! fields are not repeated. `json` (`--log-format json`) is for log collectors: one
//! object per line with the time, the level, the message and every field.
//!
//! `FUNDGUARD_LOG` filters events, in `tracing`'s target syntax: `warn` for warnings and
//! errors only, `info,fundguard_notify=debug` for more from one crate (default `info`).

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields};
use tracing_subscriber::fmt::{FmtContext, writer::BoxMakeWriter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `fundguard: <message>`, for people.
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, message and fields.
    Json,
}

/// Installs the process's logger. `FUNDGUARD_LOG` sets the levels; a value it cannot read
/// is reported once and the default (`info`) used.
pub fn init(format: LogFormat) {
    let (filter, problem) = match std::env::var("FUNDGUARD_LOG") {
        Ok(spec) if !spec.trim().is_empty() => match spec.parse::<Targets>() {
            Ok(filter) => (filter, None),
            Err(e) => (default_filter(), Some(format!("FUNDGUARD_LOG `{spec}`: {e}; logging at info"))),
        },
        _ => (default_filter(), None),
    };
    let builder = tracing_subscriber::fmt().with_writer(BoxMakeWriter::new(std::io::stderr)).with_ansi(false);
    let installed = match format {
        LogFormat::Text => {
            tracing_subscriber::util::SubscriberInitExt::try_init(builder.event_format(Terminal).finish().with(filter))
        }
        LogFormat::Json => tracing_subscriber::util::SubscriberInitExt::try_init(
            builder.json().flatten_event(true).with_current_span(false).finish().with(filter),
        ),
    };
    if installed.is_ok()
        && let Some(problem) = problem
    {
        tracing::warn!("{problem}");
    }
}

fn default_filter() -> Targets {
    Targets::new().with_default(tracing::Level::INFO)
}

/// The terminal format: `fundguard: <message>`.
struct Terminal;

impl<S, N> FormatEvent<S, N> for Terminal
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _: &FmtContext<'_, S, N>, mut writer: format::Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut message = Message(String::new());
        event.record(&mut message);
        writeln!(writer, "fundguard: {}", message.0)
    }
}

/// Collects an event's `message` field.
struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            use fmt::Write;
            let _ = write!(self.0, "{value:?}");
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }
}
