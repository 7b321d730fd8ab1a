//! Findings to the sinks, on the pipeline thread. Every finding reaches every sink; a
//! sink that cannot write holds the whole pipeline until it can ([`LivePipeline::flush_sinks`]),
//! because reading on would mean acknowledging sources for findings not yet kept.

use std::time::{Duration, Instant};

use super::LivePipeline;

impl LivePipeline {
    /// Writes the findings in `found` to every sink (and the rule figures to the metrics).
    pub(super) fn write_findings(&mut self) {
        self.telemetry.rules(
            self.engine
                .stats()
                .iter()
                .map(|s| fundguard_server::metrics::RuleFigures {
                    rule: s.rule.clone(),
                    kind: s.kind.to_string(),
                    events: s.events,
                    findings: s.findings,
                    errors: s.errors,
                    last_error: s.last_error.clone(),
                    state_bytes: s.state_bytes,
                    state_keys: s.state_keys,
                    late_events: s.late_events,
                })
                .collect(),
        );
        if self.found.is_empty() {
            return;
        }
        for f in &self.found {
            self.telemetry.finding(&f.rule, f.severity, f.event_time, f.detected_at);
        }
        for sink in &mut self.sinks {
            for f in &self.found {
                // A sink keeps what it could not write queued (`FindingSink`'s contract), so
                // an error here is the one `flush_sinks` meets, reports and retries.
                let _ = sink.write(f);
            }
        }
        self.flush_sinks();
    }

    /// Makes every sink hold what was written to it. A sink that cannot (disk full,
    /// permission, a lost alert store) holds the pipeline here: the batch in hand is not
    /// answered, so its source stops reading (a database log after the one batch it
    /// decodes ahead) and acknowledges nothing, every other input waits in the bounded
    /// channel, and no checkpoint is taken past it. The failure shows on
    /// stderr, in each source's health (`blocked: …`, so `/readyz` answers 503) and in the
    /// metrics; the write is retried every [`SINK_RETRY`] until it succeeds, and the
    /// pipeline goes on without having lost a finding.
    fn flush_sinks(&mut self) {
        for i in 0..self.sinks.len() {
            let mut blocked: Option<(Instant, Vec<String>)> = None;
            let mut reminded = Instant::now();
            while let Err(e) = self.sinks[i].flush() {
                let name = &self.sink_names[i];
                self.telemetry.sink_write_failed(name);
                match &blocked {
                    None => {
                        // Health and metrics first: whoever reads the log line and then
                        // asks the service must already see it blocked.
                        self.telemetry.sink_blocked(name, true);
                        let state = format!("blocked: cannot write findings to {name}: {e:#}");
                        blocked = Some((Instant::now(), self.set_states(|_| Some(state.clone()))));
                        tracing::error!(
                            sink = %name,
                            "cannot write findings to {name}: {e:#}; reading nothing until they are written (retrying every {} s)",
                            SINK_RETRY.as_secs()
                        );
                    }
                    Some((since, _)) if reminded.elapsed() >= SINK_REMINDER => {
                        let waited = since.elapsed().as_secs();
                        tracing::error!(sink = %name, "still cannot write findings to {name} after {waited} s: {e:#}");
                        reminded = Instant::now();
                    }
                    Some(_) => {}
                }
                std::thread::sleep(SINK_RETRY);
            }
            if let Some((since, before)) = blocked {
                let name = &self.sink_names[i];
                let waited = since.elapsed().as_secs_f64();
                self.telemetry.sink_blocked(name, false);
                let mut before = before.into_iter();
                self.set_states(|state| before.next().filter(|_| state.starts_with("blocked: ")));
                tracing::info!(sink = %name, "findings written to {name} again after {waited:.1} s; reading on");
            }
        }
    }

    /// Sets every source's health state to what `new` makes of it (`None`: unchanged) and
    /// returns the states before.
    fn set_states(&self, mut new: impl FnMut(&str) -> Option<String>) -> Vec<String> {
        let Ok(mut health) = self.health.lock() else { return Vec::new() };
        health
            .iter_mut()
            .map(|h| match new(&h.state) {
                Some(state) => std::mem::replace(&mut h.state, state),
                None => h.state.clone(),
            })
            .collect()
    }
}

/// How often a sink that could not be written is tried again.
const SINK_RETRY: Duration = Duration::from_secs(1);
/// How often stderr is reminded that a sink still cannot be written.
const SINK_REMINDER: Duration = Duration::from_secs(60);
