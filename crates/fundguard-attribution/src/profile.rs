//! What rows look like, column by column: the counts attribution compares.
//!
//! A [`Profile`] counts, per table, the rows it saw and each column's most frequent values
//! (a [`TopK`] per column), and for pairs of low-cardinality columns the most frequent
//! value pairs. The same type serves both sides of a comparison: the *baseline* — all the
//! traffic of the watched tables, sampled while the engine evaluates ([`Baseline`]) — and an
//! *incident* — the evidence rows of its alerts. Memory is bounded by the counters, never
//! by the traffic.
//!
//! Only values that can name a slice of traffic are counted: text up to
//! [`MAX_VALUE_CHARS`], integers and booleans. Timestamps, decimals (amounts) and JSON
//! are left out, and a column whose values are mostly new (an id) saturates its counters
//! and drops out on its own ([`TopK::is_saturated`]).

use std::collections::BTreeMap;
use std::fmt::Write;

use fundguard_core::{ChangeEvent, Row, Value};
use serde::{Deserialize, Serialize};

use crate::sketch::TopK;

/// Longer text is not a dimension (a message, an address).
pub const MAX_VALUE_CHARS: usize = 64;

/// Rows of a table after which the baseline chooses the columns whose value pairs it counts.
pub const PAIR_WARMUP_ROWS: u64 = 1000;

/// A column with more distinct values than this is not paired (pairs multiply them).
const MAX_PAIRED_DISTINCT: usize = 16;

/// Columns paired per table, at most (every pair of them is counted).
const MAX_PAIRED_COLUMNS: usize = 8;

/// Separates the two columns (and values) of a pair in its key.
const PAIR_SEPARATOR: char = '\u{1f}';

/// Counts per table: rows, each column's frequent values, and frequent value pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    capacity: usize,
    tables: BTreeMap<String, TableProfile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableProfile {
    rows: u64,
    columns: BTreeMap<String, TopK>,
    /// The columns whose pairs are counted (`None`: not chosen yet).
    paired: Option<Vec<String>>,
    /// Per pair of `paired` columns (`a␟b`), the frequent value pairs.
    pairs: BTreeMap<String, TopK>,
    /// Rows counted since pairs were (rows before do not count for pairs).
    pair_rows: u64,
}

/// The text a value is counted as, in `buf`; false when it is not a dimension value.
fn categorical(value: &Value, buf: &mut String) -> bool {
    buf.clear();
    match value {
        Value::String(s) if s.chars().count() <= MAX_VALUE_CHARS => buf.push_str(s),
        Value::Int(i) => {
            let _ = write!(buf, "{i}");
        }
        Value::Bool(b) => buf.push_str(if *b { "true" } else { "false" }),
        _ => return false,
    }
    true
}

/// The key of the pair of columns (or values) `a`, `b`.
pub(crate) fn pair_key(a: &str, b: &str) -> String {
    let mut key = String::with_capacity(a.len() + b.len() + 1);
    key.push_str(a);
    key.push(PAIR_SEPARATOR);
    key.push_str(b);
    key
}

/// The two halves of a pair key.
pub(crate) fn split_pair(key: &str) -> Option<(&str, &str)> {
    key.split_once(PAIR_SEPARATOR)
}

impl TableProfile {
    fn new() -> TableProfile {
        TableProfile { rows: 0, columns: BTreeMap::new(), paired: None, pairs: BTreeMap::new(), pair_rows: 0 }
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn pair_rows(&self) -> u64 {
        self.pair_rows
    }

    pub fn columns(&self) -> &BTreeMap<String, TopK> {
        &self.columns
    }

    /// Per pair of columns (`(a, b)`, `a` before `b` in `paired`), its value pairs.
    pub fn pairs(&self) -> impl Iterator<Item = ((&str, &str), &TopK)> {
        self.pairs.iter().filter_map(|(k, top)| split_pair(k).map(|ab| (ab, top)))
    }

    /// The columns whose value pairs are counted, once chosen.
    pub fn paired(&self) -> Option<&[String]> {
        self.paired.as_deref()
    }

    /// The low-cardinality columns seen so far: at most [`MAX_PAIRED_DISTINCT`] values, and
    /// more than one.
    fn choose_paired(&self) -> Vec<String> {
        self.columns
            .iter()
            .filter(|(_, top)| !top.is_saturated() && (2..=MAX_PAIRED_DISTINCT).contains(&top.len()))
            .map(|(c, _)| c.clone())
            .take(MAX_PAIRED_COLUMNS)
            .collect()
    }
}

impl Profile {
    /// An empty profile with `capacity` counters per column (and per pair of columns).
    pub fn new(capacity: usize) -> Profile {
        Profile { capacity, tables: BTreeMap::new() }
    }

    pub fn tables(&self) -> &BTreeMap<String, TableProfile> {
        &self.tables
    }

    pub fn table(&self, table: &str) -> Option<&TableProfile> {
        self.tables.get(table)
    }

    /// Rows of every table.
    pub fn rows(&self) -> u64 {
        self.tables.values().map(|t| t.rows).sum()
    }

    /// Counts one row of `table`. Value pairs are counted for the columns `paired` names
    /// (an incident pairs what its baseline pairs), or — `None` — for the columns this
    /// profile chooses itself after [`PAIR_WARMUP_ROWS`] rows of the table.
    pub fn observe(&mut self, table: &str, row: &Row, paired: Option<&[String]>) {
        let capacity = self.capacity;
        let t = match self.tables.get_mut(table) {
            Some(t) => t,
            None => self.tables.entry(table.to_string()).or_insert_with(TableProfile::new),
        };
        t.rows += 1;
        let paired = match paired {
            Some(p) => Some(p),
            None => {
                if t.paired.is_none() && t.rows > PAIR_WARMUP_ROWS {
                    t.paired = Some(t.choose_paired());
                }
                t.paired.as_deref()
            }
        };
        let mut pair_values: Vec<Option<String>> = vec![None; paired.map_or(0, <[String]>::len)];
        let mut buf = String::new();
        for (name, value) in row.iter() {
            if !categorical(value, &mut buf) {
                continue;
            }
            let top = match t.columns.get_mut(name) {
                Some(top) => top,
                None => t.columns.entry(name.to_string()).or_insert_with(|| TopK::new(capacity)),
            };
            if top.is_saturated() {
                continue;
            }
            top.add(&buf);
            if let Some(i) = paired.and_then(|p| p.iter().position(|c| c == name)) {
                pair_values[i] = Some(buf.clone());
            }
        }
        let Some(paired) = paired else { return };
        if paired.len() < 2 {
            return;
        }
        t.pair_rows += 1;
        for i in 0..paired.len() {
            for j in i + 1..paired.len() {
                let (Some(a), Some(b)) = (&pair_values[i], &pair_values[j]) else { continue };
                let key = pair_key(&paired[i], &paired[j]);
                let top = t.pairs.entry(key).or_insert_with(|| TopK::new(capacity));
                top.add(&pair_key(a, b));
            }
        }
    }

    /// Counts the row an event leaves behind (its `after`; a delete's `before`).
    pub fn observe_event(&mut self, event: &ChangeEvent) {
        if let Some(row) = event.after.as_ref().or(event.before.as_ref()) {
            self.observe(&event.table, row, None);
        }
    }

    /// The columns a table's baseline pairs (for an incident of it to pair the same).
    pub fn paired_columns(&self) -> BTreeMap<String, Vec<String>> {
        self.tables.iter().filter_map(|(name, t)| Some((name.clone(), t.paired.clone()?))).collect()
    }
}

/// The baseline traffic, counted while the engine evaluates: about one event in `every`
/// (a share of the traffic needs only a sample, and sampling keeps the bookkeeping off the
/// pipeline's critical cost), chosen by position, so the same input gives the same baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub profile: Profile,
    every: u64,
    seen: u64,
}

/// Counters per column in the baseline: merchants, regions and app versions fit.
pub const BASELINE_CAPACITY: usize = 256;

/// One event in this many is counted into the baseline.
pub const BASELINE_SAMPLE_EVERY: u64 = 8;

impl Default for Baseline {
    fn default() -> Baseline {
        Baseline::new(BASELINE_SAMPLE_EVERY)
    }
}

impl Baseline {
    pub fn new(every: u64) -> Baseline {
        Baseline { profile: Profile::new(BASELINE_CAPACITY), every: every.max(1), seen: 0 }
    }

    /// Goes on counting into a saved profile (after a restart).
    pub fn resume(profile: Profile) -> Baseline {
        Baseline { profile, ..Baseline::default() }
    }

    /// Counts the events of one batch: each with probability `1 / every`, drawn from a
    /// hash of its place in the stream — deterministic, whatever the batches, and blind to
    /// patterns in the traffic that a fixed stride could fall in step with.
    pub fn observe(&mut self, events: &[ChangeEvent]) {
        for (i, event) in events.iter().enumerate() {
            if splitmix64(self.seen + i as u64).is_multiple_of(self.every) {
                self.profile.observe_event(event);
            }
        }
        self.seen += events.len() as u64;
    }

    /// Events offered, counted or not.
    pub fn seen(&self) -> u64 {
        self.seen
    }
}

/// SplitMix64's finaliser: a well-mixed hash of a counter.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fundguard_core::{EventTime, Op, Position};

    use super::*;

    fn row(cols: &[(&str, Value)]) -> Row {
        let mut row = Row::new();
        for (name, value) in cols {
            row.push(Arc::from(*name), value.clone());
        }
        row
    }

    #[test]
    fn low_cardinality_columns_are_paired_after_the_warmup_and_ids_drop_out() {
        let mut p = Profile::new(64);
        for i in 0..2000i64 {
            let channel = ["alipay", "wechat", "card"][(i % 3) as usize];
            let currency = if i % 4 == 0 { "USD" } else { "CNY" };
            let r = row(&[
                ("id", Value::Int(i)),
                ("channel", Value::from(channel)),
                ("currency", Value::from(currency)),
                ("amount", Value::Decimal("1.50".parse().unwrap())),
            ]);
            p.observe("shop.payments", &r, None);
        }
        let t = p.table("shop.payments").unwrap();
        assert_eq!(t.rows(), 2000);
        assert!(t.columns()["id"].is_saturated());
        assert!(!t.columns().contains_key("amount"), "amounts are not dimensions");
        assert_eq!(t.paired().unwrap(), ["channel", "currency"]);
        assert_eq!(t.pair_rows(), 2000 - PAIR_WARMUP_ROWS);
        let ((a, b), pairs) = t.pairs().next().unwrap();
        assert_eq!((a, b), ("channel", "currency"));
        assert_eq!(pairs.len(), 6);
    }

    #[test]
    fn a_baseline_samples_by_position_whatever_the_batches() {
        let event = |i: i64| ChangeEvent {
            table: Arc::from("t"),
            op: Op::Insert,
            before: None,
            after: Some(row(&[("v", Value::Int(i % 5))])),
            commit_time: EventTime::from_secs(i),
            position: Position::Synthetic { seq: i as u64 },
        };
        let events: Vec<_> = (0..1000).map(event).collect();
        let mut whole = Baseline::new(8);
        whole.observe(&events);
        let mut pieces = Baseline::new(8);
        for chunk in events.chunks(7) {
            pieces.observe(chunk);
        }
        assert_eq!(whole, pieces);
        let rows = whole.profile.rows();
        assert!((90..=160).contains(&rows), "about one in eight: {rows}");
    }
}
