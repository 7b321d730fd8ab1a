//! A deterministic shop simulator: orders, payments, refunds, settlements and a
//! double-entry ledger, with injected incidents and an answer key.
//!
//! Orders arrive over several hours of simulated time; each walks its lifecycle
//! through a time-ordered queue of steps, so thousands of orders interleave the
//! way concurrent transactions do in a real binlog. The same seed always gives
//! the same events. Money is in minor units (fen), except `payments.amount_yuan`,
//! a DECIMAL(12,2) mirror of the amount that real systems keep for display.

mod incidents;
mod shop;

pub use incidents::{Expected, Ids, Incident, IncidentKind};
pub use shop::{SimConfig, Simulator, schema};
