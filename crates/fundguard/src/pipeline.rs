//! The batch pipeline shared by `backtest` and `demo`: messages → decoder → micro-batches → engine → sinks.
//!
//! Bad messages never stop it: each goes to the dead-letter file with its position
//! and the reason, and the run goes on (unless `strict`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use fundguard_attribution::Baseline;
use fundguard_core::{ChangeEvent, EventTime, Finding, Position};
use fundguard_engine::Engine;
use fundguard_formats::{Decoded, Decoder, Skip};
use serde::Serialize;

/// Where findings go.
///
/// `write` takes a finding and `flush` makes the sink hold everything written so far. A
/// sink the live pipeline uses must lose nothing to a failure: after an error from
/// either, what was not written stays queued and the next `flush` writes exactly that
/// (the pipeline retries until it succeeds, reading nothing meanwhile).
pub trait FindingSink {
    /// Sees each batch of events before the findings made of it (the alert store's sink
    /// counts the traffic for attribution's baseline).
    fn observe(&mut self, _events: &[ChangeEvent]) {}
    /// A change a source saw (a binlog's DDL), for alarm attribution to rank.
    fn change(&mut self, _change: &fundguard_attribution::Change) -> anyhow::Result<()> {
        Ok(())
    }
    fn write(&mut self, finding: &Finding) -> anyhow::Result<()>;
    fn flush(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
    /// Checkpoint `epoch` is being taken: make everything written durable and, for a
    /// file, say how long it is — a restart from it truncates the file back to that mark,
    /// since what came after is replayed. What is written from now on comes after
    /// `epoch`, although it is written (and [`FindingSink::checkpointed`] called) later.
    fn commit(&mut self, _epoch: u64) -> anyhow::Result<Option<(PathBuf, u64)>> {
        self.flush().map(|()| None)
    }
    /// Checkpoint `epoch` is written: what came before it is never replayed.
    fn checkpointed(&mut self, _epoch: u64) -> anyhow::Result<()> {
        Ok(())
    }
    /// The run restarts from checkpoint `epoch`: what follows it is about to be replayed.
    /// Called on the pipeline thread before the first input.
    fn restarting(&mut self, _epoch: u64) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Findings as JSON lines, each serialised whole into a queue before any byte is written.
/// What the writer did not take (a full disk) stays queued and the next `flush` writes
/// exactly the rest: no finding is lost or written twice, and a line cut by the failure is
/// completed, not repeated. Errors name the output.
pub struct QueuedLines<W: Write> {
    out: W,
    name: String,
    pending: Vec<u8>,
}

/// Queued bytes past which `write` flushes by itself, so a long run holds little in memory.
const QUEUE_FLUSH_BYTES: usize = 256 * 1024;

impl<W: Write> QueuedLines<W> {
    /// Lines to `out`, which errors call `name` (a path, `stdout`).
    pub fn new(out: W, name: impl Into<String>) -> Self {
        QueuedLines { out, name: name.into(), pending: Vec::new() }
    }
}

impl<W: Write> FindingSink for QueuedLines<W> {
    fn write(&mut self, finding: &Finding) -> anyhow::Result<()> {
        serde_json::to_writer(&mut self.pending, finding)?;
        self.pending.push(b'\n');
        if self.pending.len() >= QUEUE_FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        while !self.pending.is_empty() {
            match self.out.write(&self.pending) {
                Ok(0) => anyhow::bail!("writing findings to {}: the output takes no more bytes", self.name),
                Ok(n) => drop(self.pending.drain(..n)),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).with_context(|| format!("writing findings to {}", self.name)),
            }
        }
        self.out.flush().with_context(|| format!("writing findings to {}", self.name))
    }
}

/// The findings file of `fundguard run`: JSON lines, truncated on restart to the length
/// the last checkpoint recorded, so a replay after a crash appends each finding once.
pub struct FindingsFile {
    path: PathBuf,
    out: QueuedLines<File>,
}

impl FindingsFile {
    /// Opens `path` for appending, first cutting it back to `mark` bytes (the last checkpoint's).
    pub fn open(path: PathBuf, mark: Option<u64>) -> anyhow::Result<FindingsFile> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening the findings file {}", path.display()))?;
        if let Some(mark) = mark
            && file.metadata()?.len() > mark
        {
            file.set_len(mark).with_context(|| format!("truncating {} to its checkpoint mark", path.display()))?;
        }
        let name = path.display().to_string();
        Ok(FindingsFile { path, out: QueuedLines::new(file, name) })
    }
}

impl FindingSink for FindingsFile {
    /// Findings about the data only: a rule's health (drift, failing, stale) is an alert
    /// for its owner, not a finding of the data, and would make a live run's file differ
    /// from a replay of the same log.
    fn write(&mut self, finding: &Finding) -> anyhow::Result<()> {
        if finding.tags.iter().any(|t| t == fundguard_engine::HEALTH_TAG) {
            return Ok(());
        }
        self.out.write(finding)
    }
    fn flush(&mut self) -> anyhow::Result<()> {
        self.out.flush()
    }
    fn commit(&mut self, _epoch: u64) -> anyhow::Result<Option<(PathBuf, u64)>> {
        self.out.flush()?;
        let file = &self.out.out;
        file.sync_data().with_context(|| format!("syncing {}", self.path.display()))?;
        Ok(Some((self.path.clone(), file.metadata()?.len())))
    }
}

/// Findings as JSON lines, written straight through: for output written once (the demo);
/// a failed write may leave part of a line, so the live pipeline uses [`QueuedLines`].
pub struct JsonLines<W: Write>(pub W);

impl<W: Write> FindingSink for JsonLines<W> {
    fn write(&mut self, finding: &Finding) -> anyhow::Result<()> {
        serde_json::to_writer(&mut self.0, finding)?;
        self.0.write_all(b"\n")?;
        Ok(())
    }
    fn flush(&mut self) -> anyhow::Result<()> {
        Ok(self.0.flush()?)
    }
}

/// Findings recorded as alerts (one per fingerprint) in an alert store, a batch per flush;
/// and the traffic counted into attribution's baseline, saved to the store beside them.
pub struct AlertSink<S> {
    store: S,
    pending: Vec<Finding>,
    /// With checkpoints: the last checkpoint's number, stamped on finding receipts.
    epoch: Option<u64>,
    /// Read from the store at the first batch (on the pipeline thread: a PostgreSQL store
    /// must not be used from the async code that opens the sink).
    baseline: Option<Baseline>,
    /// Events counted since the baseline was last saved, and when that was.
    unsaved: u64,
    saved_at: Option<Instant>,
}

/// How often the baseline is saved while events flow (it is a few hundred kilobytes).
const BASELINE_SAVE_EVERY: Duration = Duration::from_secs(10);

impl<S: fundguard_alerts::AlertStore> AlertSink<S> {
    pub fn new(store: S) -> Self {
        AlertSink { store, pending: Vec::new(), epoch: None, baseline: None, unsaved: 0, saved_at: None }
    }

    /// The baseline being counted: at first what the store holds, so a restart keeps the
    /// traffic's history.
    fn counting(&mut self) -> &mut Baseline {
        let store = &self.store;
        self.baseline.get_or_insert_with(|| match store.baseline() {
            Ok(Some(profile)) => Baseline::resume(profile),
            _ => Baseline::default(),
        })
    }

    /// A sink whose findings may be replayed from checkpoint `epoch`: each is recorded once.
    pub fn replayable(store: S, epoch: u64) -> Self {
        AlertSink { epoch: Some(epoch), ..AlertSink::new(store) }
    }

    /// Saves the baseline when events came since the last save and it is due (or `now`).
    fn save_baseline(&mut self, now: bool) -> anyhow::Result<()> {
        let due = self.saved_at.is_none_or(|at| at.elapsed() >= BASELINE_SAVE_EVERY);
        if let Some(baseline) = self.baseline.as_ref().filter(|_| self.unsaved > 0 && (now || due)) {
            self.store.save_baseline(&baseline.profile, wall_clock())?;
            self.unsaved = 0;
            self.saved_at = Some(Instant::now());
        }
        Ok(())
    }
}

impl<S: fundguard_alerts::AlertStore> FindingSink for AlertSink<S> {
    fn observe(&mut self, events: &[ChangeEvent]) {
        self.counting().observe(events);
        self.unsaved += events.len() as u64;
    }
    fn change(&mut self, change: &fundguard_attribution::Change) -> anyhow::Result<()> {
        self.store.add_change(change, wall_clock())?;
        Ok(())
    }
    /// A shadow rule's findings are left out: they are kept in findings files and counted
    /// in the rule's health, never made alerts (nor notified).
    fn write(&mut self, finding: &Finding) -> anyhow::Result<()> {
        if !finding.tags.iter().any(|t| t == fundguard_rules::SHADOW_TAG) {
            self.pending.push(finding.clone());
        }
        Ok(())
    }
    fn flush(&mut self) -> anyhow::Result<()> {
        // Before the findings: the incidents they join pair the columns the baseline pairs.
        self.save_baseline(false)?;
        if !self.pending.is_empty() {
            match self.epoch {
                Some(epoch) => self.store.record_once(&self.pending, epoch)?,
                None => self.store.record(&self.pending)?,
            };
            self.pending.clear();
        }
        Ok(())
    }
    /// The receipts the crashed run wrote since `epoch` are held until the replay meets them.
    fn restarting(&mut self, epoch: u64) -> anyhow::Result<()> {
        Ok(self.store.hold_receipts(epoch)?)
    }
    /// Findings from now on are stamped `epoch`: a crash before checkpoint `epoch` is
    /// written restarts from the one before, which holds them as well.
    fn commit(&mut self, epoch: u64) -> anyhow::Result<Option<(PathBuf, u64)>> {
        self.save_baseline(true)?;
        self.flush()?;
        if self.epoch.is_some() {
            self.epoch = Some(epoch);
        }
        Ok(None)
    }
    fn checkpointed(&mut self, epoch: u64) -> anyhow::Result<()> {
        self.flush()?;
        if self.epoch.is_some() {
            self.store.forget_receipts(epoch)?;
        }
        Ok(())
    }
}

/// Several sinks, each given every finding.
pub struct Sinks(pub Vec<Box<dyn FindingSink + Send>>);

impl FindingSink for Sinks {
    fn observe(&mut self, events: &[ChangeEvent]) {
        self.0.iter_mut().for_each(|s| s.observe(events));
    }
    fn change(&mut self, change: &fundguard_attribution::Change) -> anyhow::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.change(change))
    }
    fn write(&mut self, finding: &Finding) -> anyhow::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.write(finding))
    }
    fn flush(&mut self) -> anyhow::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.flush())
    }
}

impl FindingSink for Vec<Finding> {
    fn write(&mut self, finding: &Finding) -> anyhow::Result<()> {
        self.push(finding.clone());
        Ok(())
    }
}

/// Counts of what went through.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub messages: u64,
    pub events: u64,
    pub tombstones: u64,
    pub ddl: u64,
    pub control: u64,
    pub dead_letters: u64,
    pub findings: u64,
}

#[derive(Serialize)]
struct DeadLetter<'a> {
    position: &'a Position,
    reason: &'a str,
    message: String,
}

/// The dead-letter file: opened on the first bad message, one JSON line per message
/// with its position, the reason and the message itself.
pub struct DeadLetters {
    path: PathBuf,
    append: bool,
    out: Option<BufWriter<File>>,
}

impl DeadLetters {
    /// A file that a run replaces (backtests).
    pub fn new(path: PathBuf) -> Self {
        DeadLetters { path, append: false, out: None }
    }

    /// A file that runs add to (a live service across restarts).
    pub fn appending(path: PathBuf) -> Self {
        DeadLetters { path, append: true, out: None }
    }

    pub fn path(&self) -> &PathBuf {
        &self.path
    }

    pub fn write(&mut self, message: &[u8], position: &Position, reason: &str) -> anyhow::Result<()> {
        if self.out.is_none() {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(self.append)
                .truncate(!self.append)
                .open(&self.path)
                .with_context(|| format!("opening the dead-letter file {}", self.path.display()))?;
            self.out = Some(BufWriter::new(file));
        }
        if let Some(out) = &mut self.out {
            let letter = DeadLetter { position, reason, message: String::from_utf8_lossy(message).into_owned() };
            serde_json::to_writer(&mut *out, &letter)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> anyhow::Result<()> {
        if let Some(out) = &mut self.out {
            out.flush()?;
        }
        Ok(())
    }
}

/// One batch run (`backtest`, `demo`): reads a finite input message by message, evaluates
/// it in micro-batches of `batch_size` and writes findings to one sink, all on the
/// caller's thread. `fundguard run`'s counterpart is `live::pipeline::LivePipeline`, which
/// serves many sources and checkpoints.
pub struct BatchPipeline<'s> {
    decoder: Decoder,
    engine: Engine,
    sink: &'s mut dyn FindingSink,
    batch: Vec<ChangeEvent>,
    batch_size: usize,
    found: Vec<Finding>,
    dead_letters: DeadLetters,
    strict: bool,
    /// Deadlines still pending at the end fire too (`backtest --final`).
    final_at_end: bool,
    /// Some rule has failed to evaluate a batch (looked up once per batch, not per message).
    rule_failed: bool,
    pub counters: Counters,
}

impl<'s> BatchPipeline<'s> {
    pub fn new(
        decoder: Decoder,
        engine: Engine,
        sink: &'s mut dyn FindingSink,
        batch_size: usize,
        dead_letter_path: PathBuf,
        strict: bool,
    ) -> Self {
        BatchPipeline {
            decoder,
            engine,
            sink,
            batch: Vec::with_capacity(batch_size),
            batch_size: batch_size.max(1),
            found: Vec::new(),
            dead_letters: DeadLetters::new(dead_letter_path),
            strict,
            final_at_end: false,
            rule_failed: false,
            counters: Counters::default(),
        }
    }

    /// Makes [`BatchPipeline::finish`] fire every deadline still pending: the input is a
    /// complete period ([`Engine::finish_final`]).
    pub fn final_at_end(mut self, on: bool) -> Self {
        self.final_at_end = on;
        self
    }

    /// True once any rule has failed to evaluate a batch.
    pub fn rule_failed(&self) -> bool {
        self.rule_failed
    }

    /// Decodes one message and evaluates the batch when it is full.
    pub fn push(&mut self, message: &[u8], position: &Position) -> anyhow::Result<()> {
        self.counters.messages += 1;
        match self.decoder.decode(message, position, &mut self.batch) {
            Ok(Decoded::Events(n)) => self.counters.events += n as u64,
            Ok(Decoded::Skipped(Skip::Tombstone)) => self.counters.tombstones += 1,
            Ok(Decoded::Skipped(Skip::Ddl)) => self.counters.ddl += 1,
            Ok(Decoded::Skipped(Skip::Control)) => self.counters.control += 1,
            Err(e) => self.dead_letter(message, position, e.to_string())?,
        }
        if self.batch.len() >= self.batch_size {
            self.evaluate()?;
        }
        Ok(())
    }

    fn dead_letter(&mut self, message: &[u8], position: &Position, reason: String) -> anyhow::Result<()> {
        if self.strict {
            anyhow::bail!("{position}: {reason} (--strict stops at the first bad message)");
        }
        self.counters.dead_letters += 1;
        self.dead_letters.write(message, position, &reason)
    }

    fn evaluate(&mut self) -> anyhow::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.found.clear();
        self.sink.observe(&self.batch);
        self.engine.process(&self.batch, wall_clock(), &mut self.found)?;
        self.rule_failed = self.rule_failed || self.engine.stats().iter().any(|s| s.errors > 0);
        for f in &self.found {
            self.sink.write(f)?;
        }
        self.counters.findings += self.found.len() as u64;
        self.batch.clear();
        Ok(())
    }

    /// Declares an input before reading it, so event time waits for it.
    pub fn expect_source(&mut self, source: &str) {
        self.engine.expect_source(source);
    }

    /// Marks an input as read to its end: it no longer holds event time back.
    pub fn finish_source(&mut self, source: &str) -> anyhow::Result<()> {
        self.evaluate()?;
        self.found.clear();
        self.engine.finish_source(source, wall_clock(), &mut self.found);
        for f in &self.found {
            self.sink.write(f)?;
        }
        self.counters.findings += self.found.len() as u64;
        Ok(())
    }

    /// Evaluates what is left, closes event time (queued events are released and
    /// deadlines before the last event fire) and flushes every output.
    pub fn finish(mut self) -> anyhow::Result<(Counters, Engine)> {
        self.evaluate()?;
        self.found.clear();
        if self.final_at_end {
            self.engine.finish_final(wall_clock(), &mut self.found);
        } else {
            self.engine.finish(wall_clock(), &mut self.found);
        }
        for f in &self.found {
            self.sink.write(f)?;
        }
        self.counters.findings += self.found.len() as u64;
        self.sink.flush()?;
        self.dead_letters.flush()?;
        Ok((self.counters, self.engine))
    }

    pub fn dead_letter_path(&self) -> &PathBuf {
        self.dead_letters.path()
    }
}

/// The wall clock, read only here at the edge: it stamps `detected_at`.
pub fn wall_clock() -> EventTime {
    let micros = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_micros());
    EventTime::from_micros(i64::try_from(micros).unwrap_or(i64::MAX))
}
