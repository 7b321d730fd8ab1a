//! Rule files: one YAML file per rule, parsed with source locations and validated
//! into [`Rule`]s the engine can compile.
//!
//! The path from text to a running rule is: YAML → [`file::RuleFile`] (config
//! types, every key checked, every value located) → [`Rule`] (validated) → the
//! engine's compiled plan. Each step reports [`Diagnostic`]s with file, line and
//! column, and collects all of them rather than stopping at the first.

mod diagnostic;
mod duration;
pub mod file;
mod load;
mod rule;
mod script;
mod size;
mod sql;
mod stateful;

pub use diagnostic::{Diagnostic, Location, sql_parser_position};
pub use duration::parse_duration;
pub use load::{load_paths, load_schemas, parse_rule, parse_schemas};
pub use rule::{
    AggFunc, Aggregate, Baseline, Cardinality, CatchUp, CheckRule, Evaluate, ExpectedFinding, Expr, History, KeyType,
    LateCounterpart, LookupUse, MissingLookup, Mode, MoneyExprs, Once, RateRule, ReconcileRule, Rule, RuleBody,
    RuleTest, SHADOW_TAG, Schedule, Side, SideSpec, SqlRule, StateOptions, TestEvent, TimeoutRule, TransitionRule,
};
pub use script::{MAX_CALL_LEVELS, MAX_EXPR_DEPTH, ScriptLimits, ScriptRule, ScriptSource};
pub use size::parse_size;
pub use sql::{DEFAULT_MAX_FINDINGS, DEFAULT_SQL_MEMORY_LIMIT, DEFAULT_SQL_TIMEOUT, MIN_SQL_MEMORY_LIMIT};
