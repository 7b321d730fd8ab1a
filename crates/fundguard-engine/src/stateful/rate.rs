//! `rate`: windowed counts and ratios per group, against absolute and baseline thresholds.
//!
//! Windows are aligned to the epoch (a 10-minute window starts at :00, :10, ...),
//! tumbling, or sliding by `slide` (a 10-minute window judged every minute: the group
//! keeps its earlier slides' counts). A window is judged when the watermark passes its
//! end: below
//! `min_volume` nothing fires; otherwise the ratio (numerator / all, exact) or the
//! count is compared with `max_ratio`, `max_count` and the group's baseline: the mean
//! of its previous judged windows or of the same window on previous days, times
//! `factor` and/or plus `z_score` standard deviations — exact decimals throughout.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use fundguard_core::{Decimal, EventTime, Evidence, Value};
use fundguard_rules::{Baseline, History, RateRule};
use serde::{Deserialize, Serialize};

use super::{DimensionCache, Emit, Projection, Record, Snapshot, StatefulKind, key_name};
use crate::FastMap;

/// The counts of one earlier slide of a sliding window.
#[derive(Clone, Serialize, Deserialize)]
struct Bucket {
    start: i64,
    count: u64,
    hits: u64,
}

#[derive(Clone, Serialize, Deserialize)]
struct Group {
    shown: Value,
    /// The start of the current window (tumbling) or slide (sliding): its close timer is
    /// at `window_start + slide`.
    window_start: i64,
    count: u64,
    hits: u64,
    /// Sliding windows: the earlier slides still inside the next window.
    #[serde(default)]
    earlier: VecDeque<Bucket>,
    /// The first rows counted in the numerator, as evidence (a few, not all).
    sample: Vec<Evidence>,
    /// The metrics of the previous judged windows (`baseline.windows`).
    history: VecDeque<Decimal>,
    /// The metrics of the same window on previous days, by the window's slot of the day
    /// (`baseline.days`).
    #[serde(default)]
    seasonal: HashMap<i64, VecDeque<Decimal>>,
}

pub(crate) struct Rate {
    rule: RateRule,
    projections: Vec<Projection>,
    names: Vec<Arc<str>>,
    group_name: String,
    /// The window's length and how often it is judged (equal when tumbling), in µs.
    size: i64,
    slide: i64,
    groups: FastMap<String, Group>,
    closes: BTreeSet<(EventTime, String)>,
}

impl Rate {
    pub(crate) fn new(rule: RateRule) -> Self {
        let mut exprs = vec![("group".to_string(), rule.group.clone())];
        if let Some(n) = &rule.numerator {
            exprs.push(("hit".to_string(), n.clone()));
        }
        let projections = vec![Projection { table: rule.table.clone(), filter: rule.when.clone(), exprs }];
        let size = i64::try_from(rule.window.as_micros()).unwrap_or(i64::MAX).max(1);
        let slide = rule.slide.map_or(size, |s| i64::try_from(s.as_micros()).unwrap_or(size).clamp(1, size));
        let names = projections[0].exprs.iter().map(|(n, _)| Arc::from(n.as_str())).collect();
        Rate {
            group_name: key_name(&rule.group),
            rule,
            projections,
            names,
            size,
            slide,
            groups: FastMap::default(),
            closes: BTreeSet::new(),
        }
    }

    /// The window's metric and why it is a finding (no reasons: it is not), or `None` below
    /// `min_volume`.
    fn judge(&self, count: u64, hits: u64, past: Option<&VecDeque<Decimal>>) -> Option<(Decimal, Vec<String>)> {
        if count < self.rule.min_volume.max(1) {
            return None;
        }
        let metric = if self.rule.numerator.is_some() {
            Decimal::from(hits) / Decimal::from(count)
        } else {
            Decimal::from(count)
        };
        let mut reasons = Vec::new();
        if let Some(max) = self.rule.max_ratio
            && metric > max
        {
            reasons.push(format!("ratio {} above {max}", metric.round_dp(4)));
        }
        let counted = if self.rule.numerator.is_some() { hits } else { count };
        if let Some(max) = self.rule.max_count
            && counted > max
        {
            reasons.push(format!("count {counted} above {max}"));
        }
        if let Some(b) = &self.rule.baseline
            && let Some(past) = past
            && past.len() >= b.min_history as usize
            && let Some(reason) = above_baseline(metric, past, b)
        {
            reasons.push(reason);
        }
        Some((metric, reasons))
    }

    /// The window's slot of the day (seasonal baselines compare a window with the same slot).
    fn slot(&self, window_start: i64) -> i64 {
        window_start.rem_euclid(86_400_000_000) / self.size
    }

    /// The history a window starting at `start` is judged against.
    fn past<'g>(&self, g: &'g Group, start: i64) -> Option<&'g VecDeque<Decimal>> {
        match self.rule.baseline.as_ref()?.history {
            History::Windows(_) => Some(&g.history),
            History::Days(_) => g.seasonal.get(&self.slot(start)),
        }
    }

    /// Judges the window that ends with the group's current window (tumbling) or slide
    /// (sliding), then moves on: a sliding window whose earlier slides still hold rows is
    /// judged again one slide later.
    fn close(&mut self, key: &str, out: &mut Emit) {
        let Some(g) = self.groups.get(key) else { return };
        let end_micros = g.window_start.saturating_add(self.slide);
        let start_micros = end_micros.saturating_sub(self.size);
        let inside = g.earlier.iter().filter(|b| b.start >= start_micros);
        let (count, hits) = inside.fold((g.count, g.hits), |(c, h), b| (c + b.count, h + b.hits));
        let judged = self.judge(count, hits, self.past(g, start_micros));
        let start = EventTime::from_micros(start_micros);
        let end = EventTime::from_micros(end_micros);
        if let Some((_, reasons)) = &judged
            && !reasons.is_empty()
        {
            let message = format!(
                "{}: {}={} window {start}..{end}: {hits} of {count} rows; {}",
                out.rule.id,
                self.group_name,
                g.shown,
                reasons.join("; ")
            );
            let key =
                vec![(self.group_name.clone(), g.shown.clone()), ("window_start".to_string(), Value::Timestamp(start))];
            out.finding(key, end, message, g.sample.clone(), None);
        }
        let history = self.rule.baseline.as_ref().map(|b| b.history);
        let slot = self.slot(start_micros);
        let (size, slide) = (self.size, self.slide);
        if let Some(g) = self.groups.get_mut(key) {
            if let Some((metric, _)) = judged
                && let Some(history) = history
            {
                let kept = match history {
                    History::Windows(_) => &mut g.history,
                    History::Days(_) => g.seasonal.entry(slot).or_default(),
                };
                kept.push_back(metric);
                while kept.len() > history.kept() as usize {
                    kept.pop_front();
                }
            }
            if slide < size {
                // The next window starts one slide later: what falls out of it goes.
                let next_start = start_micros.saturating_add(slide);
                if g.count > 0 {
                    g.earlier.push_back(Bucket { start: g.window_start, count: g.count, hits: g.hits });
                }
                g.earlier.retain(|b| b.start >= next_start);
                g.sample.retain(|e| e.commit_time.as_micros() >= next_start);
                g.count = 0;
                g.hits = 0;
                if !g.earlier.is_empty() {
                    g.window_start = end_micros;
                    self.closes.insert((EventTime::from_micros(end_micros.saturating_add(slide)), key.to_string()));
                }
                return;
            }
            g.count = 0;
            g.hits = 0;
            g.sample.clear();
        }
    }
}

impl StatefulKind for Rate {
    fn projections(&self) -> &[Projection] {
        &self.projections
    }

    fn on_record(&mut self, record: Record, idle_before: EventTime, out: &mut Emit) {
        let shown = record.values.first().cloned().unwrap_or_default();
        if shown.is_null() {
            return;
        }
        let key = shown.to_string();
        // Saturating: the window of a time near `i64::MIN` starts at `i64::MIN`.
        let start = record.time.as_micros().div_euclid(self.slide).saturating_mul(self.slide);
        if self.groups.get(&key).is_some_and(|g| g.window_start != start && g.count > 0) {
            // A late record of a window already judged, or a new window whose predecessor's
            // close timer has not fired: judge the open window first.
            let old = self.groups[&key].window_start;
            self.closes.remove(&(EventTime::from_micros(old.saturating_add(self.slide)), key.clone()));
            self.close(&key, out);
        }
        let size = self.size;
        if self.groups.get(&key).is_some_and(|g| {
            g.count == 0 && g.earlier.is_empty() && g.window_start.saturating_add(size) < idle_before.as_micros()
        }) {
            // Idle past the TTL: the group and its baseline history are forgotten.
            self.groups.remove(&key);
        }
        let g = self.groups.entry(key.clone()).or_insert_with(|| Group {
            shown,
            window_start: start,
            count: 0,
            hits: 0,
            earlier: VecDeque::new(),
            sample: Vec::new(),
            history: VecDeque::new(),
            seasonal: HashMap::new(),
        });
        if g.count == 0 && g.window_start != start {
            // A sliding group judged at this slide's end already has its timer there.
            self.closes.remove(&(EventTime::from_micros(g.window_start.saturating_add(self.slide)), key.clone()));
        }
        if g.count == 0 {
            g.window_start = start;
            self.closes.insert((EventTime::from_micros(start.saturating_add(self.slide)), key));
        }
        g.count += 1;
        if matches!(record.values.get(1), Some(Value::Bool(true))) {
            g.hits += 1;
            if g.sample.len() < 5 {
                g.sample.push(record.origin.evidence(&self.names, &record.values));
            }
        }
    }

    fn fire_timers(&mut self, before: EventTime, out: &mut Emit) {
        // A window [start, end) is complete once the watermark reaches its end.
        while let Some((end, _)) = self.closes.first() {
            if *end > before {
                break;
            }
            let Some((_, key)) = self.closes.pop_first() else { break };
            self.close(&key, out);
        }
    }

    fn evict(&mut self, before: EventTime, _now: EventTime) {
        let size = self.size;
        self.groups.retain(|_, g| {
            g.count > 0 || !g.earlier.is_empty() || g.window_start.saturating_add(size) >= before.as_micros()
        });
    }

    /// Drops the groups whose current window started longest ago.
    fn shed_oldest(&mut self, keys: usize) -> usize {
        let starts = self.groups.values().map(|g| EventTime::from_micros(g.window_start)).collect();
        let Some(cutoff) = super::shed_cutoff(starts, keys) else { return 0 };
        let before = self.groups.len();
        self.groups.retain(|_, g| g.window_start > cutoff.as_micros());
        let groups = &self.groups;
        self.closes.retain(|(_, k)| groups.contains_key(k));
        before - self.groups.len()
    }

    fn snapshot(&self) -> Snapshot {
        super::snapshot_of((self.groups.clone(), self.closes.clone()))
    }

    /// A group keeps no stored rows' dimensions (its sample is evidence already).
    fn restore(&mut self, state: &[u8], _dimensions: &mut DimensionCache) -> Result<(), String> {
        (self.groups, self.closes) = super::decode(state)?;
        Ok(())
    }

    fn keys(&self) -> usize {
        self.groups.len()
    }

    fn state_bytes(&self) -> usize {
        self.groups
            .iter()
            .map(|(k, g)| {
                let seasonal: usize = g.seasonal.values().map(|h| 48 + h.len() * 16).sum();
                200 + k.len() + g.history.len() * 16 + seasonal + g.sample.len() * 8
            })
            .sum()
    }
}

/// Why `metric` is above the baseline of `past` (both bounds must be passed when both are
/// set), or `None`. Exact: the z-score compares squares, so no square root is taken.
fn above_baseline(metric: Decimal, past: &VecDeque<Decimal>, b: &Baseline) -> Option<String> {
    let n = Decimal::from(past.len() as u64);
    let mean = past.iter().try_fold(Decimal::ZERO, |a, x| a.checked_add(*x))?.checked_div(n)?;
    let mut reasons = Vec::new();
    if let Some(factor) = b.factor {
        if metric <= mean.checked_mul(factor)? {
            return None;
        }
        reasons.push(format!("more than {factor} x"));
    }
    if let Some(z) = b.z_score {
        let squares = past.iter().try_fold(Decimal::ZERO, |a, x| {
            let d = x.checked_sub(mean)?;
            a.checked_add(d.checked_mul(d)?)
        })?;
        let variance = squares.checked_div(n)?;
        let rise = metric.checked_sub(mean)?;
        if rise <= Decimal::ZERO || rise.checked_mul(rise)? <= z.checked_mul(z)?.checked_mul(variance)? {
            return None;
        }
        reasons.push(format!("more than {z} standard deviations above"));
    }
    Some(format!(
        "{} is {} the baseline {} of {} window(s)",
        metric.round_dp(4),
        reasons.join(" and "),
        mean.round_dp(4),
        past.len()
    ))
}
