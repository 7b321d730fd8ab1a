//! What fundguard counts while it runs, for `/metrics` (Prometheus) and the console's
//! dashboard — one set of numbers, so the two never disagree.
//!
//! The pipeline, the notifier and the sources write into [`Telemetry`]; a scrape encodes
//! it with `prometheus-client` (OpenMetrics text). Names follow Prometheus conventions:
//! prefixed `fundguard_`, base units (seconds, bytes), counters ending in `_total`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use fundguard_core::{EventTime, Severity};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde::Serialize;

/// Upper bounds of the detection-latency buckets, in seconds (commit → finding).
pub const LATENCY_BUCKETS: [f64; 12] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// How many minutes of findings the dashboard can show.
const MINUTES_KEPT: usize = 24 * 60;

/// One rule's figures, as the engine reports them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RuleFigures {
    pub rule: String,
    pub kind: String,
    pub events: u64,
    pub findings: u64,
    pub errors: u64,
    pub last_error: Option<String>,
    pub state_bytes: u64,
    pub state_keys: u64,
    /// Stateful rules: events that arrived behind the rule's watermark (applied at once,
    /// out of commit order).
    pub late_events: u64,
}

/// Findings of one minute, per severity.
#[derive(Debug, Clone, Serialize)]
pub struct Minute {
    /// The minute's start.
    pub at: EventTime,
    pub critical: u64,
    pub high: u64,
    pub medium: u64,
    pub low: u64,
}

/// The detection-latency distribution: per bucket of [`LATENCY_BUCKETS`] the count of
/// findings at or under it (cumulative, as Prometheus has it), then the total.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

#[derive(Debug, Default, Clone)]
struct Counts {
    events_in: BTreeMap<(String, String), u64>,
    dead_letters: BTreeMap<String, u64>,
    decode_errors: BTreeMap<String, u64>,
    watermark_lag_seconds: BTreeMap<String, f64>,
    findings: BTreeMap<(String, Severity), u64>,
    rules: Vec<RuleFigures>,
    latency_le: [u64; LATENCY_BUCKETS.len()],
    latency_count: u64,
    latency_sum: f64,
    minutes: VecDeque<Minute>,
    notifications: BTreeMap<(String, String), u64>,
    alerts_by_status: BTreeMap<String, u64>,
    checkpoints: u64,
    checkpoint_bytes: u64,
    checkpoint_seconds: f64,
    checkpoint_write_seconds: f64,
    sql_runs: BTreeMap<(String, String), u64>,
    sql_run_seconds: BTreeMap<String, f64>,
    sql_last_ok: BTreeMap<String, f64>,
    sink_write_errors: BTreeMap<String, u64>,
    sinks_blocked: BTreeMap<String, bool>,
    /// (dimension, owner) → (covered, total), from the coverage report the console shows.
    coverage: BTreeMap<(String, String), (u64, u64)>,
    /// (rule, owner) → its health state, from the last judgement.
    rule_health: BTreeMap<(String, String), &'static str>,
}

/// Everything counted, behind one lock (updates are per batch, not per event).
#[derive(Debug, Default)]
pub struct Telemetry {
    counts: Mutex<Counts>,
}

impl Telemetry {
    fn with<T>(&self, f: impl FnOnce(&mut Counts) -> T) -> T {
        let mut guard = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }

    /// Events decoded from `source` for `table`.
    pub fn events_in(&self, source: &str, table: &str, n: u64) {
        self.with(|c| *c.events_in.entry((source.to_string(), table.to_string())).or_default() += n);
    }

    /// Messages of `source` that could not be decoded and went to its dead-letter file.
    pub fn dead_letters(&self, source: &str, n: u64) {
        self.with(|c| *c.dead_letters.entry(source.to_string()).or_default() += n);
    }

    /// Messages of `source` that could not be decoded: dead-lettered, or refused with
    /// their HTTP batch.
    pub fn decode_errors(&self, source: &str, n: u64) {
        self.with(|c| *c.decode_errors.entry(source.to_string()).or_default() += n);
    }

    /// A checkpoint was written: its size, how long taking it held the pipeline, and
    /// how long it took from then until it was on disk (encoded and written beside it).
    pub fn checkpoint(&self, bytes: u64, held: std::time::Duration, written: std::time::Duration) {
        self.with(|c| {
            c.checkpoints += 1;
            c.checkpoint_bytes = bytes;
            c.checkpoint_seconds = held.as_secs_f64();
            c.checkpoint_write_seconds = written.as_secs_f64();
        });
    }

    /// A scheduled SQL run of `rule` ended with `status` (`ok`, `failed`, `timed_out`)
    /// after `seconds`, at `ended` (Unix seconds).
    pub fn sql_run(&self, rule: &str, status: &str, seconds: f64, ended: f64) {
        self.with(|c| {
            *c.sql_runs.entry((rule.to_string(), status.to_string())).or_default() += 1;
            c.sql_run_seconds.insert(rule.to_string(), seconds);
            if status == "ok" {
                c.sql_last_ok.insert(rule.to_string(), ended);
            }
        });
    }

    /// How far `source`'s newest commit time is behind the wall clock.
    pub fn watermark_lag(&self, source: &str, seconds: f64) {
        self.with(|c| c.watermark_lag_seconds.insert(source.to_string(), seconds));
    }

    /// One finding: counted per rule, per minute and in the latency histogram.
    pub fn finding(&self, rule: &str, severity: Severity, event_time: EventTime, detected_at: EventTime) {
        // Saturating: times at the ends of the range must not overflow (a panic in debug builds).
        let latency = detected_at.micros_since(event_time).max(0) as f64 / 1e6;
        let minute = EventTime::from_micros(detected_at.as_micros().div_euclid(60_000_000).saturating_mul(60_000_000));
        self.with(|c| {
            *c.findings.entry((rule.to_string(), severity)).or_default() += 1;
            for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
                if latency <= *le {
                    c.latency_le[i] += 1;
                }
            }
            c.latency_count += 1;
            c.latency_sum += latency;
            if c.minutes.back().is_none_or(|m| m.at < minute) {
                c.minutes.push_back(Minute { at: minute, critical: 0, high: 0, medium: 0, low: 0 });
                if c.minutes.len() > MINUTES_KEPT {
                    c.minutes.pop_front();
                }
            }
            if let Some(m) = c.minutes.iter_mut().rev().find(|m| m.at == minute) {
                match severity {
                    Severity::Critical => m.critical += 1,
                    Severity::High => m.high += 1,
                    Severity::Medium => m.medium += 1,
                    Severity::Low => m.low += 1,
                }
            }
        });
    }

    /// Writing findings to `sink` failed (a full disk, a lost store): the pipeline holds
    /// the batch and retries.
    pub fn sink_write_failed(&self, sink: &str) {
        self.with(|c| *c.sink_write_errors.entry(sink.to_string()).or_default() += 1);
    }

    /// Whether the pipeline is held, reading nothing, because `sink` cannot take findings.
    pub fn sink_blocked(&self, sink: &str, blocked: bool) {
        self.with(|c| c.sinks_blocked.insert(sink.to_string(), blocked));
    }

    /// The coverage figures, (dimension, owner, covered, total), replacing the previous ones.
    pub fn coverage(&self, figures: Vec<(String, String, u64, u64)>) {
        self.with(|c| {
            c.coverage = figures.into_iter().map(|(d, o, covered, total)| ((d, o), (covered, total))).collect()
        });
    }

    /// Every rule's health state ((rule, owner, state)), replacing the previous ones.
    pub fn rule_health(&self, states: Vec<(String, String, &'static str)>) {
        self.with(|c| c.rule_health = states.into_iter().map(|(r, o, s)| ((r, o), s)).collect());
    }

    /// The engine's per-rule figures, replacing the previous ones.
    pub fn rules(&self, figures: Vec<RuleFigures>) {
        self.with(|c| c.rules = figures);
    }

    /// One notification attempt to `channel`: `delivered`, `retried` or `failed`.
    pub fn notification(&self, channel: &str, outcome: &str) {
        self.with(|c| *c.notifications.entry((channel.to_string(), outcome.to_string())).or_default() += 1);
    }

    /// Alerts per status, as the store counted them.
    pub fn alerts_by_status(&self, counts: BTreeMap<String, u64>) {
        self.with(|c| c.alerts_by_status = counts);
    }

    /// The per-rule figures.
    pub fn rule_figures(&self) -> Vec<RuleFigures> {
        self.with(|c| c.rules.clone())
    }

    /// Findings per minute per severity, oldest first, for the last `minutes`.
    pub fn findings_per_minute(&self, minutes: usize) -> Vec<Minute> {
        self.with(|c| c.minutes.iter().rev().take(minutes).rev().cloned().collect())
    }

    /// The detection-latency distribution so far.
    pub fn latency(&self) -> Latency {
        self.with(|c| Latency {
            buckets: LATENCY_BUCKETS.iter().copied().zip(c.latency_le.iter().copied()).collect(),
            count: c.latency_count,
            sum_seconds: c.latency_sum,
        })
    }

    /// A registry that encodes this telemetry on every scrape.
    pub fn registry(self: &std::sync::Arc<Self>) -> Registry {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Scrape(self.clone())));
        registry
    }
}

/// Renders the registry as OpenMetrics text, what `GET /metrics` answers.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Encoding into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

#[derive(Debug)]
struct Scrape(std::sync::Arc<Telemetry>);

/// Encodes one metric family of counters or gauges from `(labels, value)` pairs.
fn family<L: prometheus_client::encoding::EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    counter: bool,
    rows: impl IntoIterator<Item = (L, f64)>,
) -> Result<(), std::fmt::Error> {
    let kind = if counter { MetricType::Counter } else { MetricType::Gauge };
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in rows {
        let inner = metric.encode_family(&labels)?;
        if counter {
            ConstCounter::new(value as u64).encode(inner)?;
        } else {
            ConstGauge::new(value).encode(inner)?;
        }
    }
    Ok(())
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let c = self.0.with(|c| c.clone()); // encode a copy, not under the lock
        let l = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        family(
            &mut encoder,
            "fundguard_events_in",
            "Change events decoded, per source and table.",
            true,
            c.events_in.iter().map(|((s, t), n)| (l(&[("source", s), ("table", t)]), *n as f64)),
        )?;
        family(
            &mut encoder,
            "fundguard_dead_letters",
            "Messages that could not be decoded (written to the source's dead-letter file).",
            true,
            c.dead_letters.iter().map(|(s, n)| (l(&[("source", s)]), *n as f64)),
        )?;
        family(
            &mut encoder,
            "fundguard_decode_errors",
            "Messages that could not be decoded, dead-lettered or refused with their batch.",
            true,
            c.decode_errors.iter().map(|(s, n)| (l(&[("source", s)]), *n as f64)),
        )?;
        family(
            &mut encoder,
            "fundguard_watermark_lag_seconds",
            "How far the newest commit time of a source is behind the wall clock.",
            false,
            c.watermark_lag_seconds.iter().map(|(s, v)| (l(&[("source", s)]), *v)),
        )?;
        family(
            &mut encoder,
            "fundguard_rule_evaluations",
            "Events of its watched tables a rule evaluated (since the rule was last loaded).",
            true,
            c.rules.iter().map(|r| (l(&[("rule", &r.rule), ("kind", &r.kind)]), r.events as f64)),
        )?;
        family(
            &mut encoder,
            "fundguard_rule_errors",
            "Batches a rule could not evaluate.",
            true,
            c.rules.iter().map(|r| (l(&[("rule", &r.rule)]), r.errors as f64)),
        )?;
        family(
            &mut encoder,
            "fundguard_rule_late_events",
            "Events a stateful rule received after its watermark had passed them: applied at once, out of commit order. Raise allowed_lateness when this grows for a source that may deliver out of order.",
            true,
            c.rules.iter().map(|r| (l(&[("rule", &r.rule)]), r.late_events as f64)),
        )?;
        family(
            &mut encoder,
            "fundguard_rule_state_bytes",
            "Estimated bytes of state a stateful rule holds.",
            false,
            c.rules.iter().map(|r| (l(&[("rule", &r.rule)]), r.state_bytes as f64)),
        )?;
        family(
            &mut encoder,
            "fundguard_sql_runs",
            "Scheduled SQL runs, per rule and how they ended (ok, failed, timed_out).",
            true,
            c.sql_runs.iter().map(|((r, s), n)| (l(&[("rule", r), ("status", s)]), *n as f64)),
        )?;
        family(
            &mut encoder,
            "fundguard_sql_run_seconds",
            "How long a rule's last scheduled SQL run took.",
            false,
            c.sql_run_seconds.iter().map(|(r, v)| (l(&[("rule", r)]), *v)),
        )?;
        family(
            &mut encoder,
            "fundguard_sql_last_success_timestamp_seconds",
            "When a rule's last successful scheduled SQL run ended (Unix time): alert when it gets old.",
            false,
            c.sql_last_ok.iter().map(|(r, v)| (l(&[("rule", r)]), *v)),
        )?;
        family(
            &mut encoder,
            "fundguard_checkpoints",
            "Checkpoints written (positions, rule state and sink marks together).",
            true,
            std::iter::once((Vec::<(String, String)>::new(), c.checkpoints as f64)),
        )?;
        family(
            &mut encoder,
            "fundguard_checkpoint_bytes",
            "Size of the last checkpoint.",
            false,
            std::iter::once((Vec::<(String, String)>::new(), c.checkpoint_bytes as f64)),
        )?;
        family(
            &mut encoder,
            "fundguard_checkpoint_seconds",
            "How long the last checkpoint held the pipeline.",
            false,
            std::iter::once((Vec::<(String, String)>::new(), c.checkpoint_seconds)),
        )?;
        family(
            &mut encoder,
            "fundguard_checkpoint_write_seconds",
            "How long the last checkpoint took to be on disk (encoded and written while the pipeline went on).",
            false,
            std::iter::once((Vec::<(String, String)>::new(), c.checkpoint_write_seconds)),
        )?;
        family(
            &mut encoder,
            "fundguard_findings",
            "Findings, per rule and severity.",
            true,
            c.findings.iter().map(|((r, s), n)| (l(&[("rule", r), ("severity", s.as_str())]), *n as f64)),
        )?;
        family(
            &mut encoder,
            "fundguard_sink_write_errors",
            "Failed attempts to write findings to a sink; the pipeline holds the batch and retries.",
            true,
            c.sink_write_errors.iter().map(|(s, n)| (l(&[("sink", s)]), *n as f64)),
        )?;
        family(
            &mut encoder,
            "fundguard_sink_blocked",
            "1 while the pipeline reads nothing because a sink cannot take findings (disk full, permission).",
            false,
            c.sinks_blocked.iter().map(|(s, b)| (l(&[("sink", s)]), if *b { 1.0 } else { 0.0 })),
        )?;
        family(
            &mut encoder,
            "fundguard_coverage_covered",
            "Items of a coverage dimension (field, metric, cross_system) some rule covers, per owner (from console.coverage_report).",
            false,
            c.coverage.iter().map(|((d, o), (n, _))| (l(&[("dimension", d), ("owner", o)]), *n as f64)),
        )?;
        family(
            &mut encoder,
            "fundguard_coverage_total",
            "Items of a coverage dimension, waived fields left out, per owner (from console.coverage_report).",
            false,
            c.coverage.iter().map(|((d, o), (_, n))| (l(&[("dimension", d), ("owner", o)]), *n as f64)),
        )?;
        family(
            &mut encoder,
            "fundguard_rule_health",
            "1 for the health state each rule is in (failing, drifted, stale, noisy, silent, ok), 0 for the others (docs/health.md).",
            false,
            c.rule_health.iter().flat_map(|((rule, owner), now)| {
                fundguard_health::State::ALL.iter().map(move |state| {
                    let labels = l(&[("rule", rule), ("owner", owner), ("state", state.as_str())]);
                    (labels, if state.as_str() == *now { 1.0 } else { 0.0 })
                })
            }),
        )?;
        family(
            &mut encoder,
            "fundguard_notifications",
            "Notification attempts per channel and outcome (delivered, retried, failed).",
            true,
            c.notifications.iter().map(|((ch, o), n)| (l(&[("channel", ch), ("outcome", o)]), *n as f64)),
        )?;
        family(
            &mut encoder,
            "fundguard_alerts",
            "Alerts in the store, per status.",
            false,
            c.alerts_by_status.iter().map(|(s, n)| (l(&[("status", s)]), *n as f64)),
        )?;
        let histogram = encoder.encode_descriptor(
            "fundguard_detection_latency_seconds",
            "From the commit of the offending change to its finding.",
            None,
            MetricType::Histogram,
        )?;
        let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
            .iter()
            .copied()
            .zip(c.latency_le.iter().copied())
            .chain([(f64::MAX, c.latency_count)])
            .scan(0u64, |previous, (le, cumulative)| {
                // The encoder sums bucket counts itself: hand it per-bucket counts.
                let own = cumulative - *previous;
                *previous = cumulative;
                Some((le, own))
            })
            .collect();
        let mut histogram = histogram;
        histogram.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            c.latency_sum,
            c.latency_count,
            &buckets,
            None,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_scrape_names_every_family_with_prometheus_conventions() {
        let t = Arc::new(Telemetry::default());
        t.events_in("db", "shop.orders", 3);
        let commit = EventTime::from_secs(1_700_000_000);
        t.finding("order-amounts", Severity::Critical, commit, EventTime::from_micros(commit.as_micros() + 40_000));
        t.finding("order-amounts", Severity::Critical, commit, EventTime::from_micros(commit.as_micros() + 3_000_000));
        t.notification("oncall", "delivered");
        let text = render(&t.registry());
        assert!(text.contains("fundguard_events_in_total{source=\"db\",table=\"shop.orders\"} 3"), "{text}");
        assert!(text.contains("fundguard_findings_total{rule=\"order-amounts\",severity=\"critical\"} 2"), "{text}");
        assert!(text.contains("fundguard_detection_latency_seconds_bucket{le=\"0.05\"} 1"), "{text}");
        assert!(text.contains("fundguard_detection_latency_seconds_bucket{le=\"5.0\"} 2"), "{text}");
        assert!(text.contains("fundguard_detection_latency_seconds_count 2"), "{text}");
        assert!(text.contains("fundguard_notifications_total{channel=\"oncall\",outcome=\"delivered\"} 1"), "{text}");
        let minutes = t.findings_per_minute(10);
        assert_eq!((minutes.len(), minutes[0].critical), (1, 2));
        assert_eq!(t.latency().buckets[2], (0.05, 1), "the dashboard sees the same numbers");
        t.sink_write_failed("jsonl findings.jsonl");
        t.sink_blocked("jsonl findings.jsonl", true);
        let text = render(&t.registry());
        assert!(text.contains("fundguard_sink_write_errors_total{sink=\"jsonl findings.jsonl\"} 1"), "{text}");
        assert!(text.contains("fundguard_sink_blocked{sink=\"jsonl findings.jsonl\"} 1"), "{text}");
        t.coverage(vec![("field".into(), "payments".into(), 3, 4)]);
        let text = render(&t.registry());
        assert!(text.contains("fundguard_coverage_covered{dimension=\"field\",owner=\"payments\"} 3"), "{text}");
        assert!(text.contains("fundguard_coverage_total{dimension=\"field\",owner=\"payments\"} 4"), "{text}");
    }

    /// Regression: a commit time saturated to `i64::MIN` (a Maxwell `"ts": -9300000000000`)
    /// overflowed the latency subtraction — a panic in debug builds, a wrap in release.
    #[test]
    fn findings_at_the_ends_of_time_do_not_overflow() {
        let t = Telemetry::default();
        let (min, max) = (EventTime::from_micros(i64::MIN), EventTime::from_micros(i64::MAX));
        t.finding("r", Severity::Low, min, max);
        t.finding("r", Severity::Low, max, min);
        t.finding("r", Severity::Low, min, min);
        assert_eq!(t.latency().count, 3);
    }
}
