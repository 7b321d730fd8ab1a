//! What every source reports about itself: connection state, position and lag.

use serde::Serialize;

/// A source's health, as logs and `/v1/sources` show it.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SourceHealth {
    pub name: String,
    /// `connected`, `reading`, `idle`, `finished`, `disconnected` or `failed: <why>`; or
    /// `blocked: <why>` while the pipeline reads nothing because a findings sink cannot be
    /// written (the source's batch waits unanswered).
    pub state: String,
    /// The last position processed (`file:line`, later binlog GTID or LSN).
    pub last_position: Option<String>,
    pub events: u64,
    pub dead_letters: u64,
    /// Commit time of the newest event processed (RFC 3339).
    pub last_commit_time: Option<String>,
    /// Now minus that commit time, in milliseconds, when last measured.
    pub lag_ms: Option<i64>,
    /// Messages waiting upstream that the source has not read yet (Kafka consumer lag,
    /// JetStream pending), where the transport tells.
    pub lag_events: Option<u64>,
    pub reconnects: u64,
    /// Why the connection was last lost or refused (it may have recovered since).
    pub last_error: Option<String>,
}
