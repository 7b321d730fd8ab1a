//! The checkpoint of `fundguard run`: one file, `DATA_DIR/checkpoint`, that records
//! together where every source resumes, every stateful rule's state with its pending
//! timers and the event-time clocks, and how far each findings file had been written.
//!
//! Taken every `checkpoint_interval` and on shutdown: the pipeline thread takes its parts
//! together between two batches (rule state as a copy), so they agree — the state is
//! exactly what the events before the positions produced, and the findings files hold
//! exactly their findings — and a thread of its own encodes and writes them
//! ([`crate::live::pipeline`]'s `checkpoints`). A restart
//! loads it, truncates findings files to their marks, restores the engine and resumes
//! every source after its position; the events since are replayed and produce the same
//! findings again, which the alert store recognises by their receipts. Sources
//! acknowledge upstream (slot confirmation, offset commit, JetStream ack) only what a
//! written checkpoint covers.
//!
//! The file is framed by [`fundguard_sources::checkpoint`] (version, length, SHA-256;
//! written atomically); the payload is MessagePack.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use fundguard_core::{EventTime, Position};
use fundguard_sources::checkpoint::{self as frame, FrameError};
use serde::{Deserialize, Serialize};

/// The frame version of a full checkpoint (v0 and v1 frames are position files).
const CHECKPOINT_VERSION: u32 = 2;

/// Everything a restart needs, taken at one moment between two batches.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Numbers checkpoints: 1 for the first one a data directory sees.
    pub epoch: u64,
    pub written_at: EventTime,
    /// By source name: how far it had been processed.
    pub sources: BTreeMap<String, Progress>,
    /// [`fundguard_engine::Engine::save_state`].
    #[serde(with = "serde_bytes")]
    pub engine: Vec<u8>,
    /// By findings file: its length in bytes, all of it written and synced.
    pub findings_files: BTreeMap<PathBuf, u64>,
}

/// How far one source had been processed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Files: the last line processed.
    #[serde(default)]
    pub line: Option<u64>,
    /// Kafka and NATS: the highest offset processed, by stream (topic) and partition.
    #[serde(default)]
    pub offsets: BTreeMap<String, BTreeMap<u32, u64>>,
    /// Database logs: where the source resumes (a binlog position as JSON, a PostgreSQL LSN).
    #[serde(default)]
    pub resume: Option<String>,
}

impl Progress {
    /// Notes a processed message's position.
    pub fn observe(&mut self, position: &Position) {
        match position {
            Position::Line { line, .. } => self.line = Some(self.line.map_or(*line, |l| l.max(*line))),
            Position::Stream { stream, partition, offset, .. } => {
                let partitions = match self.offsets.get_mut(&**stream) {
                    Some(p) => p,
                    None => self.offsets.entry(stream.to_string()).or_default(),
                };
                let slot = partitions.entry(*partition).or_insert(*offset);
                *slot = (*slot).max(*offset);
            }
            Position::Log { .. } | Position::Synthetic { .. } | Position::Query { .. } => {}
        }
    }

    /// Whether a message at `position` was processed before (a re-delivery after a
    /// restart: Kafka offsets committed, or JetStream messages acknowledged, later
    /// than the checkpoint was written).
    pub fn covers(&self, position: &Position) -> bool {
        match position {
            Position::Stream { stream, partition, offset, .. } => {
                self.offsets.get(&**stream).and_then(|p| p.get(partition)).is_some_and(|done| offset <= done)
            }
            _ => false,
        }
    }
}

/// The checkpoint file of a data directory.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("checkpoint")
}

impl Checkpoint {
    /// Reads the data directory's checkpoint; `None` when there is none yet. A damaged
    /// or foreign file is an error that says what to do: it is never misread.
    pub fn load(data_dir: &Path) -> anyhow::Result<Option<Checkpoint>> {
        let path = path(data_dir);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading the checkpoint {}", path.display())),
        };
        Self::decode(&bytes).map(Some).with_context(|| {
            format!(
                "the checkpoint {} cannot be used; restore a good copy, or move it away to start over from the sources' configured start (rule state is then rebuilt from what they replay)",
                path.display()
            )
        })
    }

    fn decode(bytes: &[u8]) -> anyhow::Result<Checkpoint> {
        let (version, payload) = frame::decode(bytes)?;
        if version != CHECKPOINT_VERSION {
            return Err(FrameError::Header(format!(
                "format v{version} is a source position file, not a checkpoint (v{CHECKPOINT_VERSION})"
            ))
            .into());
        }
        rmp_serde::from_slice(payload).context("its content does not decode")
    }

    /// Replaces the data directory's checkpoint atomically; returns the bytes written.
    pub fn save(&self, data_dir: &Path) -> anyhow::Result<usize> {
        let payload = rmp_serde::to_vec_named(self).context("encoding the checkpoint")?;
        let framed = frame::encode(&payload);
        let path = path(data_dir);
        frame::write_atomic(&path, &framed).with_context(|| format!("writing the checkpoint {}", path.display()))?;
        Ok(framed.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damaged_and_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Checkpoint::load(dir.path()).unwrap().is_none());
        let mut progress = Progress::default();
        let at = |offset| Position::Stream { stream: "orders".into(), partition: 1, offset, index: 0 };
        progress.observe(&at(41));
        progress.observe(&at(40));
        assert!(progress.covers(&at(41)) && !progress.covers(&at(42)));
        let checkpoint = Checkpoint {
            epoch: 3,
            written_at: EventTime::from_secs(1),
            sources: [("orders".to_string(), progress.clone())].into(),
            engine: vec![1, 2, 3],
            findings_files: [(PathBuf::from("f.jsonl"), 99)].into(),
        };
        checkpoint.save(dir.path()).unwrap();
        let back = Checkpoint::load(dir.path()).unwrap().unwrap();
        assert_eq!((back.epoch, &back.sources["orders"], &back.engine[..]), (3, &progress, &[1u8, 2, 3][..]));

        let file = path(dir.path());
        let mut bytes = std::fs::read(&file).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        let error = format!("{:#}", Checkpoint::load(dir.path()).unwrap_err());
        assert!(error.contains("checksum") && error.contains("move it away"), "{error}");

        std::fs::write(&file, frame::encode(b"{}")).unwrap();
        let newer = String::from_utf8(std::fs::read(&file).unwrap()).unwrap().replacen(" v2 ", " v3 ", 1);
        std::fs::write(&file, newer).unwrap();
        let error = format!("{:#}", Checkpoint::load(dir.path()).unwrap_err());
        assert!(error.contains("upgrade fundguard"), "{error}");

        std::fs::write(&file, br#"{"gtid":"0-1-1"}"#).unwrap();
        let error = format!("{:#}", Checkpoint::load(dir.path()).unwrap_err());
        assert!(error.contains("not a checkpoint"), "{error}");
    }
}
