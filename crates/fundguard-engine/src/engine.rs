//! The engine: routes each micro-batch's events to the rules that watch their tables,
//! and moves event time forward for stateful rules.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::common::DFSchema;
use datafusion::prelude::SessionContext;
use fundguard_core::distinct::Distinct;
use fundguard_core::{ChangeEvent, EventTime, Finding, Projection, Severity, TableColumns, TableSchemas, Value};
use fundguard_rules::{Diagnostic, Rule};
use serde::{Deserialize, Serialize};

use crate::FastMap;
use crate::columns::{Image, TableLayout};
use crate::drift::{Drift, DriftWatch, SavedDrift};
use crate::lookup::{LookupSnapshot, LookupStore, SavedLookup};
use crate::rules::{Found, RuleRuntime};
use crate::stateful::{BatchDimensions, DimensionCache};
use crate::table_batch::TableBatch;

/// A failure of the engine itself (not of a rule: rule errors are counted in [`RuleStats`]).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("building the batch for table `{table}` failed: {message}")]
    Batch { table: String, message: String },
}

/// Rule state in a checkpoint could not be written or read back.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("rule `{rule}`: its state could not be encoded: {message}")]
    Encode { rule: String, message: String },
    #[error(
        "the rule state in the checkpoint is unreadable ({message}); restore a good copy of the checkpoint, or move it away to start without state (and replay from the sources' beginning)"
    )]
    Decode { message: String },
}

/// What [`Engine::restore_state`] did with a checkpoint's rule state.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Rules whose state was taken over.
    pub kept: Vec<String>,
    /// Rules whose state was left behind: changed since the checkpoint, or gone.
    pub dropped: Vec<String>,
}

/// The engine's part of a checkpoint: event-time clocks and every stateful rule's state.
#[derive(Serialize, Deserialize)]
struct SavedEngine {
    clocks: Vec<(String, Option<EventTime>, bool)>,
    rules: Vec<SavedRule>,
    /// Lookups kept from the stream (absent in checkpoints of older versions).
    #[serde(default)]
    lookups: Vec<(String, SavedLookup)>,
    /// What the drift watch has seen and reported (absent in checkpoints of older versions).
    #[serde(default)]
    drift: SavedDrift,
}

#[derive(Serialize, Deserialize)]
struct SavedRule {
    id: String,
    /// The rule's definition when it was saved: state is only taken over by the same rule.
    definition: String,
    #[serde(with = "serde_bytes")]
    state: Vec<u8>,
    /// The event-time sources that fed the rule (absent in checkpoints of older versions).
    #[serde(default)]
    sources: Vec<String>,
}

/// The engine's state as [`Engine::snapshot_state`] copied it: owned, so it can be
/// encoded on another thread ([`StateSnapshot::encode`]) into what [`Engine::save_state`] writes.
pub struct StateSnapshot {
    clocks: Vec<(String, Option<EventTime>, bool)>,
    lookups: Vec<(String, SavedLookup)>,
    drift: SavedDrift,
    /// Each stateful rule with its state still to encode.
    rules: Vec<(SavedRule, crate::stateful::Snapshot)>,
}

impl StateSnapshot {
    /// The encoded state, as [`Engine::restore_state`] reads it.
    pub fn encode(self) -> Result<Vec<u8>, StateError> {
        let mut rules = Vec::with_capacity(self.rules.len());
        for (mut saved, state) in self.rules {
            saved.state = state().map_err(|message| StateError::Encode { rule: saved.id.clone(), message })?;
            rules.push(saved);
        }
        crate::stateful::encode(&SavedEngine { clocks: self.clocks, rules, lookups: self.lookups, drift: self.drift })
            .map_err(|message| StateError::Encode { rule: "(engine)".into(), message })
    }
}

/// A rule's definition as text (its expressions with their locations): two rules with
/// the same text behave the same, so one can take over the other's state.
fn definition(rule: &Rule) -> String {
    format!("{rule:?}")
}

/// The tag of findings that `--final` fired at end of input ([`Engine::finish_final`]).
pub const END_OF_INPUT_TAG: &str = "end_of_input";

/// How far stateful rules are released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Release {
    /// Up to each rule's watermark (the allowed lateness still held back).
    Running,
    /// End of input: up to the newest event time, with no lateness left to wait for.
    AtEnd,
    /// End of a complete period: every pending deadline.
    Final,
}

/// The rule id of the findings the memory budget raises.
pub const STATE_MEMORY_RULE: &str = "fundguard.state_memory";

/// Events of one table a rule evaluated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableCount {
    pub table: String,
    pub events: u64,
    pub last_event: Option<EventTime>,
}

/// What one rule did over a run.
#[derive(Debug, Clone, Default)]
pub struct RuleStats {
    pub rule: String,
    pub kind: &'static str,
    /// Events of the watched tables the rule evaluated.
    pub events: u64,
    /// Per table the rule reads: its events the rule evaluated, and the newest commit time.
    pub per_table: Vec<TableCount>,
    /// Events that passed the rule's `when` (all of them without one).
    pub passed: u64,
    /// The newest commit time of an event the rule evaluated.
    pub last_event: Option<EventTime>,
    pub findings: u64,
    /// The event time of the newest finding.
    pub last_finding: Option<EventTime>,
    /// The drifts of its input seen so far (see `drift.rs`).
    pub drifts: Vec<Drift>,
    /// Distinct keys of its findings: exact up to 256, then estimated (within a few percent).
    pub distinct_keys: u64,
    /// Batches the rule could not evaluate (for a script: calls that failed), and the last reason.
    pub errors: u64,
    pub last_error: Option<String>,
    /// Stateful rules: events that arrived after the watermark had passed them.
    pub late_events: u64,
    /// Stateful rules: estimated bytes of state held now.
    pub state_bytes: u64,
    /// Stateful rules: keys (entities, groups) with state now.
    pub state_keys: u64,
}

struct TableState {
    layout: TableLayout,
    version: u64,
    schema: Arc<DFSchema>,
    /// Indices into `Engine::rules` of the enabled rules watching this table.
    rules: Vec<usize>,
}

/// Evaluates a rule set over micro-batches of change events.
pub struct Engine {
    ctx: SessionContext,
    rules: Vec<RuleRuntime>,
    stats: Vec<RuleStats>,
    /// Per rule, the distinct keys of its findings: exact up to a bound, then estimated,
    /// so a rule that keeps finding new keys does not grow the process for as long as it runs.
    keys_seen: Vec<Distinct>,
    /// What the rows stateful rules store share: row layouts and repeated texts.
    dimensions: DimensionCache,
    tables: FastMap<Arc<str>, TableState>,
    /// Event time per source: the watermark follows the slowest source still running.
    clocks: FastMap<String, SourceClock>,
    /// Sources that deliver in commit order (a binlog, a replication slot): a rule fed
    /// by one of them alone applies its events on arrival, without allowed lateness.
    ordered: HashSet<String>,
    /// Per rule (as `rules`): the event-time sources whose events it has been fed.
    fed_by: Vec<Vec<String>>,
    /// The columns and status values rules read, watched for drift.
    drift: DriftWatch,
    /// Whether a new drift is also a finding for the rule's owner ([`Engine::report_drift`]).
    drift_findings: bool,
    /// Whether rule health is accounted at all ([`Engine::account_health`]).
    health_accounted: bool,
    /// Bytes of rule state all rules together may hold (`None`: no limit).
    state_budget: Option<u64>,
    /// Whether the "approaching the budget" finding was raised and not yet cleared.
    budget_warned: bool,
    /// The reference data rules read (`lookup.<name>.<column>`).
    lookups: LookupStore,
}

/// How far one source's commit times have come.
#[derive(Debug, Clone, Copy, Default)]
struct SourceClock {
    /// The newest commit time seen (or given by the clock while the source is idle).
    newest: Option<EventTime>,
    /// A finished source (the end of an input file) no longer holds event time back.
    finished: bool,
}

impl Engine {
    /// Prepares the enabled streaming rules, checking every expression; with declared
    /// schemas, unknown columns and type errors are reported too. Scheduled (`sql`) rules
    /// are left to the warehouse runner.
    pub fn new(rules: &[Rule], schemas: &TableSchemas) -> Result<Engine, Vec<Diagnostic>> {
        let ctx = SessionContext::new();
        let mut problems = Vec::new();
        let mut runtimes = Vec::new();
        let mut lookups = LookupStore::default();
        for rule in rules.iter().filter(|r| r.body.is_streaming()) {
            let (rt, mut found) = RuleRuntime::new(Arc::new(rule.clone()));
            // Only running rules' lookups are filled (a switched-off rule's are checked below all the same).
            if rule.enabled {
                rt.register_lookups(&mut lookups, schemas);
            }
            // An expression already reported (bad syntax, unknown name) is not reported again by the planner.
            let reported: Vec<_> = found.iter().map(|d| d.location.clone()).collect();
            problems.append(&mut found);
            for table in rule.body.tables() {
                let declared = schemas.table(&table);
                let mut layout = TableLayout::new(declared);
                let script_columns = rt.script_columns();
                let sql_columns = rt
                    .located_refs
                    .iter()
                    .filter(|(t, _, _)| *t == table)
                    .flat_map(|(_, at, refs)| refs.iter().map(move |r| (at, r)));
                for (at, r) in sql_columns.chain(script_columns.iter().map(|(at, r)| (at, r))) {
                    if declared.is_some_and(|d| !d.contains_key(&r.name)) {
                        problems.push(Diagnostic::new(
                            at.clone(),
                            format!(
                                "unknown column `{}.{}`: table `{table}` has no such column in the schema file",
                                r.image.qualifier(),
                                r.name
                            ),
                        ));
                    }
                }
                for r in rt.refs_of(&table) {
                    layout.reference(&r);
                }
                problems.extend(
                    rt.check_compiles(&ctx, &table, &layout.df_schema(), &lookups)
                        .into_iter()
                        .filter(|d| !reported.contains(&d.location)),
                );
            }
            problems
                .extend(rt.check_other_compiles(&ctx, schemas).into_iter().filter(|d| !reported.contains(&d.location)));
            if rule.enabled {
                runtimes.push(rt);
            }
        }
        sort_diagnostics(&mut problems);
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut tables: FastMap<Arc<str>, TableState> = FastMap::default();
        for (i, rt) in runtimes.iter().enumerate() {
            for table in rt.rule.body.tables() {
                let state = tables.entry(Arc::from(table.as_str())).or_insert_with(|| {
                    let layout = TableLayout::new(schemas.table(&table));
                    TableState { schema: layout.df_schema(), layout, version: 0, rules: Vec::new() }
                });
                for r in rt.refs_of(&table) {
                    state.layout.reference(&r);
                }
                state.schema = state.layout.df_schema();
                state.rules.push(i);
            }
        }
        let stats = runtimes
            .iter()
            .map(|r| RuleStats {
                rule: r.rule.id.clone(),
                kind: r.rule.body.kind(),
                per_table: r
                    .rule
                    .body
                    .tables()
                    .into_iter()
                    .map(|table| TableCount { table, ..Default::default() })
                    .collect(),
                ..Default::default()
            })
            .collect();
        let mut drift = DriftWatch::new(runtimes.iter().map(|r| r.rule.id.clone()).collect());
        for (i, rt) in runtimes.iter().enumerate() {
            let script_columns = rt.script_columns();
            for table in rt.rule.body.tables() {
                for r in rt.refs_of(&table).iter().filter(|r| matches!(r.image, Image::Before | Image::After)) {
                    drift.column(&table, &r.name, i);
                }
                for (_, r) in &script_columns {
                    drift.column(&table, &r.name, i);
                }
            }
            drift.statuses(&rt.rule, i);
            for (table, when) in whens(&rt.rule.body) {
                drift.when_values(&table, when, i);
            }
        }
        let keys_seen = vec![Distinct::new(); runtimes.len()];
        let fed_by = vec![Vec::new(); runtimes.len()];
        Ok(Engine {
            ctx,
            rules: runtimes,
            stats,
            keys_seen,
            dimensions: DimensionCache::default(),
            tables,
            clocks: FastMap::default(),
            ordered: HashSet::new(),
            fed_by,
            drift,
            drift_findings: false,
            health_accounted: true,
            state_budget: None,
            budget_warned: false,
            lookups,
        })
    }

    /// The columns the running rules read, per table: what a decoder needs to convert
    /// (see [`Projection`]); tables no rule watches have none read. A table is read whole
    /// when a stateful or script rule watches it (the rows they keep carry every column's
    /// dimensions, for attribution) or when it keeps a lookup current (its rows are kept).
    /// Call it again after [`Engine::maintain_lookup`].
    pub fn projection(&self) -> Projection {
        let mut tables = HashMap::new();
        for (table, state) in &self.tables {
            let columns = if state.rules.iter().any(|&i| !self.rules[i].is_check()) {
                TableColumns::All
            } else {
                let names =
                    state.layout.columns.keys().filter(|(image, _)| matches!(image, Image::Before | Image::After));
                TableColumns::Only(Arc::new(names.map(|(_, name)| name.as_str().into()).collect()))
            };
            tables.insert(Box::from(&**table), columns);
        }
        for table in self.lookups.stream_tables() {
            tables.insert(table.into(), TableColumns::All);
        }
        Projection::only(tables)
    }

    /// The ids of the rules that run, in order.
    /// After a rule reload: keeps the event-time clocks of `old`, and the state and
    /// counters of every rule whose definition did not change (same id, same text, same
    /// place), so a reload does not forget pending counterparts or deadlines. Returns the
    /// ids of the rules whose state was kept.
    pub fn carry_over(&mut self, old: Engine) -> Vec<String> {
        self.clocks = old.clocks;
        self.ordered = old.ordered;
        self.state_budget = old.state_budget;
        self.budget_warned = old.budget_warned;
        self.drift_findings = old.drift_findings;
        self.lookups.adopt(old.lookups);
        self.drift.restore(old.drift.saved());
        let mut kept = Vec::new();
        let old_rules = old.rules.into_iter().zip(old.stats).zip(old.keys_seen).zip(old.fed_by);
        for (((old_rule, old_stats), old_keys), old_fed_by) in old_rules {
            let Some(i) = self.rules.iter().position(|r| r.rule.id == old_rule.rule.id) else { continue };
            // `Rule` holds expressions with their locations: its debug text is its definition.
            if definition(&self.rules[i].rule) != definition(&old_rule.rule) {
                continue;
            }
            if self.rules[i].adopt_state(old_rule) {
                kept.push(self.stats[i].rule.clone());
                self.fed_by[i] = old_fed_by;
            }
            self.stats[i] = old_stats;
            self.keys_seen[i] = old_keys;
        }
        kept
    }

    /// Limits the bytes of state all stateful rules together hold. At 80 % a finding
    /// warns; above the budget the rules holding the most state drop their least
    /// recently touched keys until 90 % remains, and each drop is a finding. The
    /// process never runs out of memory because of rule state, and never drops it silently.
    pub fn set_state_budget(&mut self, bytes: Option<u64>) {
        self.state_budget = bytes;
    }

    /// Encodes the event-time clocks and every stateful rule's state (keys, pending
    /// deadlines, the event-time queue) for a checkpoint.
    pub fn save_state(&self) -> Result<Vec<u8>, StateError> {
        self.snapshot_state().encode()
    }

    /// A copy of what [`Engine::save_state`] encodes, to be encoded later — on another
    /// thread, while this engine goes on evaluating: only the copy holds up evaluation.
    pub fn snapshot_state(&self) -> StateSnapshot {
        let mut rules = Vec::new();
        for (rt, sources) in self.rules.iter().zip(&self.fed_by) {
            let Some(state) = rt.snapshot() else { continue };
            rules.push((
                SavedRule {
                    id: rt.rule.id.clone(),
                    definition: definition(&rt.rule),
                    state: Vec::new(),
                    sources: sources.clone(),
                },
                state,
            ));
        }
        let mut clocks: Vec<_> = self.clocks.iter().map(|(s, c)| (s.clone(), c.newest, c.finished)).collect();
        clocks.sort_by(|a, b| a.0.cmp(&b.0));
        StateSnapshot { clocks, rules, lookups: self.lookups.saved(), drift: self.drift.saved() }
    }

    /// Takes over what [`Engine::save_state`] wrote: the clocks, and the state of every
    /// rule whose definition has not changed since. A changed rule starts empty.
    pub fn restore_state(&mut self, state: &[u8]) -> Result<Restored, StateError> {
        let saved: SavedEngine = crate::stateful::decode(state).map_err(|message| StateError::Decode { message })?;
        self.clocks = saved
            .clocks
            .into_iter()
            .map(|(source, newest, finished)| (source, SourceClock { newest, finished }))
            .collect();
        self.lookups.restore(saved.lookups);
        self.drift.restore(saved.drift);
        let mut restored = Restored::default();
        for rule in saved.rules {
            let target = self.rules.iter().position(|r| r.rule.id == rule.id && definition(&r.rule) == rule.definition);
            match target {
                Some(i) => {
                    self.rules[i]
                        .restore_state(&rule.state, &mut self.dimensions)
                        .map_err(|message| StateError::Decode { message: format!("rule `{}`: {message}", rule.id) })?;
                    self.fed_by[i] = rule.sources;
                    restored.kept.push(rule.id);
                }
                None => restored.dropped.push(rule.id),
            }
        }
        Ok(restored)
    }

    /// The lookups the rules read, by name (each to be filled by [`Engine::set_lookup`] or
    /// [`Engine::maintain_lookup`]; an unfilled one has no rows).
    pub fn lookup_names(&self) -> impl Iterator<Item = &str> {
        self.lookups.tables.keys().map(String::as_str)
    }

    /// Replaces a lookup's rows with a snapshot (loaded from a database or a file). Returns
    /// false when no rule reads a lookup of that name.
    pub fn set_lookup(&mut self, name: &str, snapshot: LookupSnapshot) -> bool {
        match self.lookups.tables.get_mut(name) {
            Some(t) => {
                t.set(snapshot);
                true
            }
            None => false,
        }
    }

    /// Keeps a lookup current from the change events of `table`: an event reads it as of its
    /// place in the input. Rows not changed for `keep` of event time are dropped. Call before
    /// [`Engine::restore_state`], which restores the rows. Returns false when no rule reads a
    /// lookup of that name.
    pub fn maintain_lookup(&mut self, name: &str, table: &str, keep: Option<std::time::Duration>) -> bool {
        self.lookups.maintain(name, table, keep)
    }

    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.rule.id.as_str())
    }

    /// Evaluates one micro-batch. Check findings come first, in event order then rule
    /// order; then the findings of stateful rules whose event time the watermark
    /// passed, in event-time order. Neither depends on how the input was cut into batches.
    pub fn process(
        &mut self,
        events: &[ChangeEvent],
        detected_at: EventTime,
        out: &mut Vec<Finding>,
    ) -> Result<(), EngineError> {
        // Per table: the indices of its events and the event-time sources they came from.
        let mut groups: Vec<(Arc<str>, Vec<usize>, Vec<&str>)> = Vec::new();
        let mut group_of: FastMap<&str, usize> = FastMap::default();
        let mut last_source: Option<(&str, EventTime)> = None;
        for (i, e) in events.iter().enumerate() {
            // Consecutive events mostly share a source: update its clock once per run of them.
            let source = e.position.source();
            match &mut last_source {
                Some((s, newest)) if *s == source => *newest = (*newest).max(e.commit_time),
                _ => {
                    if let Some((s, newest)) = last_source.take() {
                        self.observe_clock(s, newest);
                    }
                    last_source = Some((source, e.commit_time));
                }
            }
            if !self.tables.contains_key(&*e.table) {
                continue;
            }
            let g = *group_of.entry(&e.table).or_insert_with(|| {
                groups.push((e.table.clone(), Vec::new(), Vec::new()));
                groups.len() - 1
            });
            let (_, indices, sources) = &mut groups[g];
            indices.push(i);
            if sources.last() != Some(&source) && !sources.contains(&source) {
                sources.push(source);
            }
        }
        if let Some((s, newest)) = last_source {
            self.observe_clock(s, newest);
        }
        self.lookups.stage(events);
        let mut found: Vec<(usize, usize, Finding)> = Vec::new();
        let mut scratch: Vec<Found> = Vec::new();
        // Given back below; an error on the way only loses what later rows would have shared.
        let dimensions = BatchDimensions::new(std::mem::take(&mut self.dimensions), events.len());
        let mut stateful: Vec<(usize, Finding)> = Vec::new();
        let mut late: Vec<Finding> = Vec::new();
        let mut drifts = Vec::new();
        for (table, indices, sources) in &groups {
            let Some(state) = self.tables.get_mut(table) else { continue };
            for &r in &state.rules {
                for source in sources {
                    if !self.fed_by[r].iter().any(|s| s == source) {
                        self.fed_by[r].push(source.to_string());
                    }
                }
            }
            if state.layout.observe(events, indices) {
                state.version += 1;
                state.schema = state.layout.df_schema();
            }
            let batch = state
                .layout
                .batch(events, indices, &state.schema)
                .map_err(|e| EngineError::Batch { table: table.to_string(), message: e.to_string() })?;
            let input = TableBatch {
                table,
                version: state.version,
                schema: &state.schema,
                batch: &batch,
                events,
                indices,
                dimensions: &dimensions,
            };
            let newest =
                if self.health_accounted { indices.iter().map(|&i| events[i].commit_time).max() } else { None };
            for &r in &state.rules {
                let stats = &mut self.stats[r];
                stats.events += indices.len() as u64;
                if self.health_accounted
                    && let Some(t) = stats.per_table.iter_mut().find(|t| *t.table == **table)
                {
                    t.events += indices.len() as u64;
                    t.last_event = t.last_event.max(newest);
                }
                stats.last_event = stats.last_event.max(newest);
                scratch.clear();
                late.clear();
                match self.rules[r].on_batch(&self.ctx, &input, &self.lookups, detected_at, &mut scratch, &mut late) {
                    Ok(passed) => self.stats[r].passed += passed,
                    Err(e) => {
                        self.stats[r].errors += 1;
                        self.stats[r].last_error = Some(e);
                    }
                }
                for (event_index, finding) in scratch.drain(..) {
                    found.push((event_index, r, finding));
                }
                stateful.extend(late.drain(..).map(|f| (r, f)));
            }
            if self.health_accounted {
                self.drift.observe(table, events, indices, &mut drifts);
            }
        }
        self.dimensions = dimensions.into_cache();
        // Scripts run after every table of the batch, on the rows they kept, in log order.
        for (r, rt) in self.rules.iter_mut().enumerate() {
            scratch.clear();
            let errors = rt.after_batch(events, detected_at, &mut scratch);
            if let Some(last) = errors.last() {
                self.stats[r].errors += errors.len() as u64;
                self.stats[r].last_error = Some(last.clone());
            }
            if let Some(s) = rt.state_stats() {
                self.stats[r].state_bytes = s.state_bytes;
                self.stats[r].state_keys = s.keys;
            }
            found.extend(scratch.drain(..).map(|(event_index, finding)| (event_index, r, finding)));
        }
        self.lookups.commit();
        for (r, drift) in drifts {
            if self.drift_findings {
                out.push(drift_finding(&self.rules[r].rule, &drift, detected_at));
            }
            self.stats[r].drifts.push(drift);
        }
        found.sort_by_key(|(e, r, _)| (*e, *r));
        for (_, r, f) in found {
            if !self.rules[r].reports(&f) {
                continue;
            }
            self.count(r, &f);
            out.push(f);
        }
        self.advance_stateful(Release::Running, detected_at, &mut stateful);
        self.emit_stateful(stateful, out);
        Ok(())
    }

    /// The event-time sources that have moved event time and not finished (delivered
    /// events in this run, or in the run a restored checkpoint came from).
    pub fn running_sources(&self) -> impl Iterator<Item = &str> {
        self.clocks.iter().filter(|(_, c)| c.newest.is_some() && !c.finished).map(|(s, _)| s.as_str())
    }

    fn observe_clock(&mut self, source: &str, newest: EventTime) {
        match self.clocks.get_mut(source) {
            Some(c) => c.newest = Some(c.newest.map_or(newest, |n| n.max(newest))),
            None => {
                self.clocks.insert(source.to_string(), SourceClock { newest: Some(newest), finished: false });
            }
        }
    }

    /// Declares a source before its first event, so event time waits for it (a backtest
    /// names all its inputs first: a later input's older events are then not late).
    pub fn expect_source(&mut self, source: &str) {
        self.clocks.entry(source.to_string()).or_default();
    }

    /// Declares that a source delivers its events in commit order (a MySQL/MariaDB binlog,
    /// a PostgreSQL replication slot, one Kafka partition): nothing it sends later is older
    /// than what it sent. A rule fed by such a source alone applies each event as it
    /// arrives — its watermark is the source's newest commit time, with no allowed
    /// lateness — so a mismatch or a forbidden transition is found at once. Rules fed by
    /// several sources, or by one that may deliver out of order, still wait for the
    /// slowest source and their `allowed_lateness`.
    pub fn declare_ordered(&mut self, source: &str) {
        self.ordered.insert(source.to_string());
    }

    /// A source has ended (the end of an input file): it no longer holds event time back.
    pub fn finish_source(&mut self, source: &str, detected_at: EventTime, out: &mut Vec<Finding>) {
        self.clocks.entry(source.to_string()).or_default().finished = true;
        let mut stateful = Vec::new();
        self.advance_stateful(Release::Running, detected_at, &mut stateful);
        self.emit_stateful(stateful, out);
    }

    /// A source has been quiet: the caller's clock (`now`) stands in for its commit times,
    /// so it stops holding event time back. Live runs call this after an idle period.
    pub fn source_idle(&mut self, source: &str, now: EventTime, detected_at: EventTime, out: &mut Vec<Finding>) {
        self.observe_clock(source, now);
        let mut stateful = Vec::new();
        self.advance_stateful(Release::Running, detected_at, &mut stateful);
        self.emit_stateful(stateful, out);
    }

    /// Moves event time to `now` for every source with no new events: in a live run the
    /// caller passes the clock after an idle period, so deadlines fire even when sources go quiet.
    pub fn advance_to(&mut self, now: EventTime, detected_at: EventTime, out: &mut Vec<Finding>) {
        for c in self.clocks.values_mut() {
            c.newest = Some(c.newest.map_or(now, |n| n.max(now)));
        }
        let mut stateful = Vec::new();
        self.advance_stateful(Release::Running, detected_at, &mut stateful);
        self.emit_stateful(stateful, out);
    }

    /// End of input: every queued event is released (no lateness is left to wait for)
    /// and every deadline before the newest event time fires. Deadlines after it stay pending.
    pub fn finish(&mut self, detected_at: EventTime, out: &mut Vec<Finding>) {
        for c in self.clocks.values_mut() {
            c.finished = true;
        }
        let mut stateful = Vec::new();
        self.advance_stateful(Release::AtEnd, detected_at, &mut stateful);
        self.emit_stateful(stateful, out);
    }

    /// End of a complete period (`backtest --final`): [`Engine::finish`], then every
    /// deadline still pending fires too — a missing counterpart, an unfinished timeout, an
    /// incomplete rate window — because nothing after the input can still arrive. Each such
    /// finding says it fired at end of input and is tagged [`END_OF_INPUT_TAG`].
    pub fn finish_final(&mut self, detected_at: EventTime, out: &mut Vec<Finding>) {
        self.finish(detected_at, out);
        let Some(last) = self.event_time() else { return };
        let mut stateful = Vec::new();
        self.advance_stateful(Release::Final, detected_at, &mut stateful);
        for (_, f) in &mut stateful {
            if f.event_time > last {
                f.message = format!(
                    "{} (fired at end of input: its deadline {} is after the last event, {last})",
                    f.message, f.event_time
                );
                f.tags = f.tags.iter().cloned().chain([END_OF_INPUT_TAG.to_string()]).collect();
            }
        }
        self.emit_stateful(stateful, out);
    }

    /// Event time as far as every running source has come: the slowest running source's
    /// newest commit time; once all have finished, the newest of all.
    fn event_time(&self) -> Option<EventTime> {
        let running: Vec<Option<EventTime>> = self.clocks.values().filter(|c| !c.finished).map(|c| c.newest).collect();
        if running.is_empty() {
            return self.clocks.values().filter_map(|c| c.newest).max();
        }
        // A running source that has not delivered anything yet holds event time back.
        running.into_iter().try_fold(None::<EventTime>, |min, n| n.map(|n| Some(min.map_or(n, |m| m.min(n)))))?
    }

    fn advance_stateful(&mut self, release: Release, detected_at: EventTime, into: &mut Vec<(usize, Finding)>) {
        let at_end = release != Release::Running;
        let global = self.event_time();
        let mut found = Vec::new();
        for (r, rt) in self.rules.iter_mut().enumerate() {
            if !rt.is_stateful() {
                continue;
            }
            let watermark = match (ordered_watermark(&self.fed_by[r], &self.ordered, &self.clocks), global) {
                _ if release == Release::Final => EventTime::from_micros(i64::MAX),
                (Some(own), _) if !at_end => own,
                (_, Some(newest)) => {
                    let lateness = if at_end { std::time::Duration::ZERO } else { rt.rule.state.allowed_lateness };
                    EventTime::from_micros(
                        newest.as_micros().saturating_sub(i64::try_from(lateness.as_micros()).unwrap_or(i64::MAX)),
                    )
                }
                (_, None) => continue,
            };
            found.clear();
            if let Err(e) = rt.advance(&self.ctx, watermark, detected_at, &mut found) {
                self.stats[r].errors += 1;
                self.stats[r].last_error = Some(e);
            }
            if let Some(s) = rt.state_stats() {
                self.stats[r].late_events = s.late_events;
                self.stats[r].state_bytes = s.state_bytes;
                self.stats[r].state_keys = s.keys;
            }
            into.extend(found.drain(..).map(|f| (r, f)));
        }
        let newest = global.or_else(|| self.clocks.values().filter_map(|c| c.newest).max());
        if let Some(now) = newest {
            self.enforce_budget(now, detected_at, into);
        }
    }

    /// Holds rule state within the budget (see [`Engine::set_state_budget`]).
    fn enforce_budget(&mut self, now: EventTime, detected_at: EventTime, into: &mut Vec<(usize, Finding)>) {
        let Some(budget) = self.state_budget else { return };
        let total: u64 = self.stats.iter().map(|s| s.state_bytes).sum();
        let Some(largest) = (0..self.rules.len()).max_by_key(|&r| self.stats[r].state_bytes) else { return };
        if total > budget {
            // Shed from the largest holders first, in proportion to what each must give up.
            let mut excess = total - budget / 10 * 9;
            let mut order: Vec<usize> = (0..self.rules.len()).filter(|&r| self.stats[r].state_bytes > 0).collect();
            order.sort_by_key(|&r| std::cmp::Reverse(self.stats[r].state_bytes));
            for r in order {
                if excess == 0 {
                    break;
                }
                let (bytes, keys) = (self.stats[r].state_bytes, self.stats[r].state_keys);
                let share = excess.min(bytes);
                let shed_keys = (u128::from(keys) * u128::from(share)).div_ceil(u128::from(bytes.max(1))) as usize;
                let dropped = self.rules[r].shed(shed_keys.max(1));
                if let Some(s) = self.rules[r].state_stats() {
                    self.stats[r].state_bytes = s.state_bytes;
                    self.stats[r].state_keys = s.keys;
                }
                excess -= share;
                let rule = self.rules[r].rule.clone();
                let message = format!(
                    "rule state of {total} bytes exceeded the memory budget of {budget} bytes: `{}` dropped its {dropped} least recently touched keys; findings that needed them will not come. Raise `limits.state_memory`, or shorten the rule's state_ttl/within",
                    rule.id
                );
                into.push((r, budget_finding(&rule, "shed", now, detected_at, message)));
            }
            self.budget_warned = true;
        } else if total >= budget / 10 * 8 {
            if !self.budget_warned {
                self.budget_warned = true;
                let rule = self.rules[largest].rule.clone();
                let message = format!(
                    "rule state holds {total} bytes, {}% of the memory budget of {budget} bytes (the largest holder is `{}`); above the budget the oldest keys are dropped. Raise `limits.state_memory`, or shorten state_ttl/within",
                    total * 100 / budget.max(1),
                    rule.id
                );
                into.push((largest, budget_finding(&rule, "near", now, detected_at, message)));
            }
        } else if total < budget / 10 * 7 {
            self.budget_warned = false;
        }
    }

    fn emit_stateful(&mut self, mut found: Vec<(usize, Finding)>, out: &mut Vec<Finding>) {
        found.sort_by(|(ra, a), (rb, b)| {
            (a.event_time, *ra, serde_json::to_string(&a.key).unwrap_or_default()).cmp(&(
                b.event_time,
                *rb,
                serde_json::to_string(&b.key).unwrap_or_default(),
            ))
        });
        for (r, f) in found {
            self.count(r, &f);
            out.push(f);
        }
    }

    fn count(&mut self, r: usize, f: &Finding) {
        self.stats[r].findings += 1;
        self.stats[r].last_finding = self.stats[r].last_finding.max(Some(f.event_time));
        let key = serde_json::to_string(&f.key).unwrap_or_default();
        self.keys_seen[r].add(&key);
        self.stats[r].distinct_keys = self.keys_seen[r].estimate();
    }

    /// Also reports each new drift of a rule's input as a finding of that rule (off by
    /// default: a backtest of an old log is not told that the stream changed since).
    pub fn report_drift(&mut self, on: bool) {
        self.drift_findings = on;
    }

    /// Stops (or resumes) the rule-health accounting on the evaluation path — the drift
    /// watch, per-table counts and event times — so the `health_overhead` example can
    /// measure its cost. On by default; nothing else turns it off.
    pub fn account_health(&mut self, on: bool) {
        self.health_accounted = on;
    }

    /// Per-rule counters so far.
    pub fn stats(&self) -> &[RuleStats] {
        &self.stats
    }
}

/// The watermark of a rule fed by one ordered source alone: that source's newest commit
/// time. `None` when the rule has other sources, or its source may deliver out of order.
fn ordered_watermark(
    fed_by: &[String],
    ordered: &HashSet<String>,
    clocks: &FastMap<String, SourceClock>,
) -> Option<EventTime> {
    let [source] = fed_by else { return None };
    let clock = clocks.get(source)?;
    if !ordered.contains(source) || clock.finished {
        return None;
    }
    clock.newest
}

/// A finding about rule state and the memory budget, owned by the team of the rule concerned.
/// Each `when` of a rule body, with the table it filters.
/// The columns whose values a rule's own conditions fix, as (table, column): the text
/// columns its `when`s (and a timeout's `enter`) compare with values, and a transition's
/// status. Every finding of the rule shares them by construction, so they cannot explain
/// why it fired — alarm attribution leaves them out.
pub fn fixed_columns(rule: &Rule) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut add = |table: &str, expr: &fundguard_rules::Expr| {
        for (column, _) in crate::compile::compared_values(expr) {
            out.push((table.to_string(), column));
        }
    };
    for (table, when) in whens(&rule.body) {
        add(&table, when);
    }
    match &rule.body {
        fundguard_rules::RuleBody::Timeout(t) => add(&t.table, &t.enter),
        fundguard_rules::RuleBody::Transition(t) => {
            if let Some(column) = t.status.sql.trim().strip_prefix("after.") {
                out.push((t.table.clone(), column.to_string()));
            }
        }
        _ => {}
    }
    out.sort();
    out.dedup();
    out
}

fn whens(body: &fundguard_rules::RuleBody) -> Vec<(String, &fundguard_rules::Expr)> {
    use fundguard_rules::RuleBody;
    match body {
        RuleBody::Check(c) => c.when.iter().flat_map(|w| c.tables.iter().map(move |t| (t.clone(), w))).collect(),
        RuleBody::Reconcile(r) => {
            r.sides().filter_map(|(_, side)| side.when.as_ref().map(|w| (side.table.clone(), w))).collect()
        }
        RuleBody::Transition(t) => t.when.iter().map(|w| (t.table.clone(), w)).collect(),
        RuleBody::Rate(r) => r.when.iter().map(|w| (r.table.clone(), w)).collect(),
        RuleBody::Script(s) => s.when.iter().flat_map(|w| s.tables.iter().map(move |t| (t.clone(), w))).collect(),
        RuleBody::Timeout(_) | RuleBody::Sql(_) => Vec::new(),
    }
}

/// A drift as a finding of the rule itself, for its owner: the rule no longer sees what it
/// was written for. One per rule, kind and subject (the alert store deduplicates the rest).
fn drift_finding(rule: &Rule, drift: &Drift, detected_at: EventTime) -> Finding {
    Finding {
        rule: rule.id.clone(),
        owner: rule.owner.clone(),
        severity: Severity::High,
        key: [
            ("drift".to_string(), Value::from(drift.kind.as_str())),
            ("subject".to_string(), Value::String(format!("{}.{}", drift.table, drift.subject))),
        ]
        .into_iter()
        .collect(),
        event_time: drift.first_seen,
        detected_at,
        message: format!(
            "rule `{}` may no longer see what it was written for: {}. Update the rule (or the schema) to the stream as it is now",
            rule.id, drift.detail
        ),
        evidence: Vec::new(),
        money_at_risk: None,
        tags: Arc::from(vec![HEALTH_TAG.to_string(), "drift".to_string()]),
        action: None,
        fingerprint_by: None,
    }
}

/// The tag of findings about a rule's health (drift) rather than about the data.
pub const HEALTH_TAG: &str = "rule_health";

fn budget_finding(rule: &Rule, what: &str, time: EventTime, detected_at: EventTime, message: String) -> Finding {
    Finding {
        rule: STATE_MEMORY_RULE.to_string(),
        owner: rule.owner.clone(),
        severity: Severity::High,
        key: [("rule".to_string(), Value::String(rule.id.clone())), ("budget".to_string(), Value::from(what))]
            .into_iter()
            .collect(),
        event_time: time,
        detected_at,
        message,
        evidence: Vec::new(),
        money_at_risk: None,
        tags: Arc::from(vec!["overload".to_string()]),
        action: None,
        fingerprint_by: None,
    }
}

/// Orders diagnostics by file, line and column, dropping repeats (an expression
/// that fails to parse is reported once, not by every check that reads it).
pub fn sort_diagnostics(problems: &mut Vec<Diagnostic>) {
    problems.sort_by(|a, b| {
        (&a.location.file, a.location.line, a.location.column, &a.message).cmp(&(
            &b.location.file,
            b.location.line,
            b.location.column,
            &b.message,
        ))
    });
    problems.dedup();
}
