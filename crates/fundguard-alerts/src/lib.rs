//! Findings become alerts: owned by the rule's team, tracked until someone closes them
//! with a root cause.
//!
//! - [`model`]: what an alert is, its lifecycle and the changes people make to it;
//! - [`AlertStore`]: the one interface every store implements;
//! - [`sqlite::SqliteStore`]: the embedded default, one file in the data directory;
//! - [`slo`]: deadlines per severity, overdue alerts, MTTD/MTTA/MTTR per team and rule.
//!
//! **Dedup:** a finding's fingerprint is its rule plus its key; findings with the same
//! fingerprint update one alert (count, last seen, latest evidence) instead of opening
//! new ones. A fingerprint that fires again after its alert was resolved reopens it;
//! one closed as false positive or expected stays closed (that is what those mean) and
//! only counts.

pub mod model;
pub mod slo;
pub mod sqlite;

pub use model::{Alert, AlertError, Change, Filter, Recorded, Status, TimelineEntry, fingerprint};
pub use slo::{Deadlines, Overdue, Slo, SloFigures, SloReport};
pub use sqlite::SqliteStore;

use fundguard_core::{EventTime, Finding};

/// Where alerts live. Every operation is atomic: a change is applied with its timeline
/// entry, or not at all.
pub trait AlertStore {
    /// Records findings (one transaction for the batch): opens, updates or reopens alerts.
    fn record(&mut self, findings: &[Finding]) -> Result<Vec<Recorded>, AlertError>;

    /// Alerts matching `filter`, most recently seen first.
    fn list(&self, filter: &Filter) -> Result<Vec<Alert>, AlertError>;

    /// One alert with its timeline, oldest entry first.
    fn get(&self, id: i64) -> Result<(Alert, Vec<TimelineEntry>), AlertError>;

    /// Applies a person's change; refused (and nothing written) when the alert's status
    /// does not allow it.
    fn change(&mut self, id: i64, change: &Change, actor: &str, now: EventTime) -> Result<Alert, AlertError>;
}
