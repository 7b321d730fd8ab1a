//! Suggestion kinds: each reads the profile and proposes rules, or says why it proposes none.
//!
//! Every kind is one module behind [`Kind`], listed once in [`kinds`]. A suggestion carries
//! its rule body, the invariant in words, the profile figures it rests on, a confidence and
//! tests built from real rows of the sample; [`crate::render`] writes it as a rule file.

mod currency;
mod daily;
mod ledger;
mod products;
mod rate;
mod reconcile;
mod sign;
mod states;
mod sums;
mod timeout;
mod units;

use std::collections::BTreeMap;

use fundguard_core::{Decimal, Op, Row, Value};
use serde::Serialize;

use crate::layout::{Layout, TableLayout};
use crate::profile::{Profile, TableProfile};

/// What the suggester may decide by itself.
#[derive(Debug, Clone)]
pub struct Options {
    /// Columns (and states, relations, windows) with fewer rows get no suggestion.
    pub min_rows: u64,
    /// The owner written into every rule; by default the table's name stands in for its team.
    pub owner: Option<String>,
    /// The rate rules' window.
    pub rate_window_micros: i64,
}

impl Default for Options {
    fn default() -> Self {
        Options { min_rows: 30, owner: None, rate_window_micros: 10 * crate::profile::MINUTE }
    }
}

/// One proposed rule.
#[derive(Debug, Clone, Serialize)]
pub struct Suggestion {
    pub id: String,
    pub kind: &'static str,
    pub tables: Vec<String>,
    /// `table.column` of every column the invariant reads.
    pub columns: Vec<String>,
    /// The invariant in words (the rule's description).
    pub invariant: String,
    /// The profile figures it rests on.
    pub evidence: Vec<String>,
    /// 0–100: how much data supports it and how sure the classification was.
    pub confidence: u8,
    /// What a reviewer must look at (rare transitions left out, values excluded).
    pub review: Vec<String>,
    pub owner: String,
    pub severity: &'static str,
    pub tags: Vec<String>,
    #[serde(skip)]
    pub body: Body,
    #[serde(skip)]
    pub tests: Vec<TestCase>,
}

/// The rule body, in the terms of the rule file.
#[derive(Debug, Clone)]
pub enum Body {
    Check {
        table: String,
        when: Option<String>,
        assert: String,
        key: Vec<(String, String)>,
        money: Option<(String, Option<String>)>,
    },
    Transition {
        table: String,
        key: String,
        status: String,
        initial: Vec<String>,
        allowed: BTreeMap<String, Vec<String>>,
    },
    Timeout {
        table: String,
        key: String,
        enter: String,
        exit: String,
        within: i64,
        money: Option<(String, Option<String>)>,
    },
    Rate {
        table: String,
        when: String,
        group: String,
        numerator: String,
        window: i64,
        min_volume: u64,
        max_ratio: Decimal,
    },
    Reconcile {
        left: Side,
        right: Side,
        within: i64,
        integer_keys: bool,
        cardinality: Cardinality,
        aggregates: Vec<(String, String)>,
        expect: String,
        message: Option<String>,
        money: Option<(String, Option<String>)>,
    },
    /// A D+1 query over warehouse tables: every result row is a finding.
    Sql { schedule: String, query: String, key: Vec<String>, money: Option<(String, Option<String>)>, message: String },
}

/// How many rows of each side of a reconciliation match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cardinality {
    OneToOne,
    OneToMany,
    ManyToMany,
}

impl Default for Body {
    fn default() -> Self {
        Body::Check { table: String::new(), when: None, assert: String::new(), key: Vec::new(), money: None }
    }
}

/// One side of a reconciliation.
#[derive(Debug, Clone)]
pub struct Side {
    pub table: String,
    pub key: String,
    pub when: Option<String>,
    pub required: bool,
}

/// A rule test: a timeline of events and the keys of the findings expected.
#[derive(Debug, Clone)]
pub struct TestCase {
    pub name: String,
    pub events: Vec<TestEvent>,
    pub expect: Vec<Vec<(String, Value)>>,
}

/// One event of a rule test, `at` microseconds after the test's start.
#[derive(Debug, Clone)]
pub struct TestEvent {
    pub at: i64,
    pub table: String,
    pub op: Op,
    pub after: Vec<(String, Value)>,
}

/// A column (or table, or relation) that got no suggestion of a kind, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub kind: &'static str,
    pub subject: String,
    pub reason: String,
}

/// What the kinds proposed and what they passed over.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Suggestions {
    pub made: Vec<Suggestion>,
    pub skipped: Vec<Skipped>,
}

/// What every kind reads.
pub struct Context<'a> {
    pub profile: &'a Profile,
    pub layout: &'a Layout,
    pub options: &'a Options,
}

/// A suggestion kind.
pub trait Kind {
    fn name(&self) -> &'static str;
    fn suggest(&self, cx: &Context<'_>, out: &mut Suggestions);
}

/// Every kind, in the order the report lists them.
pub fn kinds() -> Vec<Box<dyn Kind>> {
    vec![
        Box::new(sign::Sign),
        Box::new(currency::Currency),
        Box::new(units::Units),
        Box::new(sums::Sums),
        Box::new(states::StateMachine),
        Box::new(timeout::Timeout),
        Box::new(rate::FailureRate),
        Box::new(reconcile::Reconcile),
        Box::new(products::Products),
        Box::new(ledger::Ledger),
        Box::new(daily::DailyTotals),
    ]
}

/// Runs every kind over the profile.
pub fn suggest(profile: &Profile, layout: &Layout, options: &Options) -> Suggestions {
    let cx = Context { profile, layout, options };
    let mut out = Suggestions::default();
    for kind in kinds() {
        kind.suggest(&cx, &mut out);
    }
    let mut seen = std::collections::HashSet::new();
    for s in &mut out.made {
        // Ids are unique across the suggestions: a second one gets a number.
        let mut id = s.id.clone();
        let mut n = 2;
        while !seen.insert(id.clone()) {
            id = format!("{}-{n}", s.id);
            n += 1;
        }
        s.id = id;
    }
    out
}

impl<'a> Context<'a> {
    /// Every classified table that the sample showed, with its profile: the loop every
    /// per-table kind starts with.
    pub fn tables(&self) -> impl Iterator<Item = (&'a String, &'a TableLayout, &'a TableProfile)> + 'a {
        let profile = self.profile;
        self.layout.tables.iter().filter_map(move |(name, table)| Some((name, table, profile.tables.get(name)?)))
    }

    /// Why an invariant that held on `held` of `rows` rows may not be suggested: fewer than
    /// `--min-rows` rows, or more exceptions than [`within_tolerance`] allows. `what` names
    /// the invariant (`ratio 100`).
    pub fn shortfall(&self, what: &str, rows: u64, held: u64) -> Option<String> {
        if rows < self.options.min_rows {
            Some(format!("{what} on only {rows} row(s); at least {} are needed", self.options.min_rows))
        } else if !within_tolerance(rows.saturating_sub(held), rows) {
            Some(format!("{what} on {held} of {rows} rows only"))
        } else {
            None
        }
    }

    /// Whether it may be suggested ([`Context::shortfall`]); if not, the reason is added to
    /// the skipped subjects.
    pub fn enough(
        &self,
        out: &mut Suggestions,
        kind: &'static str,
        subject: &str,
        what: &str,
        rows: u64,
        held: u64,
    ) -> bool {
        match self.shortfall(what, rows, held) {
            Some(reason) => {
                out.skipped.push(Skipped { kind, subject: subject.to_string(), reason });
                false
            }
            None => true,
        }
    }

    pub fn owner(&self, table: &str) -> String {
        self.options.owner.clone().unwrap_or_else(|| rule_id(short(table)))
    }

    /// The amount that stands for a row's money (a timeout's money at risk): the one a
    /// related table's amount equalled most often, else the one with the largest values.
    pub fn headline_amount(&self, table: &TableLayout) -> Option<String> {
        let mut agreed: BTreeMap<&str, u64> = BTreeMap::new();
        for relation in &self.profile.relations {
            for pair in &relation.pairs {
                for a in &pair.amounts {
                    if relation.from == table.name {
                        *agreed.entry(a.from_column.as_str()).or_default() += a.equal;
                    }
                    if relation.to == table.name {
                        *agreed.entry(a.to_column.as_str()).or_default() += a.equal;
                    }
                }
            }
        }
        if let Some((column, n)) = agreed.iter().max_by_key(|(_, n)| **n)
            && *n > 0
        {
            return Some(column.to_string());
        }
        let columns = self.profile.tables.get(&table.name).map(|t| &t.columns);
        table.money.iter().max_by_key(|m| columns.and_then(|c| c.get(*m)).and_then(|c| c.max)).cloned()
    }
}

/// The two tests of a one-row check: a real row of the sample passes; the same row with
/// `column` set to `bad` is a finding keyed by the table's id.
pub fn row_tests(
    table: &str,
    key: &Option<String>,
    row: &Row,
    columns: &[&str],
    column: &str,
    bad: Value,
    name: String,
) -> Vec<TestCase> {
    let mut cols: Vec<&str> = key.iter().map(String::as_str).collect();
    cols.extend(columns);
    let real = pick(row, &cols);
    let expect_key = key.iter().filter_map(|k| row.get(k).map(|v| (k.clone(), v.clone()))).collect();
    let event = |after| vec![TestEvent { at: 0, table: table.to_string(), op: Op::Insert, after }];
    vec![
        TestCase { name: "a real row from the sample".into(), events: event(real.clone()), expect: vec![] },
        TestCase { name, events: event(with(real, column, bad)), expect: vec![expect_key] },
    ]
}

/// The key of a one-row check: the table's id.
pub fn id_key(key: &Option<String>) -> Vec<(String, String)> {
    key.iter().map(|k| (k.clone(), format!("after.{k}"))).collect()
}

/// `orders` of `shop.orders`.
pub fn short(table: &str) -> &str {
    table.rsplit('.').next().unwrap_or(table)
}

/// A rule id from parts: lower case, `-` between words, only the characters ids allow.
pub fn rule_id(text: &str) -> String {
    let mut id = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            id.push(c);
        } else if !id.ends_with('-') && !id.is_empty() {
            id.push('-');
        }
    }
    id.trim_end_matches('-').to_string()
}

/// A SQL string literal.
pub fn sql_text(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The columns of a real row a test needs, in the given order (missing ones left out).
pub fn pick(row: &Row, columns: &[&str]) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = Vec::new();
    for c in columns {
        if out.iter().any(|(n, _)| n == c) {
            continue;
        }
        if let Some(v) = row.get(c) {
            out.push((c.to_string(), v.clone()));
        }
    }
    out
}

/// Replaces (or adds) one value of a test row.
pub fn with(mut row: Vec<(String, Value)>, column: &str, value: Value) -> Vec<(String, Value)> {
    match row.iter_mut().find(|(n, _)| n == column) {
        Some(slot) => slot.1 = value,
        None => row.push((column.to_string(), value)),
    }
    row
}

/// How much data backs an invariant that held on `rows` rows, capped by the classification.
pub fn confidence(rows: u64, class_confidence: u8) -> u8 {
    let data = match rows {
        0..100 => 60,
        100..1000 => 75,
        1000..10_000 => 85,
        _ => 95,
    };
    data.min(class_confidence.saturating_add(10)).min(99)
}

/// The classification confidence of a column (50 when unknown).
pub fn class_confidence(table: &TableLayout, column: &str) -> u8 {
    table.classes.get(column).map_or(50, |c| c.confidence)
}

/// The money clause of a rule on one table: the first amount and the first currency.
pub fn money_of(table: &TableLayout, amount: &str) -> Option<(String, Option<String>)> {
    Some((format!("after.{amount}"), table.currencies.first().map(|c| format!("after.{c}"))))
}

/// At most one in a thousand: exceptions an invariant may have and still be suggested (they
/// are findings of its backtest, for a reviewer to look at).
pub fn within_tolerance(exceptions: u64, rows: u64) -> bool {
    exceptions.saturating_mul(1000) <= rows
}

/// The window a counterpart (or the rest of a group) must arrive in: 1.5 × the longest delay
/// seen, rounded up, at least a minute.
pub fn window(longest: i64) -> i64 {
    nice_up((longest.saturating_mul(3) / 2).max(60_000_000))
}

/// Durations a window or deadline is rounded up to.
const NICE: &[i64] =
    &[1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 172_800, 604_800];

/// The first "round" duration at or above `micros` (at least a second; at most a week).
pub fn nice_up(micros: i64) -> i64 {
    let secs = (micros.max(1) + 999_999) / 1_000_000;
    NICE.iter().copied().find(|&n| n >= secs).unwrap_or(*NICE.last().unwrap_or(&604_800)) * 1_000_000
}

/// `30s`, `5m`, `2h`, `1d`, `1h30m`.
pub fn duration_text(micros: i64) -> String {
    let mut secs = micros / 1_000_000;
    if secs == 0 {
        return format!("{}ms", micros / 1000);
    }
    let mut out = String::new();
    for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= n {
            out.push_str(&format!("{}{unit}", secs / n));
            secs %= n;
        }
    }
    out
}
