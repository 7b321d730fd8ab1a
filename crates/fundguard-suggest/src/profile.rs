//! One pass over a sample of change events: what each column holds, how each entity moves
//! through its states, how related tables agree, and how often outcomes fail per dimension.
//!
//! [`Profiler::observe`] takes events one at a time (the caller bounds the sample), so the
//! events are never all held in memory; what is kept grows with the number of entities,
//! not of events. [`Profiler::finish`] joins related tables and returns the [`Profile`].
//! Every figure about money is an integer or an exact decimal.

mod columns;
mod groups;
mod products;
mod relations;
pub mod states;

use std::collections::{BTreeMap, HashMap};

use fundguard_core::{ChangeEvent, Decimal, EventTime, Op, Row, Value};
use serde::Serialize;

use crate::layout::Layout;
pub use columns::{ColumnProfile, Identity, IdentityOp, RatioProfile};
pub use groups::GroupProfile;
pub use products::{EXPONENTS, ProductFit, ProductProfile};
pub use relations::{AmountPair, CurrencyPair, RelationProfile, StatePair};
pub use states::{Entity, KeptEntities, RateCounts, StateProfile, Visit};

/// Microseconds in a minute: rate counts are kept per minute and summed into any window.
pub const MINUTE: i64 = 60_000_000;

/// What the sample showed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Profile {
    pub events: u64,
    pub first: Option<EventTime>,
    pub last: Option<EventTime>,
    pub tables: BTreeMap<String, TableProfile>,
    pub relations: Vec<RelationProfile>,
    /// The latest row image of every row (by the table's id; every row of a table without
    /// one), per table: what a D+1 query would see in the warehouse after the sample.
    #[serde(skip)]
    pub latest: BTreeMap<String, Vec<Row>>,
}

/// One table of the sample.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableProfile {
    pub events: u64,
    pub inserts: u64,
    pub updates: u64,
    pub deletes: u64,
    pub columns: BTreeMap<String, ColumnProfile>,
    /// Sums and differences between the table's money columns that held on rows.
    pub identities: Vec<Identity>,
    /// Ratios between the table's money columns (a constant 100 is fen vs yuan).
    pub ratios: Vec<RatioProfile>,
    /// Money columns against an amount times a rate.
    pub products: Vec<ProductProfile>,
    /// Rows grouped by a shared id, balanced per group or not (best first).
    pub groups: Vec<GroupProfile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub states: Option<StateProfile>,
}

/// Profiles events one at a time.
pub struct Profiler {
    layout: Layout,
    profile: Profile,
    tables: HashMap<String, TableState>,
}

struct TableState {
    money: Vec<String>,
    identities: Vec<Identity>,
    ratios: Vec<RatioProfile>,
    /// The columns products read, and the candidate products.
    product_columns: Vec<String>,
    products: Vec<ProductProfile>,
    groups: Option<groups::Groups>,
    /// The table's id column, and the latest row per id (or every row, without an id).
    id: Option<String>,
    latest: HashMap<String, Row>,
    appended: Vec<Row>,
    entities: Option<states::Entities>,
}

impl Profiler {
    pub fn new(layout: Layout) -> Self {
        Profiler { layout, profile: Profile::default(), tables: HashMap::new() }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Takes one event into the profile.
    pub fn observe(&mut self, event: &ChangeEvent) {
        let p = &mut self.profile;
        p.events += 1;
        let t = event.commit_time;
        p.first = Some(p.first.map_or(t, |f| f.min(t)));
        p.last = Some(p.last.map_or(t, |l| l.max(t)));
        let layout = &self.layout;
        let table = p.tables.entry(event.table.to_string()).or_default();
        table.events += 1;
        match event.op {
            Op::Insert => table.inserts += 1,
            Op::Update => table.updates += 1,
            Op::Delete => table.deletes += 1,
            _ => {}
        }
        let state = self.tables.entry(event.table.to_string()).or_insert_with(|| {
            let l = layout.table(&event.table);
            let money = l.map(|l| l.money.clone()).unwrap_or_default();
            let rates = l.map(|l| l.rates.clone()).unwrap_or_default();
            let (product_columns, products) = products::candidates(&money, &rates);
            TableState {
                identities: columns::identities(&money),
                ratios: columns::ratios(&money),
                product_columns,
                products,
                groups: l.and_then(groups::Groups::new),
                id: l.and_then(|l| l.id.clone()),
                latest: HashMap::new(),
                appended: Vec::new(),
                entities: l.and_then(|l| states::Entities::new(l, layout)),
                money,
            }
        });
        let key = |row: Option<&Row>| state.id.as_ref().and_then(|id| row?.get(id)).and_then(key_text);
        if event.op == Op::Delete {
            if let Some(k) = key(event.before.as_ref()) {
                state.latest.remove(&k);
            }
            return;
        }
        let Some(row) = event.after.as_ref() else { return };
        match key(Some(row)) {
            Some(k) => {
                state.latest.insert(k, row.clone());
            }
            None => state.appended.push(row.clone()),
        }
        for (name, value) in row.iter() {
            match table.columns.get_mut(name) {
                Some(c) => c.observe(value, row),
                None => {
                    let mut c = ColumnProfile::default();
                    c.observe(value, row);
                    table.columns.insert(name.to_string(), c);
                }
            }
        }
        if !state.money.is_empty() {
            let amounts: Vec<Option<Decimal>> = state.money.iter().map(|m| row.get(m).and_then(number)).collect();
            for identity in &mut state.identities {
                identity.observe(&amounts, row);
            }
            for ratio in &mut state.ratios {
                ratio.observe(&amounts, row);
            }
        }
        if !state.products.is_empty() {
            let values = products::read(&state.product_columns, row);
            for product in &mut state.products {
                product.observe(&values, row);
            }
        }
        if let Some(groups) = &mut state.groups {
            groups.observe(t.as_micros(), row);
        }
        if let Some(entities) = &mut state.entities {
            entities.observe(event, row);
        }
    }

    /// Ends the pass: entities still in a state are measured against the last commit
    /// time, and related tables are joined.
    pub fn finish(mut self) -> Profile {
        let end = self.profile.last.map_or(0, EventTime::as_micros);
        let mut entities = HashMap::new();
        let mut latest_rows = BTreeMap::new();
        for (name, state) in self.tables {
            let Some(table) = self.profile.tables.get_mut(&name) else { continue };
            table.identities = state.identities;
            table.ratios = state.ratios;
            // Only candidates that held on some row are worth a line in the report.
            table.products = state.products.into_iter().filter(|p| p.fits.iter().any(|f| f.within_one > 0)).collect();
            table.groups = state.groups.map(|g| g.finish(end)).unwrap_or_default();
            let mut latest: Vec<(String, Row)> = state.latest.into_iter().collect();
            latest.sort_by(|a, b| a.0.cmp(&b.0));
            let mut rows: Vec<Row> = latest.into_iter().map(|(_, r)| r).collect();
            rows.extend(state.appended);
            latest_rows.insert(name.clone(), rows);
            for c in table.columns.values_mut() {
                c.finish();
            }
            if let Some(e) = state.entities {
                let (profile, kept) = e.finish(end);
                table.states = profile;
                entities.insert(name, kept);
            }
        }
        self.profile.latest = latest_rows;
        self.profile.relations = relations::join(&self.layout, &entities, end);
        self.profile
    }
}

/// An amount as an exact decimal: integers and decimals only (text is not money).
pub fn number(value: &Value) -> Option<Decimal> {
    match value {
        Value::Int(i) => Some(Decimal::from(*i)),
        Value::Decimal(d) => Some(*d),
        _ => None,
    }
}

/// A key as text, the way the engine's integer keys normalise it: `42`, `42.0` and `"42"`
/// are one key.
pub fn key_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::Int(i) => Some(i.to_string()),
        Value::Decimal(d) if d.fract().is_zero() => Some(d.trunc().normalize().to_string()),
        Value::String(s) => Some(s.trim().to_string()),
        other => Some(other.to_string()),
    }
}

/// The `permille`-th value of sorted durations (nearest rank); `None` when empty.
pub fn percentile(sorted: &[i64], permille: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (sorted.len() * permille as usize).div_ceil(1000).max(1);
    sorted.get(rank - 1).copied()
}

/// Percentiles of a set of durations, as the report shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Durations {
    pub count: usize,
    pub p50_ms: i64,
    pub p90_ms: i64,
    pub p99_ms: i64,
    pub max_ms: i64,
    #[serde(skip)]
    pub max_micros: i64,
}

impl Durations {
    pub fn of(mut micros: Vec<i64>) -> Durations {
        micros.sort_unstable();
        let at = |p| percentile(&micros, p).unwrap_or(0) / 1000;
        Durations {
            count: micros.len(),
            p50_ms: at(500),
            p90_ms: at(900),
            p99_ms: at(990),
            max_ms: at(1000),
            max_micros: micros.last().copied().unwrap_or(0),
        }
    }
}
