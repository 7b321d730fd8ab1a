//! Change events: one row change (or one business message) with its images, time and position.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{EventTime, LogPoint, Row};

/// A table name in `db.table` form (for PostgreSQL, `schema.table`); for business
/// messages, the message type the configuration gives.
pub type TableName = Arc<str>;

/// What happened to the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Insert,
    Update,
    Delete,
    /// A business message: only an `after` image, no database row behind it.
    Message,
}

impl Op {
    /// The name rule expressions compare `op` with: `insert`, `update`, `delete`, `message`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Message => "message",
        }
    }

    pub fn parse(text: &str) -> Option<Op> {
        Some(match text {
            "insert" | "i" | "c" => Op::Insert,
            "update" | "u" => Op::Update,
            "delete" | "d" => Op::Delete,
            "message" | "m" => Op::Message,
            _ => return None,
        })
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an event sits in its source, so a finding or a dead letter can be traced back
/// and a restart can resume after it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Position {
    /// Line `line` (1-based) of an input file or stdin; `index` numbers the rows
    /// when one line carries several (a Canal message).
    Line { input: Arc<str>, line: u64, index: u32 },
    /// A record of a message stream: a NATS JetStream stream sequence, or a Kafka
    /// topic partition offset.
    Stream { stream: Arc<str>, partition: u32, offset: u64, index: u32 },
    /// A row of a database's replication log: `at` is a MySQL/MariaDB binlog
    /// `file:offset` of the rows event, or a PostgreSQL transaction's commit LSN;
    /// `index` numbers the rows of that event (binlog) or transaction (PostgreSQL).
    /// Positions of one log compare as the log is ordered ([`LogPoint`]).
    Log { source: Arc<str>, at: LogPoint, index: u32 },
    /// An event made by hand: a rule test or a simulator that emits events directly.
    Synthetic { seq: u64 },
    /// Row `row` (1-based) of a scheduled SQL rule's result for business date `ds`.
    Query { rule: Arc<str>, ds: Arc<str>, row: u64 },
}

impl Position {
    /// The source this position belongs to (an input file, an HTTP source, a stream):
    /// event time advances per source.
    pub fn source(&self) -> &str {
        match self {
            Position::Line { input, .. } => input,
            Position::Stream { stream, .. } => stream,
            Position::Log { source, .. } => source,
            Position::Synthetic { .. } => "synthetic",
            Position::Query { rule, .. } => rule,
        }
    }

    /// The same position for the `index`-th row of a message that carries several.
    pub fn with_index(&self, index: u32) -> Position {
        match self {
            Position::Line { input, line, .. } => Position::Line { input: input.clone(), line: *line, index },
            Position::Stream { stream, partition, offset, .. } => {
                Position::Stream { stream: stream.clone(), partition: *partition, offset: *offset, index }
            }
            Position::Log { source, at, .. } => Position::Log { source: source.clone(), at: at.clone(), index },
            Position::Synthetic { seq } => Position::Synthetic { seq: *seq },
            Position::Query { .. } => self.clone(),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Line { input, line, index: 0 } => write!(f, "{input}:{line}"),
            Position::Line { input, line, index } => write!(f, "{input}:{line}#{index}"),
            Position::Stream { stream, partition, offset, index: 0 } => write!(f, "{stream}/{partition}@{offset}"),
            Position::Stream { stream, partition, offset, index } => write!(f, "{stream}/{partition}@{offset}#{index}"),
            Position::Log { source, at, index: 0 } => write!(f, "{source}@{at}"),
            Position::Log { source, at, index } => write!(f, "{source}@{at}#{index}"),
            Position::Synthetic { seq } => write!(f, "synthetic#{seq}"),
            Position::Query { rule, ds, row } => write!(f, "{rule}[{ds}]#{row}"),
        }
    }
}

/// One row change, or one business message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeEvent {
    pub table: TableName,
    pub op: Op,
    /// The row before the change (updates and deletes; may be partial when the
    /// source only records changed columns).
    pub before: Option<Row>,
    /// The row after the change (inserts, updates and messages).
    pub after: Option<Row>,
    /// When the change was committed at its source.
    pub commit_time: EventTime,
    pub position: Position,
}

impl ChangeEvent {
    /// The after image, or the before image for deletes: the row as it last stood.
    pub fn current_row(&self) -> Option<&Row> {
        self.after.as_ref().or(self.before.as_ref())
    }
}
