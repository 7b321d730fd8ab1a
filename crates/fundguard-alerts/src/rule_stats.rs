//! Per-rule statistics, kept per UTC day in the alert store so rule health survives
//! restarts and every instance sharing a PostgreSQL store adds to the same figures.
//!
//! The pipeline writes *increments* (what happened since its last write) and the store
//! adds them up, so a restart — whose engine counts from zero — never double counts or
//! loses a day. Drifts are kept once per rule, kind and subject, with when they were first
//! and last seen. Alert figures per rule (how many opened, closed as false positive,
//! reopened) are read from the alerts themselves.

use fundguard_core::EventTime;
use serde::Serialize;

use crate::model::AlertError;
use crate::sql::{Sql, Value};

/// What one rule did on one UTC day (or, written by the pipeline, since its last write).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuleDay {
    pub rule: String,
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub events: u64,
    /// Events that passed the rule's `when`.
    pub passed: u64,
    pub findings: u64,
    pub errors: u64,
    /// Scheduled (`sql`) runs, and those that failed.
    pub runs: u64,
    pub run_failures: u64,
    pub last_error: Option<String>,
    /// When fundguard first and last processed events for the rule (wall clock).
    pub first_event: Option<EventTime>,
    pub last_event: Option<EventTime>,
    /// When it last processed an event that passed the rule's `when`.
    pub last_passed: Option<EventTime>,
    /// When the rule last found something.
    pub last_finding: Option<EventTime>,
    /// Bytes of state held when last written (not added up).
    pub state_bytes: u64,
    /// Per table the rule reads: its events that day.
    pub tables: Vec<TableDay>,
}

/// A table's events one rule evaluated on one day.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TableDay {
    pub table: String,
    pub events: u64,
    pub last_event: Option<EventTime>,
}

/// A drift of a rule's input (see the engine's `drift.rs`), as kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleDrift {
    pub rule: String,
    pub kind: String,
    pub subject: String,
    pub table: String,
    pub detail: String,
    pub first_seen: EventTime,
    pub last_seen: EventTime,
}

/// What alerts a rule raised since a day, read from the alerts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuleAlerts {
    pub rule: String,
    /// Alerts first seen since then.
    pub opened: u64,
    /// Of those, closed as false positives.
    pub false_positives: u64,
    /// Reopenings of its alerts since then (resolved, then seen again: flapping).
    pub reopened: u64,
    /// Alerts first seen per UTC day.
    pub per_day: Vec<(String, u64)>,
    /// The keys of its alerts seen most often since then, with their counts.
    pub top_keys: Vec<(String, u64)>,
}

/// A rule's history in the store.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuleHistory {
    pub days: Vec<RuleDay>,
    pub drifts: Vec<RuleDrift>,
    pub alerts: Vec<RuleAlerts>,
}

/// `column = ` the newer of the kept and the new optional time, in SQL both databases run.
fn newer(table: &str, column: &str) -> String {
    format!(
        "{column} = CASE WHEN excluded.{column} IS NULL OR ({table}.{column} IS NOT NULL AND {table}.{column} > excluded.{column}) THEN {table}.{column} ELSE excluded.{column} END"
    )
}

/// `column = ` the older of the kept and the new optional time.
fn older(table: &str, column: &str) -> String {
    format!(
        "{column} = CASE WHEN excluded.{column} IS NULL OR ({table}.{column} IS NOT NULL AND {table}.{column} < excluded.{column}) THEN {table}.{column} ELSE excluded.{column} END"
    )
}

fn int(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn time(t: Option<EventTime>) -> Value {
    t.map(|t| t.as_micros()).into()
}

/// Adds increments to the days they belong to, and records drifts.
pub(crate) fn record(sql: &mut dyn Sql, days: &[RuleDay], drifts: &[RuleDrift]) -> Result<(), AlertError> {
    let upsert = format!(
        "INSERT INTO rule_days (rule, day, events, passed, findings, errors, runs, run_failures, last_error, first_event, last_event, last_passed, last_finding, state_bytes)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (rule, day) DO UPDATE SET
           events = rule_days.events + excluded.events, passed = rule_days.passed + excluded.passed,
           findings = rule_days.findings + excluded.findings, errors = rule_days.errors + excluded.errors,
           runs = rule_days.runs + excluded.runs, run_failures = rule_days.run_failures + excluded.run_failures,
           last_error = COALESCE(excluded.last_error, rule_days.last_error), {}, {}, {}, {}, state_bytes = excluded.state_bytes",
        older("rule_days", "first_event"),
        newer("rule_days", "last_event"),
        newer("rule_days", "last_passed"),
        newer("rule_days", "last_finding")
    );
    let table_upsert = format!(
        "INSERT INTO rule_table_days (rule, table_name, day, events, last_event) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (rule, table_name, day) DO UPDATE SET events = rule_table_days.events + excluded.events, {}",
        newer("rule_table_days", "last_event")
    );
    for d in days {
        let params = [
            d.rule.as_str().into(),
            d.day.as_str().into(),
            int(d.events),
            int(d.passed),
            int(d.findings),
            int(d.errors),
            int(d.runs),
            int(d.run_failures),
            d.last_error.clone().into(),
            time(d.first_event),
            time(d.last_event),
            time(d.last_passed),
            time(d.last_finding),
            int(d.state_bytes),
        ];
        sql.execute(&upsert, &params)?;
        for t in d.tables.iter().filter(|t| t.events > 0) {
            let params = [
                d.rule.as_str().into(),
                t.table.as_str().into(),
                d.day.as_str().into(),
                int(t.events),
                time(t.last_event),
            ];
            sql.execute(&table_upsert, &params)?;
        }
    }
    let drift_upsert = "INSERT INTO rule_drifts (rule, kind, subject, table_name, detail, first_seen, last_seen)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (rule, kind, subject) DO UPDATE SET last_seen = excluded.last_seen, detail = excluded.detail";
    for d in drifts {
        let params = [
            d.rule.as_str().into(),
            d.kind.as_str().into(),
            d.subject.as_str().into(),
            d.table.as_str().into(),
            d.detail.as_str().into(),
            d.first_seen.as_micros().into(),
            d.last_seen.as_micros().into(),
        ];
        sql.execute(drift_upsert, &params)?;
    }
    Ok(())
}

/// Every rule's days since `since` (a `YYYY-MM-DD`), its drifts, and its alerts since
/// `alerts_since`.
pub(crate) fn history(sql: &mut dyn Sql, since: &str, alerts_since: &str) -> Result<RuleHistory, AlertError> {
    let mut days = sql.rows(
        "SELECT rule, day, events, passed, findings, errors, runs, run_failures, last_error, first_event, last_event, last_passed, last_finding, state_bytes
         FROM rule_days WHERE day >= $1 ORDER BY rule, day",
        &[since.into()],
        |r| {
            Ok(RuleDay {
                rule: r.text(0)?,
                day: r.text(1)?,
                events: r.int(2)? as u64,
                passed: r.int(3)? as u64,
                findings: r.int(4)? as u64,
                errors: r.int(5)? as u64,
                runs: r.int(6)? as u64,
                run_failures: r.int(7)? as u64,
                last_error: r.opt_text(8)?,
                first_event: r.opt_int(9)?.map(EventTime::from_micros),
                last_event: r.opt_int(10)?.map(EventTime::from_micros),
                last_passed: r.opt_int(11)?.map(EventTime::from_micros),
                last_finding: r.opt_int(12)?.map(EventTime::from_micros),
                state_bytes: r.int(13)? as u64,
                tables: Vec::new(),
            })
        },
    )?;
    let tables = sql.rows(
        "SELECT rule, day, table_name, events, last_event FROM rule_table_days WHERE day >= $1 ORDER BY rule, day, table_name",
        &[since.into()],
        |r| {
            let table = TableDay {
                table: r.text(2)?,
                events: r.int(3)? as u64,
                last_event: r.opt_int(4)?.map(EventTime::from_micros),
            };
            Ok((r.text(0)?, r.text(1)?, table))
        },
    )?;
    let index: std::collections::HashMap<(String, String), usize> =
        days.iter().enumerate().map(|(i, d)| ((d.rule.clone(), d.day.clone()), i)).collect();
    for (rule, day, table) in tables {
        if let Some(&i) = index.get(&(rule, day)) {
            days[i].tables.push(table);
        }
    }
    let drifts = sql.rows(
        "SELECT rule, kind, subject, table_name, detail, first_seen, last_seen FROM rule_drifts ORDER BY rule, first_seen",
        &[],
        |r| {
            Ok(RuleDrift {
                rule: r.text(0)?,
                kind: r.text(1)?,
                subject: r.text(2)?,
                table: r.text(3)?,
                detail: r.text(4)?,
                first_seen: EventTime::from_micros(r.int(5)?),
                last_seen: EventTime::from_micros(r.int(6)?),
            })
        },
    )?;
    Ok(RuleHistory { days, drifts, alerts: alerts(sql, alerts_since)? })
}

/// Alerts per rule first seen since `since`, and reopenings since then — aggregated by the
/// database, so a store of millions of alerts answers with a row per rule and day.
fn alerts(sql: &mut dyn Sql, since: &str) -> Result<Vec<RuleAlerts>, AlertError> {
    const DAY: i64 = 86_400_000_000;
    let from = EventTime::parse(&format!("{since}T00:00:00Z")).map(|t| t.as_micros()).unwrap_or(0);
    let days = sql.rows(
        &format!(
            "SELECT rule, first_seen / {DAY} AS d, count(*), sum(CASE WHEN status = 'false_positive' THEN 1 ELSE 0 END)
             FROM alerts WHERE first_seen >= $1 GROUP BY rule, first_seen / {DAY} ORDER BY rule, d"
        ),
        &[from.into()],
        |r| Ok((r.text(0)?, r.int(1)?, r.int(2)? as u64, r.int(3)? as u64)),
    )?;
    let mut by_rule: std::collections::BTreeMap<String, RuleAlerts> = Default::default();
    for (rule, day, opened, false_positives) in days {
        let a = by_rule.entry(rule.clone()).or_insert_with(|| RuleAlerts { rule, ..Default::default() });
        a.opened += opened;
        a.false_positives += false_positives;
        let day = EventTime::from_micros(day * DAY).to_string().chars().take(10).collect::<String>();
        a.per_day.push((day, opened));
    }
    let reopened = sql.rows(
        "SELECT a.rule, count(*) FROM timeline t JOIN alerts a ON a.id = t.alert_id
         WHERE t.action = 'reopened' AND t.at >= $1 GROUP BY a.rule",
        &[from.into()],
        |r| Ok((r.text(0)?, r.int(1)? as u64)),
    )?;
    for (rule, n) in reopened {
        by_rule.entry(rule.clone()).or_insert_with(|| RuleAlerts { rule, ..Default::default() }).reopened = n;
    }
    let top = sql.rows(
        &format!(
            "SELECT rule, key_json, count FROM (
               SELECT rule, key_json, count, ROW_NUMBER() OVER (PARTITION BY rule ORDER BY count DESC, key_json) AS rank
               FROM alerts WHERE first_seen >= $1) ranked
             WHERE rank <= {TOP_KEYS} ORDER BY rule, rank"
        ),
        &[from.into()],
        |r| Ok((r.text(0)?, r.text(1)?, r.int(2)? as u64)),
    )?;
    for (rule, key, count) in top {
        if let Some(a) = by_rule.get_mut(&rule) {
            a.top_keys.push((key, count));
        }
    }
    Ok(by_rule.into_values().collect())
}

/// Keys listed per noisy rule.
const TOP_KEYS: usize = 5;

/// Drops days before `before` (a `YYYY-MM-DD`): the retention horizon.
pub(crate) fn prune(sql: &mut dyn Sql, before: &str) -> Result<(), AlertError> {
    sql.execute("DELETE FROM rule_days WHERE day < $1", &[before.into()])?;
    sql.execute("DELETE FROM rule_table_days WHERE day < $1", &[before.into()])?;
    Ok(())
}
