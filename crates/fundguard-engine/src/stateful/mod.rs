//! Stateful rules on event time: reconcile, transition, timeout and rate.
//!
//! A stateful rule works in two phases:
//! 1. **Projection**, on arrival and vectorised: DataFusion evaluates the rule's
//!    SQL (keys, conditions, the columns it compares) over each table batch; every
//!    row that passes the rule's filter becomes a small [`Record`].
//! 2. **State**, in event-time order: records wait in a queue ordered by
//!    (commit time, position) until the watermark — the newest commit time seen
//!    minus the allowed lateness — passes them, then the rule's kind updates its
//!    keyed state. Timers (deadlines) fire when the watermark passes them, before
//!    any later record.
//!
//! Because records are released in (time, position) order and timers fire between
//! them by deadline, the findings do not depend on how input is cut into batches,
//! nor on arrival order within the allowed lateness. A record older than the
//! watermark when it arrives is *late*: it is counted and processed at once (its
//! order relative to already released records cannot be restored, and a timer that
//! already fired is not taken back).

mod dimensions;
mod keys;
mod pairs;
mod queue;
mod rate;
mod reconcile;
mod timeout;
mod transition;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;
use fundguard_core::{EventTime, Evidence, Finding, Money, Op, Position, Row, Value};
use fundguard_rules::{Diagnostic, Expr, MoneyExprs, Rule, RuleBody};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::compile::compile;
use crate::scalar::value_at;
use crate::table_batch::TableBatch;
use queue::EventQueue;

pub(crate) use dimensions::{BatchDimensions, DimensionCache, Dimensions};
pub(crate) use keys::{KeyNorm, StateKey, key_name};

/// One projected row: what a stateful kind needs of an event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub time: EventTime,
    pub position: Position,
    /// Which projection made it (reconcile: 0 is left, 1 is right).
    pub projection: usize,
    /// The projection's expression values, in order.
    pub values: Vec<Value>,
    /// Where the row came from; with `values` and the projection's names it is the evidence.
    pub origin: Origin,
}

/// Where a projected row came from: enough to show it as evidence without keeping the event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Origin {
    pub table: Arc<str>,
    pub op: Op,
    pub time: EventTime,
    pub position: Position,
    /// The row's dimension values, so a finding made long after the event still shows
    /// which channel, merchant or currency it was about — what alarm attribution compares
    /// (absent in checkpoints of older versions).
    #[serde(default)]
    pub dimensions: Dimensions,
}

impl Origin {
    /// The evidence of a projected row: its origin, its named values, and the row's
    /// dimension values the projection does not name.
    pub(crate) fn evidence(&self, names: &[Arc<str>], values: &[Value]) -> Evidence {
        let mut row = Row::with_capacity(values.len() + self.dimensions.len());
        for (name, value) in names.iter().zip(values) {
            row.push(name.clone(), value.clone());
        }
        for (name, value) in self.dimensions.iter() {
            if !names.contains(name) {
                row.push(name.clone(), value);
            }
        }
        Evidence {
            table: self.table.clone(),
            op: self.op,
            commit_time: self.time,
            position: self.position.clone(),
            before: None,
            after: Some(row),
        }
    }
}

/// Sweeps idle state no more often than every eighth of the TTL (and at least a second
/// of event time apart): a full pass, cheaper than tracking every touch.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Sweeper {
    next: Option<EventTime>,
}

impl Sweeper {
    pub(crate) fn new() -> Self {
        Sweeper { next: None }
    }

    /// True when a sweep of state older than `before` is due; `period` is the TTL.
    pub(crate) fn due(&mut self, before: EventTime, now: EventTime) -> bool {
        if self.next.is_some_and(|n| now < n) {
            return false;
        }
        let period = now.micros_since(before).max(8_000_000) / 8;
        self.next = Some(EventTime::from_micros(now.as_micros().saturating_add(period)));
        true
    }
}

/// The time at or before which the `n` oldest of `times` lie: shedding drops keys
/// touched at or before it. `None` when there is nothing to drop.
pub(crate) fn shed_cutoff(mut times: Vec<EventTime>, n: usize) -> Option<EventTime> {
    if n == 0 || times.is_empty() {
        return None;
    }
    let i = (n - 1).min(times.len() - 1);
    Some(*times.select_nth_unstable(i).1)
}

/// Named expressions a kind evaluates over the rows of one table that pass `filter`.
#[derive(Debug, Clone)]
pub(crate) struct Projection {
    pub table: String,
    pub filter: Option<Expr>,
    pub exprs: Vec<(String, Expr)>,
}

/// Where a kind puts its findings.
pub(crate) struct Emit<'a> {
    pub rule: &'a Rule,
    pub detected_at: EventTime,
    pub findings: &'a mut Vec<Finding>,
}

impl Emit<'_> {
    pub(crate) fn finding(
        &mut self,
        key: Vec<(String, Value)>,
        time: EventTime,
        message: String,
        evidence: Vec<Evidence>,
        money_at_risk: Option<Money>,
    ) {
        self.findings.push(Finding {
            rule: self.rule.id.clone(),
            owner: self.rule.owner.clone(),
            severity: self.rule.severity,
            key: key.into_iter().collect(),
            event_time: time,
            detected_at: self.detected_at,
            message,
            evidence,
            money_at_risk,
            tags: self.rule.tags.clone(),
            action: self.rule.action.clone(),
            fingerprint_by: self.rule.fingerprint_by.clone(),
        });
    }
}

/// A stateful rule kind. Records arrive in event-time order; `fire_timers` is called
/// with the time before which every deadline has passed.
pub(crate) trait StatefulKind: Send {
    fn projections(&self) -> &[Projection];
    /// Applies one record. State last touched before `idle_before` (the record's time
    /// minus the rule's `state_ttl`) has expired: the kind treats it as absent whether or
    /// not a sweep ([`StatefulKind::evict`]) has dropped it yet, so expiry does not depend
    /// on how the input was cut into batches.
    fn on_record(&mut self, record: Record, idle_before: EventTime, out: &mut Emit);
    fn fire_timers(&mut self, before: EventTime, out: &mut Emit);
    /// Evaluates work queued by `on_record`/`fire_timers` (reconcile's `expect`).
    fn flush(&mut self, _ctx: &SessionContext, _out: &mut Emit) -> Result<(), String> {
        Ok(())
    }
    /// Reclaims the memory of state last touched before `before` (the watermark minus the
    /// TTL; `now` is the watermark). Only state that `on_record` would treat as expired may
    /// go: a sweep frees memory, it never changes a finding.
    fn evict(&mut self, before: EventTime, now: EventTime);
    /// An estimate of the bytes of state held.
    fn state_bytes(&self) -> usize;
    /// Over the memory budget: drops about `keys` of the least recently touched keys
    /// (with their deadlines); returns how many went. The caller reports it as a finding.
    fn shed_oldest(&mut self, keys: usize) -> usize;
    /// A copy of the keyed state and pending deadlines, for a checkpoint ([`snapshot_of`]).
    fn snapshot(&self) -> Snapshot;
    /// Replaces the state with what [`StatefulKind::snapshot`] encoded for the same rule
    /// definition, sharing the restored rows' dimensions through `dimensions`.
    fn restore(&mut self, state: &[u8], dimensions: &mut DimensionCache) -> Result<(), String>;
    /// The number of keys (entities, groups) with state.
    fn keys(&self) -> usize;
    /// Expressions outside any table (reconcile's `expect`), checked at load time.
    fn check_compiles(&self, _ctx: &SessionContext, _schemas: &fundguard_core::TableSchemas) -> Vec<Diagnostic> {
        Vec::new()
    }
    /// Template syntax problems and the like, found when the kind is built.
    fn problems(&self) -> Vec<Diagnostic> {
        Vec::new()
    }
}

/// Builds the kind of a stateful rule body; `None` for `check`, `sql` and `script`.
pub(crate) fn build(body: &RuleBody) -> Option<Box<dyn StatefulKind>> {
    Some(match body {
        RuleBody::Check(_) | RuleBody::Sql(_) | RuleBody::Script(_) => return None,
        RuleBody::Reconcile(r) => Box::new(reconcile::Reconcile::new(r.clone())),
        RuleBody::Transition(t) => Box::new(transition::Transition::new(t.clone())),
        RuleBody::Timeout(t) => Box::new(timeout::Timeout::new(t.clone())),
        RuleBody::Rate(r) => Box::new(rate::Rate::new(r.clone())),
    })
}

/// A copy of a rule's state taken on the pipeline thread, to be encoded later, on another
/// thread: copying the maps is several times cheaper than encoding and compressing them,
/// so a checkpoint holds up evaluation only for the copy.
pub(crate) type Snapshot = Box<dyn FnOnce() -> Result<Vec<u8>, String> + Send>;

/// A [`Snapshot`] of `state`, an owned copy; encoded with [`encode`] when called.
pub(crate) fn snapshot_of<T: Serialize + Send + 'static>(state: T) -> Snapshot {
    Box::new(move || encode(&state))
}

/// The binary form of rule state in checkpoints: MessagePack with field names, so an
/// optional field left out reads back as absent, and values keep their exact types —
/// streamed through zstd (level 1). Field names and repeated strings (tables, inputs)
/// make the raw form about 7× larger than the compressed one, and materialising it (fresh
/// pages for a buffer of a hundred megabytes or more) was most of a checkpoint's time.
pub(crate) fn encode<T: Serialize>(state: &T) -> Result<Vec<u8>, String> {
    let zstd = zstd::Encoder::new(Vec::new(), 1).map_err(|e| e.to_string())?;
    // MessagePack writes a few bytes at a time; zstd wants them in blocks.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, zstd);
    rmp_serde::encode::write_named(&mut out, state).map_err(|e| e.to_string())?;
    out.into_inner().map_err(|e| e.to_string())?.finish().map_err(|e| e.to_string())
}

/// Reads [`encode`]'s form (and plain MessagePack, as checkpoints of the first format held).
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
    if !bytes.starts_with(&ZSTD_MAGIC) {
        return rmp_serde::from_slice(bytes).map_err(|e| e.to_string());
    }
    let reader = zstd::Decoder::new(bytes).map_err(|e| e.to_string())?;
    rmp_serde::from_read(reader).map_err(|e| e.to_string())
}

/// A record waiting for the watermark, ordered by (time, position, arrival).
#[derive(Clone, Serialize, Deserialize)]
struct Queued {
    time: EventTime,
    seq: u64,
    record: Record,
}

impl Queued {
    fn order(&self) -> (EventTime, &Position, u64) {
        (self.time, &self.record.position, self.seq)
    }
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.order() == other.order()
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.order().cmp(&other.order())
    }
}

pub(crate) type PhysExpr = Arc<dyn datafusion::physical_expr::PhysicalExpr>;

pub(crate) struct CompiledProjection {
    pub filter: Option<PhysExpr>,
    pub exprs: Vec<PhysExpr>,
}

/// Counters of a stateful rule.
#[derive(Debug, Default, Clone)]
pub struct StateStats {
    pub late_events: u64,
    pub state_bytes: u64,
    pub pending_records: u64,
    pub keys: u64,
}

/// A stateful rule at run time: its kind, its projection cache and its event-time queue.
pub(crate) struct StatefulRuntime {
    pub kind: Box<dyn StatefulKind>,
    compiled: HashMap<(Arc<str>, usize), (u64, Arc<CompiledProjection>)>,
    queue: EventQueue<Queued>,
    seq: u64,
    /// Everything at or before this time has been released.
    watermark: Option<EventTime>,
    /// The rule's `state_ttl`, in microseconds.
    ttl: i64,
    overloaded: bool,
    pub stats: StateStats,
}

impl StatefulRuntime {
    pub(crate) fn new(kind: Box<dyn StatefulKind>, ttl: std::time::Duration) -> Self {
        StatefulRuntime {
            kind,
            compiled: HashMap::new(),
            queue: EventQueue::new(),
            seq: 0,
            watermark: None,
            ttl: i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX),
            overloaded: false,
            stats: StateStats::default(),
        }
    }

    /// A copy of the rule's state with its event-time queue and watermark, for a checkpoint.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let kind = self.kind.snapshot();
        let queue = self.queue.to_heap();
        let (seq, watermark, overloaded, late_events) =
            (self.seq, self.watermark, self.overloaded, self.stats.late_events);
        Box::new(move || {
            let kind = serde_bytes::ByteBuf::from(kind()?);
            encode(&(kind, &queue, seq, watermark, overloaded, late_events))
        })
    }

    /// Takes the state a checkpoint holds for this rule (copied by [`StatefulRuntime::snapshot`]).
    pub(crate) fn restore(&mut self, state: &[u8], dimensions: &mut DimensionCache) -> Result<(), String> {
        let (kind, queue): (serde_bytes::ByteBuf, BinaryHeap<Reverse<Queued>>);
        (kind, queue, self.seq, self.watermark, self.overloaded, self.stats.late_events) = decode(state)?;
        let mut queued = queue.into_vec();
        for Reverse(q) in &mut queued {
            dimensions.share(&mut q.record.origin.dimensions);
        }
        self.queue = EventQueue::from_heap(queued.into());
        self.kind.restore(&kind, dimensions)
    }

    /// Drops about `keys` of the least recently touched keys; returns how many went.
    pub(crate) fn shed(&mut self, keys: usize) -> usize {
        let dropped = self.kind.shed_oldest(keys);
        self.stats.state_bytes = (self.kind.state_bytes() + self.queue.len() * 160) as u64;
        self.stats.keys = self.kind.keys() as u64;
        dropped
    }

    /// Drops compiled projections (they belong to one engine's table layouts).
    pub(crate) fn forget_compiled(&mut self) {
        self.compiled.clear();
    }

    /// Evaluates the projections of this table over the batch and queues the records.
    /// Feeds a batch's rows through the kind's projections; answers how many rows passed
    /// their filters (the rule's `when`).
    pub(crate) fn project(&mut self, ctx: &SessionContext, input: &TableBatch, out: &mut Emit) -> Result<u64, String> {
        let mut passed = 0u64;
        let projections: Vec<(usize, Projection)> = self
            .kind
            .projections()
            .iter()
            .enumerate()
            .filter(|(_, p)| *p.table == **input.table)
            .map(|(i, p)| (i, p.clone()))
            .collect();
        for (index, projection) in projections {
            let compiled = self.compiled_for(ctx, input, index, &projection)?;
            let batch = input.batch;
            let n = batch.num_rows();
            let eval = |e: &PhysExpr| -> Result<ArrayRef, String> {
                e.evaluate(batch).and_then(|v| v.into_array(n)).map_err(|e| e.to_string())
            };
            let keep: Vec<bool> = match &compiled.filter {
                Some(f) => {
                    let a = eval(f)?;
                    match a.as_boolean_opt() {
                        Some(b) => (0..n).map(|i| b.is_valid(i) && b.value(i)).collect(),
                        None => vec![false; n],
                    }
                }
                None => vec![true; n],
            };
            let kept = keep.iter().filter(|k| **k).count() as u64;
            passed = passed.max(kept);
            if kept == 0 {
                continue;
            }
            let arrays: Vec<ArrayRef> = compiled.exprs.iter().map(eval).collect::<Result<_, _>>()?;
            for row in (0..n).filter(|&r| keep[r]) {
                let event_index = input.indices[row];
                let event = &input.events[event_index];
                let values: Vec<Value> = arrays.iter().map(|a| value_at(a, row)).collect();
                let record = Record {
                    time: event.commit_time,
                    position: event.position.clone(),
                    projection: index,
                    values,
                    origin: Origin {
                        table: event.table.clone(),
                        op: event.op,
                        time: event.commit_time,
                        position: event.position.clone(),
                        dimensions: input.dimensions.of(input.events, event_index),
                    },
                };
                self.push(record, out);
            }
        }
        Ok(passed)
    }

    fn compiled_for(
        &mut self,
        ctx: &SessionContext,
        input: &TableBatch,
        index: usize,
        projection: &Projection,
    ) -> Result<Arc<CompiledProjection>, String> {
        if let Some((v, c)) = self.compiled.get(&(input.table.clone(), index))
            && *v == input.version
        {
            return Ok(c.clone());
        }
        let compiled = Arc::new(
            compile_projection(ctx, projection, input.schema)
                .map_err(|d| d.iter().map(|d| d.message.clone()).collect::<Vec<_>>().join("; "))?,
        );
        self.compiled.insert((input.table.clone(), index), (input.version, compiled.clone()));
        Ok(compiled)
    }

    fn push(&mut self, record: Record, out: &mut Emit) {
        if self.watermark.is_some_and(|w| record.time < w) {
            // Late: its place in event-time order has passed.
            self.stats.late_events += 1;
            let idle_before = self.idle_before(record.time);
            self.kind.on_record(record, idle_before, out);
            return;
        }
        self.seq += 1;
        self.queue.push(Queued { time: record.time, seq: self.seq, record });
    }

    /// Releases every queued record at or before `watermark`, firing timers between them.
    pub(crate) fn advance(&mut self, ctx: &SessionContext, watermark: EventTime, out: &mut Emit) -> Result<(), String> {
        if self.watermark.is_some_and(|w| watermark < w) {
            return self.flush(ctx, out);
        }
        while let Some(top) = self.queue.peek() {
            if top.time > watermark {
                break;
            }
            let Some(q) = self.queue.pop() else { break };
            self.kind.fire_timers(q.time, out);
            let idle_before = self.idle_before(q.time);
            self.kind.on_record(q.record, idle_before, out);
        }
        self.kind.fire_timers(watermark, out);
        self.watermark = Some(watermark);
        let result = self.flush(ctx, out);
        self.kind.evict(self.idle_before(watermark), watermark);
        result
    }

    /// State last touched before this time has expired at `now`.
    fn idle_before(&self, now: EventTime) -> EventTime {
        EventTime::from_micros(now.as_micros().saturating_sub(self.ttl))
    }

    fn flush(&mut self, ctx: &SessionContext, out: &mut Emit) -> Result<(), String> {
        let result = self.kind.flush(ctx, out);
        let bytes = self.kind.state_bytes() + self.queue.len() * 160;
        self.stats.state_bytes = bytes as u64;
        self.stats.pending_records = self.queue.len() as u64;
        self.stats.keys = self.kind.keys() as u64;
        let limit = out.rule.state.max_state_bytes as usize;
        if bytes > limit && !self.overloaded {
            self.overloaded = true;
            let time = self.watermark.unwrap_or_default();
            out.finding(
                vec![("overload".into(), Value::String(out.rule.id.clone()))],
                time,
                format!(
                    "{}: state of about {bytes} bytes exceeds max_state_bytes {limit}; the rule keeps running, raise the limit or shorten state_ttl/within",
                    out.rule.id
                ),
                Vec::new(),
                None,
            );
        } else if bytes < limit / 10 * 9 {
            self.overloaded = false;
        }
        result
    }
}

pub(crate) fn compile_projection(
    ctx: &SessionContext,
    projection: &Projection,
    schema: &datafusion::common::DFSchema,
) -> Result<CompiledProjection, Vec<Diagnostic>> {
    let mut problems = Vec::new();
    let filter = match &projection.filter {
        Some(f) => match compile(ctx, f, schema, Some(DataType::Boolean)) {
            Ok(p) => Some(p),
            Err(d) => {
                problems.push(d);
                None
            }
        },
        None => None,
    };
    let mut exprs = Vec::new();
    for (_, e) in &projection.exprs {
        match compile(ctx, e, schema, None) {
            Ok(p) => exprs.push(p),
            Err(d) => problems.push(d),
        }
    }
    if problems.is_empty() { Ok(CompiledProjection { filter, exprs }) } else { Err(problems) }
}

/// Compiles every projection of a kind against a table schema (load-time validation).
pub(crate) fn check_projection(
    ctx: &SessionContext,
    projection: &Projection,
    schema: &datafusion::common::DFSchema,
) -> Vec<Diagnostic> {
    compile_projection(ctx, projection, schema).err().unwrap_or_default()
}

/// Compiles a MiniJinja message template, or says what is wrong with it.
pub(crate) fn template(source: &str) -> Result<minijinja::Environment<'static>, String> {
    let mut env = minijinja::Environment::new();
    env.add_template_owned("message", source.to_string()).map_err(|e| format!("message template: {e}"))?;
    Ok(env)
}

/// The `image.column` pairs a message template reads (`{{ left.channel }}` →
/// `("left", "channel")`), so a kind can keep those columns with its state.
pub(crate) fn template_columns(env: &minijinja::Environment<'static>) -> Vec<(String, String)> {
    let Ok(template) = env.get_template("message") else { return Vec::new() };
    let mut out: Vec<(String, String)> = template
        .undeclared_variables(true)
        .into_iter()
        .filter_map(|v| v.split_once('.').map(|(image, column)| (image.to_string(), column.to_string())))
        .collect();
    out.sort();
    out
}

/// Money at risk from projected amount and currency values, in minor units after `money.unit`.
pub(crate) fn money_from(
    money: &Option<MoneyExprs>,
    amount: Option<&Value>,
    currency: Option<&Value>,
) -> Option<Money> {
    let unit = money.as_ref()?.unit;
    let currency = currency.filter(|_| money.as_ref().is_some_and(|m| m.currency.is_some()));
    Money::from_value(amount?, currency, unit)
}

/// The projection entries for an optional money block, appended after `exprs`.
pub(crate) fn money_exprs(money: &Option<MoneyExprs>) -> Vec<(String, Expr)> {
    let mut out = Vec::new();
    if let Some(m) = money {
        out.push(("money_amount".to_string(), m.amount.clone()));
        if let Some(c) = &m.currency {
            out.push(("money_currency".to_string(), c.clone()));
        }
    }
    out
}
