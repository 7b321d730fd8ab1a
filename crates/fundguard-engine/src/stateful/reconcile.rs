//! `reconcile`: rows of two streams matched by key within a window.
//!
//! Each key holds the rows seen on each side (one per row identity: an update of
//! a row replaces it). When both sides are present the pair is checked against
//! `expect` (with aggregates over the "many" side); when the window closes with a
//! required side absent, that is a "missing counterpart" finding; a second row on
//! a side that matches only one row is a duplicate.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use datafusion::prelude::SessionContext;
use fundguard_core::{EventTime, Evidence, Money, TableSchemas, Value};
use fundguard_rules::{AggFunc, Cardinality, Diagnostic, Evaluate, Expr, ReconcileRule, Side};

use super::pairs::{PairColumns, PairEval, PairRow};
use super::{Emit, KeyNorm, Projection, Record, StatefulKind, key_name};
use crate::columns::{ColumnKind, Image};
use crate::compile::{Scope, column_refs_in};

/// A row of one side: its identity and the projected columns.
#[derive(Debug, Clone)]
struct SideRow {
    id: String,
    values: Vec<Value>,
    evidence: Arc<Evidence>,
}

struct Entry {
    shown_key: Value,
    left: Vec<SideRow>,
    right: Vec<SideRow>,
    deadline: EventTime,
    touched: EventTime,
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
    shown_key: Value,
    time: EventTime,
    row: PairRow,
    evidence: Vec<Arc<Evidence>>,
}

pub(crate) struct Reconcile {
    rule: ReconcileRule,
    projections: Vec<Projection>,
    key_name: String,
    eval: PairEval,
    entries: HashMap<String, Entry>,
    deadlines: BTreeSet<(EventTime, String)>,
    touches: VecDeque<(EventTime, String)>,
    pending: Vec<Pending>,
    template: Option<minijinja::Environment<'static>>,
    problems: Vec<Diagnostic>,
    bytes: usize,
}

/// Number of leading projection values that are not columns: key and row identity.
const FIXED: usize = 2;

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
        for a in &rule.aggregates {
            if let Some(c) = &a.column {
                let list = if a.side == Side::Left { &mut columns.left } else { &mut columns.right };
                if !list.contains(c) {
                    list.push(c.clone());
                }
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
        let projections =
            vec![side_projection(&rule.left, &columns.left), side_projection(&rule.right, &columns.right)];
        let template = rule.message.as_ref().and_then(|m| {
            let mut env = minijinja::Environment::new();
            match env.add_template_owned("message", m.sql.clone()) {
                Ok(()) => Some(env),
                Err(e) => {
                    problems.push(Diagnostic::new(m.at.clone(), format!("message template: {e}")));
                    None
                }
            }
        });
        Reconcile {
            key_name: key_name(&rule.left.key),
            eval: PairEval::new(columns, rule.expect.clone(), rule.money.clone()),
            rule,
            projections,
            entries: HashMap::new(),
            deadlines: BTreeSet::new(),
            touches: VecDeque::new(),
            pending: Vec::new(),
            template,
            problems,
            bytes: 0,
        }
    }

    fn single(&self, side: Side) -> bool {
        matches!((self.rule.cardinality, side), (Cardinality::OneToOne, _) | (Cardinality::OneToMany, Side::Left))
    }

    fn aggregate(&self, entry: &Entry) -> Vec<Value> {
        self.rule
            .aggregates
            .iter()
            .map(|a| {
                let (rows, cols) = match a.side {
                    Side::Left => (&entry.left, &self.eval.columns.left),
                    Side::Right => (&entry.right, &self.eval.columns.right),
                };
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

    fn queue(&mut self, key: &str, verdict: Verdict, time: EventTime, newest: Option<(Side, usize)>) {
        let Some(entry) = self.entries.get(key) else { return };
        fn pick(rows: &[SideRow], side: Side, newest: Option<(Side, usize)>) -> Option<&SideRow> {
            match newest {
                Some((s, i)) if s == side => rows.get(i),
                _ => rows.first(),
            }
        }
        let nulls = |n: usize| vec![Value::Null; n];
        let left = pick(&entry.left, Side::Left, newest);
        let right = pick(&entry.right, Side::Right, newest);
        let row = PairRow {
            left: left.map_or_else(|| nulls(self.eval.columns.left.len()), |r| r.values.clone()),
            right: right.map_or_else(|| nulls(self.eval.columns.right.len()), |r| r.values.clone()),
            agg: self.aggregate(entry),
        };
        let mut evidence: Vec<Arc<Evidence>> = Vec::new();
        evidence.extend(entry.left.iter().take(10).map(|r| r.evidence.clone()));
        evidence.extend(entry.right.iter().take(10).map(|r| r.evidence.clone()));
        self.pending.push(Pending { verdict, shown_key: entry.shown_key.clone(), time, row, evidence });
    }

    fn message(&self, rule_id: &str, p: &Pending) -> String {
        let key = format!("{}={}", self.key_name, p.shown_key);
        let (l, r) = (&self.rule.left.table, &self.rule.right.table);
        let default = || match p.verdict {
            Verdict::Match => format!(
                "{rule_id}: {l} and {r} disagree for {key}: `{}` does not hold",
                self.rule.expect.as_ref().map_or("", |e| e.sql.as_str())
            ),
            Verdict::Missing(Side::Left) => {
                format!("{rule_id}: {r} has {key} but {l} has no counterpart within {:?}", self.rule.within)
            }
            Verdict::Missing(Side::Right) => {
                format!("{rule_id}: {l} has {key} but {r} has no counterpart within {:?}", self.rule.within)
            }
            Verdict::Duplicate(side) => {
                format!(
                    "{rule_id}: duplicate {} rows in {} for {key}",
                    side.name(),
                    if side == Side::Left { l } else { r }
                )
            }
        };
        let Some(env) = &self.template else { return default() };
        let as_map = |names: &[String], values: &[Value]| -> serde_json::Map<String, serde_json::Value> {
            names.iter().zip(values).map(|(n, v)| (n.clone(), v.to_json())).collect()
        };
        let verdict = match p.verdict {
            Verdict::Match => "mismatch".to_string(),
            Verdict::Missing(s) => format!("missing_{}", s.name()),
            Verdict::Duplicate(s) => format!("duplicate_{}", s.name()),
        };
        let context = minijinja::context! {
            rule => rule_id,
            verdict => verdict,
            key => minijinja::Value::from(minijinja::value::Serde(p.shown_key.to_json())),
            left => minijinja::Value::from(minijinja::value::Serde(as_map(&self.eval.columns.left, &p.row.left))),
            right => minijinja::Value::from(minijinja::value::Serde(as_map(&self.eval.columns.right, &p.row.right))),
            agg => minijinja::Value::from(minijinja::value::Serde(as_map(&self.eval.columns.agg, &p.row.agg))),
        };
        env.get_template("message").and_then(|t| t.render(context)).unwrap_or_else(|_| default())
    }
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
            kinds.push(match (a.func, &a.column) {
                (AggFunc::Count, _) => ColumnKind::Int,
                (_, Some(c)) => {
                    declared(if a.side == Side::Left { &self.rule.left.table } else { &self.rule.right.table }, c)
                }
                _ => ColumnKind::Unknown,
            });
        }
        self.eval.check(ctx, &kinds)
    }

    fn on_record(&mut self, record: Record, _out: &mut Emit) {
        let side = if record.projection == 0 { Side::Left } else { Side::Right };
        let norm = KeyNorm(self.rule.key_type);
        let Some(key) = record.values.first().and_then(|v| norm.key(v)) else { return };
        let row_id = match record.values.get(1) {
            Some(Value::Null) | None => record.position.to_string(),
            Some(v) => v.to_string(),
        };
        let row = SideRow { id: row_id, values: record.values[FIXED..].to_vec(), evidence: record.evidence.clone() };
        let within = self.rule.within;
        let shown = match self.rule.key_type {
            fundguard_rules::KeyType::Integer => norm.shown(&key),
            fundguard_rules::KeyType::Text => record.values[0].clone(),
        };
        let new_entry = !self.entries.contains_key(&key);
        let single = self.single(side);
        let entry = self.entries.entry(key.clone()).or_insert_with(|| Entry {
            shown_key: shown,
            left: Vec::new(),
            right: Vec::new(),
            deadline: record.time.plus(within),
            touched: record.time,
        });
        if new_entry {
            self.deadlines.insert((entry.deadline, key.clone()));
            self.bytes += 200 + 2 * key.len();
        }
        entry.touched = record.time;
        self.touches.push_back((record.time, key.clone()));
        let rows = match side {
            Side::Left => &mut entry.left,
            Side::Right => &mut entry.right,
        };
        let size = 96 + row.values.len() * 48;
        enum Outcome {
            Stored(usize),
            Duplicate(Arc<Evidence>, Arc<Evidence>),
            Ignored,
        }
        let outcome = match rows.iter().position(|r| r.id == row.id) {
            Some(i) => {
                rows[i] = row;
                Outcome::Stored(i)
            }
            None if single && !rows.is_empty() => {
                if self.rule.duplicates {
                    Outcome::Duplicate(rows[0].evidence.clone(), row.evidence.clone())
                } else {
                    Outcome::Ignored
                }
            }
            None => {
                rows.push(row);
                self.bytes += size;
                Outcome::Stored(rows.len() - 1)
            }
        };
        let both = !entry.left.is_empty() && !entry.right.is_empty();
        match outcome {
            Outcome::Stored(index) if both && self.rule.evaluate == Evaluate::OnMatch => {
                self.queue(&key, Verdict::Match, record.time, Some((side, index)));
            }
            Outcome::Duplicate(first, dup) => {
                self.queue(&key, Verdict::Duplicate(side), record.time, None);
                if let Some(p) = self.pending.last_mut() {
                    p.evidence = vec![first, dup];
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
            if !has_left && has_right && self.rule.left.required {
                self.queue(&key, Verdict::Missing(Side::Left), deadline, None);
            }
            if has_left && !has_right && self.rule.right.required {
                self.queue(&key, Verdict::Missing(Side::Right), deadline, None);
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
            let money = r
                .amount
                .filter(|a| !a.is_null())
                .map(|amount| Money { amount, currency: r.currency.filter(|c| !c.is_null()).map(|c| c.to_string()) });
            let message = self.message(&out.rule.id, p);
            out.finding(vec![(self.key_name.clone(), p.shown_key.clone())], p.time, message, p.evidence.clone(), money);
        }
        Ok(())
    }

    fn evict(&mut self, before: EventTime) {
        while let Some((t, _)) = self.touches.front() {
            if *t >= before {
                break;
            }
            let Some((t, key)) = self.touches.pop_front() else { break };
            let expired = self.entries.get(&key).is_some_and(|e| e.touched == t && e.deadline < before);
            if expired && let Some(e) = self.entries.remove(&key) {
                let rows = e.left.len() + e.right.len();
                self.bytes = self.bytes.saturating_sub(200 + 2 * key.len() + rows * 120);
            }
        }
    }

    fn keys(&self) -> usize {
        self.entries.len()
    }

    fn state_bytes(&self) -> usize {
        self.bytes + self.touches.len() * 48 + self.deadlines.len() * 48
    }
}

fn sum<'a>(values: impl Iterator<Item = &'a Value>) -> Value {
    let mut int: i64 = 0;
    let mut dec: Option<fundguard_core::Decimal> = None;
    for v in values {
        match v {
            Value::Int(i) => match int.checked_add(*i) {
                Some(s) => int = s,
                None => dec = Some(dec.unwrap_or_default() + fundguard_core::Decimal::from(*i)),
            },
            Value::Decimal(d) => dec = Some(dec.unwrap_or_default() + *d),
            _ => {}
        }
    }
    match dec {
        Some(d) => Value::Decimal(d + fundguard_core::Decimal::from(int)),
        None => Value::Int(int),
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
