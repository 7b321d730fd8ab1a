//! The vocabulary every fundguard crate speaks: change events, typed values and findings.
//!
//! This crate does no IO and never reads the wall clock. Decoders produce
//! [`ChangeEvent`]s, the engine turns them into [`Finding`]s, and sinks write
//! findings out; all of them agree on the types defined here.

mod action;
pub mod distinct;
mod event;
mod finding;
mod health;
mod log_point;
mod money;
mod projection;
mod row;
mod schema;
mod severity;
mod time;
mod value;

pub use action::{Action, ActionMode};
pub use event::{ChangeEvent, Op, Position, TableName};
pub use finding::{Evidence, Finding};
pub use health::SourceHealth;
pub use log_point::LogPoint;
pub use money::{
    MINUS, Money, MoneyTotals, MoneyUnit, exponent, format_major, format_minor, format_plain, parse_display,
};
pub use projection::{Projection, TableColumns};
pub use row::{ImageAt, ReadAgain, Row, Unread};
pub use schema::{ColumnType, TableSchemas};
pub use severity::Severity;
pub use time::{CommitTimeError, EventTime, TimeParseError};
pub use value::Value;

/// Exact decimal numbers. Money is always a [`Decimal`] or an integer of minor units, never a float.
pub use rust_decimal::Decimal;
