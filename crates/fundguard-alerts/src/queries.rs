//! What the console, the CLI and the metrics read, once for both stores: alerts by
//! filter, one alert with its timeline, and the counts behind health and reports.

use crate::ActiveFigures;
use crate::columns::{COLUMNS, TIMELINE_COLUMNS, alert_from, timeline_entry_from};
use crate::model::{Alert, AlertError, Filter, Status, TimelineEntry};
use crate::outbox::count;
use crate::sql::{Sql, Value};

/// Alerts matching `filter`, most recently seen first. Each filter is one equality (or
/// `since`, one range) on an indexed column, so the database walks that index in
/// `last_seen` order instead of sorting every match.
pub(crate) fn list(sql: &mut dyn Sql, filter: &Filter) -> Result<Vec<Alert>, AlertError> {
    let mut clauses = Vec::new();
    let mut params: Vec<Value> = Vec::new();
    let mut add = |clause: &str, value: Value| {
        params.push(value);
        clauses.push(format!("{clause} ${}", params.len()));
    };
    if let Some(s) = filter.status {
        add("status =", s.as_str().into());
    }
    if let Some(o) = &filter.owner {
        add("owner =", o.as_str().into());
    }
    if let Some(r) = &filter.rule {
        add("rule =", r.as_str().into());
    }
    if let Some(s) = filter.severity {
        add("severity =", s.as_str().into());
    }
    if let Some(t) = filter.since {
        add("last_seen >=", t.as_micros().into());
    }
    let mut statement = format!("SELECT {COLUMNS} FROM alerts");
    if !clauses.is_empty() {
        statement.push_str(&format!(" WHERE {}", clauses.join(" AND ")));
    }
    let limit = if filter.limit == 0 { 100 } else { filter.limit };
    params.extend([count(limit), count(filter.offset)]);
    let n = params.len();
    statement.push_str(&format!(" ORDER BY last_seen DESC, id DESC LIMIT ${} OFFSET ${n}", n - 1));
    sql.rows(&statement, &params, alert_from)
}

/// Alert `id`, if there is one.
pub(crate) fn alert(sql: &mut dyn Sql, id: i64) -> Result<Option<Alert>, AlertError> {
    sql.row(&format!("SELECT {COLUMNS} FROM alerts WHERE id = $1"), &[id.into()], alert_from)
}

/// Alert `id` with its timeline, oldest entry first.
pub(crate) fn get(sql: &mut dyn Sql, id: i64) -> Result<(Alert, Vec<TimelineEntry>), AlertError> {
    let alert = alert(sql, id)?.ok_or(AlertError::NotFound(id))?;
    let entries = sql.rows(
        &format!("SELECT {TIMELINE_COLUMNS} FROM timeline WHERE alert_id = $1 ORDER BY id"),
        &[id.into()],
        timeline_entry_from,
    )?;
    Ok((alert, entries))
}

/// How many alerts have each status (statuses without alerts are left out, and so are
/// statuses this version does not know).
pub(crate) fn status_counts(sql: &mut dyn Sql) -> Result<Vec<(Status, u64)>, AlertError> {
    let rows =
        sql.rows("SELECT status, count(*) FROM alerts GROUP BY status", &[], |r| Ok((r.text(0)?, r.int(1)? as u64)))?;
    Ok(rows.into_iter().filter_map(|(s, n)| Some((Status::parse(&s)?, n))).collect())
}

/// Open and acknowledged alerts per rule and status, and their money at risk (added
/// exactly, from the JSON each alert keeps).
pub(crate) fn active_figures(sql: &mut dyn Sql) -> Result<ActiveFigures, AlertError> {
    let rows = sql.rows(
        "SELECT rule, owner, status, money_json FROM alerts WHERE status IN ('open', 'acknowledged')",
        &[],
        |r| Ok((r.text(0)?, r.text(1)?, r.text(2)?, r.opt_text(3)?)),
    )?;
    let mut figures = ActiveFigures::default();
    for (rule, owner, status, money) in rows {
        figures.add(&rule, &owner, &status, money.as_deref());
    }
    Ok(figures)
}
