//! What recording a finding and changing an alert write, once for both stores.
//!
//! Each function runs inside the caller's transaction (see [`crate::backend`]), so an
//! alert change, its timeline entry and the notifications it queues are written together
//! or not at all. Statements are neutral SQL ([`crate::sql`]): `$n` parameters, and the
//! [`Dialect`](crate::sql::Dialect) formatted in where the databases differ.

use std::collections::{HashMap, HashSet};

use fundguard_core::{EventTime, Finding};

use crate::incidents::{IncidentBatch, Policy};
use crate::model::{AlertError, Change, Recorded, Status, fingerprint};
use crate::outbox::{enqueue, enqueue_many, queue_action};
use crate::routes::Routes;
use crate::sql::{ROWS_PER_STATEMENT, Sql, Value, in_list, update_by_id, values_rows};

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
    let recorded = record_batch(sql, &policy.routes, &mut incidents, &findings.iter().collect::<Vec<_>>())?;
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
    let receipts: Vec<String> = findings.iter().map(crate::model::receipt).collect();
    let new = store_receipts(sql, &receipts, epoch)?;
    let fresh: Vec<&Finding> = findings.iter().zip(&new).filter(|(_, new)| **new).map(|(f, _)| f).collect();
    let mut incidents = IncidentBatch::new(&policy.incidents);
    let recorded = record_batch(sql, &policy.routes, &mut incidents, &fresh)?;
    incidents.flush(sql, &policy.routes, batch_time(findings))?;
    Ok(recorded)
}

/// Stores the receipts not stored yet and stamps those met again with `epoch`; answers,
/// for each of `receipts`, whether it is new (one twice in a batch is new the first time).
fn store_receipts(sql: &mut dyn Sql, receipts: &[String], epoch: u64) -> Result<Vec<bool>, AlertError> {
    let epoch = epoch as i64;
    let mut seen = HashSet::new();
    let distinct: Vec<&str> = receipts.iter().map(String::as_str).filter(|r| seen.insert(*r)).collect();
    let mut inserted = HashSet::new();
    for chunk in distinct.chunks(ROWS_PER_STATEMENT) {
        let insert = format!(
            "INSERT INTO finding_receipts (id, epoch) VALUES {} ON CONFLICT DO NOTHING RETURNING id",
            values_rows(chunk.len(), &["", ""])
        );
        let params: Vec<Value> = chunk.iter().flat_map(|r| [(*r).into(), epoch.into()]).collect();
        inserted.extend(sql.rows(&insert, &params, |r| r.text(0))?);
    }
    let met_again: Vec<&str> = distinct.into_iter().filter(|r| !inserted.contains(*r)).collect();
    for chunk in met_again.chunks(ROWS_PER_STATEMENT) {
        let stamp = format!("UPDATE finding_receipts SET epoch = $1 WHERE id IN ({})", in_list(2, chunk.len()));
        let params: Vec<Value> = std::iter::once(epoch.into()).chain(chunk.iter().map(|r| (*r).into())).collect();
        sql.execute(&stamp, &params)?;
    }
    let mut claimed = HashSet::new();
    Ok(receipts.iter().map(|r| inserted.contains(r) && claimed.insert(r.as_str())).collect())
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

/// What a finding does to its alert, decided before anything is written.
enum Step {
    /// Opens the alert of its fingerprint (the first finding of one with no alert).
    Open,
    /// Reopens resolved alert `id` (the first finding of its fingerprint in the batch).
    Reopen(i64),
    /// Counts into the alert of its fingerprint (existing, or opened earlier in the batch).
    Update,
}

/// What the batch's updating findings add to one alert: folded, so each alert is written
/// once per batch, as if each finding had been applied in turn.
struct Fold<'f> {
    count: i64,
    last_seen: i64,
    /// The latest finding, whose message, money and evidence the alert shows.
    latest: &'f Finding,
}

/// Records a batch of findings in a few statements, with the effect of recording them one
/// by one: the first finding of a fingerprint with no alert opens one, the first of a
/// resolved alert reopens it, and every other finding counts into its alert. Opening and
/// reopening write what they always did (timeline, notifications, actions); the counting
/// findings are folded per alert and written at the end ([`update_by_id`]: multi-row on
/// PostgreSQL), which leaves each alert as the last of its findings would have.
fn record_batch(
    sql: &mut dyn Sql,
    routes: &Routes,
    incidents: &mut IncidentBatch<'_>,
    findings: &[&Finding],
) -> Result<Vec<Recorded>, AlertError> {
    let fingerprints: Vec<String> = findings.iter().map(|f| fingerprint(f)).collect();
    // The alert (id, resolved) of each fingerprint; a fingerprint absent has none yet.
    let mut alerts = existing_alerts(sql, &fingerprints)?;
    let mut steps = Vec::with_capacity(findings.len());
    let mut opening = HashSet::new();
    let mut folds: HashMap<&str, Fold<'_>> = HashMap::new();
    let mut fold_order = Vec::new();
    for (finding, fp) in findings.iter().zip(&fingerprints) {
        let step = match alerts.get_mut(fp.as_str()) {
            Some((id, resolved)) if *resolved => {
                *resolved = false;
                Step::Reopen(*id)
            }
            None if opening.insert(fp.as_str()) => Step::Open,
            _ => {
                let seen = finding.detected_at.as_micros();
                let fold = folds.entry(fp).or_insert_with(|| {
                    fold_order.push(fp.as_str());
                    Fold { count: 0, last_seen: seen, latest: finding }
                });
                fold.count += 1;
                fold.last_seen = fold.last_seen.max(seen);
                fold.latest = finding;
                Step::Update
            }
        };
        steps.push(step);
    }
    let opens: Vec<(&Finding, &str)> = findings
        .iter()
        .zip(&fingerprints)
        .zip(&steps)
        .filter(|(_, step)| matches!(step, Step::Open))
        .map(|((f, fp), _)| (*f, fp.as_str()))
        .collect();
    for (id, fp) in open(sql, routes, incidents, &opens)? {
        alerts.insert(fp.to_string(), (id, false));
    }
    let mut reopened = Vec::new();
    for (finding, step) in findings.iter().zip(&steps) {
        if let Step::Reopen(id) = step {
            reopen(sql, *id, finding)?;
            reopened.push((*id, "reopened", finding.detected_at.as_micros()));
        }
    }
    enqueue_many(sql, routes, &reopened)?;
    let folded: Vec<(i64, &Fold<'_>)> =
        fold_order.iter().filter_map(|fp| Some((alerts.get(*fp)?.0, folds.get(fp)?))).collect();
    count_into(sql, &folded)?;
    Ok(fingerprints
        .iter()
        .zip(&steps)
        .map(|(fp, step)| {
            let id = alerts.get(fp.as_str()).map_or(0, |a| a.0);
            match step {
                Step::Open => Recorded::Opened(id),
                Step::Reopen(id) => Recorded::Reopened(*id),
                Step::Update => Recorded::Updated(id),
            }
        })
        .collect())
}

/// The alerts the fingerprints already have: fingerprint → (id, whether it is resolved).
fn existing_alerts(sql: &mut dyn Sql, fingerprints: &[String]) -> Result<HashMap<String, (i64, bool)>, AlertError> {
    let distinct: Vec<&str> =
        fingerprints.iter().map(String::as_str).collect::<HashSet<_>>().into_iter().collect::<Vec<_>>();
    let mut found = HashMap::with_capacity(distinct.len());
    for chunk in distinct.chunks(ROWS_PER_STATEMENT) {
        let select =
            format!("SELECT fingerprint, id, status FROM alerts WHERE fingerprint IN ({})", in_list(1, chunk.len()));
        let params: Vec<Value> = chunk.iter().map(|fp| (*fp).into()).collect();
        let rows = sql.rows(&select, &params, |r| Ok((r.text(0)?, r.int(1)?, r.text(2)?)))?;
        for (fp, id, status) in rows {
            found.insert(fp, (id, status == Status::Resolved.as_str()));
        }
    }
    Ok(found)
}

/// Adds each fold's findings to its alert `id`.
fn count_into(sql: &mut dyn Sql, folded: &[(i64, &Fold<'_>)]) -> Result<(), AlertError> {
    let rows: Vec<Vec<Value>> = folded
        .iter()
        .map(|(id, fold)| {
            vec![
                (*id).into(),
                fold.count.into(),
                fold.last_seen.into(),
                fold.latest.message.as_str().into(),
                money_json(fold.latest).into(),
                evidence_json(fold.latest).into(),
            ]
        })
        .collect();
    let set = format!(
        "count = count + #2, last_seen = {}(last_seen, #3), message = #4, money_json = #5, evidence_json = #6",
        sql.dialect().greatest
    );
    update_by_id(sql, "alerts", &set, &["BIGINT", "BIGINT", "BIGINT", "TEXT", "TEXT", "TEXT"], &rows)
}

/// Reopens resolved alert `id` for `finding`: counts it, opens the alert again from its
/// event, and says so in the timeline (the caller queues the notifications).
fn reopen(sql: &mut dyn Sql, id: i64, finding: &Finding) -> Result<(), AlertError> {
    let seen = finding.detected_at.as_micros();
    sql.execute(
        &format!(
            "UPDATE alerts SET count = count + 1, last_seen = {}(last_seen, $2), message = $3, money_json = $4, \
             evidence_json = $5, status = 'open', acknowledged_at = NULL, resolved_at = NULL, event_time = $6, \
             first_seen = $2 WHERE id = $1",
            sql.dialect().greatest
        ),
        &[
            id.into(),
            seen.into(),
            finding.message.as_str().into(),
            money_json(finding).into(),
            evidence_json(finding).into(),
            finding.event_time.as_micros().into(),
        ],
    )?;
    timeline(sql, id, seen, SYSTEM_ACTOR, "reopened", Some(&finding.message))
}

/// Opens the alerts of `opens` — findings whose fingerprints have none — in the order
/// given: their rows, their incidents, their first timeline entries, their notifications
/// (for an alert that opens its incident: the alerts that join one are told in the
/// incident's updates), and their rules' containment actions. Answers each new alert's
/// (id, fingerprint).
fn open<'f>(
    sql: &mut dyn Sql,
    routes: &Routes,
    incidents: &mut IncidentBatch<'_>,
    opens: &[(&Finding, &'f str)],
) -> Result<Vec<(i64, &'f str)>, AlertError> {
    let mut ids = HashMap::with_capacity(opens.len());
    for chunk in opens.chunks(ROWS_PER_STATEMENT) {
        let insert = format!(
            "INSERT INTO alerts (fingerprint, rule, key_json, severity, owner, status, message, count, \
             event_time, first_seen, last_seen, money_json, evidence_json, tags_json) \
             SELECT v.column1, v.column2, v.column3, v.column4, v.column5, 'open', v.column6, 1, v.column7, \
             v.column8, v.column8, v.column9, v.column10, v.column11 FROM (VALUES {}) AS v RETURNING id, fingerprint",
            values_rows(
                chunk.len(),
                &["TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "BIGINT", "BIGINT", "TEXT", "TEXT", "TEXT"]
            )
        );
        let mut params = Vec::with_capacity(chunk.len() * 11);
        for (finding, fp) in chunk {
            params.extend([
                (*fp).into(),
                finding.rule.as_str().into(),
                crate::model::alert_key(finding).to_string().into(),
                finding.severity.as_str().into(),
                finding.owner.as_str().into(),
                finding.message.as_str().into(),
                finding.event_time.as_micros().into(),
                finding.detected_at.as_micros().into(),
                money_json(finding).into(),
                evidence_json(finding).into(),
                serde_json::to_string(&finding.tags).unwrap_or_else(|_| "[]".into()).into(),
            ]);
        }
        ids.extend(sql.rows(&insert, &params, |r| Ok((r.text(1)?, r.int(0)?)))?);
    }
    let mut opened = Vec::with_capacity(opens.len());
    let mut joined = Vec::with_capacity(opens.len());
    for (finding, fp) in opens {
        let id = *ids.get(*fp).ok_or_else(|| sql.row_error(crate::sql::RowError::Missing))?;
        let (incident, opened_incident) = incidents.assign(sql, finding, id)?;
        incidents.add(incident, finding);
        joined.push((id, incident));
        opened.push((id, *fp, *finding, opened_incident));
    }
    let joined: Vec<Vec<Value>> = joined.iter().map(|(id, incident)| vec![(*id).into(), (*incident).into()]).collect();
    update_by_id(sql, "alerts", "incident_id = #2", &["BIGINT", "BIGINT"], &joined)?;
    for chunk in opened.chunks(ROWS_PER_STATEMENT) {
        let insert = format!(
            "INSERT INTO timeline (alert_id, at, actor, action, detail) VALUES {}",
            values_rows(chunk.len(), &["", "", "", "", ""])
        );
        let mut params = Vec::with_capacity(chunk.len() * 5);
        for (id, _, finding, _) in chunk {
            params.extend([
                (*id).into(),
                finding.detected_at.as_micros().into(),
                SYSTEM_ACTOR.into(),
                "opened".into(),
                finding.message.as_str().into(),
            ]);
        }
        sql.execute(&insert, &params)?;
    }
    let notified: Vec<(i64, &str, i64)> = opened
        .iter()
        .filter(|(.., opened_incident)| incidents.notifies_alone(*opened_incident))
        .map(|(id, _, finding, _)| (*id, "opened", finding.detected_at.as_micros()))
        .collect();
    enqueue_many(sql, routes, &notified)?;
    for (id, _, finding, _) in &opened {
        if let Some(action) = &finding.action {
            queue_action(sql, *id, action, finding.detected_at.as_micros())?;
        }
    }
    Ok(opened.into_iter().map(|(id, fp, _, _)| (id, fp)).collect())
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
