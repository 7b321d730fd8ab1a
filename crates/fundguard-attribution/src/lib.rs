//! Alarm attribution: why an incident happened.
//!
//! An incident is many alerts with one cause — a bad deploy breaks every payment of one
//! channel, and each broken order is its own alert. This crate says which cause, two ways:
//!
//! - **dimensions** ([`rank_dimensions`]): the attributes of the incident's evidence rows
//!   (any column: channel, merchant, currency, region, app version, and pairs of them)
//!   ranked by how much more often they occur in the incident than in the traffic of the
//!   same tables. Both sides are [`Profile`]s — bounded counts per column ([`TopK`]) — the
//!   traffic's kept while the engine evaluates ([`Baseline`]), so nothing is read twice;
//! - **changes** ([`rank_changes`]): the deploys, configuration changes and migrations
//!   before the incident, ranked by how close they came before it and whether they touch
//!   the tables its rules read or its owning team's services.
//!
//! No IO and no clock: the alert store keeps incidents, their profiles and the changes;
//! the binary feeds the baseline and shows the rankings.

mod changes;
mod profile;
mod rank;
mod sketch;

pub use changes::{
    Change, ChangeCause, HALF_LIFE, IncidentContext, KINDS, LOOKBACK, SLACK, Service, ServiceMap, rank_changes,
    tables_of_ddl,
};
pub use profile::{
    BASELINE_CAPACITY, BASELINE_SAMPLE_EVERY, Baseline, MAX_VALUE_CHARS, ORIGIN_TABLE, PAIR_WARMUP_ROWS, Profile,
    TableProfile,
};
pub use rank::{Attribute, DimensionCause, MIN_BASELINE_ROWS, MIN_LIFT, MIN_SUPPORT, rank_dimensions, wilson_lower};
pub use sketch::{Counter, TopK};

/// The pseudo-table of findings: its column `rule` ranks which rules of a flow an incident's
/// alerts come from, against every alert's.
pub const FINDINGS_TABLE: &str = "(findings)";

/// Counters per column in an incident's profile.
pub const INCIDENT_CAPACITY: usize = 64;
