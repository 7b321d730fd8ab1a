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
use serde::{Deserialize, Serialize};

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// A set of text values, looked up once per event: status columns hold a handful of
/// values, which a scan of a short list finds faster than hashing the text; a set that
/// grows past [`SHORT`] moves to a hash set.
#[derive(Default)]
struct Values {
    short: Vec<String>,
    long: HashSet<String>,
}

const SHORT: usize = 32;

impl Values {
    fn contains(&self, value: &str) -> bool {
        if self.long.is_empty() { self.short.iter().any(|v| v == value) } else { self.long.contains(value) }
    }

    fn insert(&mut self, value: &str) {
        if self.contains(value) {
            return;
        }
        if self.long.is_empty() && self.short.len() < SHORT {
            self.short.push(value.to_string());
        } else {
            self.long.extend(self.short.drain(..));
            self.long.insert(value.to_string());
        }
    }

    fn len(&self) -> usize {
        self.short.len() + self.long.len()
    }

    fn to_vec(&self) -> Vec<String> {
        self.short.iter().chain(&self.long).cloned().collect()
    }
}

impl FromIterator<String> for Values {
    fn from_iter<I: IntoIterator<Item = String>>(values: I) -> Values {
        let mut set = Values::default();
        for v in values {
            set.insert(&v);
        }
        set
    }
}

/// A text column whose values rules care about: transition rules' states, and the values
/// `when`s compare it with. Each event's value is looked up once; a value every check has
/// already passed (`clean`) costs one scan of a short list.
struct TextColumn {
    column: Arc<str>,
    /// Where the column was in the last row (rows of a table share a layout).
    hint: usize,
    /// Values already looked at: nothing more to report for them.
    clean: Values,
    /// Transition rules on this column, with the states each names.
    states: Vec<(usize, Values)>,
    /// `when`s on this column, with the values each names.
    whens: Vec<(usize, Values)>,
    /// Events that carried the column, counted up to the end of the baseline.
    baseline_events: u64,
    /// Values seen in the baseline, and since.
    seen: Values,
}

impl TextColumn {
    fn new(column: &str) -> TextColumn {
        TextColumn {
            column: Arc::from(column),
            hint: 0,
            clean: Values::default(),
            states: Vec::new(),
            whens: Vec::new(),
            baseline_events: 0,
            seen: Values::default(),
        }
    }

    fn in_baseline(&self) -> bool {
        !self.whens.is_empty() && self.baseline_events < BASELINE_EVENTS
    }
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
    texts: Vec<TextColumn>,
}

impl TableDrift {
    fn text(&mut self, column: &str) -> &mut TextColumn {
        let i = match self.texts.iter().position(|t| *t.column == *column) {
            Some(i) => i,
            None => {
                self.texts.push(TextColumn::new(column));
                self.texts.len() - 1
            }
        };
        &mut self.texts[i]
    }
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
        let mut known: Values = t.initial.iter().flatten().cloned().collect();
        for (from, to) in t.allowed.iter().flatten() {
            known.insert(from);
            to.iter().for_each(|s| known.insert(s));
        }
        for (from, to) in &t.forbidden {
            known.insert(from);
            known.insert(to);
        }
        for (states, _) in &t.frozen {
            states.iter().for_each(|s| known.insert(s));
        }
        if known.len() == 0 {
            return;
        }
        let watch = self.tables.entry(Arc::from(t.table.as_str())).or_default();
        watch.text(column).states.push((r, known));
    }

    /// Watches the columns rule `r`'s `when` (on `table`) compares with text values.
    pub(crate) fn when_values(&mut self, table: &str, when: &fundguard_rules::Expr, r: usize) {
        for (column, named) in crate::compile::compared_values(when) {
            let watch = self.tables.entry(Arc::from(table)).or_default();
            watch.text(&column).whens.push((r, named.into_iter().collect()));
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
        for text in &mut watch.texts {
            if text.clean.len() > MAX_VALUES {
                continue;
            }
            for &i in indices {
                let event = &events[i];
                let hint = &mut text.hint;
                let Some(Value::String(value)) = event.after.as_ref().and_then(|a| a.get_hinted(&text.column, hint))
                else {
                    continue;
                };
                if text.in_baseline() {
                    text.baseline_events += 1;
                    text.seen.insert(value);
                }
                if !text.clean.contains(value) {
                    look_at(text, table, value, event, &mut self.reporter, out);
                    text.clean.insert(value);
                }
            }
        }
    }
}

/// A value of a text column no check has passed yet: a state a transition rule never
/// names, or a value new since the baseline that a `when` never names, is drift.
fn look_at(
    text: &mut TextColumn,
    table: &str,
    value: &str,
    event: &ChangeEvent,
    reporter: &mut Reporter,
    out: &mut Vec<(usize, Drift)>,
) {
    let subject = format!("{}={value}", text.column);
    for (rule, known) in &text.states {
        if !known.contains(value) {
            let detail = format!(
                "`{table}`.{} shows the status `{value}`, which the rule's transitions never mention",
                text.column
            );
            let sighting = Sighting { table, kind: DriftKind::NewStatusValue, subject: subject.clone(), detail };
            reporter.report(*rule, sighting, event, out);
        }
    }
    if text.whens.is_empty() || text.seen.contains(value) {
        return;
    }
    text.seen.insert(value);
    for (rule, named) in &text.whens {
        if named.contains(value) {
            continue;
        }
        let detail = format!(
            "`{table}`.{} shows `{value}`, a value new since the first {BASELINE_EVENTS} events, which the rule's `when` never names ({})",
            text.column,
            named.short.iter().chain(&named.long).map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
        );
        let sighting = Sighting { table, kind: DriftKind::NewStatusValue, subject: subject.clone(), detail };
        reporter.report(*rule, sighting, event, out);
    }
}

/// What a checkpoint keeps of the watch, by names rather than indices (rules may be
/// reordered or changed by the time it is restored): what was already reported, and what
/// the columns looked like — without it a restart would report every drift again, and
/// take the first events after it as a new baseline of `when` values.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct SavedDrift {
    /// (rule id, kind, subject) of every drift reported.
    reported: Vec<(String, DriftKind, String)>,
    /// (table, column, seen, family) of every watched column.
    columns: Vec<(String, String, bool, Option<Family>)>,
    texts: Vec<SavedText>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedText {
    table: String,
    column: String,
    baseline_events: u64,
    seen: Vec<String>,
    clean: Vec<String>,
}

impl DriftWatch {
    /// A copy of the watch's state for a checkpoint or a rule reload.
    pub(crate) fn saved(&self) -> SavedDrift {
        let ids = &self.reporter.rule_ids;
        let mut reported: Vec<_> = self
            .reporter
            .reported
            .iter()
            .filter_map(|(r, kind, subject)| Some((ids.get(*r)?.clone(), *kind, subject.clone())))
            .collect();
        reported.sort_by(|a, b| (&a.0, a.1.as_str(), &a.2).cmp(&(&b.0, b.1.as_str(), &b.2)));
        let mut columns = Vec::new();
        let mut texts = Vec::new();
        for (table, watch) in &self.tables {
            for w in &watch.columns {
                columns.push((table.to_string(), w.column.to_string(), w.seen, w.family));
            }
            for t in &watch.texts {
                texts.push(SavedText {
                    table: table.to_string(),
                    column: t.column.to_string(),
                    baseline_events: t.baseline_events,
                    seen: t.seen.to_vec(),
                    clean: t.clean.to_vec(),
                });
            }
        }
        SavedDrift { reported, columns, texts }
    }

    /// Takes over a saved watch: drifts of rules that still exist stay reported, columns
    /// and status values that are still watched keep what was seen of them.
    pub(crate) fn restore(&mut self, saved: SavedDrift) {
        for (rule, kind, subject) in saved.reported {
            if let Some(r) = self.reporter.rule_ids.iter().position(|id| *id == rule) {
                self.reporter.reported.insert((r, kind, subject));
            }
        }
        for (table, column, seen, family) in saved.columns {
            let Some(watch) = self.tables.get_mut(table.as_str()) else { continue };
            if let Some(w) = watch.columns.iter_mut().find(|w| *w.column == *column) {
                w.seen = seen;
                w.family = family;
            }
        }
        for text in saved.texts {
            let Some(watch) = self.tables.get_mut(text.table.as_str()) else { continue };
            if let Some(t) = watch.texts.iter_mut().find(|t| *t.column == *text.column) {
                t.baseline_events = text.baseline_events;
                t.seen = text.seen.into_iter().collect();
                t.clean = text.clean.into_iter().collect();
            }
        }
    }
}

/// Drifts remembered at most (a stream of ever-new status values must not grow memory).
const MAX_REPORTED: usize = 10_000;
