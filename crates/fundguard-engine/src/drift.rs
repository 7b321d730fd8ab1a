//! Schema drift: the live stream no longer looks like what a rule was written for.
//!
//! A renamed or dropped column does not make a rule fail — its expression reads NULL and
//! the rule quietly stops finding anything. A new status value does not fail a state
//! machine either — it just never matches. So the engine watches, per table, the columns
//! its rules read:
//!
//! - **missing**: a column a rule reads is absent from a database row image (an insert's or
//!   update's `after`: database sources deliver whole rows) where it was present before;
//! - **type changed**: its values changed family (number, text, boolean, timestamp);
//! - **new status value**: a transition rule's status column shows a state that its
//!   `initial`, `allowed`, `forbidden` and `frozen` never mention; or a column a rule's
//!   `when` compares with text values (`after.status = 'PAID'`, `IN (…)`) shows a value the
//!   `when` never names that is also *new* — first seen after the table's first
//!   [`BASELINE_EVENTS`] events, whose values are the baseline (a filter that names only
//!   the values it wants is not drift; a value that appears later is a rename to check).
//!
//! Each drift is reported once per rule and subject (a column, or a column and value) for
//! the life of the engine, as a [`Drift`]; the engine turns it into a finding for the
//! rule's owner when drift findings are switched on. The checks look at one row per table
//! and batch for columns (drift persists, so the next batch sees it too) and at every
//! status value, which costs one lookup per event of a table with a transition rule.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use fundguard_core::{ChangeEvent, EventTime, Op, Position, Value};
use fundguard_rules::{Rule, RuleBody};
use serde::Serialize;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    ColumnMissing,
    TypeChanged,
    NewStatusValue,
}

impl DriftKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::ColumnMissing => "column_missing",
            DriftKind::TypeChanged => "type_changed",
            DriftKind::NewStatusValue => "new_status_value",
        }
    }
}

/// One observed drift of one rule's input.
#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    pub rule: String,
    pub table: String,
    pub kind: DriftKind,
    /// The column, or `column=value` for a new status value.
    pub subject: String,
    /// What was seen, in words.
    pub detail: String,
    /// The commit time of the event that showed it.
    pub first_seen: EventTime,
    pub position: Position,
}

/// The family of a value: a change of family is a change of type (a decimal's scale or an
/// integer becoming a decimal is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Number,
    Text,
    Bool,
    Time,
}

impl Family {
    fn of(v: &Value) -> Option<Family> {
        match v {
            Value::Null => None,
            Value::Int(_) | Value::Decimal(_) => Some(Family::Number),
            Value::String(_) | Value::Json(_) => Some(Family::Text),
            Value::Bool(_) => Some(Family::Bool),
            Value::Timestamp(_) => Some(Family::Time),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Family::Number => "a number",
            Family::Text => "text",
            Family::Bool => "a boolean",
            Family::Time => "a timestamp",
        }
    }
}

/// A column of one table that rules read.
struct Watched {
    column: Arc<str>,
    /// Indices of the rules that read it.
    rules: Vec<usize>,
    /// Seen in a row image yet (missing is only drift after it was there).
    seen: bool,
    family: Option<Family>,
}

/// A transition rule's status column and the states it knows.
struct StatusWatch {
    rule: usize,
    column: Arc<str>,
    known: HashSet<String>,
}

/// A column `when`s compare with text values: the values seen in the baseline and since,
/// and per rule the values its `when` names.
struct ValueWatch {
    column: Arc<str>,
    /// Events of the table that carried the column, up to the end of the baseline.
    events: u64,
    seen: HashSet<String>,
    rules: Vec<(usize, HashSet<String>)>,
}

/// The events of a table whose values are the baseline of a `when`'s column.
pub const BASELINE_EVENTS: u64 = 1000;

/// Distinct values remembered per watched column; past it the column is no longer watched
/// (it is not a status: an id, a free text).
const MAX_VALUES: usize = 4096;

/// The drift watch of one table.
#[derive(Default)]
pub(crate) struct TableDrift {
    columns: Vec<Watched>,
    statuses: Vec<StatusWatch>,
    values: Vec<ValueWatch>,
}

/// Every table's watch, and the drifts already reported.
pub(crate) struct DriftWatch {
    tables: HashMap<Arc<str>, TableDrift>,
    reporter: Reporter,
}

/// Reports each drift once per rule, kind and subject.
struct Reporter {
    /// The rules' ids, by index.
    rule_ids: Vec<String>,
    reported: HashSet<(usize, DriftKind, String)>,
}

impl Reporter {
    fn report(&mut self, r: usize, sighting: Sighting, event: &ChangeEvent, out: &mut Vec<(usize, Drift)>) {
        let Sighting { table, kind, subject, detail } = sighting;
        if self.reported.len() >= MAX_REPORTED || !self.reported.insert((r, kind, subject.clone())) {
            return;
        }
        let rule = self.rule_ids.get(r).cloned().unwrap_or_default();
        let (first_seen, position) = (event.commit_time, event.position.clone());
        out.push((r, Drift { rule, table: table.to_string(), kind, subject, detail, first_seen, position }));
    }
}

/// What was seen, before it is known whether it is new.
struct Sighting<'a> {
    table: &'a str,
    kind: DriftKind,
    subject: String,
    detail: String,
}

impl DriftWatch {
    /// A watch over nothing yet; `rule_ids` names the rules by index.
    pub(crate) fn new(rule_ids: Vec<String>) -> DriftWatch {
        DriftWatch { tables: HashMap::new(), reporter: Reporter { rule_ids, reported: HashSet::new() } }
    }

    /// Watches `column` of `table` for rule `r` (an `after.`/`before.` reference).
    pub(crate) fn column(&mut self, table: &str, column: &str, r: usize) {
        let watch = self.tables.entry(Arc::from(table)).or_default();
        match watch.columns.iter_mut().find(|w| &*w.column == column) {
            Some(w) if !w.rules.contains(&r) => w.rules.push(r),
            Some(_) => {}
            None => {
                watch.columns.push(Watched { column: Arc::from(column), rules: vec![r], seen: false, family: None })
            }
        }
    }

    /// Watches a transition rule's status values, when its status is a plain `after.x`.
    pub(crate) fn statuses(&mut self, rule: &Rule, r: usize) {
        let RuleBody::Transition(t) = &rule.body else { return };
        let Some(column) = t.status.sql.trim().strip_prefix("after.") else { return };
        if column.is_empty() || !column.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return;
        }
        let mut known: HashSet<String> = t.initial.iter().flatten().cloned().collect();
        for (from, to) in t.allowed.iter().flatten() {
            known.insert(from.clone());
            known.extend(to.iter().cloned());
        }
        for (from, to) in &t.forbidden {
            known.insert(from.clone());
            known.insert(to.clone());
        }
        for (states, _) in &t.frozen {
            known.extend(states.iter().cloned());
        }
        if known.is_empty() {
            return;
        }
        let watch = self.tables.entry(Arc::from(t.table.as_str())).or_default();
        watch.statuses.push(StatusWatch { rule: r, column: Arc::from(column), known });
    }

    /// Watches the columns rule `r`'s `when` (on `table`) compares with text values.
    pub(crate) fn when_values(&mut self, table: &str, when: &fundguard_rules::Expr, r: usize) {
        for (column, named) in crate::compile::compared_values(when) {
            let watch = self.tables.entry(Arc::from(table)).or_default();
            let i = match watch.values.iter().position(|v| *v.column == *column) {
                Some(i) => i,
                None => {
                    let column = Arc::from(column.as_str());
                    watch.values.push(ValueWatch { column, events: 0, seen: HashSet::new(), rules: Vec::new() });
                    watch.values.len() - 1
                }
            };
            watch.values[i].rules.push((r, named.into_iter().collect()));
        }
    }

    /// Looks at a table's events of one batch; new drifts go to `out` with their rule's index.
    pub(crate) fn observe(
        &mut self,
        table: &str,
        events: &[ChangeEvent],
        indices: &[usize],
        out: &mut Vec<(usize, Drift)>,
    ) {
        let Some(watch) = self.tables.get_mut(table) else { return };
        if !watch.columns.is_empty() {
            // The newest whole row image: inserts and updates of a database carry every column.
            let row = indices
                .iter()
                .rev()
                .map(|&i| &events[i])
                .find(|e| matches!(e.op, Op::Insert | Op::Update))
                .and_then(|e| e.after.as_ref().map(|a| (e, a)));
            if let Some((event, after)) = row {
                for w in &mut watch.columns {
                    match after.get(&w.column) {
                        None if w.seen => {
                            for &r in &w.rules {
                                let detail = format!(
                                    "column `{}` is missing from the rows of `{table}` (it was there before: renamed or dropped?)",
                                    w.column
                                );
                                let kind = DriftKind::ColumnMissing;
                                let sighting = Sighting { table, kind, subject: w.column.to_string(), detail };
                                self.reporter.report(r, sighting, event, out);
                            }
                        }
                        None => {}
                        Some(value) => {
                            w.seen = true;
                            let Some(now) = Family::of(value) else { continue };
                            match w.family {
                                None => w.family = Some(now),
                                Some(before) if before != now => {
                                    for &r in &w.rules {
                                        let detail = format!(
                                            "column `{}` of `{table}` now holds {} (it held {})",
                                            w.column,
                                            now.name(),
                                            before.name()
                                        );
                                        let kind = DriftKind::TypeChanged;
                                        let sighting = Sighting { table, kind, subject: w.column.to_string(), detail };
                                        self.reporter.report(r, sighting, event, out);
                                    }
                                    w.family = Some(now);
                                }
                                Some(_) => {}
                            }
                        }
                    }
                }
            }
        }
        for v in &mut watch.values {
            if v.seen.len() > MAX_VALUES {
                continue;
            }
            for &i in indices {
                let event = &events[i];
                let Some(Value::String(value)) = event.after.as_ref().and_then(|a| a.get(&v.column)) else { continue };
                if v.events < BASELINE_EVENTS {
                    v.events += 1;
                    v.seen.insert(value.clone());
                    continue;
                }
                if v.seen.contains(value) {
                    continue;
                }
                v.seen.insert(value.clone());
                for (r, named) in &v.rules {
                    if named.contains(value) {
                        continue;
                    }
                    let detail = format!(
                        "`{table}`.{} shows `{value}`, a value new since the first {BASELINE_EVENTS} events, which the rule's `when` never names ({})",
                        v.column,
                        named.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                    );
                    let subject = format!("{}={value}", v.column);
                    let sighting = Sighting { table, kind: DriftKind::NewStatusValue, subject, detail };
                    self.reporter.report(*r, sighting, event, out);
                }
            }
        }
        for s in &watch.statuses {
            for &i in indices {
                let event = &events[i];
                let Some(Value::String(value)) = event.after.as_ref().and_then(|a| a.get(&s.column)) else { continue };
                if s.known.contains(value) {
                    continue;
                }
                let subject = format!("{}={value}", s.column);
                let detail = format!(
                    "`{table}`.{} shows the status `{value}`, which the rule's transitions never mention",
                    s.column
                );
                let sighting = Sighting { table, kind: DriftKind::NewStatusValue, subject, detail };
                self.reporter.report(s.rule, sighting, event, out);
            }
        }
    }
}

/// Drifts remembered at most (a stream of ever-new status values must not grow memory).
const MAX_REPORTED: usize = 10_000;
