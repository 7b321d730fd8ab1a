//! What flows into the pipeline thread: the one channel every source, timer and task
//! sends on. Each request that must wait for the pipeline carries a `reply`, so a
//! sender moves on (reads further, answers its client, records a run) only after the
//! pipeline has taken what it sent.

use fundguard_core::{EventTime, Position};
use fundguard_engine::Engine;
use fundguard_server::IngestVerdict;
use fundguard_sources::DecodedBatch;
use tokio::sync::{oneshot, watch};

/// How many inputs may wait for the pipeline: a slow pipeline makes sources wait
/// (backpressure) instead of buffering without limit.
pub const CAPACITY: usize = 16;

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
    Events { source: usize, batch: DecodedBatch, position: String, resume: Option<String>, reply: oneshot::Sender<()> },
    /// The wall clock, once a second.
    Tick(EventTime),
    /// A source must acknowledge now (a PostgreSQL slot): take a checkpoint, answer
    /// whether it was written (once it is; the pipeline goes on meanwhile).
    Checkpoint { reply: oneshot::Sender<bool> },
    /// The checkpoint writer has finished one: the pipeline looks at the result.
    CheckpointWritten,
    /// Findings made outside the engine (a scheduled SQL run): written to the sinks, and
    /// made durable before the reply, so the run may be recorded as delivered.
    Findings { findings: Vec<fundguard_core::Finding>, reply: oneshot::Sender<()> },
    /// Streams a source found to deliver in commit order (Kafka topics of one partition).
    Ordered(Vec<String>),
    /// Validated new rules.
    Reload(Box<Engine>),
    /// A table lookup read again (`live::lookups`).
    Lookup { name: String, snapshot: Box<fundguard_engine::LookupSnapshot> },
    /// Stop: flush the dead letters and take a last checkpoint (sent by the shutdown drain,
    /// once the listener and the database sources have stopped).
    Shutdown,
}
