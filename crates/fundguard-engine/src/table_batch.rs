//! What every rule evaluates: one table's events of a batch as one Arrow record batch,
//! with the event behind each row. Checks (`rules.rs`) and stateful kinds (`stateful/`)
//! both read it; it lives apart from both so neither depends on the other for it.

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::DFSchema;
use fundguard_core::ChangeEvent;

use crate::stateful::BatchDimensions;

/// One table's events as a batch, with where each row came from.
pub(crate) struct TableBatch<'a> {
    pub table: &'a Arc<str>,
    pub version: u64,
    pub schema: &'a DFSchema,
    pub batch: &'a RecordBatch,
    pub events: &'a [ChangeEvent],
    /// `indices[row]` is the event behind batch row `row`.
    pub indices: &'a [usize],
    /// The dimension values of `events`, made once for all the stateful rules that store them.
    pub dimensions: &'a BatchDimensions,
}
