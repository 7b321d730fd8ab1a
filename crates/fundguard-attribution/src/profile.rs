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

/// The pseudo-table whose columns `table` and `source` say where rows came from.
pub const ORIGIN_TABLE: &str = "(origin)";

/// Longer text is not a dimension (a message, an address).
pub const MAX_VALUE_CHARS: usize = 64;

/// Rows of a table after which the baseline chooses the columns whose value pairs it counts
/// (enough to tell a status from an id).
pub const PAIR_WARMUP_ROWS: u64 = 200;

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

/// Whether a value can name a slice of traffic (checked before anything is formatted).
fn is_dimension(value: &Value) -> bool {
    match value {
        Value::String(s) => s.len() <= MAX_VALUE_CHARS * 4 && s.chars().count() <= MAX_VALUE_CHARS,
        Value::Int(_) | Value::Bool(_) => true,
        _ => false,
    }
}

/// The text a dimension value is counted as (integers written into `buf`).
fn dimension_text<'a>(value: &'a Value, buf: &'a mut String) -> &'a str {
    match value {
        Value::String(s) => s,
        Value::Int(i) => {
            buf.clear();
            let _ = write!(buf, "{i}");
            buf
        }
        Value::Bool(true) => "true",
        _ => "false",
    }
}

/// The key of the pair of columns (or values) `a`, `b`.
pub(crate) fn pair_key(a: &str, b: &str) -> String {
    let mut key = String::with_capacity(a.len() + b.len() + 1);
    write_pair(&mut key, a, b);
    key
}

/// Writes the key of the pair `a`, `b` into `key` (reused: no allocation once it is large enough).
fn write_pair(key: &mut String, a: &str, b: &str) {
    key.clear();
    key.push_str(a);
    key.push(PAIR_SEPARATOR);
    key.push_str(b);
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
        // The paired columns' values, one after another in `values`, found by their spans:
        // one buffer for the row instead of a string per value.
        let mut values = String::new();
        let mut spans = [None::<(usize, usize)>; MAX_PAIRED_COLUMNS];
        let mut buf = String::new();
        for (name, value) in row.iter() {
            if !is_dimension(value) {
                continue;
            }
            let top = match t.columns.get_mut(name) {
                Some(top) => top,
                None => t.columns.entry(name.to_string()).or_insert_with(|| TopK::new(capacity)),
            };
            // Most columns of a busy table are ids and amounts: saturated, and skipped
            // before anything is formatted.
            if top.is_saturated() {
                continue;
            }
            let text = dimension_text(value, &mut buf);
            top.add(text);
            if let Some(i) = paired.and_then(|p| p.iter().position(|c| c == name)).filter(|i| *i < MAX_PAIRED_COLUMNS) {
                let start = values.len();
                values.push_str(text);
                spans[i] = Some((start, values.len()));
            }
        }
        let Some(paired) = paired else { return };
        let paired = &paired[..paired.len().min(MAX_PAIRED_COLUMNS)];
        if paired.len() < 2 {
            return;
        }
        t.pair_rows += 1;
        let (mut columns, mut pair) = (String::new(), String::new());
        for i in 0..paired.len() {
            for j in i + 1..paired.len() {
                let (Some(a), Some(b)) = (spans[i], spans[j]) else { continue };
                write_pair(&mut columns, &paired[i], &paired[j]);
                write_pair(&mut pair, &values[a.0..a.1], &values[b.0..b.1]);
                let top = match t.pairs.get_mut(columns.as_str()) {
                    Some(top) => top,
                    None => t.pairs.entry(columns.clone()).or_insert_with(|| TopK::new(capacity)),
                };
                top.add(&pair);
            }
        }
    }

    /// Counts the row an event leaves behind (its `after`; a delete's `before`), and where
    /// it came from.
    pub fn observe_event(&mut self, event: &ChangeEvent) {
        if let Some(row) = event.after.as_ref().or(event.before.as_ref()) {
            self.observe(&event.table, row, None);
        }
        self.observe_origin(&event.table, event.position.source());
    }

    /// Counts where a row came from — its table and its source (the input, stream or
    /// database log) — as a row of [`ORIGIN_TABLE`]: an incident whose rows all come from
    /// one table, or one source, says so like any other attribute.
    pub fn observe_origin(&mut self, table: &str, source: &str) {
        let mut row = Row::with_capacity(2);
        row.push(std::sync::Arc::from("table"), Value::from(table));
        row.push(std::sync::Arc::from("source"), Value::from(source));
        self.observe(ORIGIN_TABLE, &row, Some(&[]));
    }

    /// Counts `rows` rows of `table` given as counts of one column's values — what a
    /// profile of findings rather than of events is made of (an incident's alerts per rule
    /// beside every alert's).
    pub fn observe_counts(&mut self, table: &str, column: &str, counts: &[(String, u64)]) {
        let capacity = self.capacity;
        let t = self.tables.entry(table.to_string()).or_insert_with(TableProfile::new);
        let top = t.columns.entry(column.to_string()).or_insert_with(|| TopK::new(capacity));
        for (value, n) in counts {
            t.rows += n;
            top.add_count(value, *n);
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
        let rows = whole.profile.table("t").unwrap().rows();
        assert!((90..=160).contains(&rows), "about one in eight: {rows}");
    }
}
