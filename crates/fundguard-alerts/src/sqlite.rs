//! The embedded alert store: one SQLite file (WAL mode) in fundguard's data directory.
//!
//! Times are stored as microseconds since the epoch, so they sort and subtract in SQL;
//! evidence and money are JSON text. The schema is versioned with `user_version` and
//! migrated forward on open; a file from a newer fundguard is refused, never misread.

use std::path::{Path, PathBuf};

use fundguard_core::{Action, ActionMode, EventTime, Finding};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use crate::model::{Alert, AlertError, Change, Filter, Recorded, Status, TimelineEntry, fingerprint};
use crate::routes::Routes;
use crate::{ACTION_CHANNEL, AlertStore, Notification};

/// Schema migrations, in order; `user_version` counts how many have run.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE alerts (
    id              INTEGER PRIMARY KEY,
    fingerprint     TEXT NOT NULL UNIQUE,
    rule            TEXT NOT NULL,
    key_json        TEXT NOT NULL,
    severity        TEXT NOT NULL,
    owner           TEXT NOT NULL,
    status          TEXT NOT NULL,
    assignee        TEXT,
    message         TEXT NOT NULL,
    count           INTEGER NOT NULL,
    event_time      INTEGER NOT NULL,
    first_seen      INTEGER NOT NULL,
    last_seen       INTEGER NOT NULL,
    acknowledged_at INTEGER,
    resolved_at     INTEGER,
    root_cause      TEXT,
    money_json      TEXT,
    evidence_json   TEXT NOT NULL
);
CREATE INDEX alerts_by_status ON alerts (status, last_seen);
CREATE INDEX alerts_by_owner ON alerts (owner, status, last_seen);
CREATE INDEX alerts_by_rule ON alerts (rule, status, last_seen);
CREATE INDEX alerts_by_last_seen ON alerts (last_seen);
CREATE TABLE timeline (
    id       INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL REFERENCES alerts (id),
    at       INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    detail   TEXT
);
CREATE INDEX timeline_by_alert ON timeline (alert_id, id);
"#,
    r#"
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    alert_id        INTEGER NOT NULL REFERENCES alerts (id),
    channel         TEXT NOT NULL,
    event           TEXT NOT NULL,
    alert_json      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    delivered_at    INTEGER,
    failed_at       INTEGER,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE delivered_at IS NULL AND failed_at IS NULL;
"#,
    r#"
ALTER TABLE alerts ADD COLUMN tags_json TEXT NOT NULL DEFAULT '[]';
ALTER TABLE outbox ADD COLUMN action_json TEXT;
ALTER TABLE outbox ADD COLUMN awaiting_approval INTEGER NOT NULL DEFAULT 0;
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL AND awaiting_approval = 0;
CREATE INDEX outbox_failed ON outbox (failed_at) WHERE failed_at IS NOT NULL;
"#,
    // The console filters by one column and pages by recency: each filter walks its own
    // index in last_seen order instead of sorting every match (1M alerts: 640 ms → ms).
    r#"
CREATE INDEX alerts_by_owner_seen ON alerts (owner, last_seen, id);
CREATE INDEX alerts_by_rule_seen ON alerts (rule, last_seen, id);
CREATE INDEX alerts_by_severity_seen ON alerts (severity, last_seen, id);
"#,
    crate::RECEIPTS_MIGRATION,
];

/// The actor of changes fundguard itself makes (opening, reopening).
pub const SYSTEM_ACTOR: &str = "fundguard";

use crate::columns::COLUMNS;

pub struct SqliteStore {
    conn: Connection,
    path: String,
    routes: Routes,
}

impl SqliteStore {
    /// Opens (creating when missing) the store at `path` and migrates its schema.
    pub fn open(path: &Path) -> Result<SqliteStore, AlertError> {
        let shown = path.display().to_string();
        let error = |source| AlertError::Store { path: shown.clone(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| error(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
        }
        let mut conn = Connection::open(path).map_err(error)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(error)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(error)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(error)?;
        // Several connections write (the findings sink, the notifier, the console), so every
        // write transaction takes the lock as it begins (IMMEDIATE) and waits up to this long:
        // a deferred one that read first cannot wait and fails with `database is locked`.
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(error)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(error)?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(AlertError::NewerSchema { path: shown, found: version, known });
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(error)?;
        for migration in &MIGRATIONS[version as usize..] {
            tx.execute_batch(migration).map_err(error)?;
        }
        tx.pragma_update(None, "user_version", known).map_err(error)?;
        tx.commit().map_err(error)?;
        Ok(SqliteStore { conn, path: shown, routes: Routes::default() })
    }

    /// Notifications of alert events go to the channels this table names.
    pub fn with_routes(mut self, routes: Routes) -> SqliteStore {
        self.routes = routes;
        self
    }

    /// The default place: `alerts.db` in the data directory.
    pub fn default_path(data_dir: &Path) -> PathBuf {
        data_dir.join("alerts.db")
    }

    fn error(&self, source: rusqlite::Error) -> AlertError {
        AlertError::Store { path: self.path.clone(), source }
    }
}

fn micros(t: EventTime) -> i64 {
    t.as_micros()
}

fn timeline(
    tx: &Transaction<'_>,
    alert: i64,
    at: i64,
    actor: &str,
    action: &str,
    detail: Option<&str>,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO timeline (alert_id, at, actor, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![alert, at, actor, action, detail],
    )
    .map(|_| ())
}

/// Queues one notification per channel about `event` of alert `id`, in the caller's
/// transaction: the routed channels, and — for a resolution — every channel that heard
/// of the alert opening (so a resolution made from the CLI, which has no routing
/// table, still reaches them).
fn enqueue(tx: &Transaction<'_>, routes: &Routes, id: i64, event: &str, at: i64) -> rusqlite::Result<()> {
    let alert = tx.query_row(&format!("SELECT {COLUMNS} FROM alerts WHERE id = ?1"), [id], alert_from)?;
    let mut channels = routes.channels_for(&alert);
    if event == "resolved" {
        let mut told = tx.prepare(
            "SELECT DISTINCT channel FROM outbox WHERE alert_id = ?1 AND event <> 'resolved' \
             AND channel <> 'action' ORDER BY id",
        )?;
        for channel in told.query_map([id], |r| r.get::<_, String>(0))? {
            let channel = channel?;
            if !channels.contains(&channel) {
                channels.push(channel);
            }
        }
    }
    if channels.is_empty() {
        return Ok(());
    }
    let json = serde_json::to_string(&alert).unwrap_or_default();
    for channel in channels {
        tx.execute(
            "INSERT INTO outbox (alert_id, channel, event, alert_json, created_at, next_attempt_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            params![id, channel, event, json, at],
        )?;
    }
    Ok(())
}

/// Queues the rule's containment action for a newly opened alert, in the caller's
/// transaction; one that needs approval waits until a person gives it.
fn queue_action(tx: &Transaction<'_>, id: i64, action: &Action, at: i64) -> rusqlite::Result<()> {
    let alert = tx.query_row(&format!("SELECT {COLUMNS} FROM alerts WHERE id = ?1"), [id], alert_from)?;
    tx.execute(
        "INSERT INTO outbox (alert_id, channel, event, alert_json, created_at, next_attempt_at, action_json, \
         awaiting_approval) VALUES (?1, ?2, 'action', ?3, ?4, ?4, ?5, ?6)",
        params![
            id,
            ACTION_CHANNEL,
            serde_json::to_string(&alert).unwrap_or_default(),
            at,
            serde_json::to_string(action).unwrap_or_default(),
            action.mode == ActionMode::Approval
        ],
    )?;
    let (entry, detail) = crate::action_queued(action);
    timeline(tx, id, at, SYSTEM_ACTOR, entry, Some(&detail))
}

fn record_one(tx: &Transaction<'_>, routes: &Routes, finding: &Finding) -> rusqlite::Result<Recorded> {
    let fp = fingerprint(finding);
    let evidence = serde_json::to_string(&finding.evidence).unwrap_or_else(|_| "[]".into());
    let money = finding.money_at_risk.as_ref().and_then(|m| serde_json::to_string(m).ok());
    let seen = micros(finding.detected_at);
    let existing: Option<(i64, String)> = tx
        .prepare_cached("SELECT id, status FROM alerts WHERE fingerprint = ?1")?
        .query_row([&fp], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match existing {
        None => {
            tx.execute(
                "INSERT INTO alerts (fingerprint, rule, key_json, severity, owner, status, message, count, \
                 event_time, first_seen, last_seen, money_json, evidence_json, tags_json) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 'open', ?6, 1, ?7, ?8, ?8, ?9, ?10, ?11)",
                params![
                    fp,
                    finding.rule,
                    crate::model::alert_key(finding).to_string(),
                    finding.severity.as_str(),
                    finding.owner,
                    finding.message,
                    micros(finding.event_time),
                    seen,
                    money,
                    evidence,
                    serde_json::to_string(&finding.tags).unwrap_or_else(|_| "[]".into())
                ],
            )?;
            let id = tx.last_insert_rowid();
            timeline(tx, id, seen, SYSTEM_ACTOR, "opened", Some(&finding.message))?;
            enqueue(tx, routes, id, "opened", seen)?;
            if let Some(action) = &finding.action {
                queue_action(tx, id, action, seen)?;
            }
            Ok(Recorded::Opened(id))
        }
        Some((id, status)) => {
            tx.prepare_cached(
                "UPDATE alerts SET count = count + 1, last_seen = max(last_seen, ?2), message = ?3, \
                 money_json = ?4, evidence_json = ?5 WHERE id = ?1",
            )?
            .execute(params![id, seen, finding.message, money, evidence])?;
            if status == Status::Resolved.as_str() {
                tx.execute(
                    "UPDATE alerts SET status = 'open', acknowledged_at = NULL, resolved_at = NULL, \
                     event_time = ?2, first_seen = ?3 WHERE id = ?1",
                    params![id, micros(finding.event_time), seen],
                )?;
                timeline(tx, id, seen, SYSTEM_ACTOR, "reopened", Some(&finding.message))?;
                enqueue(tx, routes, id, "reopened", seen)?;
                Ok(Recorded::Reopened(id))
            } else {
                Ok(Recorded::Updated(id))
            }
        }
    }
}

/// The outbox columns [`notification_from`] reads.
const NOTIFICATION_COLUMNS: &str = "id, alert_id, channel, event, alert_json, attempts, last_error, action_json";

/// A notification from a row of [`NOTIFICATION_COLUMNS`]; `None` when its alert JSON
/// cannot be read (written by a future version), so one bad row blocks nothing.
fn notification_from(r: &Row<'_>) -> rusqlite::Result<Option<Notification>> {
    let Ok(alert) = serde_json::from_str::<Alert>(&r.get::<_, String>(4)?) else { return Ok(None) };
    Ok(Some(Notification {
        id: r.get(0)?,
        alert_id: r.get(1)?,
        channel: r.get(2)?,
        event: r.get(3)?,
        alert,
        attempts: r.get::<_, i64>(5)? as u32,
        last_error: r.get(6)?,
        action: r.get::<_, Option<String>>(7)?.and_then(|a| serde_json::from_str(&a).ok()),
    }))
}

fn notifications<I>(rows: rusqlite::Result<I>) -> rusqlite::Result<Vec<Notification>>
where
    I: Iterator<Item = rusqlite::Result<Option<Notification>>>,
{
    let rows: Vec<Option<Notification>> = rows?.collect::<Result<_, _>>()?;
    Ok(rows.into_iter().flatten().collect())
}

fn alert_from(r: &Row<'_>) -> rusqlite::Result<Alert> {
    crate::columns::alert_from(r)
}

impl crate::columns::Columns for Row<'_> {
    type Error = rusqlite::Error;
    fn text(&self, i: usize) -> rusqlite::Result<String> {
        self.get(i)
    }
    fn opt_text(&self, i: usize) -> rusqlite::Result<Option<String>> {
        self.get(i)
    }
    fn int(&self, i: usize) -> rusqlite::Result<i64> {
        self.get(i)
    }
    fn opt_int(&self, i: usize) -> rusqlite::Result<Option<i64>> {
        self.get(i)
    }
}

impl AlertStore for SqliteStore {
    fn record(&mut self, findings: &[Finding]) -> Result<Vec<Recorded>, AlertError> {
        let path = self.path.clone();
        let error = |source| AlertError::Store { path: path.clone(), source };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(error)?;
        let mut out = Vec::with_capacity(findings.len());
        for f in findings {
            out.push(record_one(&tx, &self.routes, f).map_err(error)?);
        }
        tx.commit().map_err(error)?;
        Ok(out)
    }

    fn record_once(&mut self, findings: &[Finding], epoch: u64) -> Result<Vec<Recorded>, AlertError> {
        let path = self.path.clone();
        let error = |source| AlertError::Store { path: path.clone(), source };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(error)?;
        let mut out = Vec::with_capacity(findings.len());
        {
            let mut receipt = tx
                .prepare_cached("INSERT OR IGNORE INTO finding_receipts (id, epoch) VALUES (?1, ?2)")
                .map_err(error)?;
            let mut met_again =
                tx.prepare_cached("UPDATE finding_receipts SET epoch = ?2 WHERE id = ?1").map_err(error)?;
            for f in findings {
                let args = rusqlite::params![crate::model::receipt(f), epoch as i64];
                if receipt.execute(args).map_err(error)? == 1 {
                    out.push(record_one(&tx, &self.routes, f).map_err(error)?);
                } else {
                    met_again.execute(args).map_err(error)?;
                }
            }
        }
        tx.commit().map_err(error)?;
        Ok(out)
    }

    fn forget_receipts(&mut self, before_epoch: u64) -> Result<(), AlertError> {
        self.conn
            .execute("DELETE FROM finding_receipts WHERE epoch < ?1", [before_epoch as i64])
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    fn hold_receipts(&mut self, from_epoch: u64) -> Result<(), AlertError> {
        self.conn
            .execute("UPDATE finding_receipts SET epoch = ?1 WHERE epoch >= ?2", [crate::HELD, from_epoch as i64])
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    fn list(&self, filter: &Filter) -> Result<Vec<Alert>, AlertError> {
        let mut sql = format!("SELECT {COLUMNS} FROM alerts WHERE 1 = 1");
        let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
        let mut add = |clause: &str, value: Box<dyn rusqlite::ToSql>| {
            args.push(value);
            sql.push_str(&format!(" AND {clause} ?{}", args.len()));
        };
        if let Some(s) = filter.status {
            add("status =", Box::new(s.as_str()));
        }
        if let Some(o) = &filter.owner {
            add("owner =", Box::new(o.clone()));
        }
        if let Some(r) = &filter.rule {
            add("rule =", Box::new(r.clone()));
        }
        if let Some(s) = filter.severity {
            add("severity =", Box::new(s.as_str()));
        }
        if let Some(t) = filter.since {
            add("last_seen >=", Box::new(t.as_micros()));
        }
        let limit = if filter.limit == 0 { 100 } else { filter.limit };
        sql.push_str(&format!(" ORDER BY last_seen DESC, id DESC LIMIT {limit} OFFSET {}", filter.offset));
        let mut statement = self.conn.prepare(&sql).map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(rusqlite::params_from_iter(args.iter().map(|a| a.as_ref())), alert_from)
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.error(e))
    }

    fn get(&self, id: i64) -> Result<(Alert, Vec<TimelineEntry>), AlertError> {
        let alert = self
            .conn
            .query_row(&format!("SELECT {COLUMNS} FROM alerts WHERE id = ?1"), [id], alert_from)
            .optional()
            .map_err(|e| self.error(e))?
            .ok_or(AlertError::NotFound(id))?;
        let mut statement = self
            .conn
            .prepare("SELECT at, actor, action, detail FROM timeline WHERE alert_id = ?1 ORDER BY id")
            .map_err(|e| self.error(e))?;
        let entries = statement
            .query_map([id], |r| {
                Ok(TimelineEntry {
                    at: EventTime::from_micros(r.get(0)?),
                    actor: r.get(1)?,
                    action: r.get(2)?,
                    detail: r.get(3)?,
                })
            })
            .map_err(|e| self.error(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(e))?;
        Ok((alert, entries))
    }

    fn change(&mut self, id: i64, change: &Change, actor: &str, now: EventTime) -> Result<Alert, AlertError> {
        let path = self.path.clone();
        let error = |source| AlertError::Store { path: path.clone(), source };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(error)?;
        let status: String = tx
            .query_row("SELECT status FROM alerts WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .map_err(error)?
            .ok_or(AlertError::NotFound(id))?;
        let from = Status::parse(&status).unwrap_or(Status::Open);
        let to = change.apply_to(id, from)?;
        let at = micros(now);
        let detail = change.detail();
        let update = match change {
            Change::Acknowledge => tx.execute(
                "UPDATE alerts SET status = ?2, acknowledged_at = ?3 WHERE id = ?1",
                params![id, to.as_str(), at],
            ),
            Change::Resolve { .. } | Change::FalsePositive { .. } | Change::Expected { .. } => tx.execute(
                "UPDATE alerts SET status = ?2, resolved_at = ?3, root_cause = ?4, \
                 acknowledged_at = coalesce(acknowledged_at, ?3) WHERE id = ?1",
                params![id, to.as_str(), at, detail],
            ),
            Change::Assign { to: who } => tx.execute("UPDATE alerts SET assignee = ?2 WHERE id = ?1", params![id, who]),
            Change::Note { .. } => Ok(0),
            Change::ApproveAction => tx.execute(
                "UPDATE outbox SET awaiting_approval = 0, next_attempt_at = ?2 \
                 WHERE alert_id = ?1 AND channel = 'action' AND awaiting_approval = 1",
                params![id, at],
            ),
            Change::RejectAction { reason } => tx.execute(
                "UPDATE outbox SET awaiting_approval = 0, failed_at = ?2, last_error = ?3 \
                 WHERE alert_id = ?1 AND channel = 'action' AND awaiting_approval = 1",
                params![id, at, format!("rejected by {actor}: {reason}")],
            ),
        };
        let touched = update.map_err(error)?;
        if matches!(change, Change::ApproveAction | Change::RejectAction { .. }) && touched == 0 {
            return Err(AlertError::InvalidChange(format!("alert {id} has no action waiting for approval")));
        }
        timeline(&tx, id, at, actor, change.action(), detail).map_err(error)?;
        if to == Status::Resolved {
            enqueue(&tx, &self.routes, id, "resolved", at).map_err(error)?;
        }
        tx.commit().map_err(error)?;
        Ok(self.get(id)?.0)
    }

    fn due_notifications(&self, now: EventTime, limit: usize) -> Result<Vec<Notification>, AlertError> {
        let mut statement = self
            .conn
            .prepare(&format!(
                "SELECT {NOTIFICATION_COLUMNS} FROM outbox \
                 WHERE delivered_at IS NULL AND failed_at IS NULL AND awaiting_approval = 0 AND next_attempt_at <= ?1 \
                 ORDER BY next_attempt_at, id LIMIT ?2",
            ))
            .map_err(|e| self.error(e))?;
        let rows = statement.query_map(params![now.as_micros(), limit as i64], notification_from);
        notifications(rows).map_err(|e| self.error(e))
    }

    fn active_figures(&self) -> Result<crate::ActiveFigures, AlertError> {
        let mut statement = self
            .conn
            .prepare("SELECT rule, owner, status, money_json FROM alerts WHERE status IN ('open', 'acknowledged')")
            .map_err(|e| self.error(e))?;
        let mut rows = statement.query([]).map_err(|e| self.error(e))?;
        let mut figures = crate::ActiveFigures::default();
        while let Some(r) = rows.next().map_err(|e| self.error(e))? {
            let read = || -> rusqlite::Result<(String, String, String, Option<String>)> {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            };
            let (rule, owner, status, money) = read().map_err(|e| self.error(e))?;
            figures.add(&rule, &owner, &status, money.as_deref());
        }
        Ok(figures)
    }

    fn status_counts(&self) -> Result<Vec<(Status, u64)>, AlertError> {
        let mut statement =
            self.conn.prepare("SELECT status, count(*) FROM alerts GROUP BY status").map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))
            .map_err(|e| self.error(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(e))?;
        Ok(rows.into_iter().filter_map(|(s, n)| Some((Status::parse(&s)?, n))).collect())
    }

    fn failed_notifications(&self, limit: usize) -> Result<Vec<Notification>, AlertError> {
        let mut statement = self
            .conn
            .prepare(&format!(
                "SELECT {NOTIFICATION_COLUMNS} FROM outbox WHERE failed_at IS NOT NULL ORDER BY failed_at DESC, id DESC LIMIT ?1"
            ))
            .map_err(|e| self.error(e))?;
        let rows = statement.query_map(params![limit as i64], notification_from);
        notifications(rows).map_err(|e| self.error(e))
    }

    fn delivery_attempted(
        &mut self,
        id: i64,
        outcome: Result<String, String>,
        retry_at: Option<EventTime>,
        now: EventTime,
    ) -> Result<(), AlertError> {
        let at = now.as_micros();
        let path = self.path.clone();
        let error = |source| AlertError::Store { path: path.clone(), source };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(error)?;
        let (alert, channel, attempts): (i64, String, i64) = tx
            .query_row("SELECT alert_id, channel, attempts FROM outbox WHERE id = ?1", [id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(error)?;
        if channel == ACTION_CHANNEL
            && let Some((entry, detail)) = crate::action_attempted(&outcome, retry_at, attempts)
        {
            timeline(&tx, alert, at, SYSTEM_ACTOR, entry, Some(&detail)).map_err(error)?;
        }
        let result = match (outcome, retry_at) {
            (Ok(_), _) => tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, delivered_at = ?2, last_error = NULL WHERE id = ?1",
                params![id, at],
            ),
            (Err(e), Some(retry)) => tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3 WHERE id = ?1",
                params![id, retry.as_micros(), e],
            ),
            (Err(e), None) => tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, failed_at = ?2, last_error = ?3 WHERE id = ?1",
                params![id, at, e],
            ),
        };
        result.map_err(error)?;
        tx.commit().map_err(error)
    }

    fn notification_counts(&self) -> Result<(u64, u64, u64), AlertError> {
        self.conn
            .query_row(
                "SELECT count(*) FILTER (WHERE delivered_at IS NULL AND failed_at IS NULL), \
                        count(delivered_at), count(failed_at) FROM outbox",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64)),
            )
            .map_err(|e| self.error(e))
    }
}
