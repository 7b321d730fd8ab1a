//! What recording a finding and changing an alert write, once for both stores.
//!
//! Each function runs inside the caller's transaction (see [`crate::backend`]), so an
//! alert change, its timeline entry and the notifications it queues are written together
//! or not at all. Statements are neutral SQL ([`crate::sql`]): `$n` parameters, and the
//! [`Dialect`](crate::sql::Dialect) formatted in where the databases differ.

use fundguard_core::{EventTime, Finding};

use crate::incidents::{IncidentBatch, Policy};
use crate::model::{AlertError, Change, Recorded, Status, fingerprint};
use crate::outbox::{enqueue, queue_action};
use crate::routes::Routes;
use crate::sql::Sql;

/// The actor of changes fundguard itself makes (opening, reopening).
pub const SYSTEM_ACTOR: &str = "fundguard";

/// Adds an entry to alert `alert`'s timeline.
pub(crate) fn timeline(
    sql: &mut dyn Sql,
    alert: i64,
    at: i64,
    actor: &str,
    action: &str,
    detail: Option<&str>,
) -> Result<(), AlertError> {
    sql.execute(
        "INSERT INTO timeline (alert_id, at, actor, action, detail) VALUES ($1, $2, $3, $4, $5)",
        &[alert.into(), at.into(), actor.into(), action.into(), detail.into()],
    )
    .map(|_| ())
}

/// Records findings: opens, updates or reopens their alerts; new alerts join incidents.
pub(crate) fn record(sql: &mut dyn Sql, policy: &Policy, findings: &[Finding]) -> Result<Vec<Recorded>, AlertError> {
    let mut incidents = IncidentBatch::new(&policy.incidents);
    let recorded =
        findings.iter().map(|f| record_one(sql, &policy.routes, &mut incidents, f)).collect::<Result<_, _>>()?;
    incidents.flush(sql, &policy.routes, batch_time(findings))?;
    Ok(recorded)
}

/// The time of a batch of findings: when the newest was detected.
fn batch_time(findings: &[Finding]) -> i64 {
    findings.iter().map(|f| f.detected_at.as_micros()).max().unwrap_or(0)
}

/// Records the findings whose receipts are not stored yet, and stores them; a receipt
/// met again is stamped with `epoch` (see [`crate::AlertStore::record_once`]).
pub(crate) fn record_once(
    sql: &mut dyn Sql,
    policy: &Policy,
    findings: &[Finding],
    epoch: u64,
) -> Result<Vec<Recorded>, AlertError> {
    let routes = &policy.routes;
    let mut incidents = IncidentBatch::new(&policy.incidents);
    let mut out = Vec::with_capacity(findings.len());
    for f in findings {
        let args = [crate::model::receipt(f).into(), (epoch as i64).into()];
        let new =
            sql.execute("INSERT INTO finding_receipts (id, epoch) VALUES ($1, $2) ON CONFLICT DO NOTHING", &args)?;
        if new == 1 {
            out.push(record_one(sql, routes, &mut incidents, f)?);
        } else {
            sql.execute("UPDATE finding_receipts SET epoch = $2 WHERE id = $1", &args)?;
        }
    }
    incidents.flush(sql, routes, batch_time(findings))?;
    Ok(out)
}

/// Forgets receipts stamped before checkpoint `before_epoch`.
pub(crate) fn forget_receipts(sql: &mut dyn Sql, before_epoch: u64) -> Result<(), AlertError> {
    sql.execute("DELETE FROM finding_receipts WHERE epoch < $1", &[(before_epoch as i64).into()]).map(|_| ())
}

/// Holds the receipts stamped since checkpoint `from_epoch` (see [`crate::HELD`]).
pub(crate) fn hold_receipts(sql: &mut dyn Sql, from_epoch: u64) -> Result<(), AlertError> {
    sql.execute(
        "UPDATE finding_receipts SET epoch = $1 WHERE epoch >= $2",
        &[crate::HELD.into(), (from_epoch as i64).into()],
    )
    .map(|_| ())
}

/// Opens a new alert for `finding`, updates the one its fingerprint already has, or
/// reopens that one when it was resolved (a false positive or expected alert only counts).
fn record_one(
    sql: &mut dyn Sql,
    routes: &Routes,
    incidents: &mut IncidentBatch<'_>,
    finding: &Finding,
) -> Result<Recorded, AlertError> {
    let fp = fingerprint(finding);
    let existing = sql.row("SELECT id, status FROM alerts WHERE fingerprint = $1", &[fp.as_str().into()], |r| {
        Ok((r.int(0)?, r.text(1)?))
    })?;
    let Some((id, status)) = existing else { return open(sql, routes, incidents, finding, fp) };
    let seen = finding.detected_at.as_micros();
    let update = format!(
        "UPDATE alerts SET count = count + 1, last_seen = {}(last_seen, $2), message = $3, \
         money_json = $4, evidence_json = $5 WHERE id = $1",
        sql.dialect().greatest
    );
    sql.execute(
        &update,
        &[
            id.into(),
            seen.into(),
            finding.message.as_str().into(),
            money_json(finding).into(),
            evidence_json(finding).into(),
        ],
    )?;
    if status != Status::Resolved.as_str() {
        return Ok(Recorded::Updated(id));
    }
    sql.execute(
        "UPDATE alerts SET status = 'open', acknowledged_at = NULL, resolved_at = NULL, \
         event_time = $2, first_seen = $3 WHERE id = $1",
        &[id.into(), finding.event_time.as_micros().into(), seen.into()],
    )?;
    timeline(sql, id, seen, SYSTEM_ACTOR, "reopened", Some(&finding.message))?;
    enqueue(sql, routes, id, "reopened", seen)?;
    Ok(Recorded::Reopened(id))
}

/// Opens the alert of a finding whose fingerprint `fp` has none: its row, its incident,
/// its first timeline entry, its notifications (when it opens its incident: the alerts
/// that join one are told in the incident's updates), and its rule's containment action.
fn open(
    sql: &mut dyn Sql,
    routes: &Routes,
    incidents: &mut IncidentBatch<'_>,
    finding: &Finding,
    fp: String,
) -> Result<Recorded, AlertError> {
    let seen = finding.detected_at.as_micros();
    let id = sql.one(
        "INSERT INTO alerts (fingerprint, rule, key_json, severity, owner, status, message, count, \
         event_time, first_seen, last_seen, money_json, evidence_json, tags_json) \
         VALUES ($1, $2, $3, $4, $5, 'open', $6, 1, $7, $8, $8, $9, $10, $11) RETURNING id",
        &[
            fp.into(),
            finding.rule.as_str().into(),
            crate::model::alert_key(finding).to_string().into(),
            finding.severity.as_str().into(),
            finding.owner.as_str().into(),
            finding.message.as_str().into(),
            finding.event_time.as_micros().into(),
            seen.into(),
            money_json(finding).into(),
            evidence_json(finding).into(),
            serde_json::to_string(&finding.tags).unwrap_or_else(|_| "[]".into()).into(),
        ],
        |r| r.int(0),
    )?;
    let (incident, opened_incident) = incidents.assign(sql, finding, id)?;
    sql.execute("UPDATE alerts SET incident_id = $2 WHERE id = $1", &[id.into(), incident.into()])?;
    incidents.add(incident, finding);
    timeline(sql, id, seen, SYSTEM_ACTOR, "opened", Some(&finding.message))?;
    if incidents.notifies_alone(opened_incident) {
        enqueue(sql, routes, id, "opened", seen)?;
    }
    if let Some(action) = &finding.action {
        queue_action(sql, id, action, seen)?;
    }
    Ok(Recorded::Opened(id))
}

fn evidence_json(finding: &Finding) -> String {
    serde_json::to_string(&finding.evidence).unwrap_or_else(|_| "[]".into())
}

fn money_json(finding: &Finding) -> Option<String> {
    finding.money_at_risk.as_ref().and_then(|m| serde_json::to_string(m).ok())
}

/// Applies a person's change to alert `id`, with its timeline entry (and, when it
/// resolves the alert, the notifications that say so). Refused, with nothing written,
/// when the alert's status does not allow it.
pub(crate) fn change(
    sql: &mut dyn Sql,
    routes: &Routes,
    id: i64,
    change: &Change,
    actor: &str,
    now: EventTime,
) -> Result<(), AlertError> {
    let read = format!("SELECT status FROM alerts WHERE id = $1{}", sql.dialect().lock_row);
    let status = sql.row(&read, &[id.into()], |r| r.text(0))?.ok_or(AlertError::NotFound(id))?;
    let to = change.apply_to(id, Status::parse(&status).unwrap_or(Status::Open))?;
    let at = now.as_micros();
    let detail = change.detail();
    let touched = match change {
        Change::Acknowledge => sql.execute(
            "UPDATE alerts SET status = $2, acknowledged_at = $3 WHERE id = $1",
            &[id.into(), to.as_str().into(), at.into()],
        )?,
        Change::Resolve { .. } | Change::FalsePositive { .. } | Change::Expected { .. } => sql.execute(
            "UPDATE alerts SET status = $2, resolved_at = $3, root_cause = $4, \
             acknowledged_at = coalesce(acknowledged_at, $3) WHERE id = $1",
            &[id.into(), to.as_str().into(), at.into(), detail.into()],
        )?,
        Change::Assign { to: who } => {
            sql.execute("UPDATE alerts SET assignee = $2 WHERE id = $1", &[id.into(), who.as_str().into()])?
        }
        Change::Note { .. } => 0,
        Change::ApproveAction => sql.execute(
            "UPDATE outbox SET awaiting_approval = 0, next_attempt_at = $2 \
             WHERE alert_id = $1 AND channel = 'action' AND awaiting_approval = 1",
            &[id.into(), at.into()],
        )?,
        Change::RejectAction { reason } => sql.execute(
            "UPDATE outbox SET awaiting_approval = 0, failed_at = $2, last_error = $3 \
             WHERE alert_id = $1 AND channel = 'action' AND awaiting_approval = 1",
            &[id.into(), at.into(), format!("rejected by {actor}: {reason}").into()],
        )?,
    };
    if matches!(change, Change::ApproveAction | Change::RejectAction { .. }) && touched == 0 {
        return Err(AlertError::InvalidChange(format!("alert {id} has no action waiting for approval")));
    }
    timeline(sql, id, at, actor, change.action(), detail)?;
    if to == Status::Resolved {
        enqueue(sql, routes, id, "resolved", at)?;
    }
    Ok(())
}
