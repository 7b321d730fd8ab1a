//! Findings become alerts: owned by the rule's team, tracked until someone closes them
//! with a root cause.
//!
//! - [`model`]: what an alert is, its lifecycle and the changes people make to it;
//! - [`AlertStore`]: the one interface every store implements;
//! - [`sqlite::SqliteStore`]: the embedded default, one file in the data directory;
//! - [`postgres::PostgresStore`]: the shared store, with the same schema and behaviour;
//! - [`slo`]: deadlines per severity, overdue alerts, MTTD/MTTA/MTTR per team and rule;
//! - [`report`]: the daily clearing report per team (text, Markdown, HTML).
//!
//! **One lifecycle, two databases.** What each store operation writes and decides is
//! written once, in neutral SQL, and the two backends only open, migrate and execute:
//!
//! - `lifecycle` records findings (dedup, reopening, receipts) and applies changes;
//!   `outbox` queues, lists and settles notifications and containment actions;
//!   `queries` lists alerts and counts them; `columns` reads their rows; `rule_stats`
//!   keeps per-rule statistics per day and drifts, and counts each rule's alerts (rule
//!   health);
//! - `sql` is the seam: the `Sql` executor trait, the neutral `Value` and `Row`, and
//!   `Dialect`, the few things SQLite and PostgreSQL spell differently (`?1` or `$1`,
//!   `max` or `GREATEST`, `FOR UPDATE`, the migrations' key and integer types), as data;
//! - `schema` holds the migrations once, filled in per dialect (pinned by a test to the
//!   bytes that shipped, so existing databases keep opening);
//! - `backend` implements [`AlertStore`] once for both stores over their `Backend`
//!   (a write transaction, or a read), so `sqlite.rs` and `postgres.rs` stay thin.
//!
//! A change to the lifecycle is made once; the `both_stores_answer_one_lifecycle_alike`
//! test runs one scenario on both databases and compares every answer.
//!
//! **Dedup:** a finding's fingerprint is its rule plus its key; findings with the same
//! fingerprint update one alert (count, last seen, latest evidence) instead of opening
//! new ones. A fingerprint that fires again after its alert was resolved reopens it;
//! one closed as false positive or expected stays closed (that is what those mean) and
//! only counts.

mod backend;
mod columns;
pub mod incidents;
mod lifecycle;
pub mod model;
mod outbox;
pub mod postgres;
mod queries;
pub mod report;
pub mod routes;
mod rule_stats;
mod schema;
pub mod slo;
mod sql;
pub mod sqlite;

pub use incidents::{
    Feedback, Incident, IncidentBrief, IncidentDetail, IncidentPolicy, IncidentStatus, Policy, Ranked,
};
pub use model::{Alert, AlertError, Change, Filter, Recorded, Status, TimelineEntry, fingerprint};
pub use postgres::PostgresStore;
pub use report::{ActiveFigures, DailyReport, IncidentLine, TeamDay, money_at_risk};
pub use routes::{Route, Routes};
pub use rule_stats::{RuleAlerts, RuleDay, RuleDrift, RuleHistory, TableDay};
pub use slo::{Deadlines, Overdue, Slo, SloFigures, SloReport};
pub use sqlite::SqliteStore;

use fundguard_attribution::{Change as AttributionChange, Profile};
use fundguard_core::{EventTime, Finding};
use serde::Serialize;

/// The epoch stamp of a held receipt (see [`AlertStore::hold_receipts`]): after every
/// checkpoint's, so `forget_receipts` leaves it alone.
pub(crate) const HELD: i64 = i64::MAX;

/// Where alerts live. Every operation is atomic: a change is applied with its timeline
/// entry, or not at all.
pub trait AlertStore {
    /// Records findings (one transaction for the batch): opens, updates or reopens alerts.
    fn record(&mut self, findings: &[Finding]) -> Result<Vec<Recorded>, AlertError>;

    /// Records findings a replay may deliver again (after a crash, `fundguard run`
    /// replays from its last checkpoint): a finding whose [receipt](model::receipt) is
    /// already stored is skipped, so the replay changes nothing and notifies no one twice.
    /// Receipts are stamped with `epoch`, the number of the last checkpoint (a receipt
    /// met again is stamped anew).
    fn record_once(&mut self, findings: &[Finding], epoch: u64) -> Result<Vec<Recorded>, AlertError>;

    /// Forgets receipts stamped before checkpoint `before_epoch`: what they cover is
    /// never replayed again, so the table stays as small as one checkpoint interval.
    fn forget_receipts(&mut self, before_epoch: u64) -> Result<(), AlertError>;

    /// On a restart from checkpoint `from_epoch`: receipts stamped since were written by
    /// the run that crashed, for findings the replay has yet to reach. They are held (no
    /// `forget_receipts` removes them) until the replay meets them again, when
    /// [`AlertStore::record_once`] stamps them with the current epoch — the restarted
    /// run may write checkpoints before it gets that far.
    fn hold_receipts(&mut self, from_epoch: u64) -> Result<(), AlertError>;

    /// Alerts matching `filter`, most recently seen first.
    fn list(&self, filter: &Filter) -> Result<Vec<Alert>, AlertError>;

    /// One alert with its timeline, oldest entry first.
    fn get(&self, id: i64) -> Result<(Alert, Vec<TimelineEntry>), AlertError>;

    /// Applies a person's change; refused (and nothing written) when the alert's status
    /// does not allow it.
    fn change(&mut self, id: i64, change: &Change, actor: &str, now: EventTime) -> Result<Alert, AlertError>;

    /// Notifications due at `now` (not delivered, not given up), oldest first.
    fn due_notifications(&self, now: EventTime, limit: usize) -> Result<Vec<Notification>, AlertError>;

    /// Records the outcome of one delivery attempt: delivered (with what the receiver
    /// said), retried at `retry_at`, or given up for good (`retry_at` None) with the error
    /// kept for people to see. An action's outcome also goes into its alert's timeline.
    fn delivery_attempted(
        &mut self,
        id: i64,
        outcome: Result<String, String>,
        retry_at: Option<EventTime>,
        now: EventTime,
    ) -> Result<(), AlertError>;

    /// Notifications per state, for health and metrics: (pending, delivered, failed).
    fn notification_counts(&self) -> Result<(u64, u64, u64), AlertError>;

    /// Notifications given up for good, newest first, with their last error.
    fn failed_notifications(&self, limit: usize) -> Result<Vec<Notification>, AlertError>;

    /// How many alerts have each status (statuses without alerts are left out).
    fn status_counts(&self) -> Result<Vec<(Status, u64)>, AlertError>;

    /// Open and acknowledged alerts per rule and status, and their money at risk.
    fn active_figures(&self) -> Result<ActiveFigures, AlertError>;

    /// Adds per-rule increments to their days and records drifts (rule health).
    fn record_rule_stats(&mut self, days: &[RuleDay], drifts: &[RuleDrift]) -> Result<(), AlertError>;

    /// Every rule's days since `since` (`YYYY-MM-DD`), its drifts, and its alerts first seen
    /// since `alerts_since`.
    fn rule_history(&self, since: &str, alerts_since: &str) -> Result<RuleHistory, AlertError>;

    /// Forgets per-rule days before `before` (`YYYY-MM-DD`).
    fn prune_rule_stats(&mut self, before: &str) -> Result<(), AlertError>;

    /// Saves the traffic's baseline counts, which attribution compares incidents with.
    fn save_baseline(&mut self, profile: &Profile, now: EventTime) -> Result<(), AlertError>;

    /// The traffic's baseline counts as last saved.
    fn baseline(&self) -> Result<Option<Profile>, AlertError>;

    /// Incidents (with `status`, or all), most recent first, at most `limit` (0: 100).
    fn incidents(&self, status: Option<IncidentStatus>, limit: usize) -> Result<Vec<Incident>, AlertError>;

    /// One incident with its alerts and its likely causes, ranked.
    fn incident(&self, id: i64) -> Result<IncidentDetail, AlertError>;

    /// Applies a person's change to every alert of incident `id` it applies to (each
    /// audited in its timeline); how many alerts changed.
    fn change_incident(&mut self, id: i64, change: &Change, actor: &str, now: EventTime) -> Result<usize, AlertError>;

    /// Records a person's verdict on a ranked cause of incident `id` (its `name`).
    fn cause_feedback(
        &mut self,
        id: i64,
        cause: &str,
        confirmed: bool,
        note: Option<&str>,
        actor: &str,
        now: EventTime,
    ) -> Result<(), AlertError>;

    /// Queues the incident updates due at `now` that no new alert triggered (an incident
    /// that went quiet tells its final count); how many.
    fn send_due_incident_updates(&mut self, now: EventTime) -> Result<usize, AlertError>;

    /// Stores a change (a deploy, a config change, a migration, DDL); its id. The same
    /// change sent again (same service, kind, version, time and description) is stored
    /// once: its first id is returned.
    fn add_change(&mut self, change: &AttributionChange, now: EventTime) -> Result<i64, AlertError>;

    /// Changes that took effect between `from` and `to`, oldest first.
    fn changes(&self, from: EventTime, to: EventTime) -> Result<Vec<AttributionChange>, AlertError>;
}

impl<T: AlertStore + ?Sized> AlertStore for Box<T> {
    fn record(&mut self, findings: &[Finding]) -> Result<Vec<Recorded>, AlertError> {
        (**self).record(findings)
    }
    fn record_once(&mut self, findings: &[Finding], epoch: u64) -> Result<Vec<Recorded>, AlertError> {
        (**self).record_once(findings, epoch)
    }
    fn forget_receipts(&mut self, before_epoch: u64) -> Result<(), AlertError> {
        (**self).forget_receipts(before_epoch)
    }
    fn hold_receipts(&mut self, from_epoch: u64) -> Result<(), AlertError> {
        (**self).hold_receipts(from_epoch)
    }
    fn list(&self, filter: &Filter) -> Result<Vec<Alert>, AlertError> {
        (**self).list(filter)
    }
    fn get(&self, id: i64) -> Result<(Alert, Vec<TimelineEntry>), AlertError> {
        (**self).get(id)
    }
    fn change(&mut self, id: i64, change: &Change, actor: &str, now: EventTime) -> Result<Alert, AlertError> {
        (**self).change(id, change, actor, now)
    }
    fn due_notifications(&self, now: EventTime, limit: usize) -> Result<Vec<Notification>, AlertError> {
        (**self).due_notifications(now, limit)
    }
    fn delivery_attempted(
        &mut self,
        id: i64,
        outcome: Result<String, String>,
        retry_at: Option<EventTime>,
        now: EventTime,
    ) -> Result<(), AlertError> {
        (**self).delivery_attempted(id, outcome, retry_at, now)
    }
    fn notification_counts(&self) -> Result<(u64, u64, u64), AlertError> {
        (**self).notification_counts()
    }
    fn failed_notifications(&self, limit: usize) -> Result<Vec<Notification>, AlertError> {
        (**self).failed_notifications(limit)
    }
    fn status_counts(&self) -> Result<Vec<(Status, u64)>, AlertError> {
        (**self).status_counts()
    }
    fn active_figures(&self) -> Result<ActiveFigures, AlertError> {
        (**self).active_figures()
    }
    fn record_rule_stats(&mut self, days: &[RuleDay], drifts: &[RuleDrift]) -> Result<(), AlertError> {
        (**self).record_rule_stats(days, drifts)
    }
    fn rule_history(&self, since: &str, alerts_since: &str) -> Result<RuleHistory, AlertError> {
        (**self).rule_history(since, alerts_since)
    }
    fn prune_rule_stats(&mut self, before: &str) -> Result<(), AlertError> {
        (**self).prune_rule_stats(before)
    }
    fn save_baseline(&mut self, profile: &Profile, now: EventTime) -> Result<(), AlertError> {
        (**self).save_baseline(profile, now)
    }
    fn baseline(&self) -> Result<Option<Profile>, AlertError> {
        (**self).baseline()
    }
    fn incidents(&self, status: Option<IncidentStatus>, limit: usize) -> Result<Vec<Incident>, AlertError> {
        (**self).incidents(status, limit)
    }
    fn incident(&self, id: i64) -> Result<IncidentDetail, AlertError> {
        (**self).incident(id)
    }
    fn change_incident(&mut self, id: i64, change: &Change, actor: &str, now: EventTime) -> Result<usize, AlertError> {
        (**self).change_incident(id, change, actor, now)
    }
    fn cause_feedback(
        &mut self,
        id: i64,
        cause: &str,
        confirmed: bool,
        note: Option<&str>,
        actor: &str,
        now: EventTime,
    ) -> Result<(), AlertError> {
        (**self).cause_feedback(id, cause, confirmed, note, actor, now)
    }
    fn send_due_incident_updates(&mut self, now: EventTime) -> Result<usize, AlertError> {
        (**self).send_due_incident_updates(now)
    }
    fn add_change(&mut self, change: &AttributionChange, now: EventTime) -> Result<i64, AlertError> {
        (**self).add_change(change, now)
    }
    fn changes(&self, from: EventTime, to: EventTime) -> Result<Vec<AttributionChange>, AlertError> {
        (**self).changes(from, to)
    }
}

/// Where alerts live: an SQLite file, or a PostgreSQL database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl StoreLocation {
    /// Opens (and migrates) the store, routing notifications and forming incidents as
    /// `policy` says (a routing table alone: the default incidents).
    pub fn open(&self, policy: impl Into<Policy>) -> Result<Box<dyn AlertStore + Send>, AlertError> {
        let policy = policy.into();
        Ok(match self {
            StoreLocation::Sqlite(path) => Box::new(SqliteStore::open(path)?.with_policy(policy)),
            StoreLocation::Postgres(url) => Box::new(PostgresStore::open(url)?.with_policy(policy)),
        })
    }
}

/// One message to one channel about one alert event, kept in the store's outbox until
/// it is delivered: written in the same transaction as the alert change that caused it,
/// so a crash can delay a notification but never lose it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    /// Unique and stable: receivers can use it to drop a repeat after a crash.
    pub id: i64,
    pub alert_id: i64,
    pub channel: String,
    /// `opened`, `reopened` or `resolved`; `action` on the [`ACTION_CHANNEL`].
    pub event: String,
    /// The alert as it was when the event happened.
    pub alert: Alert,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// The containment action to run, on the [`ACTION_CHANNEL`].
    pub action: Option<fundguard_core::Action>,
    /// On an `incident_updated` event: the incident's counts and money so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident: Option<IncidentBrief>,
}

/// The outbox channel of containment actions: an action is queued, retried and recorded
/// like a notification, and its outcome also goes into the alert's timeline.
pub const ACTION_CHANNEL: &str = "action";
