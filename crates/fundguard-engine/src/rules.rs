//! Runtime rules: one compiled form per rule kind, evaluated over a table batch.
//!
//! Adding a rule kind means a variant of [`RuleRuntime`] and its match arms here.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::compute::kernels::boolean::and_not;
use datafusion::arrow::compute::prep_null_mask_filter;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use fundguard_core::{ChangeEvent, EventTime, Evidence, Finding, Money, TableSchemas};
use fundguard_rules::{CheckRule, Diagnostic, Expr, Location, Once, Rule, RuleBody};

use crate::columns::{ColumnRef, Image};
use crate::compile::{LOOKUP, column_refs, compile, lookup_refs};
use crate::lookup::{LookupStore, MissingRow, RuleLookups};
use crate::scalar::value_at;
use crate::script::ScriptRuntime;
use crate::stateful::{self, DimensionCache, Emit, StateStats, StatefulRuntime};
use crate::table_batch::TableBatch;

/// A rule ready to run.
pub(crate) struct RuleRuntime {
    pub rule: Arc<Rule>,
    /// Per table: the columns the rule's expressions on that table reference, with
    /// each expression's location.
    pub located_refs: Vec<(String, Location, Vec<ColumnRef>)>,
    /// The lookups the rule reads, joined onto its batches before it evaluates them.
    lookups: RuleLookups,
    kind: Kind,
}

enum Kind {
    Check(Box<CheckRuntime>),
    Stateful(Box<StatefulRuntime>),
    Script(Box<ScriptRuntime>),
}

struct CheckRuntime {
    check: CheckRule,
    template: Option<minijinja::Environment<'static>>,
    /// Compiled expressions per table, tagged with the layout version they were built for.
    compiled: HashMap<Arc<str>, (u64, Arc<CompiledCheck>)>,
    /// `once: per_key`: the keys reported, with their latest violation (checkpointed).
    reported: ReportedKeys,
    /// The columns `assert` reads: the default message shows their values.
    assert_reads: Vec<ColumnRef>,
    /// The lookup columns `assert` reads, as (lookup, column): shown too.
    assert_lookups: Vec<(String, String)>,
    /// The comparisons of two columns in `assert`: the default message names those that fail.
    compared: Vec<crate::disagree::Comparison>,
}

/// The keys a `once: per_key` check has reported. A key is reported again only after it
/// went the rule's `state_ttl` without a violation — decided per finding from event times,
/// so batching changes nothing; memory is reclaimed when the map has doubled.
#[derive(Default, Clone, serde::Serialize, serde::Deserialize)]
struct ReportedKeys {
    latest: HashMap<String, EventTime>,
    sweep_at: usize,
}

impl ReportedKeys {
    /// True when `finding` is its key's first violation within `ttl`.
    fn first(&mut self, finding: &Finding, ttl: std::time::Duration) -> bool {
        let ttl = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
        let idle_before = EventTime::from_micros(finding.event_time.as_micros().saturating_sub(ttl));
        let key = serde_json::to_string(&finding.key).unwrap_or_default();
        let first = match self.latest.get_mut(&key) {
            Some(latest) if *latest >= idle_before => {
                *latest = (*latest).max(finding.event_time);
                false
            }
            Some(latest) => {
                *latest = finding.event_time;
                true
            }
            None => {
                self.latest.insert(key, finding.event_time);
                true
            }
        };
        if self.latest.len() > self.sweep_at {
            self.latest.retain(|_, t| *t >= idle_before);
            self.sweep_at = (self.latest.len() * 2).max(1024);
        }
        first
    }
}

struct CompiledCheck {
    when: Option<Arc<dyn PhysicalExpr>>,
    assert: Arc<dyn PhysicalExpr>,
    key: Vec<(String, Arc<dyn PhysicalExpr>)>,
    /// Amount and (optional) currency.
    money: Option<(PhysExpr, Option<PhysExpr>)>,
}

type PhysExpr = Arc<dyn PhysicalExpr>;

/// A finding with the event index it came from, for deterministic ordering.
pub(crate) type Found = (usize, Finding);

/// The longest run of prefix operators (`-`, `not`) a message template's expressions may
/// hold: minijinja 3.1 parses such a run by recursion outside its depth guard, and a few
/// thousand of them overflowed the stack (found by fuzzing). No message needs more than two.
const MAX_UNARY_RUN: usize = 32;

/// The longest run of `-` and `not` in a row inside a template's `{{ … }}` and `{% … %}`
/// blocks (the text around them is printed as it is).
fn unary_run(template: &str) -> usize {
    let blocks = template.split("{{").skip(1).chain(template.split("{%").skip(1));
    blocks.map(|block| longest_unary_run(block.split(['}', '%']).next().unwrap_or_default())).max().unwrap_or(0)
}

fn longest_unary_run(expr: &str) -> usize {
    let (mut longest, mut run, mut rest) = (0, 0, expr.trim_start());
    while !rest.is_empty() {
        let not =
            rest.strip_prefix("not").filter(|after| !after.starts_with(|c: char| c.is_alphanumeric() || c == '_'));
        match rest.strip_prefix('-').or(not) {
            Some(after) => {
                run += 1;
                longest = longest.max(run);
                rest = after;
            }
            None => {
                run = 0;
                rest = rest.trim_start_matches(|c: char| !c.is_whitespace() && c != '-');
            }
        }
        rest = rest.trim_start();
    }
    longest
}

impl RuleRuntime {
    /// Takes over `old`'s state when both are the same stateful rule: pending keys,
    /// timers, the event-time queue and its watermark. Compiled projections are not
    /// kept — they index columns of the old engine's table layouts.
    pub(crate) fn adopt_state(&mut self, old: RuleRuntime) -> bool {
        match (&mut self.kind, old.kind) {
            (Kind::Stateful(new), Kind::Stateful(mut old)) => {
                old.forget_compiled();
                *new = old;
                true
            }
            (Kind::Script(new), Kind::Script(old)) => {
                new.adopt(*old);
                true
            }
            _ => false,
        }
    }

    /// Prepares a rule: reads its column references and compiles its template.
    /// Returns the runtime with every problem found; a rule with problems must not run.
    pub(crate) fn new(rule: Arc<Rule>) -> (RuleRuntime, Vec<Diagnostic>) {
        let mut problems = Vec::new();
        let mut table_exprs: Vec<(String, Expr)> = Vec::new();
        // Lookup columns named outside SQL (a script's `lookup.<name>.<column>`).
        let mut lookups_named: Vec<(String, String, Location)> = Vec::new();
        let kind = match &rule.body {
            RuleBody::Check(check) => {
                for table in &check.tables {
                    table_exprs.extend(expressions(check).into_iter().map(|e| (table.clone(), e.clone())));
                }
                let template = match &check.message {
                    Some(m) if unary_run(&m.sql) > MAX_UNARY_RUN => {
                        let message = format!(
                            "message template: more than {MAX_UNARY_RUN} `-` or `not` in a row in an expression"
                        );
                        problems.push(Diagnostic::new(m.at.clone(), message));
                        None
                    }
                    Some(m) => {
                        let mut env = minijinja::Environment::new();
                        match env.add_template_owned(rule.id.clone(), m.sql.clone()) {
                            Ok(()) => Some(env),
                            Err(e) => {
                                problems.push(Diagnostic::new(m.at.clone(), format!("message template: {e}")));
                                None
                            }
                        }
                    }
                    None => None,
                };
                Kind::Check(Box::new(CheckRuntime {
                    check: check.clone(),
                    template,
                    compiled: HashMap::new(),
                    reported: ReportedKeys::default(),
                    assert_reads: column_refs(&check.assert).unwrap_or_default(),
                    assert_lookups: {
                        let mut read = lookup_refs(&check.assert);
                        read.dedup();
                        read
                    },
                    compared: crate::disagree::comparisons(&check.assert, crate::compile::Scope::Event),
                }))
            }
            RuleBody::Script(script) => {
                let (runtime, found) = ScriptRuntime::new(&rule, script);
                problems.extend(found);
                lookups_named.extend(runtime.lookups_read().iter().cloned());
                for p in runtime.projections() {
                    table_exprs.extend(p.filter.iter().map(|f| (p.table.clone(), f.clone())));
                    table_exprs.extend(p.exprs.iter().map(|(_, e)| (p.table.clone(), e.clone())));
                }
                Kind::Script(Box::new(runtime))
            }
            body => {
                let Some(kind) = stateful::build(body) else { unreachable!("every non-check body is stateful") };
                problems.extend(kind.problems());
                for p in kind.projections() {
                    table_exprs.extend(p.filter.iter().map(|f| (p.table.clone(), f.clone())));
                    table_exprs.extend(p.exprs.iter().map(|(_, e)| (p.table.clone(), e.clone())));
                }
                Kind::Stateful(Box::new(StatefulRuntime::new(kind, rule.state.ttl)))
            }
        };
        let exprs: Vec<&Expr> = table_exprs.iter().map(|(_, e)| e).collect();
        let lookups = RuleLookups::new(&rule.lookups, &exprs, &lookups_named, &mut problems);
        for table in rule.body.tables() {
            table_exprs.extend(lookups.match_exprs().map(|e| (table.clone(), e.clone())));
        }
        let mut located_refs = Vec::new();
        for (table, expr) in &table_exprs {
            match column_refs(expr) {
                Ok(r) => located_refs.push((table.clone(), expr.at.clone(), r)),
                Err(d) => {
                    if !problems.contains(&d) {
                        problems.push(d);
                    }
                }
            }
        }
        (RuleRuntime { rule, located_refs, lookups, kind }, problems)
    }

    /// Every column the rule reads from a table.
    pub(crate) fn refs_of(&self, table: &str) -> Vec<ColumnRef> {
        let mut refs: Vec<ColumnRef> =
            self.located_refs.iter().filter(|(t, _, _)| t == table).flat_map(|(_, _, r)| r.iter().cloned()).collect();
        refs.sort_by(|a, b| (a.image, &a.name).cmp(&(b.image, &b.name)));
        refs.dedup();
        refs
    }

    pub(crate) fn is_check(&self) -> bool {
        matches!(self.kind, Kind::Check(_))
    }

    pub(crate) fn is_stateful(&self) -> bool {
        matches!(self.kind, Kind::Stateful(_))
    }

    /// Releases a stateful rule's records up to the watermark (no-op for checks).
    pub(crate) fn advance(
        &mut self,
        ctx: &SessionContext,
        watermark: EventTime,
        detected_at: EventTime,
        out: &mut Vec<Finding>,
    ) -> Result<(), String> {
        let Kind::Stateful(s) = &mut self.kind else { return Ok(()) };
        let mut emit = Emit { rule: &self.rule, detected_at, findings: out };
        s.advance(ctx, watermark, &mut emit)
    }

    /// A copy of a rule's state for a checkpoint; `None` for checks that hold none
    /// (all but `once: per_key`).
    pub(crate) fn snapshot(&self) -> Option<crate::stateful::Snapshot> {
        match &self.kind {
            Kind::Stateful(s) => Some(s.snapshot()),
            Kind::Check(c) if c.check.once == Once::PerKey => Some(crate::stateful::snapshot_of(c.reported.clone())),
            Kind::Check(_) => None,
            Kind::Script(s) => Some(s.snapshot()),
        }
    }

    /// Takes a checkpoint's state for this rule.
    /// Restored rows share their dimensions through `dimensions`.
    pub(crate) fn restore_state(&mut self, state: &[u8], dimensions: &mut DimensionCache) -> Result<(), String> {
        match &mut self.kind {
            Kind::Stateful(s) => s.restore(state, dimensions),
            Kind::Check(c) if c.check.once == Once::PerKey => {
                c.reported = crate::stateful::decode(state)?;
                Ok(())
            }
            Kind::Check(_) => Err("a check rule holds no state".into()),
            Kind::Script(s) => s.restore(state),
        }
    }

    /// Whether a check's finding is reported: always, or with `once: per_key` only when it
    /// is its key's first violation (findings come here in event order).
    pub(crate) fn reports(&mut self, finding: &Finding) -> bool {
        match &mut self.kind {
            Kind::Check(c) if c.check.once == Once::PerKey => c.reported.first(finding, self.rule.state.ttl),
            _ => true,
        }
    }

    /// Over the memory budget: drops about `keys` of the oldest keys of a stateful rule.
    pub(crate) fn shed(&mut self, keys: usize) -> usize {
        match &mut self.kind {
            Kind::Stateful(s) => s.shed(keys),
            Kind::Script(s) => s.shed(keys),
            Kind::Check(_) => 0,
        }
    }

    /// Late events and state size of a stateful rule.
    pub(crate) fn state_stats(&self) -> Option<&StateStats> {
        match &self.kind {
            Kind::Stateful(s) => Some(&s.stats),
            Kind::Script(s) => Some(&s.stats),
            Kind::Check(_) => None,
        }
    }

    /// Tells the lookup store what the rule reads from which lookup.
    pub(crate) fn register_lookups(&self, store: &mut LookupStore, schemas: &TableSchemas) {
        self.lookups.register(store, schemas);
    }

    /// Compiles every expression on `table` against a schema (joined with the rule's
    /// lookups), reporting all problems.
    pub(crate) fn check_compiles(
        &self,
        ctx: &SessionContext,
        table: &str,
        base: &DFSchema,
        store: &LookupStore,
    ) -> Vec<Diagnostic> {
        let mut problems = self.lookups.check_compiles(ctx, base);
        problems.extend(self.lookups.unknown_columns(store));
        let joined = self.lookups.schema(base, store);
        let schema = joined.as_ref();
        problems.extend(match &self.kind {
            Kind::Check(c) => match compile_check(ctx, &c.check, schema) {
                Ok(_) => Vec::new(),
                Err(d) => d,
            },
            Kind::Stateful(s) => s
                .kind
                .projections()
                .iter()
                .filter(|p| p.table == table)
                .flat_map(|p| stateful::check_projection(ctx, p, schema))
                .collect(),
            Kind::Script(s) => s
                .projections()
                .iter()
                .filter(|p| p.table == table)
                .flat_map(|p| stateful::check_projection(ctx, p, schema))
                .collect(),
        });
        problems
    }

    /// Compiles expressions that are not over a table (reconcile's `expect`).
    pub(crate) fn check_other_compiles(&self, ctx: &SessionContext, schemas: &TableSchemas) -> Vec<Diagnostic> {
        match &self.kind {
            Kind::Check(_) | Kind::Script(_) => Vec::new(),
            Kind::Stateful(s) => s.kind.check_compiles(ctx, schemas),
        }
    }

    /// Evaluates the rule over one table batch: checks report at once, stateful
    /// rules queue their records for event-time processing.
    pub(crate) fn on_batch(
        &mut self,
        ctx: &SessionContext,
        input: &TableBatch,
        lookups: &LookupStore,
        detected_at: EventTime,
        out: &mut Vec<Found>,
        stateful_out: &mut Vec<Finding>,
    ) -> Result<u64, String> {
        if self.lookups.is_empty() {
            return self.evaluate(ctx, input, detected_at, out, stateful_out);
        }
        let mut missing = Vec::new();
        let joined = self.lookups.join(ctx, input, lookups, &mut missing)?;
        for m in missing {
            let finding = missing_lookup_finding(&self.rule, &m, &input.events[m.event], detected_at);
            out.push((m.event, finding));
        }
        let input = TableBatch {
            table: input.table,
            version: joined.version,
            schema: &joined.schema,
            batch: &joined.batch,
            events: input.events,
            indices: &joined.indices,
            dimensions: input.dimensions,
        };
        self.evaluate(ctx, &input, detected_at, out, stateful_out)
    }

    fn evaluate(
        &mut self,
        ctx: &SessionContext,
        input: &TableBatch,
        detected_at: EventTime,
        out: &mut Vec<Found>,
        stateful_out: &mut Vec<Finding>,
    ) -> Result<u64, String> {
        match &mut self.kind {
            Kind::Check(c) => {
                let compiled = match c.compiled.get(input.table) {
                    Some((v, compiled)) if *v == input.version => compiled.clone(),
                    _ => {
                        let compiled = Arc::new(
                            compile_check(ctx, &c.check, input.schema)
                                .map_err(|d| d.iter().map(|d| d.message.clone()).collect::<Vec<_>>().join("; "))?,
                        );
                        c.compiled.insert(input.table.clone(), (input.version, compiled.clone()));
                        compiled
                    }
                };
                evaluate_check(&self.rule, c, &compiled, input, detected_at, out)
            }
            Kind::Stateful(s) => {
                let mut emit = Emit { rule: &self.rule, detected_at, findings: stateful_out };
                s.project(ctx, input, &mut emit)
            }
            Kind::Script(s) => s.project(ctx, input),
        }
    }

    /// After every table of a batch: a script rule runs on the rows it kept, in log order
    /// (no-op for other kinds). Answers the errors of the calls that failed.
    pub(crate) fn after_batch(
        &mut self,
        events: &[ChangeEvent],
        detected_at: EventTime,
        out: &mut Vec<Found>,
    ) -> Vec<String> {
        match &mut self.kind {
            Kind::Script(s) => s.run(&self.rule, events, detected_at, out),
            _ => Vec::new(),
        }
    }

    /// Columns a script names, at their place in the rule file (none for other kinds: their
    /// columns are in `located_refs`).
    pub(crate) fn script_columns(&self) -> Vec<(Location, ColumnRef)> {
        match &self.kind {
            Kind::Script(s) => s.columns_read(),
            _ => Vec::new(),
        }
    }
}

/// The finding of a row whose lookup found no reference row (`missing: report`): keyed by
/// the values it looked for.
fn missing_lookup_finding(rule: &Rule, m: &MissingRow, event: &ChangeEvent, detected_at: EventTime) -> Finding {
    let wanted = m.key.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
    Finding {
        rule: rule.id.clone(),
        owner: rule.owner.clone(),
        severity: rule.severity,
        key: m.key.iter().cloned().collect(),
        event_time: event.commit_time,
        detected_at,
        message: format!("{}: no `{}` row for {wanted} ({} {})", rule.id, m.lookup, event.table, event.op.as_str()),
        evidence: vec![Evidence::of(event)],
        money_at_risk: None,
        tags: rule.tags.clone(),
        action: rule.action.clone(),
        // One alert per reference key looked for: the rule's fingerprint columns name its
        // own key, which this finding does not have.
        fingerprint_by: None,
    }
}

fn expressions(c: &CheckRule) -> Vec<&Expr> {
    let mut all: Vec<&Expr> = vec![&c.assert];
    all.extend(c.when.iter());
    all.extend(c.key.iter().map(|(_, e)| e));
    if let Some(m) = &c.money {
        all.push(&m.amount);
        all.extend(m.currency.iter());
    }
    all
}

fn compile_check(ctx: &SessionContext, check: &CheckRule, schema: &DFSchema) -> Result<CompiledCheck, Vec<Diagnostic>> {
    let mut problems = Vec::new();
    let mut one = |e: &Expr, want: Option<DataType>| match compile(ctx, e, schema, want) {
        Ok(p) => Some(p),
        Err(d) => {
            problems.push(d);
            None
        }
    };
    let when = check.when.as_ref().map(|w| one(w, Some(DataType::Boolean)));
    let assert = one(&check.assert, Some(DataType::Boolean));
    let key: Vec<_> = check.key.iter().map(|(n, e)| (n.clone(), one(e, None))).collect();
    let money = check.money.as_ref().map(|m| (one(&m.amount, None), m.currency.as_ref().map(|c| one(c, None))));
    if !problems.is_empty() {
        return Err(problems);
    }
    // Every `one` above succeeded, so none of these is None.
    let some = |p: Option<Arc<dyn PhysicalExpr>>| p.ok_or_else(Vec::new);
    Ok(CompiledCheck {
        when: when.map(some).transpose()?,
        assert: some(assert)?,
        key: key.into_iter().map(|(n, p)| some(p).map(|p| (n, p))).collect::<Result<_, _>>()?,
        money: match money {
            Some((amount, currency)) => Some((some(amount)?, currency.map(some).transpose()?)),
            None => None,
        },
    })
}

fn eval(expr: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> Result<ArrayRef, String> {
    expr.evaluate(batch).and_then(|v| v.into_array(batch.num_rows())).map_err(|e| e.to_string())
}

/// A row violates a check when `when` is TRUE and `assert` is not TRUE (FALSE or NULL).
fn evaluate_check(
    rule: &Rule,
    check: &CheckRuntime,
    compiled: &CompiledCheck,
    input: &TableBatch,
    detected_at: EventTime,
    out: &mut Vec<Found>,
) -> Result<u64, String> {
    let batch = input.batch;
    let n = batch.num_rows();
    let as_mask = |a: ArrayRef| -> BooleanArray {
        match a.as_boolean_opt() {
            // NULL counts as not TRUE (the arrow helper expects a null buffer to exist).
            Some(b) if b.null_count() > 0 => prep_null_mask_filter(b),
            Some(b) => b.clone(),
            // An all-NULL expression (columns never seen) is NULL everywhere.
            None => BooleanArray::from(vec![false; n]),
        }
    };
    let applies = match &compiled.when {
        Some(w) => as_mask(eval(w, batch)?),
        None => BooleanArray::from(vec![true; n]),
    };
    let passed = applies.true_count() as u64;
    if passed == 0 {
        return Ok(0);
    }
    let holds = as_mask(eval(&compiled.assert, batch)?);
    let violated = and_not(&applies, &holds).map_err(|e| e.to_string())?;
    if violated.true_count() == 0 {
        return Ok(passed);
    }
    let keys: Vec<(String, ArrayRef)> =
        compiled.key.iter().map(|(name, e)| eval(e, batch).map(|a| (name.clone(), a))).collect::<Result<_, _>>()?;
    let money = match &compiled.money {
        Some((amount, currency)) => {
            Some((eval(amount, batch)?, currency.as_ref().map(|c| eval(c, batch)).transpose()?))
        }
        None => None,
    };
    // The lookup values the assert read, per violated row, for the default message.
    let lookup_columns: Vec<(String, Option<usize>)> = check
        .assert_lookups
        .iter()
        .map(|(lookup, column)| {
            let qualifier = datafusion::common::TableReference::partial(LOOKUP, lookup.as_str());
            (format!("{LOOKUP}.{lookup}.{column}"), input.schema.index_of_column_by_name(Some(&qualifier), column))
        })
        .collect();
    for row in (0..n).filter(|&r| violated.value(r)) {
        let looked_up: Vec<String> = lookup_columns
            .iter()
            .filter_map(|(name, index)| index.map(|i| format!("{name}={}", value_at(batch.column(i), row))))
            .collect();
        let event_index = input.indices[row];
        let event = &input.events[event_index];
        let key = keys.iter().map(|(name, a)| (name.clone(), value_at(a, row))).collect();
        let unit = check.check.money.as_ref().map(|m| m.unit).unwrap_or_default();
        let money_at_risk = money.as_ref().and_then(|(amount, currency)| {
            let currency = currency.as_ref().map(|c| value_at(c, row));
            Money::from_value(&value_at(amount, row), currency.as_ref(), unit)
        });
        let mut finding = Finding {
            rule: rule.id.clone(),
            owner: rule.owner.clone(),
            severity: rule.severity,
            key,
            event_time: event.commit_time,
            detected_at,
            message: String::new(),
            evidence: vec![Evidence::of(event)],
            money_at_risk,
            tags: rule.tags.clone(),
            action: rule.action.clone(),
            fingerprint_by: rule.fingerprint_by.clone(),
        };
        finding.message = render_message(rule, check, &finding, event, &looked_up);
        out.push((event_index, finding));
    }
    Ok(passed)
}

fn render_message(
    rule: &Rule,
    check: &CheckRuntime,
    finding: &Finding,
    event: &ChangeEvent,
    looked_up: &[String],
) -> String {
    let key_text = || finding.key.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
    let Some(env) = &check.template else {
        if let Some(disagree) = crate::disagree::in_event(
            &check.compared,
            event,
            finding.money_at_risk.as_ref(),
            check.check.money.as_ref().map(|m| m.unit),
        ) {
            return format!("{} does not hold for {}: {disagree}", rule.id, key_text());
        }
        // The values the assert read, so the reader sees what disagreed without the event.
        let mut values: Vec<String> = check
            .assert_reads
            .iter()
            .filter_map(|r| {
                let row = match r.image {
                    Image::Before => event.before.as_ref(),
                    Image::After => event.after.as_ref(),
                    _ => None,
                }?;
                let value = row.get(&r.name).map_or_else(|| "absent".to_string(), |v| v.to_string());
                Some(format!("{}.{}={value}", r.image.qualifier(), r.name))
            })
            .collect();
        values.extend(looked_up.iter().cloned());
        let seen = if values.is_empty() { String::new() } else { format!(" ({})", values.join(", ")) };
        return format!("{}: `{}` does not hold for {}{seen}", rule.id, check.check.assert.sql, key_text());
    };
    let context = minijinja::context! {
        rule => rule.id.as_str(),
        table => &*event.table,
        op => event.op.as_str(),
        commit_time => event.commit_time.to_string(),
        before => minijinja::Value::from(minijinja::value::Serde(&event.before)),
        after => minijinja::Value::from(minijinja::value::Serde(&event.after)),
        key => minijinja::Value::from(minijinja::value::Serde(&finding.key)),
    };
    env.get_template(&rule.id)
        .and_then(|t| t.render(context))
        .unwrap_or_else(|e| format!("{}: message template failed ({e}) for {}", rule.id, key_text()))
}
