//! The alert row both stores share: one column list, one reading of it.

use fundguard_core::{EventTime, Severity};

use crate::model::{Alert, Status};

/// The columns of `alerts`, in the order [`alert_from`] reads them.
pub(crate) const COLUMNS: &str = "id, fingerprint, rule, key_json, severity, owner, status, assignee, message, count, \
    event_time, first_seen, last_seen, acknowledged_at, resolved_at, root_cause, money_json, evidence_json, tags_json";

/// Typed access to one result row, whatever the database.
pub(crate) trait Columns {
    type Error;
    fn text(&self, i: usize) -> Result<String, Self::Error>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, Self::Error>;
    fn int(&self, i: usize) -> Result<i64, Self::Error>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, Self::Error>;
}

/// Reads an alert from a row of [`COLUMNS`]. Times are microseconds; JSON is text.
pub(crate) fn alert_from<R: Columns>(r: &R) -> Result<Alert, R::Error> {
    let json = |i: usize| -> Result<serde_json::Value, R::Error> {
        let text = r.text(i)?;
        Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    };
    let time = |i: usize| -> Result<Option<EventTime>, R::Error> { Ok(r.opt_int(i)?.map(EventTime::from_micros)) };
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
    })
}
