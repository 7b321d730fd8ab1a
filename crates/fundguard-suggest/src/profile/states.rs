//! Entities through their states: per table with an identifier, each row's first visit to
//! every state (with its amounts and currencies then, for relations), the observed
//! transitions with counts, the time spent in each state, and outcome counts per minute
//! and dimension value (failure rates).

use std::collections::{BTreeMap, HashMap};

use fundguard_core::{ChangeEvent, Op, Row, Value};
use serde::Serialize;

use super::{Durations, MINUTE, key_text};
use crate::layout::{Layout, TableLayout};

/// Entities whose whole path is kept as an example for rule tests.
const PATHS_KEPT: usize = 2000;
/// A dimension with more distinct values than this is not a dimension.
pub const MAX_DIMENSION_VALUES: usize = 32;

/// One entity's first visit to a state.
#[derive(Debug, Clone)]
pub struct Visit {
    /// Index into the table's states; tables without a status column have one state, `""`.
    pub state: u16,
    pub at: i64,
    /// The money and currency columns then (the layout's order: money, then currencies).
    pub values: Box<[Value]>,
}

/// One entity (row identity) of a table.
#[derive(Debug, Clone, Default)]
pub struct Entity {
    pub key: Value,
    pub visits: Vec<Visit>,
    /// The last value of each referencing column (the table's outgoing relations).
    pub via: Vec<Option<String>>,
    current: Option<(u16, i64)>,
    /// The whole path, for the first entities only.
    pub path: Option<Vec<(u16, i64)>>,
}

impl Entity {
    pub fn visit(&self, state: u16) -> Option<&Visit> {
        self.visits.iter().find(|v| v.state == state)
    }
}

/// Outcome counts of one (dimension column, value, minute).
pub type RateCounts = HashMap<(usize, String, i64), BTreeMap<u16, u64>>;

/// A table's state machine as observed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StateProfile {
    pub column: String,
    pub states: Vec<String>,
    /// Entities first seen by their insert, per state.
    pub initial: BTreeMap<String, u64>,
    /// Entities first seen by an update (the sample started after their insert).
    pub first_seen_by_update: u64,
    /// `from → to` → count.
    #[serde(serialize_with = "arrows")]
    pub transitions: BTreeMap<(String, String), u64>,
    /// Time spent in each state by entities that left it.
    pub durations: BTreeMap<String, Durations>,
    /// Entities still in a state at the end of the sample: how long they had been there.
    pub still_in: BTreeMap<String, Durations>,
    /// The entities' paths seen most often (states, count), for tests and the report.
    pub paths: Vec<(Vec<String>, u64)>,
    /// A real key and the times of one path per path shape, for tests.
    #[serde(skip)]
    pub path_examples: Vec<(Value, Vec<(String, i64)>)>,
    /// The dimension columns that kept few values, and their values.
    pub dimensions: BTreeMap<String, Vec<String>>,
    #[serde(skip)]
    pub rates: RateCounts,
    /// Per dimension column index: its name.
    #[serde(skip)]
    pub dimension_columns: Vec<String>,
}

impl StateProfile {
    pub fn state_index(&self, name: &str) -> Option<u16> {
        self.states.iter().position(|s| s == name).and_then(|i| u16::try_from(i).ok())
    }
}

/// The entities of one table, while the pass runs.
pub struct Entities {
    id: String,
    status: Option<String>,
    /// Money then currency columns, recorded at each visit.
    recorded: Vec<String>,
    via: Vec<String>,
    states: Vec<String>,
    state_at: HashMap<String, u16>,
    entities: HashMap<String, Entity>,
    initial: BTreeMap<u16, u64>,
    first_seen_by_update: u64,
    transitions: BTreeMap<(u16, u16), u64>,
    durations: BTreeMap<u16, Vec<i64>>,
    dimensions: Vec<(String, Option<Vec<String>>)>,
    rates: RateCounts,
}

impl Entities {
    /// Tracks a table that has an identifier column; `None` otherwise.
    pub fn new(table: &TableLayout, layout: &Layout) -> Option<Entities> {
        let id = table.id.clone()?;
        let via = layout.relations.iter().filter(|r| r.from == table.name).map(|r| r.via.clone()).collect();
        let dimensions = if table.status.is_some() {
            table.dimensions.iter().map(|d| (d.clone(), Some(Vec::new()))).collect()
        } else {
            Vec::new()
        };
        let mut e = Entities {
            id,
            status: table.status.clone(),
            recorded: table.money.iter().chain(&table.currencies).cloned().collect(),
            via,
            states: Vec::new(),
            state_at: HashMap::new(),
            entities: HashMap::new(),
            initial: BTreeMap::new(),
            first_seen_by_update: 0,
            transitions: BTreeMap::new(),
            durations: BTreeMap::new(),
            dimensions,
            rates: HashMap::new(),
        };
        if e.status.is_none() {
            e.intern("");
        }
        Some(e)
    }

    fn intern(&mut self, state: &str) -> u16 {
        if let Some(&s) = self.state_at.get(state) {
            return s;
        }
        let s = u16::try_from(self.states.len()).unwrap_or(u16::MAX);
        if s < u16::MAX {
            self.states.push(state.to_string());
            self.state_at.insert(state.to_string(), s);
        }
        s
    }

    pub fn observe(&mut self, event: &ChangeEvent, row: &Row) {
        let Some(key_value) = row.get(&self.id) else { return };
        let Some(key) = key_text(key_value) else { return };
        let state = match self.status.as_deref().map(|c| row.get(c)) {
            Some(Some(Value::String(s))) => match self.state_at.get(s.as_str()) {
                Some(&at) => at,
                None => self.intern(s),
            },
            Some(_) => return,
            None => 0,
        };
        if state == u16::MAX {
            return;
        }
        let at = event.commit_time.as_micros();
        let minute = at.div_euclid(MINUTE);
        for (i, (column, values)) in self.dimensions.iter_mut().enumerate() {
            let Some(list) = values else { continue };
            let Some(value) = row.get(column).and_then(key_text) else { continue };
            if !list.contains(&value) {
                if list.len() >= MAX_DIMENSION_VALUES {
                    *values = None;
                    self.rates.retain(|(d, ..), _| *d != i);
                    continue;
                }
                list.push(value.clone());
            }
            *self.rates.entry((i, value, minute)).or_default().entry(state).or_default() += 1;
        }
        let n = self.entities.len();
        let entity = self.entities.entry(key).or_insert_with(|| Entity {
            key: key_value.clone(),
            via: vec![None; self.via.len()],
            path: (n < PATHS_KEPT).then(Vec::new),
            ..Entity::default()
        });
        for (slot, column) in entity.via.iter_mut().zip(&self.via) {
            if let Some(v) = row.get(column).and_then(key_text) {
                *slot = Some(v);
            }
        }
        match entity.current {
            Some((current, _)) if current == state => return,
            Some((current, entered)) => {
                *self.transitions.entry((current, state)).or_default() += 1;
                self.durations.entry(current).or_default().push(at - entered);
            }
            None if event.op == Op::Insert || event.op == Op::Message => {
                *self.initial.entry(state).or_default() += 1;
            }
            None => self.first_seen_by_update += 1,
        }
        entity.current = Some((state, at));
        if let Some(path) = &mut entity.path {
            path.push((state, at));
        }
        if entity.visit(state).is_none() {
            let values = self.recorded.iter().map(|c| row.get(c).cloned().unwrap_or_default()).collect();
            entity.visits.push(Visit { state, at, values });
        }
    }

    /// The table's state profile (when it has a status column) and the entities, for joins.
    pub fn finish(self, end: i64) -> (Option<StateProfile>, KeptEntities) {
        let states = self.states.clone();
        let name = |s: &u16| states.get(*s as usize).cloned().unwrap_or_default();
        let profile = self.status.as_ref().map(|column| {
            let mut still: BTreeMap<u16, Vec<i64>> = BTreeMap::new();
            type Example = Option<(Value, Vec<(u16, i64)>)>;
            let mut shapes: BTreeMap<Vec<u16>, (u64, Example)> = BTreeMap::new();
            for entity in self.entities.values() {
                if let Some((state, entered)) = entity.current {
                    still.entry(state).or_default().push(end - entered);
                }
                if let Some(path) = &entity.path {
                    let shape: Vec<u16> = path.iter().map(|(s, _)| *s).collect();
                    let slot = shapes.entry(shape).or_insert((0, None));
                    slot.0 += 1;
                    // The smallest key gives the example: the same sample gives the same tests.
                    let smaller = match &slot.1 {
                        None => true,
                        Some((k, _)) => key_order(&entity.key) < key_order(k),
                    };
                    if smaller {
                        slot.1 = Some((entity.key.clone(), path.clone()));
                    }
                }
            }
            let mut paths: Vec<(Vec<String>, u64, Example)> =
                shapes.into_iter().map(|(shape, (n, ex))| (shape.iter().map(name).collect(), n, ex)).collect();
            paths.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let path_examples = paths
                .iter()
                .filter_map(|(_, _, ex)| ex.as_ref())
                .map(|(k, p)| (k.clone(), p.iter().map(|(s, t)| (name(s), *t)).collect()))
                .collect();
            StateProfile {
                column: column.clone(),
                states: states.clone(),
                initial: self.initial.iter().map(|(s, n)| (name(s), *n)).collect(),
                first_seen_by_update: self.first_seen_by_update,
                transitions: self.transitions.iter().map(|((a, b), n)| ((name(a), name(b)), *n)).collect(),
                durations: self.durations.iter().map(|(s, d)| (name(s), Durations::of(d.clone()))).collect(),
                still_in: still.into_iter().map(|(s, d)| (name(&s), Durations::of(d))).collect(),
                paths: paths.iter().take(10).map(|(p, n, _)| (p.clone(), *n)).collect(),
                path_examples,
                dimensions: self.dimensions.iter().filter_map(|(c, v)| Some((c.clone(), v.clone()?))).collect(),
                rates: HashMap::new(),
                dimension_columns: self.dimensions.iter().map(|(c, _)| c.clone()).collect(),
            }
        });
        let profile = profile.map(|mut p| {
            p.rates = self.rates;
            p
        });
        let kept = KeptEntities { states, recorded: self.recorded, via: self.via, entities: self.entities };
        (profile, kept)
    }
}

/// Transitions as `"A -> B": n` (JSON keys are text).
fn arrows<S: serde::Serializer>(t: &BTreeMap<(String, String), u64>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(t.iter().map(|((a, b), n)| (format!("{a} -> {b}"), n)))
}

/// Integers before text, integers by value: a stable "smallest key".
fn key_order(v: &Value) -> (u8, i64, String) {
    match v {
        Value::Int(i) => (0, *i, String::new()),
        other => (1, 0, other.to_string()),
    }
}

/// What relations need of a table's entities once the pass is over.
pub struct KeptEntities {
    pub states: Vec<String>,
    /// Money then currency columns, in the order of each visit's values.
    pub recorded: Vec<String>,
    pub via: Vec<String>,
    pub entities: HashMap<String, Entity>,
}
