//! The rule engine: change events in micro-batches → findings.
//!
//! Events are grouped per table into Arrow record batches holding only the
//! columns the rules reference (`op`, `table`, `commit_time`, `before.<col>`,
//! `after.<col>`). Rule expressions are SQL, parsed and evaluated by DataFusion,
//! vectorised over those batches.
//!
//! **Invariant:** the engine never reads the wall clock and does no IO; the caller
//! stamps `detected_at`. A backtest is therefore a replay.

mod columns;
mod compile;
mod disagree;
mod drift;
mod engine;
mod lookup;
mod rules;
mod scalar;
mod script;
mod stateful;
mod table_batch;
mod testing;

/// A hash map for keys that come from the data — entity keys, groups, table names — looked up
/// for every record: foldhash, several times faster than the standard SipHash on short keys,
/// seeded at random per process like the standard map, so nothing may depend on its order.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

pub use columns::rows_batch;
pub use compile::{Scope, columns_read};
pub use drift::{BASELINE_EVENTS, Drift, DriftKind};
pub use engine::{
    END_OF_INPUT_TAG, Engine, EngineError, HEALTH_TAG, Restored, RuleStats, STATE_MEMORY_RULE, StateError,
    StateSnapshot, TableCount, fixed_columns, sort_diagnostics,
};
pub use lookup::LookupSnapshot;
pub use scalar::value_at;
pub use script::script_columns_read;
pub use testing::{TestOutcome, run_rule_tests};
