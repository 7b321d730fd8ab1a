//! The suggester's integration tests: the profiler's figures (property tests), rule files
//! that stay loadable whatever the sample holds, suggestions from a small synthetic shop, and
//! the product, ledger and daily-totals kinds on synthetic tables.

mod kinds;
mod profile;
mod render;
mod shop;

use std::sync::Arc;

use fundguard_core::{ChangeEvent, EventTime, Op, Position, Row, Value};

/// One change event of `table` at `secs`.
pub fn event(table: &str, op: Op, secs: i64, seq: u64, columns: &[(&str, Value)]) -> ChangeEvent {
    let row: Row = columns.iter().map(|(n, v)| (*n, v.clone())).collect();
    ChangeEvent {
        table: Arc::from(table),
        op,
        before: None,
        after: Some(row),
        commit_time: EventTime::from_secs(1_700_000_000 + secs),
        position: Position::Synthetic { seq },
    }
}
