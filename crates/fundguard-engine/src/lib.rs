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
