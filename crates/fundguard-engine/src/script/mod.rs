//! The `script` rule kind: a sandboxed Rhai script run for every row of its tables that
//! passes `when`, with a `state` map per key.
//!
//! Two steps per micro-batch, like a check: per table, DataFusion evaluates `when` and the
//! key over the batch ([`ScriptRuntime::project`]) and the passing rows wait; once every table
//! of the batch is done, the script runs on them in log order ([`ScriptRuntime::run`]), so a
//! script over several tables sees their rows in the order they were written, however the
//! input is cut into batches. Nothing waits for a watermark: a script adds no latency.
//!
//! A call that fails — a runtime error, or a limit reached (`limits:`, see `sandbox.rs`) — is
//! a rule error counted like a failing SQL expression, with the script's place in the rule
//! file and the row's position; it reports nothing and changes no state, and the next row
//! runs as usual.

mod bind;
mod sandbox;
mod state;
mod values;

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::prelude::SessionContext;
use fundguard_core::{ChangeEvent, EventTime, Evidence, Finding, Money, Value};
use fundguard_rules::{Diagnostic, Location, Rule, ScriptRule};
use rhai::{AST, Dynamic, Map, Scope};

use crate::columns::{ColumnRef, Image};
use crate::rules::Found;
use crate::scalar::value_at;
use crate::stateful::{CompiledProjection, PhysExpr, Projection, StateStats, compile_projection};
use crate::table_batch::TableBatch;

use sandbox::{Report, Reports};
use state::KeyedState;
use values::Data;

/// A row waiting for the script: its event (index into the batch's events), where its key
/// values start in [`ScriptRuntime::pending_keys`] and the lookup rows it found
/// (`lookup.<name>.<column>`).
struct Pending {
    event: usize,
    key_at: usize,
    lookup: Map,
}

/// A script rule at run time.
pub(crate) struct ScriptRuntime {
    script: ScriptRule,
    engine: rhai::Engine,
    /// `None` when the script did not compile (the rule then never runs).
    ast: Option<AST>,
    reports: Reports,
    /// The columns of `before` and `after` the script names (`None`: it may read any).
    before: Option<values::NamedColumns>,
    after: Option<values::NamedColumns>,
    /// Whether the script names `state` (one that does not keeps none, and pays nothing for it).
    uses_state: bool,
    /// Which of [`sandbox::NAMES`] the script names (only those are bound).
    names_used: [bool; sandbox::NAMES.len()],
    /// The `lookup.<name>.<column>` the script names, at their place in the rule file.
    lookups_read: Vec<(String, String, Location)>,
    /// Per table: `when` and the key expressions.
    projections: Vec<Projection>,
    compiled: HashMap<Arc<str>, (u64, Arc<CompiledProjection>)>,
    pending: Vec<Pending>,
    /// The key values of the pending rows, one after another: one buffer for the batch
    /// rather than an allocation per row.
    pending_keys: Vec<Value>,
    /// The key's column names, in the order of its values.
    key_names: Vec<String>,
    state: KeyedState,
    /// The rule's `state_ttl`, in microseconds.
    ttl: i64,
    /// The scope the script runs in, bound to each row in turn.
    bindings: bind::Bindings,
    /// Which native function each call site resolved to, kept from call to call (see [`run`]).
    caches: rhai::Caches,
    pub stats: StateStats,
}

impl ScriptRuntime {
    /// Compiles the script; returns the runtime with its problems (a syntax error, a
    /// misspelt name: each at its line and column in the rule file).
    pub(crate) fn new(rule: &Rule, script: &ScriptRule) -> (ScriptRuntime, Vec<Diagnostic>) {
        let reports = Reports::default();
        let engine = sandbox::engine(&script.limits, reports.clone());
        let (ast, problems) = match sandbox::compile(&engine, &script.source) {
            Ok(ast) => (Some(ast), Vec::new()),
            Err(d) => (None, vec![d]),
        };
        let read = ast.as_ref().map(sandbox::columns_read).unwrap_or_default();
        let names_of = |c: Option<Vec<(String, rhai::Position)>>| {
            c.map(|c| values::NamedColumns::new(c.into_iter().map(|(n, _)| n)))
        };
        let projections = script
            .tables
            .iter()
            .map(|table| Projection { table: table.clone(), filter: script.when.clone(), exprs: script.key.clone() })
            .collect();
        let runtime = ScriptRuntime {
            script: script.clone(),
            engine,
            reports,
            uses_state: read.state,
            names_used: read.names,
            lookups_read: read
                .lookups
                .iter()
                .map(|(n, c, p)| (n.clone(), c.clone(), sandbox::at(&script.source, *p)))
                .collect(),
            before: names_of(read.before),
            after: names_of(read.after),
            ast,
            projections,
            compiled: HashMap::new(),
            pending: Vec::new(),
            pending_keys: Vec::new(),
            key_names: script.key.iter().map(|(name, _)| name.clone()).collect(),
            state: KeyedState::default(),
            ttl: i64::try_from(rule.state.ttl.as_micros()).unwrap_or(i64::MAX),
            bindings: bind::Bindings::default(),
            caches: rhai::Caches::new(),
            stats: StateStats::default(),
        };
        (runtime, problems)
    }

    /// The lookup columns the script names, as (lookup, column, place in the rule file).
    pub(crate) fn lookups_read(&self) -> &[(String, String, Location)] {
        &self.lookups_read
    }

    /// `when` and the key, per table: compiled and evaluated like a stateful rule's projections.
    pub(crate) fn projections(&self) -> &[Projection] {
        &self.projections
    }

    /// The `before.x` / `after.x` the script names, each at its place in the rule file (for
    /// schema validation and the drift watch); empty when it reads rows as a whole.
    pub(crate) fn columns_read(&self) -> Vec<(Location, ColumnRef)> {
        let Some(ast) = &self.ast else { return Vec::new() };
        let read = sandbox::columns_read(ast);
        let mut out = Vec::new();
        for (image, columns) in [(Image::Before, read.before), (Image::After, read.after)] {
            for (name, position) in columns.into_iter().flatten() {
                out.push((sandbox::at(&self.script.source, position), ColumnRef { image, name }));
            }
        }
        out
    }

    /// Evaluates `when` and the key over a table batch; the passing rows wait for [`Self::run`].
    /// Answers how many rows passed.
    pub(crate) fn project(&mut self, ctx: &SessionContext, input: &TableBatch) -> Result<u64, String> {
        let compiled = match self.compiled.get(input.table) {
            Some((v, c)) if *v == input.version => c.clone(),
            _ => {
                let Some(projection) = self.projections.iter().find(|p| *p.table == **input.table) else {
                    return Ok(0);
                };
                let compiled = Arc::new(
                    compile_projection(ctx, projection, input.schema)
                        .map_err(|d| d.iter().map(|d| d.message.clone()).collect::<Vec<_>>().join("; "))?,
                );
                self.compiled.insert(input.table.clone(), (input.version, compiled.clone()));
                compiled
            }
        };
        let batch = input.batch;
        let n = batch.num_rows();
        let eval = |e: &PhysExpr| -> Result<ArrayRef, String> {
            e.evaluate(batch).and_then(|v| v.into_array(n)).map_err(|e| e.to_string())
        };
        let keep: Vec<bool> = match &compiled.filter {
            Some(f) => match eval(f)?.as_boolean_opt() {
                Some(b) => (0..n).map(|i| b.is_valid(i) && b.value(i)).collect(),
                None => vec![false; n],
            },
            None => vec![true; n],
        };
        let passed = keep.iter().filter(|k| **k).count() as u64;
        if passed == 0 {
            return Ok(0);
        }
        let keys: Vec<ArrayRef> = compiled.exprs.iter().map(eval).collect::<Result<_, _>>()?;
        // The lookup columns the batch was joined with, by lookup.
        let lookups: Vec<(String, String, usize)> = input
            .schema
            .iter()
            .enumerate()
            .filter_map(|(i, (q, f))| match q? {
                datafusion::common::TableReference::Partial { schema, table }
                    if &**schema == crate::compile::LOOKUP =>
                {
                    Some((table.to_string(), f.name().clone(), i))
                }
                _ => None,
            })
            .collect();
        for row in (0..n).filter(|&r| keep[r]) {
            let key_at = self.pending_keys.len();
            self.pending_keys.extend(keys.iter().map(|a| value_at(a, row)));
            let mut lookup = Map::new();
            for (name, column, i) in &lookups {
                let value = values::dynamic(&value_at(batch.column(*i), row));
                let entry = lookup.entry(name.as_str().into()).or_insert_with(|| Dynamic::from_map(Map::new()));
                if let Some(mut columns) = entry.write_lock::<Map>() {
                    columns.insert(column.as_str().into(), value);
                }
            }
            self.pending.push(Pending { event: input.indices[row], key_at, lookup });
        }
        Ok(passed)
    }

    /// Runs the script on the rows [`Self::project`] kept, in log order. Findings go to `out`
    /// with their event's index; each failed call is one error in the answer.
    pub(crate) fn run(
        &mut self,
        rule: &Rule,
        events: &[ChangeEvent],
        detected_at: EventTime,
        out: &mut Vec<Found>,
    ) -> Vec<String> {
        let mut pending = std::mem::take(&mut self.pending);
        let mut keys = std::mem::take(&mut self.pending_keys);
        pending.sort_by_key(|p| p.event);
        let mut errors = Vec::new();
        let width = self.key_names.len();
        for p in &pending {
            let Some(event) = events.get(p.event) else { continue };
            let key = &keys[p.key_at..p.key_at + width];
            match self.call(event, key, &p.lookup) {
                Ok(reports) => out.extend(
                    reports.into_iter().map(|r| (p.event, finding(rule, event, &self.key_names, key, r, detected_at))),
                ),
                Err(e) => errors.push(e),
            }
        }
        pending.clear();
        keys.clear();
        self.pending = pending;
        self.pending_keys = keys;
        self.stats.keys = self.state.keys() as u64;
        self.stats.state_bytes = self.state.bytes() as u64;
        errors
    }

    /// One call: binds the row, the key and the key's state, runs the script, keeps the state.
    fn call(&mut self, event: &ChangeEvent, key: &[Value], lookup: &Map) -> Result<Vec<Report>, String> {
        let Some(ast) = &self.ast else { return Ok(Vec::new()) };
        let idle_before = EventTime::from_micros(event.commit_time.as_micros().saturating_sub(self.ttl));
        // A NULL key has no state of its own: the script gets an empty map, which is not kept.
        let state_key = (self.uses_state && !key.iter().all(Value::is_null)).then(|| state_key(&self.key_names, key));
        let state = match state_key.as_deref().and_then(|k| self.state.get(k, idle_before)) {
            Some(fields) => values::map_of(fields),
            None => Map::new(),
        };
        let row = bind::Row { event, key_names: &self.key_names, key, state: self.uses_state.then_some(state), lookup };
        let scope = self.bindings.bind(row, &self.names_used, self.before.as_mut(), self.after.as_mut());
        self.reports.lock().unwrap_or_else(PoisonError::into_inner).clear();
        let result = run(&self.engine, &mut self.caches, scope, ast);
        let reports = std::mem::take(&mut *self.reports.lock().unwrap_or_else(PoisonError::into_inner));
        let fail = |message: String, position: rhai::Position| {
            let at = sandbox::at(&self.script.source, position);
            let key = self.key_names.iter().zip(key).map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
            format!("{at}: {message} (row at {} of {}, key {key})", event.position, event.table)
        };
        if let Err(e) = result {
            let (message, position) = sandbox::explain(&e, &self.script.limits);
            return Err(fail(message, position));
        }
        if !self.uses_state {
            return Ok(reports);
        }
        let state = self.bindings.take_state();
        if !state.is_map() {
            let message = format!("`state` became a {}: it must stay a map", state.type_name());
            return Err(fail(message, rhai::Position::NONE));
        }
        if let Err(e) = self.engine.ensure_data_size_within_limits(&state) {
            let (message, _) = sandbox::explain(&e, &self.script.limits);
            return Err(fail(format!("`state`: {message}"), rhai::Position::NONE));
        }
        if let Some(k) = state_key {
            let fields = Data::of_map(&state.cast::<Map>()).map_err(|m| fail(m, rhai::Position::NONE))?;
            self.state.put(&k, event.commit_time, fields, idle_before);
        }
        Ok(reports)
    }

    /// A copy of the keyed state, for a checkpoint.
    pub(crate) fn snapshot(&self) -> crate::stateful::Snapshot {
        crate::stateful::snapshot_of(self.state.clone())
    }

    pub(crate) fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        self.state = crate::stateful::decode(state)?;
        self.stats.keys = self.state.keys() as u64;
        self.stats.state_bytes = self.state.bytes() as u64;
        Ok(())
    }

    /// Takes over the state of the same rule before a reload.
    pub(crate) fn adopt(&mut self, old: ScriptRuntime) {
        self.state = old.state;
        self.stats = old.stats;
    }

    /// Over the memory budget: drops about `keys` of the least recently touched keys.
    pub(crate) fn shed(&mut self, keys: usize) -> usize {
        let dropped = self.state.shed_oldest(keys);
        self.stats.keys = self.state.keys() as u64;
        self.stats.state_bytes = self.state.bytes() as u64;
        dropped
    }
}

/// Runs the script once, as [`rhai::Engine::run_ast_with_scope`] does, but with the
/// function resolution caches of the calls before.
///
/// `run_ast_with_scope` starts every call with empty caches, so each operator and function
/// call of the script is looked up by its name and argument types again on every row (a few
/// per cent of a short script's time). What a call site resolves to depends only on the engine
/// (fixed at load) and the AST's own functions (the same AST every call), so the answers stay
/// right for the rule's lifetime. Rhai offers no cache-keeping entry point other than its
/// `internals` one, deprecated as "may change in a minor version": the workspace pins Rhai's
/// minor version, and the script tests run every path through here.
fn run(
    engine: &rhai::Engine,
    caches: &mut rhai::Caches,
    scope: &mut Scope,
    ast: &AST,
) -> Result<(), Box<rhai::EvalAltResult>> {
    // A fresh runtime state per call: the operation count the `operations` limit checks
    // starts at zero for every row.
    let mut global = engine.new_global_runtime_state();
    global.lib.push(ast.shared_lib().clone());
    #[allow(deprecated)]
    engine.eval_statements_raw(&mut global, caches, scope, ast.statements()).map(|_| ())
}

/// The state's key: the key values with their types, so `5` and `"5"` are different keys.
fn state_key(names: &[String], key: &[Value]) -> String {
    let mut out = String::new();
    for (name, value) in names.iter().zip(key) {
        out.push_str(name);
        out.push('=');
        out.push_str(value.type_name());
        out.push(':');
        out.push_str(&value.to_string());
        out.push('\u{1f}');
    }
    out
}

fn finding(
    rule: &Rule,
    event: &ChangeEvent,
    key_names: &[String],
    key: &[Value],
    report: Report,
    detected_at: EventTime,
) -> Finding {
    Finding {
        rule: rule.id.clone(),
        owner: rule.owner.clone(),
        severity: rule.severity,
        key: key_names.iter().cloned().zip(key.iter().cloned()).collect(),
        event_time: event.commit_time,
        detected_at,
        message: report.message,
        evidence: vec![Evidence::of(event)],
        // As for `money:` with `unit: auto`: an integer is minor units, a decimal major units.
        money_at_risk: report.amount.as_ref().and_then(|amount| {
            let currency = report.currency.map(Value::String);
            Money::from_value(amount, currency.as_ref(), fundguard_core::MoneyUnit::Auto)
        }),
        tags: rule.tags.clone(),
        action: rule.action.clone(),
        fingerprint_by: rule.fingerprint_by.clone(),
    }
}

/// The columns a script rule reads, each as (row, column) — its `when` and key through
/// [`crate::columns_read`], its script from the compiled AST — for coverage. An error when
/// the script does not compile, or uses a row as a whole (`for (k, v) in after`) and so may
/// read any column.
pub fn script_columns_read(script: &ScriptRule) -> Result<Vec<(&'static str, String)>, Diagnostic> {
    let engine = sandbox::engine(&script.limits, Reports::default());
    let ast = sandbox::compile(&engine, &script.source)?;
    let read = sandbox::columns_read(&ast);
    let mut out = Vec::new();
    for (image, columns) in [(Image::Before, read.before), (Image::After, read.after)] {
        let Some(columns) = columns else {
            let message = format!(
                "the script uses `{}` as a whole, so it may read any of its columns: name them (`{0}.amount`) to have them counted",
                image.qualifier()
            );
            return Err(Diagnostic::new(script.source.at.clone(), message));
        };
        out.extend(columns.into_iter().map(|(name, _)| (image.qualifier(), name)));
    }
    Ok(out)
}
