//! When and how the live pipeline takes a checkpoint ([`crate::live::checkpoint`] is
//! the file): sinks made durable first, then rule state and source positions written
//! together, then sources told what they may acknowledge upstream. Checkpoints are
//! taken every `checkpoint_interval`, at a database source's first position, when a
//! source must acknowledge now, and at shutdown.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::LivePipeline;
use crate::config::Config;
use crate::live::checkpoint::{Checkpoint, Progress};
use crate::live::clock;

/// What the pipeline knows to take a checkpoint: per source, how far it was processed
/// and how many of its inputs were.
pub(super) struct Checkpoints {
    data_dir: PathBuf,
    interval: Duration,
    /// When the last checkpoint ended, and how long it took.
    last: Instant,
    took: Duration,
    epoch: u64,
    pub(super) progress: Vec<Progress>,
    processed: Vec<u64>,
    covered: watch::Sender<Vec<u64>>,
}

/// At most this share of the pipeline's time goes to periodic checkpoints.
const CHECKPOINT_SHARE: u32 = 20; // 1/20 = 5 %

impl Checkpoints {
    /// Checkpoints that go on from `restored` (the default one on a fresh start).
    pub(super) fn new(config: &Config, restored: &Checkpoint, covered: watch::Sender<Vec<u64>>) -> Checkpoints {
        Checkpoints {
            data_dir: config.data_dir.clone(),
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
        }
    }

    /// Whether the next periodic checkpoint is due: `checkpoint_interval` after the last,
    /// or longer when taking one costs more than 1/20 of the time between them (a large
    /// rule state): throughput then loses at most 5 %, and a crash replays a little more.
    pub(super) fn due(&self) -> bool {
        self.last.elapsed() >= self.interval.max(self.took * (CHECKPOINT_SHARE - 1))
    }
}

impl LivePipeline {
    /// Counts one more input of `source` as processed: a checkpoint taken from now on covers it.
    pub(super) fn processed(&mut self, source: usize) {
        if let Some(n) = self.checkpoints.processed.get_mut(source) {
            *n += 1;
        }
    }

    /// Takes a checkpoint: sinks made durable first, then rule state and positions
    /// written together, then sources told what they may acknowledge. A failure is
    /// reported and the next tick tries again; nothing is acknowledged meanwhile.
    pub(super) fn checkpoint(&mut self) -> bool {
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
                written_at: clock::now(),
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
                        tracing::warn!(epoch = cp.epoch, "after checkpoint {}: {e:#}", cp.epoch);
                    }
                }
                true
            }
            Err(e) => {
                tracing::error!("taking a checkpoint failed (tried again after checkpoint_interval): {e:#}");
                false
            }
        }
    }
}
