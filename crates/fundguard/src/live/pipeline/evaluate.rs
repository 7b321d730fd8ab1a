//! Evaluation on the pipeline thread: decoded events through the engine, and what the
//! service shows of each source — health (state, counts, last position and commit
//! time), lag and metrics. Event time moves on by itself when a source goes quiet
//! ([`LivePipeline::tick`]) or says it is caught up.

use std::collections::HashMap;
use std::time::Instant;

use fundguard_core::{ChangeEvent, EventTime};

use super::LivePipeline;
use crate::live::clock;

impl LivePipeline {
    /// The source's server has nothing more before `at` (its commit-time clock): its event
    /// time moves there, firing the deadlines that fell due.
    pub(super) fn caught_up(&mut self, source: usize, at: EventTime) {
        let Some(name) = self.names.get(source).cloned() else { return };
        self.found.clear();
        self.engine.source_idle(&name, at, clock::now(), &mut self.found);
        self.write_findings();
    }

    /// Evaluates decoded events and records the source's progress.
    pub(super) fn evaluate(&mut self, source: usize, events: &[ChangeEvent], dead: u64, last_position: Option<String>) {
        let _ = self.dead_letters[source].flush();
        self.found.clear();
        let now = clock::now();
        for sink in &mut self.sinks {
            sink.observe(events);
        }
        if let Err(e) = self.engine.process(events, now, &mut self.found) {
            tracing::error!(source, error = %e, "evaluating a batch of source #{source} failed: {e}");
        }
        self.write_findings();
        let name = self.names.get(source).map(String::as_str).unwrap_or("?");
        let mut per_table: HashMap<&str, u64> = HashMap::new();
        for e in events {
            *per_table.entry(&e.table).or_default() += 1;
        }
        for (table, n) in per_table {
            self.telemetry.events_in(name, table, n);
        }
        if dead > 0 {
            self.telemetry.dead_letters(name, dead);
            self.telemetry.decode_errors(name, dead);
        }
        if let Some(newest) = events.iter().map(|e| e.commit_time).max()
            && let Some(known) = self.newest_commit.get_mut(source)
        {
            *known = Some(known.map_or(newest, |k| k.max(newest)));
        }
        let lag = self.measure_lag(source, now);
        if let Some(e) = events.first() {
            let delivered = (Instant::now(), self.busy);
            match self.activity.get_mut(e.position.source()) {
                Some(last) => *last = delivered,
                None => {
                    self.activity.insert(e.position.source().to_string(), delivered);
                }
            }
        }
        if let Ok(mut health) = self.health.lock()
            && let Some(h) = health.get_mut(source)
        {
            if !events.is_empty() {
                h.state = "reading".into();
            }
            h.events += events.len() as u64;
            h.dead_letters += dead;
            if last_position.is_some() {
                h.last_position = last_position;
            }
            if let Some(Some(newest)) = self.newest_commit.get(source) {
                h.last_commit_time = Some(newest.to_string());
            }
            if let Some(lag) = lag {
                h.lag_ms = Some(lag / 1000);
            }
        }
    }

    /// Now minus the source's newest commit time, in microseconds (`None` before its first
    /// event), also set as its watermark lag metric. Saturating: decoders refuse commit times
    /// outside 1970..=9999, but a lag must never overflow whatever reaches it.
    fn measure_lag(&self, source: usize, now: EventTime) -> Option<i64> {
        let newest = self.newest_commit.get(source).copied().flatten()?;
        let lag = now.micros_since(newest);
        if let Some(name) = self.names.get(source) {
            self.telemetry.watermark_lag(name, lag as f64 / 1e6);
        }
        Some(lag)
    }

    /// Every source's `lag_ms` and watermark lag measured at `now`: by their definition
    /// (now minus the newest commit time) they grow while a source is quiet, rather than
    /// keeping the figure of its last batch.
    fn measure_lags(&self, now: EventTime) {
        let lags: Vec<Option<i64>> = (0..self.names.len()).map(|s| self.measure_lag(s, now)).collect();
        if let Ok(mut health) = self.health.lock() {
            for (h, lag) in health.iter_mut().zip(lags) {
                if let Some(lag) = lag {
                    h.lag_ms = Some(lag / 1000);
                }
            }
        }
    }

    /// A source that delivered nothing for `idle_after` stops holding event time back:
    /// the clock stands in for its commit times, so deadlines fire when sources go quiet.
    ///
    /// Only time the pipeline spent waiting counts: a source whose next batch waits behind
    /// a long checkpoint or another source's batch is slow to be served, not quiet, and
    /// standing the wall clock in for its (perhaps historical) commit times would fire
    /// every pending deadline at once.
    ///
    /// Every tick also measures each source's lag ([`LivePipeline::measure_lags`]).
    pub(super) fn tick(&mut self, now: EventTime) {
        self.measure_lags(now);
        self.found.clear();
        for (name, (last, busy_then)) in &self.activity {
            if self.self_timed.contains(name) {
                continue;
            }
            let waited = last.elapsed().saturating_sub(self.busy.saturating_sub(*busy_then));
            if waited >= self.idle_after {
                self.engine.source_idle(name, now, now, &mut self.found);
            }
        }
        self.write_findings();
    }
}
