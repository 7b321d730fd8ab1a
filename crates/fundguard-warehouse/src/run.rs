//! One run of a `sql` rule: render the query for a business date, check that it only
//! reads, plan it, stream the result, and turn each row into a finding — within the rule's
//! timeout, memory limit and findings cap.
//!
//! A run that fails (bad SQL, a database down, the timeout) is itself a finding for the
//! rule's owner: a D+1 check that silently did not run is a hole in the net.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::prelude::SessionContext;
use fundguard_core::{EventTime, Evidence, Finding, Money, Op, Position, Row, Value};
use fundguard_engine::value_at;
use fundguard_rules::{Diagnostic, Rule, RuleBody, SqlRule};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::Warehouse;
use crate::read_only::{Refusal, read_only_query, verify_plan};
use crate::schedule::end_of_day;
use crate::tables::TEXT_DECIMAL;

/// The tag every failed-run finding carries, so routes can send them apart.
pub const FAILED_RUN_TAG: &str = "sql-run-failed";

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Ok,
    Failed,
    TimedOut,
}

/// What is recorded of every run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub rule: String,
    /// The business date checked.
    pub ds: NaiveDate,
    /// The fire time of a scheduled run; `None` for `fundguard sql run`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<DateTime<Utc>>,
    pub started: DateTime<Utc>,
    pub duration_ms: u64,
    /// Rows read from the tables, where the scans report it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_scanned: Option<u64>,
    /// Rows the query returned.
    pub rows: u64,
    /// Findings made (at most the rule's `max_findings`; `rows - findings` were left out).
    pub findings: u64,
    pub status: RunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Failed => "failed",
            RunStatus::TimedOut => "timed_out",
        }
    }
}

impl RunRecord {
    /// A run of `rule` for `ds` starting at `started`, nothing done yet.
    fn new(rule: &Rule, ds: NaiveDate, scheduled_for: Option<DateTime<Utc>>, started: DateTime<Utc>) -> RunRecord {
        RunRecord {
            rule: rule.id.clone(),
            ds,
            scheduled_for,
            started,
            duration_ms: 0,
            rows_scanned: None,
            rows: 0,
            findings: 0,
            status: RunStatus::Ok,
            error: None,
        }
    }
}

/// One line for people: `rule date: status in N ms, rows, findings[: error]`.
impl std::fmt::Display for RunRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {} in {} ms, {} row(s)",
            self.rule,
            self.ds,
            self.status.as_str(),
            self.duration_ms,
            self.rows
        )?;
        if let Some(scanned) = self.rows_scanned {
            write!(f, " of {scanned} scanned")?;
        }
        write!(f, ", {} finding(s)", self.findings)?;
        match &self.error {
            Some(e) => write!(f, ": {e}"),
            None => Ok(()),
        }
    }
}

/// A run's record and its findings (the failure finding, when it failed).
#[derive(Debug)]
pub struct RunOutcome {
    pub record: RunRecord,
    pub findings: Vec<Finding>,
}

/// Why a query cannot run.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("`{0}` is not a sql rule")]
    NotSql(String),
    #[error("{0}")]
    Template(String),
    /// Planning or running the query failed (DataFusion's or the database's message).
    #[error("{0}")]
    Query(String),
    /// The query is not one read-only query (a write, DDL, `SET`, several statements, …).
    #[error("{0}")]
    NotReadOnly(String),
    /// The run needed more memory than the rule's `memory_limit`.
    #[error(
        "the query needed more memory than the rule's memory_limit ({limit}): narrow it to the business date or raise `memory_limit` ({message})"
    )]
    Memory { limit: String, message: String },
    #[error("the result has no column `{column}` (named in `{field}`): the query returns {available}")]
    MissingColumn { column: String, field: &'static str, available: String },
}

/// The query text of `rule` for business date `ds`.
pub fn render_query(sql: &SqlRule, ds: NaiveDate) -> Result<String, QueryError> {
    let env = minijinja::Environment::new();
    env.render_str(&sql.query.sql, parameters(ds)).map_err(|e| QueryError::Template(format!("query template: {e}")))
}

/// `ds` (`2026-11-25`), `ds_nodash` (`20261125`), `next_ds` and `prev_ds`.
fn parameters(ds: NaiveDate) -> minijinja::Value {
    let day = chrono::Days::new(1);
    minijinja::context! {
        ds => ds.to_string(),
        ds_nodash => ds.format("%Y%m%d").to_string(),
        next_ds => ds.checked_add_days(day).unwrap_or(ds).to_string(),
        prev_ds => ds.checked_sub_days(day).unwrap_or(ds).to_string(),
    }
}

/// What can be checked of sql rules without the tables: each query template renders and
/// its SQL parses into one read-only query (no DDL, DML, `COPY`, `SET`, `EXPLAIN`, second
/// statement), each message template compiles. Problems are placed at the query or
/// message in the rule file; `fundguard validate` and rule loading in `fundguard run` use it.
pub fn check_rules(rules: &[Rule]) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    for rule in rules {
        let RuleBody::Sql(sql) = &rule.body else { continue };
        let parsed =
            render_query(sql, NaiveDate::default()).and_then(|text| read_only_query(&text).map_err(query_error));
        if let Err(e) = parsed {
            problems.push(Diagnostic::new(sql.query.at.clone(), format!("query: {e}")));
        }
        if let Some(message) = &sql.message
            && let Err(e) = minijinja::Environment::new().template_from_str(&message.sql)
        {
            problems.push(Diagnostic::new(message.at.clone(), format!("message template: {e}")));
        }
    }
    problems
}

/// Plans the rule's query for `ds` against the warehouse and checks that it only reads
/// and that the result has every column the rule names. What `fundguard validate` runs for
/// sql rules.
pub async fn plan(warehouse: &Warehouse, rule: &Rule, ds: NaiveDate) -> Result<SchemaRef, QueryError> {
    let df = planned(warehouse.context(), sql_body(rule)?, ds).await?;
    Ok(Arc::new(df.schema().as_arrow().clone()))
}

/// The rule's query for `ds`, checked to be one read-only query (its syntax, then its
/// plan, before anything executes), planned, its result checked for the columns the rule
/// names.
async fn planned(session: &SessionContext, sql: &SqlRule, ds: NaiveDate) -> Result<DataFrame, QueryError> {
    let text = render_query(sql, ds)?;
    read_only_query(&text).map_err(|e| match e {
        Refusal::Syntax(message) => QueryError::Query(first_line(&message)),
        Refusal::NotAQuery(message) => QueryError::NotReadOnly(message),
    })?;
    let plan = session.state().create_logical_plan(&text).await.map_err(query_error)?;
    verify_plan(&plan).map_err(QueryError::NotReadOnly)?;
    let df = session.execute_logical_plan(plan).await.map_err(query_error)?;
    let schema = df.schema().as_arrow();
    let named = sql
        .key
        .iter()
        .map(|c| (c, "key"))
        .chain(sql.evidence.iter().flatten().map(|c| (c, "evidence")))
        .chain(sql.money.iter().flat_map(|(a, c)| std::iter::once(a).chain(c.iter())).map(|c| (c, "money")));
    for (column, field) in named {
        if schema.field_with_name(column).is_err() {
            let available: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(QueryError::MissingColumn { column: column.clone(), field, available: available.join(", ") });
        }
    }
    Ok(df)
}

fn sql_body(rule: &Rule) -> Result<&SqlRule, QueryError> {
    match &rule.body {
        RuleBody::Sql(sql) => Ok(sql),
        _ => Err(QueryError::NotSql(rule.id.clone())),
    }
}

/// DataFusion errors can carry a long plan dump after the first line.
fn query_error(e: impl std::fmt::Display) -> QueryError {
    QueryError::Query(first_line(&e.to_string()))
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

/// An error while the query ran: running out of the run's memory pool says so, with the limit.
fn run_error(e: DataFusionError, memory_limit: u64) -> QueryError {
    match e.find_root() {
        DataFusionError::ResourcesExhausted(message) => {
            QueryError::Memory { limit: size(memory_limit), message: first_line(message) }
        }
        _ => query_error(e),
    }
}

/// `1GiB`, `512MiB`, or bytes.
fn size(bytes: u64) -> String {
    match bytes {
        b if b % (1 << 30) == 0 => format!("{}GiB", b >> 30),
        b if b % (1 << 20) == 0 => format!("{}MiB", b >> 20),
        b => format!("{b} bytes"),
    }
}

/// Runs `rule` for business date `ds`. Never fails: a failure is in the record and is
/// the one finding returned. `now` stamps the start and the findings.
pub async fn run(
    warehouse: &Warehouse,
    rule: &Rule,
    ds: NaiveDate,
    scheduled_for: Option<DateTime<Utc>>,
    now: &(dyn Fn() -> DateTime<Utc> + Sync),
) -> RunOutcome {
    let started = now();
    let clock = Instant::now();
    let mut record = RunRecord::new(rule, ds, scheduled_for, started);
    let timeout = match &rule.body {
        RuleBody::Sql(sql) => sql.timeout,
        _ => std::time::Duration::ZERO,
    };
    let result = tokio::time::timeout(timeout, execute(warehouse, rule, ds, &mut record)).await;
    record.duration_ms = u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
    let detected_at = EventTime::from_micros(now().timestamp_micros());
    let findings = match result {
        Ok(Ok(mut rows)) => {
            for f in &mut rows {
                f.detected_at = detected_at;
            }
            record.findings = rows.len() as u64;
            rows
        }
        Ok(Err(e)) => {
            record.status = RunStatus::Failed;
            record.error = Some(e.to_string());
            record.findings = 1;
            vec![failure(rule, &record, detected_at)]
        }
        Err(_) => {
            record.status = RunStatus::TimedOut;
            record.error = Some(format!(
                "the query ran longer than the rule's timeout ({timeout:?}): raise `timeout` or narrow the query to the business date"
            ));
            record.findings = 1;
            vec![failure(rule, &record, detected_at)]
        }
    };
    RunOutcome { record, findings }
}

async fn execute(
    warehouse: &Warehouse,
    rule: &Rule,
    ds: NaiveDate,
    record: &mut RunRecord,
) -> Result<Vec<Finding>, QueryError> {
    let sql = sql_body(rule)?;
    let session = warehouse.bounded(sql.memory_limit).map_err(query_error)?;
    let df = planned(&session, sql, ds).await?;
    let physical = df.create_physical_plan().await.map_err(|e| run_error(e, sql.memory_limit))?;
    let mut stream =
        execute_stream(physical.clone(), session.task_ctx()).map_err(|e| run_error(e, sql.memory_limit))?;
    let mut builder = FindingBuilder::new(rule, sql, ds);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| run_error(e, sql.memory_limit))?;
        record.rows += batch.num_rows() as u64;
        builder.add(&batch, sql.max_findings);
    }
    record.rows_scanned = rows_scanned(&physical);
    Ok(builder.findings)
}

/// The rows the plan's scans produced: the sum over the leaves that count them (file
/// scans do; a database query reports none); `None` when no leaf does.
fn rows_scanned(plan: &Arc<dyn ExecutionPlan>) -> Option<u64> {
    let children = plan.children();
    if children.is_empty() {
        return plan.metrics().and_then(|m| m.output_rows()).map(|n| n as u64);
    }
    children.into_iter().filter_map(rows_scanned).reduce(|a, b| a + b)
}

/// A result cell as a value. Decimals of the scale text files are read with carry that
/// scale, not the data's, so they are shown without its trailing zeros (`2.05`, not
/// `2.0500000000`); other decimals keep their declared scale.
fn cell(array: &datafusion::arrow::array::ArrayRef, i: usize) -> Value {
    match value_at(array, i) {
        Value::Decimal(d) if *array.data_type() == TEXT_DECIMAL => Value::Decimal(d.normalize()),
        v => v,
    }
}

/// Turns result rows into findings.
struct FindingBuilder<'a> {
    rule: &'a Rule,
    sql: &'a SqlRule,
    ds: Arc<str>,
    event_time: EventTime,
    table: Arc<str>,
    template: Option<minijinja::Environment<'static>>,
    findings: Vec<Finding>,
    row: u64,
}

impl<'a> FindingBuilder<'a> {
    fn new(rule: &'a Rule, sql: &'a SqlRule, ds: NaiveDate) -> FindingBuilder<'a> {
        let timezone = sql.schedule.as_ref().map_or(chrono_tz::UTC, |s| s.timezone);
        let template = sql.message.as_ref().and_then(|m| {
            let mut env = minijinja::Environment::new();
            env.add_template_owned("message", m.sql.clone()).ok().map(|()| env)
        });
        FindingBuilder {
            rule,
            sql,
            ds: Arc::from(ds.to_string()),
            event_time: EventTime::from_micros(end_of_day(ds, timezone).timestamp_micros()),
            table: Arc::from(format!("sql:{}", rule.id)),
            template,
            findings: Vec::new(),
            row: 0,
        }
    }

    fn add(&mut self, batch: &RecordBatch, cap: u64) {
        let schema = batch.schema();
        let column = |name: &str| schema.index_of(name).ok().map(|i| batch.column(i));
        for i in 0..batch.num_rows() {
            self.row += 1;
            if self.findings.len() as u64 >= cap {
                continue;
            }
            let mut row = Row::with_capacity(schema.fields().len());
            for (field, array) in schema.fields().iter().zip(batch.columns()) {
                let shown = self.sql.evidence.as_ref().is_none_or(|e| e.contains(field.name()));
                if shown {
                    row.push(Arc::from(field.name().as_str()), cell(array, i));
                }
            }
            let key: BTreeMap<String, Value> =
                self.sql.key.iter().map(|k| (k.clone(), column(k).map_or(Value::Null, |a| value_at(a, i)))).collect();
            let money_at_risk = self.sql.money.as_ref().and_then(|(amount, currency)| {
                let amount = column(amount).map(|a| cell(a, i))?;
                let currency = currency.as_ref().and_then(|c| match column(c).map(|a| cell(a, i)) {
                    Some(Value::String(s)) => Some(Value::String(s)),
                    _ => None,
                });
                Money::from_value(&amount, currency.as_ref(), self.sql.money_unit)
            });
            let message = self.message(&key, &row);
            self.findings.push(Finding {
                rule: self.rule.id.clone(),
                owner: self.rule.owner.clone(),
                severity: self.rule.severity,
                key,
                event_time: self.event_time,
                detected_at: self.event_time,
                message,
                evidence: vec![Evidence {
                    table: self.table.clone(),
                    op: Op::Message,
                    commit_time: self.event_time,
                    position: Position::Query {
                        rule: Arc::from(self.rule.id.as_str()),
                        ds: self.ds.clone(),
                        row: self.row,
                    },
                    before: None,
                    after: Some(row),
                }],
                money_at_risk,
                tags: self.rule.tags.clone(),
                action: self.rule.action.clone(),
                fingerprint_by: self.rule.fingerprint_by.clone(),
            });
        }
    }

    fn message(&self, key: &BTreeMap<String, Value>, row: &Row) -> String {
        let rendered = self.template.as_ref().and_then(|env| {
            let context = minijinja::context! {
                row => minijinja::Value::from(minijinja::value::Serde(row)),
                key => minijinja::Value::from(minijinja::value::Serde(key)),
                ds => self.ds.as_ref(),
            };
            env.get_template("message").and_then(|t| t.render(context)).ok()
        });
        rendered.unwrap_or_else(|| {
            let key: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{} for {}: {}", self.rule.id, self.ds, key.join(" "))
        })
    }
}

/// A run that could not start (the warehouse could not be opened): recorded failed with
/// `error`, its one finding the failure.
pub fn failed(
    rule: &Rule,
    ds: NaiveDate,
    scheduled_for: Option<DateTime<Utc>>,
    started: DateTime<Utc>,
    error: &str,
) -> RunOutcome {
    let mut record = RunRecord::new(rule, ds, scheduled_for, started);
    (record.findings, record.status, record.error) = (1, RunStatus::Failed, Some(error.to_string()));
    let finding = failure(rule, &record, EventTime::from_micros(started.timestamp_micros()));
    RunOutcome { record, findings: vec![finding] }
}

/// The finding a failed run raises: keyed by the business date, so every failed date is
/// its own alert and a retry that fails again counts on the same one.
fn failure(rule: &Rule, record: &RunRecord, detected_at: EventTime) -> Finding {
    let ds = record.ds.to_string();
    let error = record.error.clone().unwrap_or_default();
    let mut tags: Vec<String> = rule.tags.to_vec();
    tags.push(FAILED_RUN_TAG.to_string());
    let mut after = Row::new();
    after.push(Arc::from("status"), Value::String(record.status.as_str().to_string()));
    after.push(Arc::from("error"), Value::String(error.clone()));
    Finding {
        rule: rule.id.clone(),
        owner: rule.owner.clone(),
        severity: rule.severity,
        key: BTreeMap::from([("failed_run".to_string(), Value::String(ds.clone()))]),
        event_time: detected_at,
        detected_at,
        message: format!(
            "scheduled check {} for {ds} did not run: {error}; after fixing it, run `fundguard sql run {} --date {ds}`",
            rule.id, rule.id
        ),
        evidence: vec![Evidence {
            table: Arc::from(format!("sql:{}", rule.id)),
            op: Op::Message,
            commit_time: detected_at,
            position: Position::Query { rule: Arc::from(rule.id.as_str()), ds: Arc::from(ds), row: 0 },
            before: None,
            after: Some(after),
        }],
        money_at_risk: None,
        tags: tags.into(),
        action: None,
        fingerprint_by: None,
    }
}
