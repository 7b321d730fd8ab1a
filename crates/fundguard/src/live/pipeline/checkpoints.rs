//! When and how the live pipeline takes a checkpoint ([`crate::live::checkpoint`] is
//! the file). Taking one has two halves:
//!
//! 1. On the pipeline thread, between two inputs: sinks made durable, then source
//!    positions and a *copy* of rule state ([`fundguard_engine::StateSnapshot`]) taken
//!    together — the only part that holds up evaluation.
//! 2. On the checkpoint writer's thread: rule state encoded and compressed, the file
//!    written and synced — most of the cost, while the pipeline goes on evaluating.
//!
//! When the writer reports the file durable, sources are told what they may
//! acknowledge upstream and sinks what will never be replayed. One checkpoint is
//! written at a time. Checkpoints are taken every `checkpoint_interval`, at a database
//! source's first position, when a source must acknowledge now (answered once written),
//! and at shutdown.

use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use fundguard_engine::StateSnapshot;
use tokio::sync::{mpsc, oneshot, watch};

use super::LivePipeline;
use crate::config::Config;
use crate::live::checkpoint::{Checkpoint, Progress};
use crate::live::clock;
use crate::live::input::Input;

/// What the pipeline knows to take a checkpoint: per source, how far it was processed
/// and how many of its inputs were; and the one being written.
pub(super) struct Checkpoints {
    interval: Duration,
    /// When the last checkpoint ended, and how long it took (copy to disk).
    last: Instant,
    took: Duration,
    /// The last checkpoint written.
    epoch: u64,
    pub(super) progress: Vec<Progress>,
    processed: Vec<u64>,
    covered: watch::Sender<Vec<u64>>,
    writer: Writer,
    /// The checkpoint the writer has and has not reported on yet.
    in_flight: Option<InFlight>,
    /// Sources waiting for a checkpoint that covers what they sent: answered by the
    /// next one taken, not by one taken before their request.
    waiting: Vec<oneshot::Sender<bool>>,
}

/// A checkpoint handed to the writer.
struct InFlight {
    epoch: u64,
    /// Per source, the inputs it covers: sent to sources once it is written.
    processed: Vec<u64>,
    began: Instant,
    /// How long taking it held up the pipeline.
    held: Duration,
    /// Sources to answer once it is written (or failed).
    replies: Vec<oneshot::Sender<bool>>,
}

/// At most this share of the pipeline's time goes to periodic checkpoints.
const CHECKPOINT_SHARE: u32 = 20; // 1/20 = 5 %

impl Checkpoints {
    /// Checkpoints that go on from `restored` (the default one on a fresh start); the
    /// writer wakes the pipeline through `wake` when it has written one.
    pub(super) fn new(
        config: &Config,
        restored: &Checkpoint,
        covered: watch::Sender<Vec<u64>>,
        wake: mpsc::WeakSender<Input>,
    ) -> Checkpoints {
        Checkpoints {
            interval: config.checkpoint_interval,
            last: Instant::now(),
            took: Duration::ZERO,
            epoch: restored.epoch,
            progress: config
                .sources
                .iter()
                .map(|s| restored.sources.get(&s.name).cloned().unwrap_or_default())
                .collect(),
            processed: vec![0; config.sources.len()],
            covered,
            writer: Writer::spawn(config.data_dir.clone(), wake),
            in_flight: None,
            waiting: Vec::new(),
        }
    }

    /// Whether the next periodic checkpoint is due: none is being written, and
    /// `checkpoint_interval` has passed since the last — or longer when one takes more
    /// than 1/20 of the time between them (a large rule state): checkpoints then cost
    /// at most 5 % of the time on either thread, and a crash replays a little more.
    pub(super) fn due(&self) -> bool {
        self.in_flight.is_none() && self.last.elapsed() >= self.interval.max(self.took * (CHECKPOINT_SHARE - 1))
    }
}

impl LivePipeline {
    /// Counts one more input of `source` as processed: a checkpoint taken from now on covers it.
    pub(super) fn processed(&mut self, source: usize) {
        if let Some(n) = self.checkpoints.processed.get_mut(source) {
            *n += 1;
        }
    }

    /// Takes a checkpoint and waits until it is written (at the start, for a source's
    /// first position, at shutdown); `false` when it could not be.
    pub(super) fn checkpoint(&mut self) -> bool {
        while self.checkpoints.in_flight.is_some() {
            self.checkpoint_written(true);
        }
        self.begin_checkpoint(Vec::new()) && self.checkpoint_written(true) == Some(true)
    }

    /// A source must acknowledge what it sent: `reply` is answered once a checkpoint
    /// taken from now on is written. The pipeline goes on meanwhile.
    pub(super) fn checkpoint_for(&mut self, reply: oneshot::Sender<bool>) {
        if self.checkpoints.in_flight.is_some() {
            self.checkpoints.waiting.push(reply);
        } else {
            self.begin_checkpoint(vec![reply]);
        }
    }

    /// Takes the pipeline's half of a checkpoint and hands the rest to the writer;
    /// `false` (and `replies` answered so) when the sinks could not be made durable.
    pub(super) fn begin_checkpoint(&mut self, mut replies: Vec<oneshot::Sender<bool>>) -> bool {
        let started = Instant::now();
        let epoch = self.checkpoints.epoch + 1;
        replies.append(&mut self.checkpoints.waiting);
        let mut findings_files = std::collections::BTreeMap::new();
        for (sink, name) in self.sinks.iter_mut().zip(&self.sink_names) {
            match sink.commit(epoch) {
                Ok(Some((path, len))) => {
                    findings_files.insert(path, len);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(sink = %name, "taking a checkpoint failed (tried again after checkpoint_interval): {e:#}");
                    self.checkpoints.last = Instant::now();
                    answer(replies, false);
                    return false;
                }
            }
        }
        let checkpoint = Checkpoint {
            epoch,
            written_at: clock::now(),
            sources: self.names.iter().cloned().zip(self.checkpoints.progress.iter().cloned()).collect(),
            engine: Vec::new(),
            findings_files,
        };
        let cp = &mut self.checkpoints;
        cp.writer.write(checkpoint, self.engine.snapshot_state());
        let held = started.elapsed();
        cp.in_flight = Some(InFlight { epoch, processed: cp.processed.clone(), began: started, held, replies });
        true
    }

    /// What became of the checkpoint being written, once the writer reports it
    /// (waiting for that with `wait`): sources told what they may acknowledge, sinks
    /// what will not be replayed. `None` when none is being written or it is not done yet.
    pub(super) fn checkpoint_written(&mut self, wait: bool) -> Option<bool> {
        let cp = &mut self.checkpoints;
        cp.in_flight.as_ref()?;
        let result = cp.writer.result(wait)?;
        let done = cp.in_flight.take()?;
        // The interval runs from the end of one checkpoint to the start of the next: one
        // that takes longer than the interval must not follow another at once.
        cp.last = Instant::now();
        cp.took = done.began.elapsed();
        let written = match result {
            Ok(bytes) => {
                cp.epoch = done.epoch;
                self.telemetry.checkpoint(bytes as u64, done.held, done.began.elapsed());
                let _ = cp.covered.send(done.processed);
                for sink in &mut self.sinks {
                    if let Err(e) = sink.checkpointed(done.epoch) {
                        tracing::warn!(epoch = done.epoch, "after checkpoint {}: {e:#}", done.epoch);
                    }
                }
                true
            }
            Err(e) => {
                tracing::error!("taking a checkpoint failed (tried again after checkpoint_interval): {e:#}");
                false
            }
        };
        answer(done.replies, written);
        // Sources that asked while this one was being written need one that covers them.
        if !self.checkpoints.waiting.is_empty() {
            self.begin_checkpoint(Vec::new());
        }
        Some(written)
    }
}

/// Tells the sources waiting for a checkpoint whether it was written.
fn answer(replies: Vec<oneshot::Sender<bool>>, written: bool) {
    for reply in replies {
        let _ = reply.send(written);
    }
}

/// The checkpoint writer's thread: encodes rule state and writes the file, one
/// checkpoint at a time, reporting each result back.
struct Writer {
    jobs: std_mpsc::Sender<(Checkpoint, StateSnapshot)>,
    results: std_mpsc::Receiver<anyhow::Result<usize>>,
}

impl Writer {
    fn spawn(data_dir: PathBuf, wake: mpsc::WeakSender<Input>) -> Writer {
        let (jobs, queued) = std_mpsc::channel::<(Checkpoint, StateSnapshot)>();
        let (done, results) = std_mpsc::channel();
        let write = move |(mut checkpoint, state): (Checkpoint, StateSnapshot)| -> anyhow::Result<usize> {
            checkpoint.engine = state.encode()?;
            checkpoint.save(&data_dir)
        };
        let thread = std::thread::Builder::new().name("fundguard-checkpoint".into()).spawn(move || {
            for job in queued {
                if done.send(write(job)).is_err() {
                    return;
                }
                // Busy pipelines look at results between inputs; an idle one is woken. A
                // full channel means it is busy, and an upgrade failing that it is stopping.
                if let Some(inputs) = wake.upgrade() {
                    let _ = inputs.try_send(Input::CheckpointWritten);
                }
            }
        });
        if let Err(e) = thread {
            // Without a thread of its own, the writer's results say why, every time.
            tracing::error!("cannot start the checkpoint writer thread: {e}");
        }
        Writer { jobs, results }
    }

    fn write(&self, checkpoint: Checkpoint, state: StateSnapshot) {
        let _ = self.jobs.send((checkpoint, state));
    }

    /// The next result, waiting for it with `wait`; `None` when there is none yet.
    fn result(&self, wait: bool) -> Option<anyhow::Result<usize>> {
        let gone = || Some(Err(anyhow::anyhow!("the checkpoint writer thread is gone; restart fundguard")));
        if wait {
            return self.results.recv().map_or_else(|_| gone(), Some);
        }
        match self.results.try_recv() {
            Ok(result) => Some(result),
            Err(std_mpsc::TryRecvError::Empty) => None,
            Err(std_mpsc::TryRecvError::Disconnected) => gone(),
        }
    }
}
