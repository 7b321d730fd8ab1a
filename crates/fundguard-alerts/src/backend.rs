//! How a store runs the lifecycle: a backend opens a transaction (or borrows its
//! connection, for reads) and hands the lifecycle a [`Sql`] executor over it; the
//! [`AlertStore`] impl that maps each operation onto the lifecycle is
//! written once, below, for every backend.

use fundguard_attribution::{Change as AttributionChange, Profile};
use fundguard_core::{EventTime, Finding};

use crate::incidents::{self, Incident, IncidentDetail, IncidentStatus, Policy};
use crate::model::{Alert, AlertError, Change, Filter, Recorded, Status, TimelineEntry};
use crate::rule_stats::{RuleDay, RuleDrift, RuleHistory};
use crate::sql::Sql;
use crate::{ActiveFigures, AlertStore, Notification, lifecycle, outbox, queries, rule_stats};

/// A database an alert store lives in.
pub(crate) trait Backend {
    /// Runs `work` in one write transaction, committed when `work` succeeds and rolled
    /// back when it fails: a change is applied with its timeline entry, or not at all.
    fn write<T>(&mut self, work: impl FnOnce(&mut dyn Sql, &Policy) -> Result<T, AlertError>) -> Result<T, AlertError>;

    /// How the store routes notifications and forms incidents.
    fn policy(&self) -> &Policy;

    /// Runs `work` on the connection as it is (reads only).
    fn read<T>(&self, work: impl FnOnce(&mut dyn Sql) -> Result<T, AlertError>) -> Result<T, AlertError>;
}

/// Implements [`AlertStore`] for a [`Backend`]: each operation is one
/// lifecycle function, run in a write transaction or on a read. (A macro rather than a
/// blanket `impl<B: Backend> AlertStore for B`, which the `Box<T>` impl rules out.)
macro_rules! alert_store {
    ($store:ty) => {
        impl AlertStore for $store {
            fn record(&mut self, findings: &[Finding]) -> Result<Vec<Recorded>, AlertError> {
                self.write(|sql, policy| lifecycle::record(sql, policy, findings))
            }
            fn record_once(&mut self, findings: &[Finding], epoch: u64) -> Result<Vec<Recorded>, AlertError> {
                self.write(|sql, policy| lifecycle::record_once(sql, policy, findings, epoch))
            }
            fn forget_receipts(&mut self, before_epoch: u64) -> Result<(), AlertError> {
                self.write(|sql, _| lifecycle::forget_receipts(sql, before_epoch))
            }
            fn hold_receipts(&mut self, from_epoch: u64) -> Result<(), AlertError> {
                self.write(|sql, _| lifecycle::hold_receipts(sql, from_epoch))
            }
            fn list(&self, filter: &Filter) -> Result<Vec<Alert>, AlertError> {
                self.read(|sql| queries::list(sql, filter))
            }
            fn get(&self, id: i64) -> Result<(Alert, Vec<TimelineEntry>), AlertError> {
                self.read(|sql| queries::get(sql, id))
            }
            fn change(&mut self, id: i64, change: &Change, actor: &str, now: EventTime) -> Result<Alert, AlertError> {
                self.write(|sql, policy| lifecycle::change(sql, &policy.routes, id, change, actor, now))?;
                self.read(|sql| queries::alert(sql, id))?.ok_or(AlertError::NotFound(id))
            }
            fn due_notifications(&self, now: EventTime, limit: usize) -> Result<Vec<Notification>, AlertError> {
                self.read(|sql| outbox::due(sql, now, limit))
            }
            fn delivery_attempted(
                &mut self,
                id: i64,
                outcome: Result<String, String>,
                retry_at: Option<EventTime>,
                now: EventTime,
            ) -> Result<(), AlertError> {
                self.write(|sql, _| outbox::attempted(sql, id, outcome, retry_at, now))
            }
            fn notification_counts(&self) -> Result<(u64, u64, u64), AlertError> {
                self.read(|sql| outbox::counts(sql))
            }
            fn failed_notifications(&self, limit: usize) -> Result<Vec<Notification>, AlertError> {
                self.read(|sql| outbox::failed(sql, limit))
            }
            fn status_counts(&self) -> Result<Vec<(Status, u64)>, AlertError> {
                self.read(|sql| queries::status_counts(sql))
            }
            fn active_figures(&self) -> Result<ActiveFigures, AlertError> {
                self.read(|sql| queries::active_figures(sql))
            }
            fn record_rule_stats(&mut self, days: &[RuleDay], drifts: &[RuleDrift]) -> Result<(), AlertError> {
                self.write(|sql, _| rule_stats::record(sql, days, drifts))
            }
            fn rule_history(&self, since: &str, alerts_since: &str) -> Result<RuleHistory, AlertError> {
                self.read(|sql| rule_stats::history(sql, since, alerts_since))
            }
            fn prune_rule_stats(&mut self, before: &str) -> Result<(), AlertError> {
                self.write(|sql, _| rule_stats::prune(sql, before))
            }
            fn save_baseline(&mut self, profile: &Profile, now: EventTime) -> Result<(), AlertError> {
                self.write(|sql, _| incidents::save_baseline(sql, profile, now.as_micros()))
            }
            fn baseline(&self) -> Result<Option<Profile>, AlertError> {
                self.read(|sql| incidents::baseline(sql))
            }
            fn incidents(&self, status: Option<IncidentStatus>, limit: usize) -> Result<Vec<Incident>, AlertError> {
                self.read(|sql| incidents::list(sql, status, limit))
            }
            fn incident(&self, id: i64) -> Result<IncidentDetail, AlertError> {
                let policy = self.policy().incidents.clone();
                self.read(|sql| incidents::detail(sql, &policy, id))
            }
            fn change_incident(
                &mut self,
                id: i64,
                change: &Change,
                actor: &str,
                now: EventTime,
            ) -> Result<usize, AlertError> {
                self.write(|sql, policy| incidents::change(sql, &policy.routes, id, change, actor, now))
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
                self.write(|sql, _| incidents::feedback(sql, id, cause, confirmed, note, actor, now.as_micros()))
            }
            fn send_due_incident_updates(&mut self, now: EventTime) -> Result<usize, AlertError> {
                self.write(|sql, policy| incidents::send_due_updates(sql, policy, now.as_micros()))
            }
            fn add_change(&mut self, change: &AttributionChange, now: EventTime) -> Result<i64, AlertError> {
                self.write(|sql, _| incidents::add_change(sql, change, now.as_micros()))
            }
            fn changes(&self, from: EventTime, to: EventTime) -> Result<Vec<AttributionChange>, AlertError> {
                self.read(|sql| incidents::changes(sql, from, to))
            }
        }
    };
}

// The two stores: each a [`Backend`] (its own file) and so an `AlertStore` (here).
alert_store!(crate::SqliteStore);
alert_store!(crate::PostgresStore);
