//! The outbox: notifications and containment actions, queued in the same transaction
//! as the alert change that causes them and delivered later, once for both stores.
//!
//! A row is due while it is neither delivered nor given up (nor waiting for a person to
//! approve its action) and its `next_attempt_at` has come; every attempt is counted, and
//! an action's outcome also goes into its alert's timeline.

use std::collections::{HashMap, HashSet};

use fundguard_core::{Action, ActionMode, EventTime};

use crate::columns::{COLUMNS, NOTIFICATION_COLUMNS, alert_from, notification_from};
use crate::lifecycle::{SYSTEM_ACTOR, timeline};
use crate::model::{Alert, AlertError};
use crate::routes::Routes;
use crate::sql::{ROWS_PER_STATEMENT, Sql, Value, in_list, values_rows};
use crate::{ACTION_CHANNEL, Notification};

/// Alert `id` as it is now in the caller's transaction (what a notification carries).
fn alert_json(sql: &mut dyn Sql, id: i64) -> Result<(Alert, String), AlertError> {
    let alert = sql.one(&format!("SELECT {COLUMNS} FROM alerts WHERE id = $1"), &[id.into()], alert_from)?;
    let json = serde_json::to_string(&alert).unwrap_or_default();
    Ok((alert, json))
}

/// Queues one notification per channel about `event` of alert `id`, in the caller's
/// transaction: the routed channels, and — for a resolution — every channel that heard
/// of the alert opening (so a resolution made from the CLI, which has no routing
/// table, still reaches them).
pub(crate) fn enqueue(sql: &mut dyn Sql, routes: &Routes, id: i64, event: &str, at: i64) -> Result<(), AlertError> {
    if event != "resolved" {
        return enqueue_many(sql, routes, &[(id, event, at)]);
    }
    let (alert, json) = alert_json(sql, id)?;
    let mut channels = routes.channels_for(&alert);
    let told = sql.rows(
        "SELECT channel FROM outbox WHERE alert_id = $1 AND event <> 'resolved' AND channel <> 'action' \
         GROUP BY channel ORDER BY min(id)",
        &[id.into()],
        |r| r.text(0),
    )?;
    for channel in told {
        if !channels.contains(&channel) {
            channels.push(channel);
        }
    }
    let rows: Vec<(i64, String, &str, &str, i64)> =
        channels.into_iter().map(|channel| (id, channel, event, json.as_str(), at)).collect();
    insert_notifications(sql, &rows)
}

/// Queues the notifications of several alert events that go to their routed channels
/// (`opened`, `reopened`): each alert read once, the outbox rows written in one statement
/// per [`ROWS_PER_STATEMENT`]. `events` are (alert id, event, time), queued in that order.
pub(crate) fn enqueue_many(sql: &mut dyn Sql, routes: &Routes, events: &[(i64, &str, i64)]) -> Result<(), AlertError> {
    let ids: Vec<i64> = events.iter().map(|(id, ..)| *id).collect::<HashSet<_>>().into_iter().collect();
    let mut alerts = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let select = format!("SELECT {COLUMNS} FROM alerts WHERE id IN ({})", in_list(1, chunk.len()));
        let params: Vec<Value> = chunk.iter().map(|id| (*id).into()).collect();
        for alert in sql.rows(&select, &params, alert_from)? {
            let json = serde_json::to_string(&alert).unwrap_or_default();
            alerts.insert(alert.id, (alert, json));
        }
    }
    let mut rows = Vec::new();
    for (id, event, at) in events {
        let (alert, json) = alerts.get(id).ok_or(AlertError::NotFound(*id))?;
        rows.extend(routes.channels_for(alert).into_iter().map(|channel| (*id, channel, *event, json.as_str(), *at)));
    }
    insert_notifications(sql, &rows)
}

/// Writes outbox rows (alert id, channel, event, alert JSON, time), due at once.
fn insert_notifications(sql: &mut dyn Sql, rows: &[(i64, String, &str, &str, i64)]) -> Result<(), AlertError> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let insert = format!(
            "INSERT INTO outbox (alert_id, channel, event, alert_json, created_at, next_attempt_at) VALUES {}",
            values_rows(chunk.len(), &["", "", "", "", "", ""])
        );
        let mut params = Vec::with_capacity(chunk.len() * 6);
        for (id, channel, event, json, at) in chunk {
            params.extend([
                (*id).into(),
                channel.as_str().into(),
                (*event).into(),
                (*json).into(),
                (*at).into(),
                (*at).into(),
            ]);
        }
        sql.execute(&insert, &params)?;
    }
    Ok(())
}

/// Queues an update of incident `brief.id` — about its first alert `id`, carrying the
/// incident's counts and money — on the channels routed for that alert.
pub(crate) fn enqueue_incident_update(
    sql: &mut dyn Sql,
    routes: &Routes,
    id: i64,
    brief: &crate::incidents::IncidentBrief,
    at: i64,
) -> Result<(), AlertError> {
    let (alert, _) = alert_json(sql, id)?;
    let mut json = serde_json::to_value(&alert).unwrap_or_default();
    if let Some(fields) = json.as_object_mut() {
        fields.insert("incident".into(), serde_json::to_value(brief).unwrap_or_default());
    }
    for channel in routes.channels_for(&alert) {
        sql.execute(
            "INSERT INTO outbox (alert_id, channel, event, alert_json, created_at, next_attempt_at) \
             VALUES ($1, $2, 'incident_updated', $3, $4, $4)",
            &[id.into(), channel.into(), json.to_string().into(), at.into()],
        )?;
    }
    Ok(())
}

/// Queues the rule's containment action for a newly opened alert, in the caller's
/// transaction; one that needs approval waits until a person gives it.
pub(crate) fn queue_action(sql: &mut dyn Sql, id: i64, action: &Action, at: i64) -> Result<(), AlertError> {
    let (_, json) = alert_json(sql, id)?;
    let awaiting = i64::from(action.mode == ActionMode::Approval);
    sql.execute(
        "INSERT INTO outbox (alert_id, channel, event, alert_json, created_at, next_attempt_at, action_json, \
         awaiting_approval) VALUES ($1, $2, 'action', $3, $4, $4, $5, $6)",
        &[
            id.into(),
            ACTION_CHANNEL.into(),
            json.into(),
            at.into(),
            serde_json::to_string(action).unwrap_or_default().into(),
            awaiting.into(),
        ],
    )?;
    let (entry, detail) = action_queued(action);
    timeline(sql, id, at, SYSTEM_ACTOR, entry, Some(&detail))
}

/// Notifications due at `now`, oldest first (rows whose alert JSON cannot be read are
/// passed over, so one bad row blocks nothing).
pub(crate) fn due(sql: &mut dyn Sql, now: EventTime, limit: usize) -> Result<Vec<Notification>, AlertError> {
    let due = sql.rows(
        &format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM outbox \
             WHERE delivered_at IS NULL AND failed_at IS NULL AND awaiting_approval = 0 AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at, id LIMIT $2"
        ),
        &[now.as_micros().into(), count(limit)],
        notification_from,
    )?;
    Ok(due.into_iter().flatten().collect())
}

/// Notifications given up for good, newest first.
pub(crate) fn failed(sql: &mut dyn Sql, limit: usize) -> Result<Vec<Notification>, AlertError> {
    let failed = sql.rows(
        &format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM outbox WHERE failed_at IS NOT NULL \
             ORDER BY failed_at DESC, id DESC LIMIT $1"
        ),
        &[count(limit)],
        notification_from,
    )?;
    Ok(failed.into_iter().flatten().collect())
}

/// A row count as a parameter (`LIMIT`, `OFFSET`): more than fits is as good as all.
pub(crate) fn count(n: usize) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Records the outcome of one delivery attempt of outbox row `id` (see
/// [`crate::AlertStore::delivery_attempted`]).
pub(crate) fn attempted(
    sql: &mut dyn Sql,
    id: i64,
    outcome: Result<String, String>,
    retry_at: Option<EventTime>,
    now: EventTime,
) -> Result<(), AlertError> {
    let at = now.as_micros();
    let (alert, channel, attempts) =
        sql.one("SELECT alert_id, channel, attempts FROM outbox WHERE id = $1", &[id.into()], |r| {
            Ok((r.int(0)?, r.text(1)?, r.int(2)?))
        })?;
    if channel == ACTION_CHANNEL
        && let Some((entry, detail)) = action_attempted(&outcome, retry_at, attempts)
    {
        timeline(sql, alert, at, SYSTEM_ACTOR, entry, Some(&detail))?;
    }
    let (update, params): (&str, Vec<Value>) = match (outcome, retry_at) {
        (Ok(_), _) => (
            "UPDATE outbox SET attempts = attempts + 1, delivered_at = $2, last_error = NULL WHERE id = $1",
            vec![id.into(), at.into()],
        ),
        (Err(e), Some(retry)) => (
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3 WHERE id = $1",
            vec![id.into(), retry.as_micros().into(), e.into()],
        ),
        (Err(e), None) => (
            "UPDATE outbox SET attempts = attempts + 1, failed_at = $2, last_error = $3 WHERE id = $1",
            vec![id.into(), at.into(), e.into()],
        ),
    };
    sql.execute(update, &params).map(|_| ())
}

/// Notifications per state: (pending, delivered, failed).
pub(crate) fn counts(sql: &mut dyn Sql) -> Result<(u64, u64, u64), AlertError> {
    sql.one(
        "SELECT count(*) FILTER (WHERE delivered_at IS NULL AND failed_at IS NULL), \
                count(delivered_at), count(failed_at) FROM outbox",
        &[],
        |r| Ok((r.int(0)? as u64, r.int(1)? as u64, r.int(2)? as u64)),
    )
}

/// The timeline entry (action, detail) for a containment action just queued.
fn action_queued(action: &Action) -> (&'static str, String) {
    let what = format!("{}: {} {}", action.name, action.method, action.url);
    match action.mode {
        ActionMode::Run => ("action_queued", what),
        ActionMode::DryRun => ("action_queued", format!("{what} (dry run: recorded, not called)")),
        ActionMode::Approval => {
            ("action_awaiting_approval", format!("{what}: `fundguard alerts approve` runs it, `reject` cancels it"))
        }
    }
}

/// The timeline entry (action, detail) for one attempt at a containment action: every
/// success and final failure, and the first failure (not each of a hundred retries).
fn action_attempted(
    outcome: &Result<String, String>,
    retry_at: Option<EventTime>,
    attempts_before: i64,
) -> Option<(&'static str, String)> {
    match (outcome, retry_at) {
        (Ok(said), _) => Some(("action_succeeded", said.clone())),
        (Err(e), Some(at)) if attempts_before == 0 => Some(("action_failed", format!("{e}; retrying from {at}"))),
        (Err(_), Some(_)) => None,
        (Err(e), None) => Some(("action_gave_up", e.clone())),
    }
}
