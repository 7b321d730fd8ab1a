//! Rule suggestions from data (`fundguard suggest`): a sample of change events is profiled,
//! invariants that hold on it become rule files in fundguard's own format, each with its
//! evidence, a confidence and `tests:` built from real rows, and every suggestion is
//! backtested over the same sample before anyone sees it.
//!
//! The path is: a [`layout::Layout`] (what each table's columns are, from the coverage crate's
//! classification and relations) → one pass of a [`profile::Profiler`] over the events → a
//! [`profile::Profile`] → the suggestion kinds ([`suggest::kinds`]) → rule text
//! ([`render`]) → the real rule loader, the rule tests and a backtest through the engine
//! ([`backtest`]) → a report ([`report`]). No step does IO or reads the clock: the binary
//! reads the inputs and writes the files. Money is never a float: amounts, ratios and
//! thresholds are integers or exact decimals all the way into the rule files.

pub mod backtest;
pub mod layout;
pub mod profile;
pub mod render;
pub mod report;
pub mod suggest;

pub use backtest::{Backtest, Checked};
pub use layout::Layout;
pub use profile::{Profile, Profiler};
pub use suggest::{Options, Suggestion, suggest};
