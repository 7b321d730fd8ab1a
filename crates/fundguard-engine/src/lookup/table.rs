//! Reference data rules read as `lookup.<name>.<column>`: a merchant's contracted rate,
//! FX rates, a fee schedule, the set of known orders.
//!
//! A lookup is filled in one of two ways:
//! - a **snapshot** the caller loads (a database table or a file, read by the binary
//!   through the warehouse crate) and replaces whole when it refreshes
//!   ([`crate::Engine::set_lookup`]). With an `as_of` column its rows are effective-dated:
//!   an event reads the version in force at its commit time, so a backtest of last month
//!   reads last month's rates. Without one, an event reads the latest snapshot.
//! - the **stream** ([`crate::Engine::maintain_lookup`]): the change events of one table
//!   keep it current. An event reads the lookup as of its place in the input — every
//!   change before it applied, none after — so how the input is cut into batches changes
//!   nothing, and a live run reads what a backtest of the same log reads.
//!
//! Rows are found through the columns a rule's `match:` names (an index per set of
//! columns), values normalised as integer keys: `"42"`, `42` and `42.00` meet.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use fundguard_core::{ChangeEvent, ColumnType, EventTime, Op, Row, Value};
use fundguard_rules::KeyType;
use serde::{Deserialize, Serialize};

use crate::columns::ColumnKind;
use crate::stateful::KeyNorm;

/// A snapshot of reference rows, as the binary loaded them.
#[derive(Debug, Clone, Default)]
pub struct LookupSnapshot {
    pub rows: Vec<Row>,
    /// The column saying from when a row is in force (a timestamp or date); `None`: every
    /// row is in force for every event.
    pub as_of: Option<String>,
}

/// Where a lookup's rows come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Filled {
    /// Snapshots set by the caller; `as_of` as in [`LookupSnapshot`].
    Snapshot { as_of: Option<String> },
    /// The change events of `table`; a row not changed for `keep` (event time) is dropped.
    Stream { table: String, keep: Option<Duration> },
}

/// The versions of one key: (in force from, row), oldest first. A stream lookup and a
/// snapshot without `as_of` hold one.
type Versions = Vec<(EventTime, Arc<Row>)>;

/// One lookup's rows, indexed by each set of columns rules match on.
pub(crate) struct LookupTable {
    pub filled: Filled,
    /// Match columns → normalised key → versions.
    indexes: HashMap<Vec<String>, HashMap<String, Versions>>,
    /// A snapshot's rows, kept to index by a new set of columns after a reload.
    rows: Vec<Arc<Row>>,
    /// Column types of the referenced columns: declared, else widened from the rows.
    pub kinds: BTreeMap<String, ColumnKind>,
    declared: BTreeMap<String, ColumnType>,
    /// Bumped when a column's type changes: expressions over it must be recompiled.
    pub version: u64,
    /// Stream changes of the batch being processed: index → key → (event index, row or
    /// deleted), in input order.
    staged: HashMap<Vec<String>, HashMap<String, Vec<StagedChange>>>,
    /// The newest commit time a stream change brought (for `keep`), and the index size
    /// at which rows past `keep` are next swept.
    newest: EventTime,
    sweep_at: usize,
}

/// A stream change of the batch being processed: the event's index in the batch, its
/// commit time, and the row it leaves (`None`: deleted).
type StagedChange = (usize, EventTime, Option<Arc<Row>>);

/// A stream lookup's index in a checkpoint: the match columns, and per key its last change and row.
type SavedIndex = (Vec<String>, Vec<(String, EventTime, Arc<Row>)>);

/// The key a row (or an event's values) has for a set of match columns: `None` when any
/// part is NULL or absent — such a row can be neither found nor stored.
pub(crate) fn key_of<'a>(values: impl Iterator<Item = Option<&'a Value>>) -> Option<String> {
    let norm = KeyNorm(KeyType::Integer);
    let mut key = String::new();
    for (i, v) in values.enumerate() {
        if i > 0 {
            key.push('\u{1f}');
        }
        // Writing to a String cannot fail.
        let _ = write!(key, "{}", norm.key(v?)?);
    }
    Some(key)
}

fn row_key(row: &Row, columns: &[String]) -> Option<String> {
    key_of(columns.iter().map(|c| row.get(c)))
}

/// When a row of an effective-dated snapshot comes into force.
fn in_force_from(row: &Row, as_of: &str) -> Option<EventTime> {
    match row.get(as_of)? {
        Value::Timestamp(t) => Some(*t),
        Value::String(s) => EventTime::parse(s).ok().or_else(|| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| EventTime::from_micros(d.and_utc().timestamp_micros()))
        }),
        _ => None,
    }
}

impl LookupTable {
    pub(crate) fn new(filled: Filled, declared: Option<&BTreeMap<String, ColumnType>>) -> LookupTable {
        LookupTable {
            filled,
            indexes: HashMap::new(),
            rows: Vec::new(),
            kinds: BTreeMap::new(),
            declared: declared.cloned().unwrap_or_default(),
            version: 0,
            staged: HashMap::new(),
            newest: EventTime::from_micros(i64::MIN),
            sweep_at: 1024,
        }
    }

    /// Whether the lookup's columns are declared (then an unknown column is an error).
    pub(crate) fn declared(&self) -> Option<&BTreeMap<String, ColumnType>> {
        (!self.declared.is_empty()).then_some(&self.declared)
    }

    /// A column some rule reads, typed by its declaration or (later) by the rows.
    pub(crate) fn reference(&mut self, column: &str) {
        if !self.kinds.contains_key(column) {
            let kind = self.declared.get(column).map_or(ColumnKind::Unknown, |t| ColumnKind::of_declared(*t));
            self.kinds.insert(column.to_string(), kind);
            for row in self.rows.clone() {
                self.observe(&row);
            }
        }
    }

    /// A set of columns some rule matches on: indexed from now on.
    pub(crate) fn index(&mut self, columns: &[String]) {
        if self.indexes.contains_key(columns) {
            return;
        }
        let mut index: HashMap<String, Versions> = HashMap::new();
        match &self.filled {
            Filled::Snapshot { as_of } => {
                for row in &self.rows {
                    insert_version(&mut index, columns, row, as_of.as_deref());
                }
            }
            // A stream lookup indexed late (a reload that matches on new columns) is
            // filled from another index's rows.
            Filled::Stream { .. } => {
                if let Some(other) = self.indexes.values().next() {
                    for versions in other.values() {
                        for (time, row) in versions {
                            if let Some(key) = row_key(row, columns) {
                                index.insert(key, vec![(*time, row.clone())]);
                            }
                        }
                    }
                }
            }
        }
        self.indexes.insert(columns.to_vec(), index);
        self.staged.insert(columns.to_vec(), HashMap::new());
    }

    /// Widens undeclared referenced columns to hold the row's values.
    fn observe(&mut self, row: &Row) {
        let mut changed = false;
        for (name, kind) in self.kinds.iter_mut() {
            if self.declared.contains_key(name) {
                continue;
            }
            if let Some(v) = row.get(name) {
                let widened = kind.widen(ColumnKind::of_value(v));
                if widened != *kind {
                    *kind = widened;
                    changed = true;
                }
            }
        }
        if changed {
            self.version += 1;
        }
    }

    /// Replaces a snapshot's rows.
    pub(crate) fn set(&mut self, snapshot: LookupSnapshot) {
        self.filled = Filled::Snapshot { as_of: snapshot.as_of };
        self.rows = snapshot.rows.into_iter().map(Arc::new).collect();
        for row in self.rows.clone() {
            self.observe(&row);
        }
        let as_of = match &self.filled {
            Filled::Snapshot { as_of } => as_of.clone(),
            Filled::Stream { .. } => None,
        };
        for (columns, index) in self.indexes.iter_mut() {
            index.clear();
            for row in &self.rows {
                insert_version(index, columns, row, as_of.as_deref());
            }
        }
    }

    /// Stages a stream change of this batch; it becomes visible to events after it.
    pub(crate) fn stage(&mut self, index: usize, event: &ChangeEvent) {
        let new = match event.op {
            Op::Delete => None,
            _ => event.after.clone().map(Arc::new),
        };
        if let Some(row) = &new {
            self.observe(row);
        }
        self.newest = self.newest.max(event.commit_time);
        for (columns, staged) in self.staged.iter_mut() {
            // A delete removes the row the key had; an update that moved the key removes
            // the old one too.
            let old = event.before.as_ref().and_then(|b| row_key(b, columns));
            let now = new.as_ref().and_then(|r| row_key(r, columns));
            if let Some(old) = old.filter(|o| Some(o) != now.as_ref()) {
                staged.entry(old).or_default().push((index, event.commit_time, None));
            }
            if let Some(now) = now {
                staged.entry(now).or_default().push((index, event.commit_time, new.clone()));
            }
        }
    }

    /// The row a key finds for an event at `time`, the `event`th of the batch.
    pub(crate) fn get(&self, columns: &[String], key: &str, time: EventTime, event: usize) -> Option<&Arc<Row>> {
        if let Some(changes) = self.staged.get(columns).and_then(|s| s.get(key))
            && let Some((_, _, row)) = changes.iter().rev().find(|(i, _, _)| *i < event)
        {
            return row.as_ref();
        }
        let versions = self.indexes.get(columns)?.get(key)?;
        match &self.filled {
            Filled::Snapshot { as_of: Some(_) } => {
                let after = versions.partition_point(|(from, _)| *from <= time);
                after.checked_sub(1).map(|i| &versions[i].1)
            }
            _ => versions.last().map(|(_, row)| row),
        }
    }

    /// Applies the batch's staged stream changes, then drops rows past `keep`.
    pub(crate) fn commit(&mut self) {
        for (columns, staged) in self.staged.iter_mut() {
            let Some(index) = self.indexes.get_mut(columns) else { continue };
            for (key, changes) in staged.drain() {
                match changes.last() {
                    Some((_, time, Some(row))) => {
                        index.insert(key, vec![(*time, row.clone())]);
                    }
                    Some((_, _, None)) => {
                        index.remove(&key);
                    }
                    None => {}
                }
            }
        }
        if let Filled::Stream { keep: Some(keep), .. } = &self.filled {
            let size = self.indexes.values().map(HashMap::len).max().unwrap_or(0);
            if size > self.sweep_at {
                let keep = i64::try_from(keep.as_micros()).unwrap_or(i64::MAX);
                let before = EventTime::from_micros(self.newest.as_micros().saturating_sub(keep));
                for index in self.indexes.values_mut() {
                    index.retain(|_, versions| versions.last().is_some_and(|(t, _)| *t >= before));
                }
                self.sweep_at = (size * 2).max(1024);
            }
        }
    }

    /// A stream lookup's rows, for a checkpoint.
    pub(crate) fn saved(&self) -> SavedLookup {
        SavedLookup {
            indexes: self
                .indexes
                .iter()
                .map(|(columns, index)| {
                    let rows = index
                        .iter()
                        .filter_map(|(key, v)| v.last().map(|(t, r)| (key.clone(), *t, r.clone())))
                        .collect();
                    (columns.clone(), rows)
                })
                .collect(),
            newest: self.newest,
        }
    }

    /// Takes a checkpoint's rows of a stream lookup.
    pub(crate) fn restore(&mut self, saved: SavedLookup) {
        self.newest = saved.newest;
        for (columns, rows) in saved.indexes {
            let mut index = HashMap::with_capacity(rows.len());
            for (key, time, row) in rows {
                self.observe(&row);
                index.insert(key, vec![(time, row)]);
            }
            self.indexes.insert(columns, index);
        }
    }

    /// Takes over an older table's rows (a rule reload), keeping this one's references
    /// and indexes. Only rows of the same kind of filling are taken.
    pub(crate) fn adopt(&mut self, old: LookupTable) {
        if std::mem::discriminant(&old.filled) != std::mem::discriminant(&self.filled) {
            return;
        }
        let wanted: Vec<Vec<String>> = self.indexes.keys().cloned().collect();
        if let Filled::Snapshot { .. } = old.filled {
            self.filled = old.filled;
        }
        self.rows = old.rows;
        self.newest = old.newest;
        self.indexes = old.indexes;
        self.staged = self.indexes.keys().map(|c| (c.clone(), HashMap::new())).collect();
        let held: Vec<Arc<Row>> = self
            .rows
            .iter()
            .cloned()
            .chain(self.indexes.values().flat_map(|i| i.values().flat_map(|v| v.iter().map(|(_, r)| r.clone()))))
            .collect();
        for row in &held {
            self.observe(row);
        }
        for columns in wanted {
            self.index(&columns);
        }
    }
}

fn insert_version(index: &mut HashMap<String, Versions>, columns: &[String], row: &Arc<Row>, as_of: Option<&str>) {
    let Some(key) = row_key(row, columns) else { return };
    let from = match as_of {
        Some(column) => match in_force_from(row, column) {
            Some(t) => t,
            // A row without a valid date is never in force.
            None => return,
        },
        None => EventTime::from_micros(i64::MIN),
    };
    let versions = index.entry(key).or_default();
    let at = versions.partition_point(|(t, _)| *t <= from);
    versions.insert(at, (from, row.clone()));
}

/// A stream lookup in a checkpoint: per index, (key, last change, row). The rows are
/// shared with the lookup, so taking a checkpoint copies no row.
#[derive(Serialize, Deserialize)]
pub(crate) struct SavedLookup {
    indexes: Vec<SavedIndex>,
    newest: EventTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, Value)]) -> Row {
        pairs.iter().cloned().collect()
    }

    #[test]
    fn effective_dated_rows_are_read_as_of_the_event() {
        let mut t = LookupTable::new(Filled::Snapshot { as_of: None }, None);
        let columns = vec!["merchant_id".to_string()];
        t.index(&columns);
        t.set(LookupSnapshot {
            rows: vec![
                row(&[
                    ("merchant_id", Value::Int(1)),
                    ("rate", Value::Int(5)),
                    ("from", Value::String("2024-01-01".into())),
                ]),
                row(&[
                    ("merchant_id", Value::Int(1)),
                    ("rate", Value::Int(6)),
                    ("from", Value::String("2024-02-01".into())),
                ]),
            ],
            as_of: Some("from".into()),
        });
        let at = |s: &str| EventTime::parse(s).unwrap();
        let rate = |time| t.get(&columns, "1", time, 0).and_then(|r| r.get("rate").cloned());
        assert_eq!(rate(at("2023-12-31T23:59:59Z")), None);
        assert_eq!(rate(at("2024-01-15T00:00:00Z")), Some(Value::Int(5)));
        assert_eq!(rate(at("2024-02-01T00:00:00Z")), Some(Value::Int(6)));
    }

    #[test]
    fn keys_meet_across_types_and_null_parts_find_nothing() {
        assert_eq!(
            key_of([Some(&Value::Int(42))].into_iter()),
            key_of([Some(&Value::String("42".into()))].into_iter())
        );
        assert_eq!(key_of([Some(&Value::Int(1)), None].into_iter()), None);
        assert_eq!(key_of([Some(&Value::Null)].into_iter()), None);
        assert_ne!(
            key_of([Some(&Value::Int(1)), Some(&Value::Int(23))].into_iter()),
            key_of([Some(&Value::Int(12)), Some(&Value::Int(3))].into_iter())
        );
    }
}
