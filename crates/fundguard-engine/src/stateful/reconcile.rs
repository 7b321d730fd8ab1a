//! `reconcile`: rows of two streams matched by key within a window.
//!
//! Each key holds the rows seen on each side (one per row identity: an update of
//! a row replaces it). When both sides are present the pair is checked against
//! `expect` (with aggregates over the "many" side); when the window closes with a
//! required side absent, that is a "missing counterpart" finding; a second row on
//! a side that matches only one row is a duplicate.
//!
//! Further sides (`sides:`) are held the same way, always "many": their rows of the key
//! feed aggregates (`sum(refunds.amount)`), so `expect` can combine three or more tables,
//! and any change of them re-checks a matched pair like a change of left or right.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::prelude::SessionContext;
use fundguard_core::{EventTime, Evidence, Money, TableSchemas, Value};
use fundguard_rules::{AggFunc, Cardinality, Diagnostic, Evaluate, Expr, LateCounterpart, ReconcileRule, Side};
use serde::{Deserialize, Serialize};

use super::pairs::{PairColumns, PairEval, PairRow};
use super::{
    DimensionCache, Emit, KeyNorm, Origin, Projection, Record, Snapshot, StateKey, StatefulKind, Sweeper, key_name,
};
use crate::FastMap;
use crate::columns::{ColumnKind, ColumnRef, Image};
use crate::compile::{Scope, column_refs_in};
use crate::disagree::{Comparison, Shown, comparisons, describe};

/// A row of one side: its identity, the compared columns and where it came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SideRow {
    id: Value,
    values: Vec<Value>,
    origin: Origin,
}

#[derive(Clone, Serialize, Deserialize)]
struct Entry {
    left: Vec<SideRow>,
    right: Vec<SideRow>,
    deadline: EventTime,
    touched: EventTime,
    /// Rows of the further sides, by side (absent in checkpoints of older versions).
    #[serde(default)]
    others: Vec<Vec<SideRow>>,
}

impl Entry {
    fn rows(&self, side: Side) -> &[SideRow] {
        match side {
            Side::Left => &self.left,
            Side::Right => &self.right,
            Side::Other(i) => self.others.get(i).map_or(&[], Vec::as_slice),
        }
    }

    fn rows_mut(&mut self, side: Side) -> &mut Vec<SideRow> {
        match side {
            Side::Left => &mut self.left,
            Side::Right => &mut self.right,
            Side::Other(i) => {
                if self.others.len() <= i {
                    self.others.resize_with(i + 1, Vec::new);
                }
                &mut self.others[i]
            }
        }
    }

    fn all_rows(&self) -> impl Iterator<Item = &SideRow> {
        self.left.iter().chain(&self.right).chain(self.others.iter().flatten())
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
    /// Both sides present: a finding when `expect` does not hold.
    Match,
    /// This side was absent when the window closed.
    Missing(Side),
    /// A second row on this side.
    Duplicate(Side),
}

struct Pending {
    verdict: Verdict,
    key: StateKey,
    time: EventTime,
    row: PairRow,
    /// The key's rows when the verdict was queued: evidence shows them as they were then,
    /// not as later records of the same batch left them (sharing the entry costs a
    /// reference count; a later change of the key copies it first).
    entry: Arc<Entry>,
    /// Evidence that is not in the state (the duplicate row).
    extra: Option<Evidence>,
}

pub(crate) struct Reconcile {
    rule: ReconcileRule,
    projections: Vec<Projection>,
    key_name: String,
    /// Column names of each side's rows, for evidence.
    left_names: Vec<Arc<str>>,
    right_names: Vec<Arc<str>>,
    /// The further sides' columns (what their aggregates read), and their names for evidence.
    other_columns: Vec<Vec<String>>,
    other_names: Vec<Vec<Arc<str>>>,
    eval: PairEval,
    /// Entries are shared with the copies checkpoints take ([`StatefulKind::snapshot`]):
    /// copying the map only counts references, and an entry changed while a copy is being
    /// written is cloned first.
    entries: FastMap<StateKey, Arc<Entry>>,
    deadlines: BTreeSet<(EventTime, StateKey)>,
    sweeper: Sweeper,
    pending: Vec<Pending>,
    template: Option<minijinja::Environment<'static>>,
    /// The comparisons of two columns in `expect`: the default message names those that fail.
    compared: Vec<Comparison>,
    problems: Vec<Diagnostic>,
    bytes: usize,
}

/// Number of leading projection values that are not columns: key and row identity.
const FIXED: usize = 2;
const ENTRY_BYTES: usize = 120;

fn row_bytes(values: &[Value]) -> usize {
    72 + values.iter().map(value_bytes).sum::<usize>()
}

pub(crate) fn value_bytes(v: &Value) -> usize {
    32 + match v {
        Value::String(s) | Value::Json(s) => s.len(),
        _ => 0,
    }
}

impl Reconcile {
    pub(crate) fn new(rule: ReconcileRule) -> Self {
        let mut problems = Vec::new();
        let mut columns = PairColumns::default();
        let mut exprs: Vec<&Expr> = rule.expect.iter().collect();
        if let Some(m) = &rule.money {
            exprs.push(&m.amount);
            exprs.extend(m.currency.iter());
        }
        for e in exprs {
            match column_refs_in(e, Scope::Pair) {
                Ok(refs) => {
                    for r in refs {
                        let list = match r.image {
                            Image::Left => &mut columns.left,
                            Image::Right => &mut columns.right,
                            _ => &mut columns.agg,
                        };
                        if !list.contains(&r.name) {
                            list.push(r.name);
                        }
                    }
                }
                Err(d) => problems.push(d),
            }
        }
        let mut other_columns: Vec<Vec<String>> = vec![Vec::new(); rule.others.len()];
        for a in &rule.aggregates {
            if let Some(c) = &a.column {
                let list = match a.side {
                    Side::Left => &mut columns.left,
                    Side::Right => &mut columns.right,
                    Side::Other(i) => &mut other_columns[i],
                };
                if !list.contains(c) {
                    list.push(c.clone());
                }
            }
        }
        let template = rule.message.as_ref().and_then(|m| match super::template(&m.sql) {
            Ok(env) => Some(env),
            Err(e) => {
                problems.push(Diagnostic::new(m.at.clone(), e));
                None
            }
        });
        // Columns a message names are kept with the rows, so `{{ left.channel }}` renders
        // the value even when no expression reads it.
        for (image, name) in template.as_ref().map(super::template_columns).unwrap_or_default() {
            let list = match image.as_str() {
                "left" => &mut columns.left,
                "right" => &mut columns.right,
                _ => continue,
            };
            if !list.contains(&name) {
                list.push(name);
            }
        }
        let declared: Vec<&String> = rule.aggregates.iter().map(|a| &a.name).collect();
        for name in &columns.agg {
            if !declared.contains(&name) {
                let at = rule.expect.as_ref().map(|e| e.at.clone()).unwrap_or_default();
                problems.push(Diagnostic::new(at, format!("`agg.{name}` is not one of the rule's aggregates")));
            }
        }
        columns.agg = rule.aggregates.iter().map(|a| a.name.clone()).collect();
        let side_projection = |side: &fundguard_rules::SideSpec, cols: &[String]| {
            let at = side.key.at.clone();
            let mut exprs = vec![
                ("key".to_string(), side.key.clone()),
                ("row".to_string(), Expr { sql: "coalesce(after.id, before.id)".into(), at: at.clone() }),
            ];
            for c in cols {
                exprs.push((c.clone(), Expr { sql: format!("after.\"{c}\""), at: at.clone() }));
            }
            Projection { table: side.table.clone(), filter: side.when.clone(), exprs }
        };
        let mut projections =
            vec![side_projection(&rule.left, &columns.left), side_projection(&rule.right, &columns.right)];
        for ((_, side), cols) in rule.others.iter().zip(&other_columns) {
            projections.push(side_projection(side, cols));
        }
        let names = |cols: &[String]| cols.iter().map(|c| Arc::from(c.as_str())).collect();
        Reconcile {
            key_name: key_name(&rule.left.key),
            left_names: names(&columns.left),
            right_names: names(&columns.right),
            other_names: other_columns.iter().map(|c| names(c)).collect(),
            other_columns,
            eval: PairEval::new(columns, rule.expect.clone(), rule.money.clone()),
            compared: rule.expect.as_ref().map(|e| comparisons(e, Scope::Pair)).unwrap_or_default(),
            rule,
            projections,
            entries: FastMap::default(),
            deadlines: BTreeSet::new(),
            sweeper: Sweeper::new(),
            pending: Vec::new(),
            template,
            problems,
            bytes: 0,
        }
    }

    fn single(&self, side: Side) -> bool {
        matches!(
            (self.rule.cardinality, side),
            (Cardinality::OneToOne, Side::Left | Side::Right) | (Cardinality::OneToMany, Side::Left)
        )
    }

    /// The column names of a side's rows.
    fn names_of(&self, side: Side) -> &[Arc<str>] {
        match side {
            Side::Left => &self.left_names,
            Side::Right => &self.right_names,
            Side::Other(i) => self.other_names.get(i).map_or(&[], Vec::as_slice),
        }
    }

    fn columns_of(&self, side: Side) -> &[String] {
        match side {
            Side::Left => &self.eval.columns.left,
            Side::Right => &self.eval.columns.right,
            Side::Other(i) => self.other_columns.get(i).map_or(&[], Vec::as_slice),
        }
    }

    fn shown_key(&self, key: &StateKey) -> Value {
        KeyNorm(self.rule.key_type).shown(key)
    }

    fn aggregate(&self, entry: &Entry) -> Vec<Value> {
        self.rule
            .aggregates
            .iter()
            .map(|a| {
                let (rows, cols) = (entry.rows(a.side), self.columns_of(a.side));
                let at = a.column.as_ref().and_then(|c| cols.iter().position(|x| x == c));
                let values = rows.iter().filter_map(|r| at.and_then(|i| r.values.get(i))).filter(|v| !v.is_null());
                match a.func {
                    AggFunc::Count => Value::Int(rows.len() as i64),
                    AggFunc::Sum => sum(values),
                    AggFunc::Min => values.min_by(|x, y| compare(x, y)).cloned().unwrap_or_default(),
                    AggFunc::Max => values.max_by(|x, y| compare(x, y)).cloned().unwrap_or_default(),
                }
            })
            .collect()
    }

    fn queue(&mut self, key: &StateKey, verdict: Verdict, time: EventTime, newest: Option<(Side, usize)>) {
        let Some(entry) = self.entries.get(key) else { return };
        fn pick(rows: &[SideRow], side: Side, newest: Option<(Side, usize)>) -> Option<&SideRow> {
            match newest {
                Some((s, i)) if s == side => rows.get(i),
                _ => rows.first(),
            }
        }
        let nulls = |n: usize| vec![Value::Null; n];
        let row = PairRow {
            left: pick(&entry.left, Side::Left, newest)
                .map_or_else(|| nulls(self.eval.columns.left.len()), |r| r.values.clone()),
            right: pick(&entry.right, Side::Right, newest)
                .map_or_else(|| nulls(self.eval.columns.right.len()), |r| r.values.clone()),
            agg: self.aggregate(entry),
        };
        self.pending.push(Pending { verdict, key: key.clone(), time, row, entry: entry.clone(), extra: None });
    }

    /// Evidence of a finding: the rows of every side held for the key (at most ten a side).
    fn evidence(&self, p: &Pending) -> Vec<Evidence> {
        let mut out = Vec::new();
        for (side, _) in self.rule.sides() {
            let names = self.names_of(side);
            out.extend(p.entry.rows(side).iter().take(10).map(|r| r.origin.evidence(names, &r.values)));
        }
        out.extend(p.extra.clone());
        out
    }

    /// The failing comparisons of `expect` over the pair, amounts in `money`'s currency:
    /// `shop.payments amount 4,198.45 CNY vs shop.orders pay_amount 4,200.00 CNY: −1.55`.
    fn disagreement(&self, p: &Pending, money: Option<&Money>) -> Option<String> {
        static NULL: Value = Value::Null;
        let columns = &self.eval.columns;
        let side = |c: &ColumnRef| {
            let (names, values, label) = match c.image {
                Image::Left => (&columns.left, &p.row.left, format!("{} {}", self.rule.left.table, c.name)),
                Image::Right => (&columns.right, &p.row.right, format!("{} {}", self.rule.right.table, c.name)),
                _ => (&columns.agg, &p.row.agg, c.name.clone()),
            };
            let value = names.iter().position(|n| *n == c.name).and_then(|i| values.get(i)).unwrap_or(&NULL);
            Shown { label, value }
        };
        let unit = self.rule.money.as_ref().map(|m| m.unit).unwrap_or_default();
        describe(&self.compared, side, money.and_then(|m| m.currency.as_deref()), unit)
    }

    fn message(&self, rule_id: &str, p: &Pending, money: Option<&Money>) -> String {
        let key = format!("{}={}", self.key_name, self.shown_key(&p.key));
        let (l, r) = (&self.rule.left.table, &self.rule.right.table);
        // The compared values, so the reader sees what disagreed: `left amount=4198.45, …`.
        let shown = |image: &str, names: &[String], values: &[Value]| -> Option<String> {
            let pairs: Vec<String> = names.iter().zip(values).map(|(n, v)| format!("{n}={v}")).collect();
            (!pairs.is_empty()).then(|| format!("{image} {}", pairs.join(", ")))
        };
        let default = || match p.verdict {
            Verdict::Match => {
                if let Some(disagree) = self.disagreement(p, money) {
                    return format!("{rule_id}: {l} and {r} disagree for {key}: {disagree}");
                }
                let columns = &self.eval.columns;
                let values: Vec<String> = [
                    shown(l, &columns.left, &p.row.left),
                    shown(r, &columns.right, &p.row.right),
                    shown("agg", &columns.agg, &p.row.agg),
                ]
                .into_iter()
                .flatten()
                .collect();
                format!(
                    "{rule_id}: {l} and {r} disagree for {key}: {}: `{}` does not hold",
                    values.join("; "),
                    self.rule.expect.as_ref().map_or("", |e| e.sql.as_str())
                )
            }
            Verdict::Missing(Side::Left) => {
                format!("{rule_id}: {r} has {key} but {l} has no counterpart within {:?}", self.rule.within)
            }
            Verdict::Missing(Side::Right) => {
                format!("{rule_id}: {l} has {key} but {r} has no counterpart within {:?}", self.rule.within)
            }
            Verdict::Missing(side) => {
                let present = if p.entry.left.is_empty() { r } else { l };
                let absent = &self.rule.side(side).table;
                format!("{rule_id}: {present} has {key} but {absent} has no counterpart within {:?}", self.rule.within)
            }
            Verdict::Duplicate(side) => {
                format!(
                    "{rule_id}: duplicate {} rows in {} for {key}",
                    self.rule.side_name(side),
                    self.rule.side(side).table
                )
            }
        };
        let Some(env) = &self.template else { return default() };
        let as_map = |names: &[String], values: &[Value]| -> serde_json::Map<String, serde_json::Value> {
            names.iter().zip(values).map(|(n, v)| (n.clone(), v.to_json())).collect()
        };
        let verdict = match p.verdict {
            Verdict::Match => "mismatch".to_string(),
            Verdict::Missing(s) => format!("missing_{}", self.rule.side_name(s)),
            Verdict::Duplicate(s) => format!("duplicate_{}", self.rule.side_name(s)),
        };
        let context = minijinja::context! {
            rule => rule_id,
            verdict => verdict,
            key => minijinja::Value::from(minijinja::value::Serde(self.shown_key(&p.key).to_json())),
            left => minijinja::Value::from(minijinja::value::Serde(as_map(&self.eval.columns.left, &p.row.left))),
            right => minijinja::Value::from(minijinja::value::Serde(as_map(&self.eval.columns.right, &p.row.right))),
            agg => minijinja::Value::from(minijinja::value::Serde(as_map(&self.eval.columns.agg, &p.row.agg))),
        };
        env.get_template("message").and_then(|t| t.render(context)).unwrap_or_else(|_| default())
    }
}

impl Reconcile {
    /// Keeps the entries `keep` accepts, accounting for the bytes freed.
    fn retain(&mut self, keep: impl Fn(&Entry) -> bool) {
        let mut freed = 0;
        self.entries.retain(|k, e| {
            let kept = keep(e);
            if !kept {
                freed += entry_bytes(k, e);
            }
            kept
        });
        self.bytes = self.bytes.saturating_sub(freed);
    }

    /// Drops one key's entry and its deadline.
    fn forget(&mut self, key: &StateKey) {
        if let Some((k, e)) = self.entries.remove_entry(key) {
            self.deadlines.remove(&(e.deadline, k.clone()));
            self.bytes = self.bytes.saturating_sub(entry_bytes(&k, &e));
        }
    }
}

fn entry_bytes(key: &StateKey, e: &Entry) -> usize {
    ENTRY_BYTES + 2 * key.text_len() + e.all_rows().map(|r| row_bytes(&r.values)).sum::<usize>()
}

impl StatefulKind for Reconcile {
    fn projections(&self) -> &[Projection] {
        &self.projections
    }

    fn problems(&self) -> Vec<Diagnostic> {
        self.problems.clone()
    }

    fn check_compiles(&self, ctx: &SessionContext, schemas: &TableSchemas) -> Vec<Diagnostic> {
        let declared =
            |table: &str, col: &str| schemas.column(table, col).map_or(ColumnKind::Unknown, ColumnKind::of_declared);
        let mut kinds: Vec<ColumnKind> = Vec::new();
        kinds.extend(self.eval.columns.left.iter().map(|c| declared(&self.rule.left.table, c)));
        kinds.extend(self.eval.columns.right.iter().map(|c| declared(&self.rule.right.table, c)));
        for a in &self.rule.aggregates {
            let table = &self.rule.side(a.side).table;
            kinds.push(match (a.func, &a.column) {
                (AggFunc::Count, _) => ColumnKind::Int,
                (_, Some(c)) => declared(table, c),
                _ => ColumnKind::Unknown,
            });
        }
        self.eval.check(ctx, &kinds)
    }

    fn on_record(&mut self, record: Record, idle_before: EventTime, _out: &mut Emit) {
        let side = match record.projection {
            0 => Side::Left,
            1 => Side::Right,
            i => Side::Other(i - 2),
        };
        let norm = KeyNorm(self.rule.key_type);
        let Some(key) = record.values.first().and_then(|v| norm.key(v)) else { return };
        let mut values = record.values;
        let id = match values.get(1) {
            Some(Value::Null) | None => Value::String(record.position.to_string()),
            Some(v) => v.clone(),
        };
        let row = SideRow { id, values: values.split_off(FIXED), origin: record.origin };
        // The key starts anew with this row when its entry sat idle past the TTL with its
        // window closed, or when this is a late counterpart (the first row of its side after
        // the window closed) and late counterparts are not to be paired.
        let unpaired = self.rule.late_counterpart == LateCounterpart::Missing;
        let expired = |e: &Entry| {
            let idle = e.touched < idle_before && e.deadline < idle_before;
            // A further side's row is never a late counterpart: those sides are read
            // through aggregates, not paired.
            let counterpart = matches!(side, Side::Left | Side::Right) && e.rows(side).is_empty();
            idle || (unpaired && counterpart && e.deadline < record.time)
        };
        if self.entries.get(&key).is_some_and(|e| expired(e)) {
            self.forget(&key);
        }
        let key: StateKey = match self.entries.get_key_value(&key) {
            Some((k, _)) => k.clone(),
            None => {
                let deadline = record.time.plus(self.rule.within);
                self.deadlines.insert((deadline, key.clone()));
                self.entries.insert(
                    key.clone(),
                    Arc::new(Entry {
                        left: Vec::new(),
                        right: Vec::new(),
                        deadline,
                        touched: record.time,
                        others: Vec::new(),
                    }),
                );
                self.bytes += ENTRY_BYTES + 2 * key.text_len();
                key
            }
        };
        let single = self.single(side);
        let duplicates = self.rule.duplicates;
        let Some(entry) = self.entries.get_mut(&key) else { return };
        let entry = Arc::make_mut(entry);
        entry.touched = record.time;
        let rows = entry.rows_mut(side);
        enum Outcome {
            Stored(usize),
            Duplicate(Evidence),
            Ignored,
        }
        let names = match side {
            Side::Left => &self.left_names,
            Side::Right => &self.right_names,
            Side::Other(i) => &self.other_names[i],
        };
        let outcome = match rows.iter().position(|r| r.id == row.id) {
            Some(i) => {
                self.bytes = self.bytes + row_bytes(&row.values) - row_bytes(&rows[i].values);
                rows[i] = row;
                Outcome::Stored(i)
            }
            None if single && !rows.is_empty() => {
                if duplicates {
                    Outcome::Duplicate(row.origin.evidence(names, &row.values))
                } else {
                    Outcome::Ignored
                }
            }
            None => {
                self.bytes += row_bytes(&row.values);
                // Most keys hold one row a side: a first push would reserve four.
                rows.reserve_exact(1);
                rows.push(row);
                Outcome::Stored(rows.len() - 1)
            }
        };
        let both = !entry.left.is_empty() && !entry.right.is_empty();
        match outcome {
            Outcome::Stored(index) if both && self.rule.evaluate == Evaluate::OnMatch => {
                self.queue(&key, Verdict::Match, record.time, Some((side, index)));
            }
            Outcome::Duplicate(evidence) => {
                self.queue(&key, Verdict::Duplicate(side), record.time, None);
                if let Some(p) = self.pending.last_mut() {
                    p.extra = Some(evidence);
                }
            }
            _ => {}
        }
    }

    fn fire_timers(&mut self, before: EventTime, _out: &mut Emit) {
        while let Some((deadline, _)) = self.deadlines.first() {
            if *deadline >= before {
                break;
            }
            let Some((deadline, key)) = self.deadlines.pop_first() else { break };
            let Some(entry) = self.entries.get(&key) else { continue };
            let (has_left, has_right) = (!entry.left.is_empty(), !entry.right.is_empty());
            let absent: Vec<usize> = (0..self.rule.others.len())
                .filter(|&i| self.rule.others[i].1.required && entry.rows(Side::Other(i)).is_empty())
                .collect();
            if !has_left && has_right && self.rule.left.required {
                self.queue(&key, Verdict::Missing(Side::Left), deadline, None);
            }
            if has_left && !has_right && self.rule.right.required {
                self.queue(&key, Verdict::Missing(Side::Right), deadline, None);
            }
            if has_left || has_right {
                for i in absent {
                    self.queue(&key, Verdict::Missing(Side::Other(i)), deadline, None);
                }
            }
            if has_left && has_right && self.rule.evaluate == Evaluate::AtDeadline {
                self.queue(&key, Verdict::Match, deadline, None);
            }
        }
    }

    fn flush(&mut self, ctx: &SessionContext, out: &mut Emit) -> Result<(), String> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let rows: Vec<PairRow> = pending.iter().map(|p| p.row.clone()).collect();
        let results = self.eval.evaluate(ctx, &rows)?;
        for (p, r) in pending.iter().zip(results) {
            if p.verdict == Verdict::Match && r.holds {
                continue;
            }
            let unit = self.rule.money.as_ref().map(|m| m.unit).unwrap_or_default();
            let money = r.amount.as_ref().and_then(|amount| Money::from_value(amount, r.currency.as_ref(), unit));
            let message = self.message(&out.rule.id, p, money.as_ref());
            let key = vec![(self.key_name.clone(), self.shown_key(&p.key))];
            out.finding(key, p.time, message, self.evidence(p), money);
        }
        Ok(())
    }

    fn evict(&mut self, before: EventTime, now: EventTime) {
        if !self.sweeper.due(before, now) {
            return;
        }
        // A key stays while its window is open or it was touched within the TTL.
        self.retain(|e| e.touched >= before || e.deadline >= before);
    }

    fn shed_oldest(&mut self, keys: usize) -> usize {
        let Some(cutoff) = super::shed_cutoff(self.entries.values().map(|e| e.touched).collect(), keys) else {
            return 0;
        };
        let before = self.entries.len();
        self.retain(|e| e.touched > cutoff);
        let entries = &self.entries;
        self.deadlines.retain(|(_, k)| entries.contains_key(k));
        before - self.entries.len()
    }

    fn snapshot(&self) -> Snapshot {
        debug_assert!(self.pending.is_empty(), "pairs are judged before the runtime returns");
        super::snapshot_of((self.entries.clone(), self.deadlines.clone(), self.sweeper.clone(), self.bytes))
    }

    fn restore(&mut self, state: &[u8], dimensions: &mut DimensionCache) -> Result<(), String> {
        (self.entries, self.deadlines, self.sweeper, self.bytes) = super::decode(state)?;
        for entry in self.entries.values_mut() {
            let entry = Arc::make_mut(entry);
            for side in [&mut entry.left, &mut entry.right].into_iter().chain(&mut entry.others) {
                side.iter_mut().for_each(|row| dimensions.share(&mut row.origin.dimensions));
            }
        }
        Ok(())
    }

    fn keys(&self) -> usize {
        self.entries.len()
    }

    fn state_bytes(&self) -> usize {
        self.bytes + self.deadlines.len() * 40
    }
}

/// Exact sum of integers and decimals; NULL when it would overflow 28 digits (an input
/// that large is itself a finding, never a panic).
fn sum<'a>(values: impl Iterator<Item = &'a Value>) -> Value {
    use fundguard_core::Decimal;
    let mut total = Decimal::ZERO;
    let mut any_decimal = false;
    for v in values {
        let add = match v {
            Value::Int(i) => Decimal::from(*i),
            Value::Decimal(d) => {
                any_decimal = true;
                *d
            }
            _ => continue,
        };
        match total.checked_add(add) {
            Some(t) => total = t,
            None => return Value::Null,
        }
    }
    match (any_decimal, i64::try_from(total)) {
        (false, Ok(i)) => Value::Int(i),
        _ => Value::Decimal(total),
    }
}

fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    use fundguard_core::Decimal;
    let num = |v: &Value| match v {
        Value::Int(i) => Some(Decimal::from(*i)),
        Value::Decimal(d) => Some(*d),
        _ => None,
    };
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_are_exact_and_never_panic() {
        let d = |s: &str| Value::Decimal(s.parse().unwrap());
        assert_eq!(sum([Value::Int(2), Value::Int(3)].iter()), Value::Int(5));
        assert_eq!(sum([Value::Int(2), d("0.10"), Value::Null].iter()), d("2.10"));
        let huge = Value::Decimal(fundguard_core::Decimal::MAX);
        assert_eq!(sum([huge.clone(), huge].iter()), Value::Null);
    }
}
