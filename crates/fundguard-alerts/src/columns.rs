//! The rows both stores share: each column list once, and one reading of it.

use fundguard_core::{EventTime, Severity};

use crate::Notification;
use crate::model::{Alert, Status, TimelineEntry};
use crate::sql::{Row, RowError};

/// The columns of `alerts`, in the order [`alert_from`] reads them.
pub(crate) const COLUMNS: &str = "id, fingerprint, rule, key_json, severity, owner, status, assignee, message, count, \
    event_time, first_seen, last_seen, acknowledged_at, resolved_at, root_cause, money_json, evidence_json, tags_json, \
    incident_id";

/// Reads an alert from a row of [`COLUMNS`]. Times are microseconds; JSON is text.
pub(crate) fn alert_from(r: &Row) -> Result<Alert, RowError> {
    let json = |i: usize| -> Result<serde_json::Value, RowError> {
        let text = r.text(i)?;
        Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    };
    let time = |i: usize| -> Result<Option<EventTime>, RowError> { Ok(r.opt_int(i)?.map(EventTime::from_micros)) };
    Ok(Alert {
        id: r.int(0)?,
        fingerprint: r.text(1)?,
        rule: r.text(2)?,
        key: json(3)?,
        severity: serde_json::from_value(serde_json::Value::String(r.text(4)?)).unwrap_or(Severity::Critical),
        owner: r.text(5)?,
        status: Status::parse(&r.text(6)?).unwrap_or(Status::Open),
        assignee: r.opt_text(7)?,
        message: r.text(8)?,
        count: r.int(9)? as u64,
        event_time: EventTime::from_micros(r.int(10)?),
        first_seen: EventTime::from_micros(r.int(11)?),
        last_seen: EventTime::from_micros(r.int(12)?),
        acknowledged_at: time(13)?,
        resolved_at: time(14)?,
        root_cause: r.opt_text(15)?,
        money_at_risk: r.opt_text(16)?.and_then(|m| serde_json::from_str(&m).ok()),
        evidence: json(17)?,
        tags: serde_json::from_str(&r.text(18)?).unwrap_or_default(),
        incident_id: r.opt_int(19)?,
    })
}

/// The columns of `timeline`, in the order [`timeline_entry_from`] reads them.
pub(crate) const TIMELINE_COLUMNS: &str = "at, actor, action, detail";

/// Reads a timeline entry from a row of [`TIMELINE_COLUMNS`].
pub(crate) fn timeline_entry_from(r: &Row) -> Result<TimelineEntry, RowError> {
    Ok(TimelineEntry {
        at: EventTime::from_micros(r.int(0)?),
        actor: r.text(1)?,
        action: r.text(2)?,
        detail: r.opt_text(3)?,
    })
}

/// The outbox columns [`notification_from`] reads.
pub(crate) const NOTIFICATION_COLUMNS: &str =
    "id, alert_id, channel, event, alert_json, attempts, last_error, action_json";

/// A notification from a row of [`NOTIFICATION_COLUMNS`]; `None` when its alert JSON
/// cannot be read (written by a future version), so one bad row blocks nothing.
pub(crate) fn notification_from(r: &Row) -> Result<Option<Notification>, RowError> {
    let text = r.text(4)?;
    let Ok(alert) = serde_json::from_str::<Alert>(&text) else { return Ok(None) };
    // An incident update carries the incident beside its first alert.
    let incident = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|mut v| v.get_mut("incident").map(serde_json::Value::take))
        .and_then(|i| serde_json::from_value(i).ok());
    Ok(Some(Notification {
        incident,
        id: r.int(0)?,
        alert_id: r.int(1)?,
        channel: r.text(2)?,
        event: r.text(3)?,
        alert,
        attempts: r.int(5)? as u32,
        last_error: r.opt_text(6)?,
        action: r.opt_text(7)?.and_then(|a| serde_json::from_str(&a).ok()),
    }))
}
