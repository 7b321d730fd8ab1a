//! What a source that decodes its own log (binlog, logical decoding) hands the pipeline.

use fundguard_core::{ChangeEvent, Position};

/// Events decoded from a database's log, with the rows that could not be decoded.
#[derive(Debug, Default)]
pub struct DecodedBatch {
    pub events: Vec<ChangeEvent>,
    pub dead_letters: Vec<DeadLetter>,
}

impl DecodedBatch {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.dead_letters.is_empty()
    }

    pub fn len(&self) -> usize {
        self.events.len() + self.dead_letters.len()
    }
}

/// A row the source could not turn into an event: what it was, where, and why.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// A readable rendering of the raw row (the source's own representation).
    pub payload: Vec<u8>,
    pub position: Position,
    pub reason: String,
}
