//! The dimension values a stateful rule keeps with every row it stores.
//!
//! A finding made long after its event still shows which channel, merchant or currency
//! it was about: alarm attribution compares those values. A rule may hold millions of rows,
//! and their dimensions repeat — the same column names row after row, a handful of
//! currencies and statuses — so they are kept shared: one list of names per row layout, and
//! texts interned, each distinct text held once. A row's own dimensions are then a slice of
//! 16-byte values, made once per event however many rules store it ([`BatchDimensions`]),
//! and shared by them.

use std::cell::{OnceCell, RefCell};
use std::fmt;
use std::sync::Arc;

use fundguard_core::{ChangeEvent, Value};
use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use crate::FastMap;

/// The longest text kept as a dimension: longer ones are descriptions, not slices of traffic.
const MAX_TEXT: usize = 64;
/// Distinct texts interned per rule. Past it a new text is kept unshared: a column of
/// unique values (order numbers) must not grow the table without bound, and the repeating
/// ones (currencies, statuses, channels) come early and stay shared.
const MAX_INTERNED: usize = 4096;
/// Row layouts (lists of names) remembered per rule.
const MAX_LAYOUTS: usize = 64;

/// One dimension value: 16 bytes, a text behind one shared pointer.
#[derive(Debug, Clone, PartialEq)]
enum Dim {
    Int(i64),
    Bool(bool),
    Text(Arc<String>),
}

impl Dim {
    fn of(value: &Value) -> Option<Dim> {
        match value {
            Value::Int(i) => Some(Dim::Int(*i)),
            Value::Bool(b) => Some(Dim::Bool(*b)),
            Value::String(s) if s.len() <= MAX_TEXT => Some(Dim::Text(Arc::new(s.clone()))),
            _ => None,
        }
    }

    fn value(&self) -> Value {
        match self {
            Dim::Int(i) => Value::Int(*i),
            Dim::Bool(b) => Value::Bool(*b),
            Dim::Text(s) => Value::String(String::clone(s)),
        }
    }
}

/// The dimension values of one row: text up to 64 characters, integers and booleans.
/// Amounts as decimals, timestamps and JSON are left out; integer ids stay (attribution
/// ignores a column whose values are mostly new).
#[derive(Debug, Clone)]
pub(crate) struct Dimensions {
    names: Arc<[Arc<str>]>,
    values: Arc<[Dim]>,
}

impl Default for Dimensions {
    fn default() -> Self {
        Dimensions { names: Arc::new([]), values: Arc::new([]) }
    }
}

impl Dimensions {
    /// The (name, value) pairs, in the row's column order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Arc<str>, Value)> {
        self.names.iter().zip(self.values.iter().map(Dim::value))
    }

    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }
}

impl PartialEq for Dimensions {
    fn eq(&self, other: &Self) -> bool {
        self.names == other.names && self.values == other.values
    }
}

/// What the rows of one rule share: their layouts and texts. Bounded (see the constants).
#[derive(Default)]
pub(crate) struct DimensionCache {
    layouts: Vec<Arc<[Arc<str>]>>,
    texts: FastMap<Box<str>, Arc<String>>,
    /// The last text seen at each column position: a column's value mostly repeats (a
    /// currency, a status), and comparing with it costs less than hashing to look it up.
    recent: Vec<Option<Arc<String>>>,
    /// Reused for the names of the row being read.
    names: Vec<Arc<str>>,
}

impl DimensionCache {
    /// The dimensions of an event's row (its image after the change, else before).
    pub(crate) fn of(&mut self, event: &ChangeEvent) -> Dimensions {
        let Some(row) = event.after.as_ref().or(event.before.as_ref()) else { return Dimensions::default() };
        self.names.clear();
        let mut values = Vec::with_capacity(row.len());
        if self.recent.len() < row.len() {
            self.recent.resize(row.len(), None);
        }
        for (at, (name, value)) in row.columns().enumerate() {
            let dim = match value {
                Value::String(s) if s.len() <= MAX_TEXT => match &self.recent[at] {
                    Some(last) if **last == *s => Dim::Text(last.clone()),
                    _ => {
                        let text = self.text(s);
                        self.recent[at] = Some(text.clone());
                        Dim::Text(text)
                    }
                },
                other => match Dim::of(other) {
                    Some(dim) => dim,
                    None => continue,
                },
            };
            self.names.push(name.clone());
            values.push(dim);
        }
        Dimensions { names: self.layout(), values: values.into() }
    }

    /// Shares what a row read back from a checkpoint has in common with the others.
    pub(crate) fn share(&mut self, dims: &mut Dimensions) {
        self.names.clear();
        self.names.extend(dims.names.iter().cloned());
        dims.names = self.layout();
        let values: Vec<Dim> = dims
            .values
            .iter()
            .map(|value| match value {
                Dim::Text(s) => Dim::Text(self.text(s)),
                other => other.clone(),
            })
            .collect();
        dims.values = values.into();
    }

    fn text(&mut self, s: &str) -> Arc<String> {
        if let Some(shared) = self.texts.get(s) {
            return shared.clone();
        }
        let shared = Arc::new(s.to_string());
        if self.texts.len() < MAX_INTERNED {
            self.texts.insert(s.into(), shared.clone());
        }
        shared
    }

    /// The shared list equal to `self.names`. Decoders share a table's column names, so
    /// comparing pointers mostly settles it without comparing text.
    fn layout(&mut self) -> Arc<[Arc<str>]> {
        let names = &self.names;
        let same = |layout: &Arc<[Arc<str>]>| {
            layout.len() == names.len() && layout.iter().zip(names).all(|(a, b)| Arc::ptr_eq(a, b) || a == b)
        };
        if let Some(i) = self.layouts.iter().position(same) {
            // Most recently used first: the next row most likely has this layout again.
            self.layouts[..=i].rotate_right(1);
            return self.layouts[0].clone();
        }
        let layout: Arc<[Arc<str>]> = self.names.as_slice().into();
        self.layouts.truncate(MAX_LAYOUTS - 1);
        self.layouts.insert(0, layout.clone());
        layout
    }
}

/// The dimensions of one micro-batch's events, made the first time a stateful rule stores
/// an event and shared by every rule that stores it after.
pub(crate) struct BatchDimensions {
    cache: RefCell<DimensionCache>,
    events: usize,
    /// One cell per event, allocated when a rule first asks: a batch no stateful rule
    /// stores from costs nothing.
    made: OnceCell<Box<[OnceCell<Dimensions>]>>,
}

impl BatchDimensions {
    /// For a batch of `events` events; [`BatchDimensions::into_cache`] gives `cache` back.
    pub(crate) fn new(cache: DimensionCache, events: usize) -> Self {
        BatchDimensions { cache: RefCell::new(cache), events, made: OnceCell::new() }
    }

    /// The dimensions of `events[index]`, `events` being the batch this was made for.
    pub(crate) fn of(&self, events: &[ChangeEvent], index: usize) -> Dimensions {
        let made = self.made.get_or_init(|| (0..self.events).map(|_| OnceCell::new()).collect());
        match made.get(index) {
            Some(cell) => cell.get_or_init(|| self.cache.borrow_mut().of(&events[index])).clone(),
            None => self.cache.borrow_mut().of(&events[index]),
        }
    }

    pub(crate) fn into_cache(self) -> DimensionCache {
        self.cache.into_inner()
    }
}

/// Checkpoints hold dimensions as the list of (name, value) pairs they were before being
/// shared: the form is unchanged, and sharing is redone on restore ([`DimensionCache::share`]).
impl Serialize for Dimensions {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.values.len()))?;
        for (name, value) in self.iter() {
            seq.serialize_element(&(&**name, value))?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Dimensions {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = Dimensions;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of (dimension name, value) pairs")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Dimensions, A::Error> {
                let (mut names, mut values) = (Vec::new(), Vec::new());
                while let Some((name, value)) = seq.next_element::<(Arc<str>, Value)>()? {
                    // A value no longer kept as a dimension (a long text) is dropped.
                    if let Some(dim) = Dim::of(&value) {
                        names.push(name);
                        values.push(dim);
                    }
                }
                Ok(Dimensions { names: names.into(), values: values.into() })
            }
        }
        deserializer.deserialize_seq(Pairs)
    }
}

#[cfg(test)]
mod tests {
    use fundguard_core::{EventTime, Op, Position, Row};

    use super::*;

    fn event(row: Row) -> ChangeEvent {
        ChangeEvent {
            table: "s.t".into(),
            op: Op::Insert,
            commit_time: EventTime::from_secs(1),
            position: Position::Synthetic { seq: 1 },
            before: None,
            after: Some(row),
        }
    }

    #[test]
    fn rows_share_names_and_texts_and_read_back_from_checkpoints() {
        let names: Vec<Arc<str>> = ["id", "currency", "note", "amount", "paid"].map(Arc::from).to_vec();
        let row = |id: i64, currency: &str, note: &str| -> Row {
            let mut row = Row::new();
            row.push(names[0].clone(), Value::Int(id));
            row.push(names[1].clone(), Value::String(currency.into()));
            row.push(names[2].clone(), Value::String(note.into()));
            row.push(names[3].clone(), Value::Decimal("1.50".parse().unwrap()));
            row.push(names[4].clone(), Value::Bool(true));
            row
        };
        let cache = DimensionCache::default();
        let batch = [event(row(4, "USD", "ok"))];
        let shared = BatchDimensions::new(cache, 1);
        let (first, second) = (shared.of(&batch, 0), shared.of(&batch, 0));
        assert!(Arc::ptr_eq(&first.values, &second.values), "made once per event, shared by the rules storing it");
        let mut cache = shared.into_cache();
        let long = "x".repeat(MAX_TEXT + 1);
        let (a, b) = (cache.of(&event(row(1, "CNY", "ok"))), cache.of(&event(row(2, "CNY", &long))));
        let shown = |d: &Dimensions| d.iter().map(|(n, v)| (n.to_string(), v)).collect::<Vec<_>>();
        assert_eq!(
            shown(&a),
            [
                ("id".into(), Value::Int(1)),
                ("currency".into(), Value::String("CNY".into())),
                ("note".into(), Value::String("ok".into())),
                ("paid".into(), Value::Bool(true)),
            ]
        );
        assert_eq!(shown(&b).len(), 3, "the long text and the decimal are not dimensions");
        let again = cache.of(&event(row(3, "CNY", "ok")));
        assert!(Arc::ptr_eq(&a.names, &again.names), "one layout");
        let (Dim::Text(x), Dim::Text(y)) = (&a.values[1], &again.values[1]) else { panic!() };
        assert!(Arc::ptr_eq(x, y), "one CNY");

        let bytes = rmp_serde::to_vec_named(&a).unwrap();
        let old: Vec<(String, Value)> = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(old, shown(&a), "the checkpoint form is the list of pairs it always was");
        let mut restored: Dimensions = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(restored, a);
        cache.share(&mut restored);
        assert!(Arc::ptr_eq(&restored.names, &a.names), "shared again after a restore");
    }
}
