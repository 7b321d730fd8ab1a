//! The live pipeline: what the pipeline thread ([`super::thread`]) owns — the decoders,
//! the engine, the sinks and the checkpoints — and how it handles each [`Input`]. Only
//! this thread touches them, so none needs a lock, and sinks may be blocking clients.
//!
//! (`crate::pipeline::BatchPipeline` is the batch counterpart: one finite input on the
//! caller's thread, for `backtest` and `demo`.)
//!
//! - [`decode`]: raw messages and database-log events into change events; bad ones
//!   dead-lettered.
//! - [`evaluate`]: events through the engine; source health, lag and idleness.
//! - [`findings`]: findings to the sinks, holding the pipeline while a sink cannot write.
//! - [`checkpoints`]: when and how a checkpoint is taken.

mod checkpoints;
mod decode;
mod evaluate;
mod findings;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fundguard_core::{EventTime, Finding, SourceHealth, TableSchemas};
use fundguard_engine::Engine;
use fundguard_formats::{DeclaredTypes, Decoder, Format};
use fundguard_server::Telemetry;
use tokio::sync::{mpsc, watch};

use self::checkpoints::Checkpoints;
use super::checkpoint::Checkpoint;
use super::health::{HealthInput, HealthSender, SEND_EVERY, StatsTracker};
use super::input::Input;
use crate::config::Config;
use crate::pipeline::{DeadLetters, FindingSink};

/// A sink the pipeline thread owns (it may be a blocking client, used on that thread only).
pub type OwnedSink = Box<dyn FindingSink + Send>;

/// What the pipeline thread needs, as assembly ([`super::assemble`]) opened it.
pub struct PipelineParts {
    pub config: Config,
    pub schemas: Arc<TableSchemas>,
    /// The engine, with the checkpoint's rule state already restored.
    pub engine: Engine,
    /// The checkpoint this run resumes from; `None` on a fresh data directory.
    pub restored: Option<Checkpoint>,
    /// Sources that move their own event time when caught up (database logs).
    pub self_timed: HashSet<String>,
    /// The opened sinks, and what they are called in messages and metrics.
    pub sinks: Vec<OwnedSink>,
    pub sink_names: Vec<String>,
    pub inputs: mpsc::Receiver<Input>,
    pub health: Arc<Mutex<Vec<SourceHealth>>>,
    pub telemetry: Arc<Telemetry>,
    /// Where the pipeline tells sources what the last checkpoint covers.
    pub covered: watch::Sender<Vec<u64>>,
    /// The pipeline's own input channel: the checkpoint writer wakes it through this.
    pub wake: mpsc::WeakSender<Input>,
    /// Where rule statistics go (the health task), when there is an alert store to keep them.
    pub rule_stats: Option<HealthSender>,
}

/// The pipeline thread's state: per source its decoder, dead letters and progress; the
/// engine; the sinks; and what the service shows (health, metrics).
pub struct LivePipeline {
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
    sinks: Vec<OwnedSink>,
    /// What the sinks are called in messages and metrics (`jsonl PATH`, `stdout`, `alerts`).
    sink_names: Vec<String>,
    /// Longer messages are dead-lettered unread (`limits.max_message_bytes`).
    max_message_bytes: usize,
    health: Arc<Mutex<Vec<SourceHealth>>>,
    idle_after: Duration,
    /// When each event-time source (named by its positions) last delivered events, and
    /// `busy` at that moment.
    activity: HashMap<String, (Instant, Duration)>,
    /// Sources that move their own event time when caught up (binlog heartbeats, an empty
    /// replication slot): the wall clock never stands in for their commit times.
    self_timed: HashSet<String>,
    /// Time spent handling inputs: a source cannot deliver while the pipeline is busy,
    /// so only the rest counts towards `idle_after`.
    busy: Duration,
    found: Vec<Finding>,
    /// Per source: the newest commit time it delivered (health's `last_commit_time`), so
    /// its lag — now minus that — keeps growing on every tick while the source is quiet.
    newest_commit: Vec<Option<EventTime>>,
    /// Source names, by index, for metrics.
    names: Vec<String>,
    telemetry: Arc<Telemetry>,
    checkpoints: Checkpoints,
    /// Rule statistics increments for the health task, and when they were last sent.
    rule_stats: Option<(HealthSender, StatsTracker, Instant)>,
}

impl LivePipeline {
    /// The pipeline over `parts`, and the channel it reads its inputs from.
    pub fn new(parts: PipelineParts) -> (LivePipeline, mpsc::Receiver<Input>) {
        let PipelineParts {
            config,
            schemas,
            engine,
            restored,
            self_timed,
            sinks,
            sink_names,
            inputs,
            health,
            telemetry,
            covered,
            wake,
            rule_stats,
        } = parts;
        let restored = restored.unwrap_or_default();
        let checkpoints = Checkpoints::new(&config, &restored, covered, wake);
        // Sources restored with a clock count as just active: if one stays quiet after the
        // restart, idleness fires its deadlines as the uninterrupted run would have.
        let activity = engine.running_sources().map(|s| (s.to_string(), (Instant::now(), Duration::ZERO))).collect();
        let max_message_bytes = config.max_message_bytes;
        let projection = engine.projection();
        let decoder = |f: &Format| {
            let mut decoder = f.decoder(schemas.clone()).with_max_message_bytes(max_message_bytes);
            decoder.set_projection(projection.clone());
            decoder
        };
        let pipeline = LivePipeline {
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
            rule_stats: rule_stats.map(|sender| (sender, StatsTracker::default(), Instant::now())),
        };
        (pipeline, inputs)
    }

    /// Gets ready for the first input, on the pipeline thread: a fresh start writes its
    /// first checkpoint; a restart from checkpoint `resuming` tells the sinks what is
    /// about to be replayed.
    pub fn start(&mut self, resuming: Option<u64>) -> anyhow::Result<()> {
        match resuming {
            // A run always starts from a checkpoint: on a fresh data directory the first
            // one marks where the findings files end now, so a crash before the next one
            // cuts them back there instead of keeping findings the restart produces again.
            None => anyhow::ensure!(
                self.checkpoint(),
                "cannot write the first checkpoint: make the data directory writable"
            ),
            Some(epoch) => {
                for sink in &mut self.sinks {
                    sink.restarting(epoch)?;
                }
            }
        }
        Ok(())
    }

    /// Handles one input; `false` when it says to stop.
    pub fn handle(&mut self, input: Input) -> bool {
        let began = Instant::now();
        self.checkpoint_written(false);
        match input {
            Input::Batch { source, messages, table, all_or_nothing, reply } => {
                let verdict = self.batch(source, messages, table, all_or_nothing);
                self.processed(source);
                let _ = reply.send(verdict);
            }
            Input::Events { source, batch, position, resume, reply } => {
                self.events(source, batch, position);
                let first = self.checkpoints.progress[source].resume.is_none() && resume.is_some();
                if resume.is_some() {
                    self.checkpoints.progress[source].resume = resume;
                }
                self.processed(source);
                if first {
                    // A source's first position (its configured start resolved) is kept at once.
                    self.checkpoint();
                }
                let _ = reply.send(());
            }
            Input::Checkpoint { reply } => self.checkpoint_for(reply),
            // Looked at above, as before every input.
            Input::CheckpointWritten => {}
            Input::Tick(now) => {
                self.tick(now);
                self.send_rule_stats(false);
                if self.checkpoints.due() {
                    self.begin_checkpoint(Vec::new());
                }
            }
            Input::Findings { findings, reply } => {
                self.found = findings;
                self.write_findings();
                self.found.clear();
                let _ = reply.send(());
            }
            Input::Ordered(streams) => {
                for stream in streams {
                    self.engine.declare_ordered(&stream);
                }
            }
            Input::Reload(engine) => self.reload(*engine),
            Input::Lookup { name, snapshot } => {
                self.engine.set_lookup(&name, *snapshot);
            }
            Input::Shutdown => return false,
        }
        self.busy += began.elapsed();
        true
    }

    /// Swaps in validated new rules; unchanged stateful rules keep their state.
    fn reload(&mut self, engine: Engine) {
        let old = std::mem::replace(&mut self.engine, engine);
        let kept = self.engine.carry_over(old);
        // New rules may read other columns.
        let projection = self.engine.projection();
        for decoder in self.decoders.iter_mut().flatten().chain(self.table_decoders.values_mut()) {
            decoder.set_projection(projection.clone());
        }
        if !kept.is_empty() {
            tracing::info!(rules = %kept.join(","), "state kept for unchanged stateful rules: {}", kept.join(", "));
        }
    }

    /// After the last input: dead letters flushed, a last checkpoint taken.
    pub fn stop(&mut self) {
        for d in &mut self.dead_letters {
            let _ = d.flush();
        }
        self.checkpoint();
        self.send_rule_stats(true);
    }

    /// Sends the rules' counters to the health task as increments, every [`SEND_EVERY`]
    /// (or now, when stopping).
    fn send_rule_stats(&mut self, now: bool) {
        let Some((sender, tracker, last)) = &mut self.rule_stats else { return };
        if !now && last.elapsed() < SEND_EVERY {
            return;
        }
        *last = Instant::now();
        let (days, drifts) = tracker.increments(self.engine.stats(), super::clock::now());
        if !days.is_empty() || !drifts.is_empty() {
            let _ = sender.send(HealthInput::Stats { days, drifts });
        }
    }
}
