//! The pipeline thread: owns the decoders, the engine and the sinks; evaluates batches
//! in the order sources send them and answers each one. Between batches it takes the
//! checkpoints ([`super::checkpoint`]) and tells sources what they may acknowledge.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use fundguard_core::SourceHealth;
use fundguard_core::{ChangeEvent, EventTime, Finding, Position, TableSchemas};
use fundguard_engine::Engine;
use fundguard_formats::plain::{PlainConfig, TableFrom};
use fundguard_formats::{DeclaredTypes, Decoded, Decoder, Format};
use fundguard_server::{IngestVerdict, Rejected};
use fundguard_sources::DecodedBatch;
use tokio::sync::{mpsc, oneshot, watch};

use super::checkpoint::{Checkpoint, Progress};
use crate::config::{Config, SinkConfig, SourceKind};
use crate::pipeline::{AlertSink, DeadLetters, FindingSink, FindingsFile, QueuedLines};

/// Per source: how many of its inputs the last written checkpoint covers. A source
/// acknowledges upstream only what it sent up to that count.
pub type Covered = watch::Receiver<Vec<u64>>;

/// Raw messages with their positions, as a source read them.
pub type RawBatch = Vec<(Vec<u8>, Position)>;

/// What sources and timers send the pipeline.
pub enum Input {
    /// Raw messages of one source. With `all_or_nothing` (HTTP), one undecodable message
    /// refuses the whole batch; otherwise bad messages are dead-lettered.
    Batch {
        source: usize,
        messages: RawBatch,
        /// JSON sources: the table of every message of this batch, when the source maps
        /// subjects or topics to tables.
        table: Option<String>,
        all_or_nothing: bool,
        reply: oneshot::Sender<IngestVerdict>,
    },
    /// Events a database-log source decoded itself; `position` is where it is after them
    /// (as shown in health) and `resume` what it needs to resume there (for the checkpoint).
    Events {
        source: usize,
        batch: DecodedBatch,
        position: String,
        resume: Option<String>,
        reply: oneshot::Sender<()>,
    },
    /// The wall clock, once a second.
    Tick(EventTime),
    /// A source must acknowledge now (a PostgreSQL slot): take a checkpoint, answer
    /// whether it was written.
    Checkpoint {
        reply: oneshot::Sender<bool>,
    },
    /// Findings made outside the engine (a scheduled SQL run): written to the sinks, and
    /// made durable before the reply, so the run may be recorded as delivered.
    Findings {
        findings: Vec<fundguard_core::Finding>,
        reply: oneshot::Sender<()>,
    },
    /// Streams a source found to deliver in commit order (Kafka topics of one partition).
    Ordered(Vec<String>),
    /// Validated new rules.
    Reload(Box<Engine>),
    Shutdown,
}

struct Pipeline {
    engine: Engine,
    /// Per source: its decoder and format (`None` for database logs).
    decoders: Vec<Option<Decoder>>,
    formats: Vec<Option<Format>>,
    /// Declared column types for events that database-log sources decoded.
    declared: DeclaredTypes,
    /// Decoders of JSON sources whose batches name their table (subject/topic mapping).
    table_decoders: HashMap<(usize, String), Decoder>,
    schemas: Arc<TableSchemas>,
    dead_letters: Vec<DeadLetters>,
    sinks: Vec<Box<dyn FindingSink + Send>>,
    /// What the sinks are called in messages and metrics (`jsonl PATH`, `stdout`, `alerts`).
    sink_names: Vec<String>,
    /// Longer messages are dead-lettered unread (`limits.max_message_bytes`).
    max_message_bytes: usize,
    health: Arc<Mutex<Vec<SourceHealth>>>,
    idle_after: std::time::Duration,
    /// When each event-time source (named by its positions) last delivered events, and
    /// `busy` at that moment.
    activity: HashMap<String, (Instant, Duration)>,
    /// Sources that move their own event time when caught up (binlog heartbeats, an empty
    /// replication slot): the wall clock never stands in for their commit times.
    self_timed: std::collections::HashSet<String>,
    /// Time spent handling inputs: a source cannot deliver while the pipeline is busy,
    /// so only the rest counts towards `idle_after`.
    busy: Duration,
    found: Vec<Finding>,
    /// Per source: the newest commit time it delivered (health's `last_commit_time`), so
    /// its lag — now minus that — keeps growing on every tick while the source is quiet.
    newest_commit: Vec<Option<EventTime>>,
    /// Source names, by index, for metrics.
    names: Vec<String>,
    telemetry: Arc<fundguard_server::Telemetry>,
    checkpoints: Checkpoints,
}

/// What the pipeline knows to take a checkpoint: per source, how far it was processed
/// and how many of its inputs were.
struct Checkpoints {
    data_dir: PathBuf,
    interval: Duration,
    /// When the last checkpoint ended, and how long it took.
    last: Instant,
    took: Duration,
    epoch: u64,
    progress: Vec<Progress>,
    processed: Vec<u64>,
    covered: watch::Sender<Vec<u64>>,
}

/// Starts the pipeline thread.
///
/// With a checkpoint from an earlier run, the engine takes its rule state, findings
/// files are cut back to their marks and messages it covers are skipped.
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    config: &Config,
    schemas: Arc<TableSchemas>,
    mut engine: Engine,
    restored: Option<Checkpoint>,
    mut inputs: mpsc::Receiver<Input>,
    health: Arc<Mutex<Vec<SourceHealth>>>,
    telemetry: Arc<fundguard_server::Telemetry>,
    covered: watch::Sender<Vec<u64>>,
) -> anyhow::Result<JoinHandle<()>> {
    let first_run = restored.is_none();
    let restored = restored.unwrap_or_default();
    // Database logs deliver in commit order and say when they are caught up: rules fed by
    // one of them alone need no allowed lateness, and no wall-clock idleness.
    let self_timed: std::collections::HashSet<String> = config
        .sources
        .iter()
        .filter(|s| matches!(s.kind, SourceKind::Mysql(_) | SourceKind::Postgres(_)))
        .map(|s| s.name.clone())
        .collect();
    for name in &self_timed {
        engine.declare_ordered(name);
    }
    if !restored.engine.is_empty() {
        let restoring = Instant::now();
        let outcome = engine.restore_state(&restored.engine).context("restoring rule state from the checkpoint")?;
        eprintln!(
            "fundguard: resumed from checkpoint {} ({}): state of {} stateful rules ({} bytes) restored in {} ms",
            restored.epoch,
            restored.written_at,
            outcome.kept.len(),
            restored.engine.len(),
            restoring.elapsed().as_millis()
        );
        if !outcome.dropped.is_empty() {
            eprintln!(
                "fundguard: rules changed since the checkpoint start without state: {}",
                outcome.dropped.join(", ")
            );
        }
    }
    let mut sinks: Vec<Box<dyn FindingSink + Send>> = Vec::new();
    let mut sink_names = Vec::new();
    for sink in &config.sinks {
        sink_names.push(match sink {
            SinkConfig::Jsonl { path } => format!("jsonl {}", path.display()),
            SinkConfig::Stdout => "stdout".to_string(),
            SinkConfig::Alerts { .. } => "alerts".to_string(),
        });
        sinks.push(match sink {
            SinkConfig::Jsonl { path } => {
                Box::new(FindingsFile::open(path.clone(), restored.findings_files.get(path).copied())?)
            }
            SinkConfig::Stdout => Box::new(QueuedLines::new(std::io::stdout(), "stdout")),
            SinkConfig::Alerts { .. } => {
                let location = config.alert_store().context("an alerts sink has a store")?;
                let store = super::open_alert_store(&location, config.notify.routes.clone())?;
                Box::new(AlertSink::replayable(store, restored.epoch))
            }
        });
    }
    let checkpoints = Checkpoints {
        data_dir: config.data_dir.clone(),
        interval: config.checkpoint_interval,
        last: Instant::now(),
        took: Duration::ZERO,
        epoch: restored.epoch,
        progress: config.sources.iter().map(|s| restored.sources.get(&s.name).cloned().unwrap_or_default()).collect(),
        processed: vec![0; config.sources.len()],
        covered,
    };
    // Sources restored with a clock count as just active: if one stays quiet after the
    // restart, idleness fires its deadlines as the uninterrupted run would have.
    let activity = engine.running_sources().map(|s| (s.to_string(), (Instant::now(), Duration::ZERO))).collect();
    let max_message_bytes = config.max_message_bytes;
    let decoder = |f: &Format| f.decoder(schemas.clone()).with_max_message_bytes(max_message_bytes);
    let mut pipeline = Pipeline {
        engine,
        decoders: config.sources.iter().map(|s| s.format.as_ref().map(decoder)).collect(),
        formats: config.sources.iter().map(|s| s.format.clone()).collect(),
        declared: DeclaredTypes::new(schemas.clone()),
        table_decoders: HashMap::new(),
        schemas: schemas.clone(),
        dead_letters: config
            .sources
            .iter()
            .map(|s| DeadLetters::appending(config.data_dir.join(format!("dead-letter-{}.jsonl", s.name))))
            .collect(),
        sinks,
        sink_names,
        max_message_bytes,
        health,
        idle_after: config.idle_after,
        activity,
        self_timed,
        busy: Duration::ZERO,
        found: Vec::new(),
        newest_commit: vec![None; config.sources.len()],
        names: config.sources.iter().map(|s| s.name.clone()).collect(),
        telemetry,
        checkpoints,
    };
    // Sinks may use blocking clients (the PostgreSQL alert store), so they are touched on
    // the pipeline thread only; spawn waits for it to be ready to report what went wrong.
    let (ready_tx, ready) = std::sync::mpsc::channel::<anyhow::Result<()>>();
    let restored_epoch = restored.epoch;
    let thread = std::thread::Builder::new().name("fundguard-pipeline".into()).spawn(move || {
        let start = (|| -> anyhow::Result<()> {
            if first_run {
                // A run always starts from a checkpoint: on a fresh data directory the first
                // one marks where the findings files end now, so a crash before the next one
                // cuts them back there instead of keeping findings the restart produces again.
                anyhow::ensure!(
                    pipeline.checkpoint(),
                    "cannot write the first checkpoint: make the data directory writable"
                );
            } else {
                for sink in &mut pipeline.sinks {
                    sink.restarting(restored_epoch)?;
                }
            }
            Ok(())
        })();
        let started = start.is_ok();
        let _ = ready_tx.send(start);
        if !started {
            return;
        }
        while let Some(input) = inputs.blocking_recv() {
            let began = Instant::now();
            match input {
                Input::Batch { source, messages, table, all_or_nothing, reply } => {
                    let verdict = pipeline.batch(source, messages, table, all_or_nothing);
                    pipeline.processed(source);
                    let _ = reply.send(verdict);
                }
                Input::Events { source, batch, position, resume, reply } => {
                    pipeline.events(source, batch, position);
                    let first = pipeline.checkpoints.progress[source].resume.is_none() && resume.is_some();
                    if resume.is_some() {
                        pipeline.checkpoints.progress[source].resume = resume;
                    }
                    pipeline.processed(source);
                    if first {
                        // A source's first position (its configured start resolved) is kept at once.
                        pipeline.checkpoint();
                    }
                    let _ = reply.send(());
                }
                Input::Checkpoint { reply } => {
                    let _ = reply.send(pipeline.checkpoint());
                }
                Input::Tick(now) => {
                    pipeline.tick(now);
                    if pipeline.checkpoints.due() {
                        pipeline.checkpoint();
                    }
                }
                Input::Findings { findings, reply } => {
                    pipeline.found = findings;
                    pipeline.write_findings();
                    pipeline.found.clear();
                    let _ = reply.send(());
                }
                Input::Ordered(streams) => {
                    for stream in streams {
                        pipeline.engine.declare_ordered(&stream);
                    }
                }
                Input::Reload(engine) => {
                    let old = std::mem::replace(&mut pipeline.engine, *engine);
                    let kept = pipeline.engine.carry_over(old);
                    if !kept.is_empty() {
                        eprintln!("fundguard: state kept for unchanged stateful rules: {}", kept.join(", "));
                    }
                }
                Input::Shutdown => break,
            }
            pipeline.busy += began.elapsed();
        }
        for d in &mut pipeline.dead_letters {
            let _ = d.flush();
        }
        pipeline.checkpoint();
    })?;
    ready.recv().context("the pipeline thread stopped while starting")??;
    Ok(thread)
}

/// At most this share of the pipeline's time goes to periodic checkpoints.
const CHECKPOINT_SHARE: u32 = 20; // 1/20 = 5 %

impl Checkpoints {
    /// Whether the next periodic checkpoint is due: `checkpoint_interval` after the last,
    /// or longer when taking one costs more than 1/20 of the time between them (a large
    /// rule state): throughput then loses at most 5 %, and a crash replays a little more.
    fn due(&self) -> bool {
        self.last.elapsed() >= self.interval.max(self.took * (CHECKPOINT_SHARE - 1))
    }
}

impl Pipeline {
    fn processed(&mut self, source: usize) {
        if let Some(n) = self.checkpoints.processed.get_mut(source) {
            *n += 1;
        }
    }

    /// Takes a checkpoint: sinks made durable first, then rule state and positions
    /// written together, then sources told what they may acknowledge. A failure is
    /// reported and the next tick tries again; nothing is acknowledged meanwhile.
    fn checkpoint(&mut self) -> bool {
        let started = Instant::now();
        let cp = &mut self.checkpoints;
        let result = (|| -> anyhow::Result<usize> {
            let mut findings_files = std::collections::BTreeMap::new();
            for sink in &mut self.sinks {
                if let Some((path, len)) = sink.commit()? {
                    findings_files.insert(path, len);
                }
            }
            let checkpoint = Checkpoint {
                epoch: cp.epoch + 1,
                written_at: super::now(),
                sources: self.names.iter().cloned().zip(cp.progress.iter().cloned()).collect(),
                engine: self.engine.save_state()?,
                findings_files,
            };
            let bytes = checkpoint.save(&cp.data_dir)?;
            cp.epoch = checkpoint.epoch;
            Ok(bytes)
        })();
        // The interval runs from the end of one checkpoint to the start of the next: one
        // that takes longer than the interval must not leave the pipeline doing nothing else.
        cp.last = Instant::now();
        cp.took = started.elapsed();
        match result {
            Ok(bytes) => {
                self.telemetry.checkpoint(bytes as u64, started.elapsed());
                let _ = cp.covered.send(cp.processed.clone());
                for sink in &mut self.sinks {
                    if let Err(e) = sink.checkpointed(cp.epoch) {
                        eprintln!("fundguard: after checkpoint {}: {e:#}", cp.epoch);
                    }
                }
                true
            }
            Err(e) => {
                eprintln!("fundguard: taking a checkpoint failed (tried again after checkpoint_interval): {e:#}");
                false
            }
        }
    }

    fn batch(
        &mut self,
        source: usize,
        mut messages: Vec<(Vec<u8>, Position)>,
        table: Option<String>,
        all_or_nothing: bool,
    ) -> IngestVerdict {
        // Re-deliveries of what a checkpoint already covers (acknowledged too late before a crash).
        if let Some(progress) = self.checkpoints.progress.get(source) {
            messages.retain(|(_, position)| !progress.covers(position));
        }
        if let Some(progress) = self.checkpoints.progress.get_mut(source) {
            for (_, position) in &messages {
                progress.observe(position);
            }
        }
        let messages = &messages[..];
        let decoder = match (table, self.formats.get(source)) {
            (Some(table), Some(Some(Format::Json(plain)))) => {
                let format = Format::Json(PlainConfig { table: TableFrom::Fixed(table.clone()), ..plain.clone() });
                let (schemas, max) = (self.schemas.clone(), self.max_message_bytes);
                let decoder = || format.decoder(schemas).with_max_message_bytes(max);
                self.table_decoders.entry((source, table)).or_insert_with(decoder)
            }
            _ => match self.decoders.get_mut(source) {
                Some(Some(d)) => d,
                _ => return Ok(0),
            },
        };
        let mut events = Vec::with_capacity(messages.len());
        let mut rejected = Vec::new();
        let mut dead = 0;
        for (index, (message, position)) in messages.iter().enumerate() {
            match decoder.decode(message, position, &mut events) {
                Ok(Decoded::Events(_) | Decoded::Skipped(_)) => {}
                Err(e) if all_or_nothing => rejected.push(Rejected { index, reason: e.to_string() }),
                Err(e) => {
                    dead += 1;
                    if let Err(io) = self.dead_letters[source].write(message, position, &e.to_string()) {
                        eprintln!("fundguard: cannot write a dead letter: {io:#}");
                    }
                }
            }
        }
        if !rejected.is_empty() {
            if let Some(name) = self.names.get(source) {
                self.telemetry.decode_errors(name, rejected.len() as u64);
            }
            return Err(rejected);
        }
        let last_position = messages.last().map(|(_, p)| p.to_string());
        self.evaluate(source, &events, dead, last_position);
        Ok(events.len())
    }

    /// A batch a database-log source decoded: declared types applied, bad rows
    /// dead-lettered, the rest evaluated.
    fn events(&mut self, source: usize, batch: DecodedBatch, position: String) {
        let mut dead = 0;
        let mut write_dead = |this: &mut Self, payload: &[u8], position: &Position, reason: &str| {
            dead += 1;
            if let Err(io) = this.dead_letters[source].write(payload, position, reason) {
                eprintln!("fundguard: cannot write a dead letter: {io:#}");
            }
        };
        for letter in &batch.dead_letters {
            write_dead(self, &letter.payload, &letter.position, &letter.reason);
        }
        let mut events = Vec::with_capacity(batch.events.len());
        for mut event in batch.events {
            match self.declared.apply(&mut event) {
                Ok(()) => events.push(event),
                Err(e) => {
                    let payload = serde_json::to_vec(&event).unwrap_or_default();
                    write_dead(self, &payload, &event.position, &e.to_string());
                }
            }
        }
        self.evaluate(source, &events, dead, (!position.is_empty()).then_some(position));
        if let Some(at) = batch.caught_up {
            self.caught_up(source, at);
        }
    }

    /// The source's server has nothing more before `at` (its commit-time clock): its event
    /// time moves there, firing the deadlines that fell due.
    fn caught_up(&mut self, source: usize, at: EventTime) {
        let Some(name) = self.names.get(source).cloned() else { return };
        self.found.clear();
        self.engine.source_idle(&name, at, super::now(), &mut self.found);
        self.write_findings();
    }

    /// Evaluates decoded events and records the source's progress.
    fn evaluate(&mut self, source: usize, events: &[ChangeEvent], dead: u64, last_position: Option<String>) {
        let _ = self.dead_letters[source].flush();
        self.found.clear();
        let now = super::now();
        if let Err(e) = self.engine.process(events, now, &mut self.found) {
            eprintln!("fundguard: evaluating a batch of source #{source} failed: {e}");
        }
        self.write_findings();
        let name = self.names.get(source).map(String::as_str).unwrap_or("?");
        let mut per_table: HashMap<&str, u64> = HashMap::new();
        for e in events {
            *per_table.entry(&e.table).or_default() += 1;
        }
        for (table, n) in per_table {
            self.telemetry.events_in(name, table, n);
        }
        if dead > 0 {
            self.telemetry.dead_letters(name, dead);
            self.telemetry.decode_errors(name, dead);
        }
        if let Some(newest) = events.iter().map(|e| e.commit_time).max()
            && let Some(known) = self.newest_commit.get_mut(source)
        {
            *known = Some(known.map_or(newest, |k| k.max(newest)));
        }
        let lag = self.measure_lag(source, now);
        if let Some(e) = events.first() {
            let delivered = (Instant::now(), self.busy);
            match self.activity.get_mut(e.position.source()) {
                Some(last) => *last = delivered,
                None => {
                    self.activity.insert(e.position.source().to_string(), delivered);
                }
            }
        }
        if let Ok(mut health) = self.health.lock()
            && let Some(h) = health.get_mut(source)
        {
            if !events.is_empty() {
                h.state = "reading".into();
            }
            h.events += events.len() as u64;
            h.dead_letters += dead;
            if last_position.is_some() {
                h.last_position = last_position;
            }
            if let Some(Some(newest)) = self.newest_commit.get(source) {
                h.last_commit_time = Some(newest.to_string());
            }
            if let Some(lag) = lag {
                h.lag_ms = Some(lag / 1000);
            }
        }
    }

    /// Now minus the source's newest commit time, in microseconds (`None` before its first
    /// event), also set as its watermark lag metric. Saturating: decoders refuse commit times
    /// outside 1970..=9999, but a lag must never overflow whatever reaches it.
    fn measure_lag(&self, source: usize, now: EventTime) -> Option<i64> {
        let newest = self.newest_commit.get(source).copied().flatten()?;
        let lag = now.micros_since(newest);
        if let Some(name) = self.names.get(source) {
            self.telemetry.watermark_lag(name, lag as f64 / 1e6);
        }
        Some(lag)
    }

    /// Every source's `lag_ms` and watermark lag measured at `now`: by their definition
    /// (now minus the newest commit time) they grow while a source is quiet, rather than
    /// keeping the figure of its last batch.
    fn measure_lags(&self, now: EventTime) {
        let lags: Vec<Option<i64>> = (0..self.names.len()).map(|s| self.measure_lag(s, now)).collect();
        if let Ok(mut health) = self.health.lock() {
            for (h, lag) in health.iter_mut().zip(lags) {
                if let Some(lag) = lag {
                    h.lag_ms = Some(lag / 1000);
                }
            }
        }
    }

    /// A source that delivered nothing for `idle_after` stops holding event time back:
    /// the clock stands in for its commit times, so deadlines fire when sources go quiet.
    ///
    /// Only time the pipeline spent waiting counts: a source whose next batch waits behind
    /// a long checkpoint or another source's batch is slow to be served, not quiet, and
    /// standing the wall clock in for its (perhaps historical) commit times would fire
    /// every pending deadline at once.
    ///
    /// Every tick also measures each source's lag ([`Pipeline::measure_lags`]).
    fn tick(&mut self, now: EventTime) {
        self.measure_lags(now);
        self.found.clear();
        for (name, (last, busy_then)) in &self.activity {
            if self.self_timed.contains(name) {
                continue;
            }
            let waited = last.elapsed().saturating_sub(self.busy.saturating_sub(*busy_then));
            if waited >= self.idle_after {
                self.engine.source_idle(name, now, now, &mut self.found);
            }
        }
        self.write_findings();
    }

    fn write_findings(&mut self) {
        self.telemetry.rules(
            self.engine
                .stats()
                .iter()
                .map(|s| fundguard_server::metrics::RuleFigures {
                    rule: s.rule.clone(),
                    kind: s.kind.to_string(),
                    events: s.events,
                    findings: s.findings,
                    errors: s.errors,
                    last_error: s.last_error.clone(),
                    state_bytes: s.state_bytes,
                    state_keys: s.state_keys,
                    late_events: s.late_events,
                })
                .collect(),
        );
        if self.found.is_empty() {
            return;
        }
        for f in &self.found {
            self.telemetry.finding(&f.rule, f.severity, f.event_time, f.detected_at);
        }
        for sink in &mut self.sinks {
            for f in &self.found {
                // A sink keeps what it could not write queued (`FindingSink`'s contract), so
                // an error here is the one `flush_sinks` meets, reports and retries.
                let _ = sink.write(f);
            }
        }
        self.flush_sinks();
    }

    /// Makes every sink hold what was written to it. A sink that cannot (disk full,
    /// permission, a lost alert store) holds the pipeline here: the batch in hand is not
    /// answered, so its source neither reads on nor acknowledges, every other input waits
    /// in the bounded channel, and no checkpoint is taken past it. The failure shows on
    /// stderr, in each source's health (`blocked: …`, so `/readyz` answers 503) and in the
    /// metrics; the write is retried every [`SINK_RETRY`] until it succeeds, and the
    /// pipeline goes on without having lost a finding.
    fn flush_sinks(&mut self) {
        for i in 0..self.sinks.len() {
            let mut blocked: Option<(Instant, Vec<String>)> = None;
            let mut reminded = Instant::now();
            while let Err(e) = self.sinks[i].flush() {
                let name = &self.sink_names[i];
                self.telemetry.sink_write_failed(name);
                match &blocked {
                    None => {
                        eprintln!(
                            "fundguard: cannot write findings to {name}: {e:#}; reading nothing until they are written (retrying every {} s)",
                            SINK_RETRY.as_secs()
                        );
                        self.telemetry.sink_blocked(name, true);
                        let state = format!("blocked: cannot write findings to {name}: {e:#}");
                        blocked = Some((Instant::now(), self.set_states(|_| Some(state.clone()))));
                    }
                    Some((since, _)) if reminded.elapsed() >= SINK_REMINDER => {
                        let waited = since.elapsed().as_secs();
                        eprintln!("fundguard: still cannot write findings to {name} after {waited} s: {e:#}");
                        reminded = Instant::now();
                    }
                    Some(_) => {}
                }
                std::thread::sleep(SINK_RETRY);
            }
            if let Some((since, before)) = blocked {
                let name = &self.sink_names[i];
                let waited = since.elapsed().as_secs_f64();
                eprintln!("fundguard: findings written to {name} again after {waited:.1} s; reading on");
                self.telemetry.sink_blocked(name, false);
                let mut before = before.into_iter();
                self.set_states(|state| before.next().filter(|_| state.starts_with("blocked: ")));
            }
        }
    }

    /// Sets every source's health state to what `new` makes of it (`None`: unchanged) and
    /// returns the states before.
    fn set_states(&self, mut new: impl FnMut(&str) -> Option<String>) -> Vec<String> {
        let Ok(mut health) = self.health.lock() else { return Vec::new() };
        health
            .iter_mut()
            .map(|h| match new(&h.state) {
                Some(state) => std::mem::replace(&mut h.state, state),
                None => h.state.clone(),
            })
            .collect()
    }
}

/// How often a sink that could not be written is tried again.
const SINK_RETRY: Duration = Duration::from_secs(1);
/// How often stderr is reminded that a sink still cannot be written.
const SINK_REMINDER: Duration = Duration::from_secs(60);
