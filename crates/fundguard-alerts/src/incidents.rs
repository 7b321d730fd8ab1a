//! Incidents: the alerts one cause raised, grouped as they are recorded.
//!
//! One bad deploy breaks two thousand orders; each is its own alert (one per rule and
//! key), but people need one thing to work. So every new alert joins an *incident*: the
//! open incident of its *flow* (its rule, or the flow the config puts it in with related
//! rules) whose alerts' events lie within the burst window of its own, or a new one. An
//! incident counts its alerts and money at risk and keeps a [`Profile`] of its evidence rows
//! — bounded counts per column — from which attribution ranks the likely causes at read
//! time, against the traffic's baseline (saved by the pipeline in `attribution_baseline`).
//!
//! **Notifications go out per incident.** The alert that opens an incident notifies as any
//! alert does; alerts that join it do not. Instead the incident sends `incident_updated`
//! (about its first alert, carrying the incident's counts and money) when new alerts have
//! joined and its next update is due: one minute after it opened, then at doubling
//! intervals up to an hour — when a new alert comes, or, for an incident whose alerts
//! stopped, when the notifier finds it due ([`send_due_updates`]), so the final count is told.
//! `IncidentPolicy::notify_every_alert` restores one notification per alert.
//!
//! Recording works per batch ([`IncidentBatch`]): an incident's counters and profile are
//! read and written once per batch of findings, not once per alert, so a storm of a
//! hundred thousand alerts costs a hundred-odd profile updates.

use std::collections::BTreeMap;

use fundguard_attribution::{
    Change, ChangeCause, DimensionCause, FINDINGS_TABLE, INCIDENT_CAPACITY, IncidentContext, Profile, ServiceMap,
    rank_changes, rank_dimensions,
};
use fundguard_core::{EventTime, Finding, Money, MoneyTotals, Severity};
use serde::{Deserialize, Serialize};

use crate::lifecycle::timeline;
use crate::model::{AlertError, Change as AlertChange, Status};
use crate::outbox::enqueue_incident_update;
use crate::routes::Routes;
use crate::sql::{Row, RowError, Sql};

/// How alerts group into incidents, and how incidents notify.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentPolicy {
    /// Alerts of one flow whose events lie at most this far apart join one incident
    /// (microseconds of event time).
    pub burst_micros: i64,
    /// Rule id → the flow it shares with related rules (a rule not named is its own flow).
    pub flows: BTreeMap<String, String>,
    /// One notification per alert, as before incidents (default: per incident).
    pub notify_every_alert: bool,
    /// Services: the tables each writes and its team, for ranking changes.
    pub services: ServiceMap,
    /// Per rule, the (table, column)s its own conditions fix (`fundguard_engine::fixed_columns`):
    /// every alert of the rule shares their values, so they are left out of its incidents'
    /// profiles — they cannot explain why it fired.
    pub fixed_columns: BTreeMap<String, Vec<(String, String)>>,
}

/// Alerts of a flow within ten minutes of each other are one incident by default.
pub const DEFAULT_BURST_MICROS: i64 = 10 * 60 * 1_000_000;
/// The first update of an incident, and the longest interval between updates.
const FIRST_UPDATE_MICROS: i64 = 60 * 1_000_000;
const MAX_UPDATE_MICROS: i64 = 3600 * 1_000_000;
/// Ranked causes kept per kind.
const CAUSES: usize = 5;

impl Default for IncidentPolicy {
    fn default() -> IncidentPolicy {
        IncidentPolicy {
            burst_micros: DEFAULT_BURST_MICROS,
            flows: BTreeMap::new(),
            notify_every_alert: false,
            services: ServiceMap::default(),
            fixed_columns: BTreeMap::new(),
        }
    }
}

impl IncidentPolicy {
    fn flow_of<'a>(&'a self, rule: &'a str) -> &'a str {
        self.flows.get(rule).map_or(rule, String::as_str)
    }
}

/// What a store decides from the config: where notifications go and how incidents form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    pub routes: Routes,
    pub incidents: IncidentPolicy,
}

impl From<Routes> for Policy {
    fn from(routes: Routes) -> Policy {
        Policy { routes, incidents: IncidentPolicy::default() }
    }
}

/// Where an incident stands: open until someone acknowledges or resolves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    Open,
    Acknowledged,
    Resolved,
}

impl IncidentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Open => "open",
            IncidentStatus::Acknowledged => "acknowledged",
            IncidentStatus::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Option<IncidentStatus> {
        [IncidentStatus::Open, IncidentStatus::Acknowledged, IncidentStatus::Resolved]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One incident, as lists show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    pub id: i64,
    /// The rule, or the flow of related rules, whose alerts it groups.
    pub flow: String,
    pub owner: String,
    pub severity: Severity,
    pub status: IncidentStatus,
    /// The alert that opened it.
    pub first_alert: i64,
    /// Event time of its earliest and latest alert.
    pub started_at: EventTime,
    pub last_at: EventTime,
    /// When fundguard opened it.
    pub opened_at: EventTime,
    pub alerts: u64,
    /// Money at risk of its alerts, per currency.
    pub money_at_risk: Vec<Money>,
    /// `4,198.45 CNY, 1,500 JPY`.
    pub money_display: String,
    pub resolved_at: Option<EventTime>,
    pub root_cause: Option<String>,
}

/// A ranked cause with what people said of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked<T> {
    #[serde(flatten)]
    pub cause: T,
    /// `confirmed` or `rejected`, with who said so.
    pub feedback: Option<Feedback>,
}

/// A person's verdict on a cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Feedback {
    pub cause: String,
    pub verdict: String,
    pub actor: String,
    pub at: EventTime,
    pub note: Option<String>,
}

/// One incident with its likely causes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentDetail {
    #[serde(flatten)]
    pub incident: Incident,
    /// Distinct keys among its alerts.
    pub keys: u64,
    /// Its alerts' ids, oldest first (at most [`DETAIL_ALERTS`]).
    pub alert_ids: Vec<i64>,
    /// Attributes of its evidence, best explanation first.
    pub dimensions: Vec<Ranked<DimensionCause>>,
    /// Changes before it, most likely cause first.
    pub changes: Vec<Ranked<ChangeCause>>,
    /// Feedback on causes no longer ranked.
    pub feedback: Vec<Feedback>,
}

/// Alert ids an incident's detail lists.
pub const DETAIL_ALERTS: usize = 1000;

const INCIDENT_COLUMNS: &str = "id, flow, owner, severity, status, first_alert, started_at, last_at, opened_at, \
    alerts, money_json, resolved_at, root_cause";

fn incident_from(r: &Row) -> Result<Incident, RowError> {
    let money = money_of(&r.text(10)?);
    Ok(Incident {
        id: r.int(0)?,
        flow: r.text(1)?,
        owner: r.text(2)?,
        severity: serde_json::from_value(serde_json::Value::String(r.text(3)?)).unwrap_or(Severity::Critical),
        status: IncidentStatus::parse(&r.text(4)?).unwrap_or(IncidentStatus::Open),
        first_alert: r.int(5)?,
        started_at: EventTime::from_micros(r.int(6)?),
        last_at: EventTime::from_micros(r.int(7)?),
        opened_at: EventTime::from_micros(r.int(8)?),
        alerts: r.int(9)? as u64,
        money_display: money.display(),
        money_at_risk: money.iter().collect(),
        resolved_at: r.opt_int(11)?.map(EventTime::from_micros),
        root_cause: r.opt_text(12)?,
    })
}

fn money_of(json: &str) -> MoneyTotals {
    let mut totals = MoneyTotals::default();
    for m in serde_json::from_str::<Vec<Money>>(json).unwrap_or_default() {
        totals.add(&m);
    }
    totals
}

/// The open incident of a flow, as a batch knows it.
#[derive(Debug, Clone)]
struct OpenIncident {
    id: i64,
    started_at: i64,
    last_at: i64,
}

/// What a batch adds to one incident.
#[derive(Default)]
struct Joined {
    alerts: u64,
    started_at: i64,
    last_at: i64,
    money: MoneyTotals,
    /// The evidence rows to count into its profile: (table, row).
    rows: Vec<(String, fundguard_core::Row)>,
    /// Where each came from: (table, source).
    origins: Vec<(String, String)>,
}

/// Incidents touched while one batch of findings is recorded; [`IncidentBatch::flush`]
/// writes what the batch added.
pub(crate) struct IncidentBatch<'p> {
    policy: &'p IncidentPolicy,
    open: BTreeMap<String, OpenIncident>,
    joined: BTreeMap<i64, Joined>,
    /// The traffic's baseline (read once per batch, when needed).
    baseline: Option<Profile>,
}

impl<'p> IncidentBatch<'p> {
    pub(crate) fn new(policy: &'p IncidentPolicy) -> IncidentBatch<'p> {
        IncidentBatch { policy, open: BTreeMap::new(), joined: BTreeMap::new(), baseline: None }
    }

    /// The incident a new alert of `finding` joins: the open one of its flow within the
    /// burst window, or a new one (then `true`: the alert opens it). `alert` is the new
    /// alert's id.
    pub(crate) fn assign(
        &mut self,
        sql: &mut dyn Sql,
        finding: &Finding,
        alert: i64,
    ) -> Result<(i64, bool), AlertError> {
        let flow = self.policy.flow_of(&finding.rule).to_string();
        let at = finding.event_time.as_micros();
        let burst = self.policy.burst_micros;
        let within =
            |o: &OpenIncident| at >= o.started_at.saturating_sub(burst) && at <= o.last_at.saturating_add(burst);
        if !self.open.contains_key(&flow) {
            let found = sql.row(
                "SELECT id, started_at, last_at FROM incidents WHERE flow = $1 AND status <> 'resolved' \
                 ORDER BY last_at DESC, id DESC LIMIT 1",
                &[flow.as_str().into()],
                |r| Ok(OpenIncident { id: r.int(0)?, started_at: r.int(1)?, last_at: r.int(2)? }),
            )?;
            if let Some(found) = found {
                self.open.insert(flow.clone(), found);
            }
        }
        if let Some(open) = self.open.get_mut(&flow).filter(|o| within(o)) {
            open.started_at = open.started_at.min(at);
            open.last_at = open.last_at.max(at);
            return Ok((open.id, false));
        }
        let seen = finding.detected_at.as_micros();
        let id = sql.one(
            "INSERT INTO incidents (flow, owner, severity, status, first_alert, started_at, last_at, opened_at, \
             alerts, money_json, profile_json, notified_alerts, next_update_at, update_interval) \
             VALUES ($1, $2, $3, 'open', $4, $5, $5, $6, 0, '[]', '', 1, $7, $8) RETURNING id",
            &[
                flow.as_str().into(),
                finding.owner.as_str().into(),
                finding.severity.as_str().into(),
                alert.into(),
                at.into(),
                seen.into(),
                seen.saturating_add(FIRST_UPDATE_MICROS).into(),
                FIRST_UPDATE_MICROS.into(),
            ],
            |r| r.int(0),
        )?;
        self.open.insert(flow, OpenIncident { id, started_at: at, last_at: at });
        Ok((id, true))
    }

    /// Counts a new alert of `finding` into incident `id`.
    pub(crate) fn add(&mut self, id: i64, finding: &Finding) {
        let at = finding.event_time.as_micros();
        let joined =
            self.joined.entry(id).or_insert_with(|| Joined { started_at: at, last_at: at, ..Joined::default() });
        joined.alerts += 1;
        joined.started_at = joined.started_at.min(at);
        joined.last_at = joined.last_at.max(at);
        if let Some(m) = &finding.money_at_risk {
            joined.money.add(m);
        }
        let fixed = self.policy.fixed_columns.get(&finding.rule);
        for e in &finding.evidence {
            let Some(row) = e.after.as_ref().or(e.before.as_ref()) else { continue };
            let is_fixed = |column: &str| fixed.is_some_and(|f| f.iter().any(|(t, c)| **t == *e.table && c == column));
            let mut kept = fundguard_core::Row::with_capacity(row.len());
            for (name, value) in row.columns().filter(|(name, _)| !is_fixed(name)) {
                kept.push(name.clone(), value.clone());
            }
            joined.rows.push((e.table.to_string(), kept));
            joined.origins.push((e.table.to_string(), e.position.source().to_string()));
        }
    }

    /// Writes each touched incident's counters, money and profile, and queues the
    /// incident updates that are due at `now`.
    pub(crate) fn flush(mut self, sql: &mut dyn Sql, routes: &Routes, now: i64) -> Result<(), AlertError> {
        if self.joined.is_empty() {
            return Ok(());
        }
        let baseline = match self.baseline.take() {
            Some(b) => b,
            None => baseline(sql)?.unwrap_or_else(|| Profile::new(INCIDENT_CAPACITY)),
        };
        let paired = baseline.paired_columns();
        for (id, joined) in std::mem::take(&mut self.joined) {
            let stored = sql.row(
                "SELECT alerts, money_json, profile_json, started_at, last_at, notified_alerts, next_update_at, \
                 update_interval, first_alert FROM incidents WHERE id = $1",
                &[id.into()],
                |r| {
                    Ok((
                        r.int(0)?,
                        r.text(1)?,
                        r.text(2)?,
                        r.int(3)?,
                        r.int(4)?,
                        r.int(5)?,
                        r.int(6)?,
                        r.int(7)?,
                        r.int(8)?,
                    ))
                },
            )?;
            let Some((alerts, money, profile, started, last, notified, next_update, interval, first)) = stored else {
                continue;
            };
            let mut profile: Profile =
                serde_json::from_str(&profile).unwrap_or_else(|_| Profile::new(INCIDENT_CAPACITY));
            for (table, row) in &joined.rows {
                let pairs = paired.get(table).map_or(&[][..], Vec::as_slice);
                profile.observe(table, row, Some(pairs));
            }
            for (table, source) in &joined.origins {
                profile.observe_origin(table, source);
            }
            let mut totals = money_of(&money);
            for m in joined.money.iter() {
                totals.add(&m);
            }
            let alerts = alerts + joined.alerts as i64;
            let money_json = serde_json::to_string(&totals.iter().collect::<Vec<_>>()).unwrap_or_else(|_| "[]".into());
            let (mut notified, mut next_update, mut interval) = (notified, next_update, interval);
            if !self.policy.notify_every_alert && alerts > notified && now >= next_update {
                let update = Update { id, first, alerts, money: &totals, profile: &profile };
                (notified, next_update, interval) = update.send(sql, routes, &baseline, interval, now)?;
            }
            sql.execute(
                "UPDATE incidents SET alerts = $2, money_json = $3, profile_json = $4, started_at = $5, last_at = $6, \
                 notified_alerts = $7, next_update_at = $8, update_interval = $9 WHERE id = $1",
                &[
                    id.into(),
                    alerts.into(),
                    money_json.into(),
                    serde_json::to_string(&profile).unwrap_or_default().into(),
                    started.min(joined.started_at).into(),
                    last.max(joined.last_at).into(),
                    notified.into(),
                    next_update.into(),
                    interval.into(),
                ],
            )?;
        }
        Ok(())
    }

    /// Whether a new alert notifies on its own (it opened its incident, or the policy
    /// notifies every alert).
    pub(crate) fn notifies_alone(&self, opened_incident: bool) -> bool {
        opened_incident || self.policy.notify_every_alert
    }
}

/// An incident update about to be queued.
struct Update<'a> {
    id: i64,
    first: i64,
    alerts: i64,
    money: &'a MoneyTotals,
    profile: &'a Profile,
}

impl Update<'_> {
    /// Queues the update with the top causes; answers the incident's new (notified alerts,
    /// next update, interval): the interval doubles, up to an hour.
    fn send(
        &self,
        sql: &mut dyn Sql,
        routes: &Routes,
        baseline: &Profile,
        interval: i64,
        now: i64,
    ) -> Result<(i64, i64, i64), AlertError> {
        let causes = rank_dimensions(self.profile, baseline, 3).iter().map(cause_text).collect();
        let brief = IncidentBrief {
            id: self.id,
            alerts: self.alerts as u64,
            money_at_risk: self.money.iter().collect(),
            causes,
        };
        enqueue_incident_update(sql, routes, self.first, &brief, now)?;
        let interval = (interval * 2).min(MAX_UPDATE_MICROS);
        Ok((self.alerts, now.saturating_add(interval), interval))
    }
}

/// Sends the updates that came due without a new alert to trigger them: an incident whose
/// alerts stopped coming still tells its final count once its next update is due. The
/// notifier calls it as it delivers; nothing is due under `notify_every_alert`.
pub(crate) fn send_due_updates(sql: &mut dyn Sql, policy: &Policy, now: i64) -> Result<usize, AlertError> {
    if policy.incidents.notify_every_alert {
        return Ok(0);
    }
    let due = sql.rows(
        "SELECT id, first_alert, alerts, money_json, profile_json, update_interval FROM incidents \
         WHERE status <> 'resolved' AND alerts > notified_alerts AND next_update_at <= $1",
        &[now.into()],
        |r| Ok((r.int(0)?, r.int(1)?, r.int(2)?, r.text(3)?, r.text(4)?, r.int(5)?)),
    )?;
    if due.is_empty() {
        return Ok(0);
    }
    let baseline = baseline(sql)?.unwrap_or_else(|| Profile::new(INCIDENT_CAPACITY));
    for (id, first, alerts, money, profile, interval) in &due {
        let profile: Profile = serde_json::from_str(profile).unwrap_or_else(|_| Profile::new(INCIDENT_CAPACITY));
        let money = money_of(money);
        let update = Update { id: *id, first: *first, alerts: *alerts, money: &money, profile: &profile };
        let (notified, next, interval) = update.send(sql, &policy.routes, &baseline, *interval, now)?;
        sql.execute(
            "UPDATE incidents SET notified_alerts = $2, next_update_at = $3, update_interval = $4 WHERE id = $1",
            &[(*id).into(), notified.into(), next.into(), interval.into()],
        )?;
    }
    Ok(due.len())
}

/// What an incident update notification carries besides its first alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentBrief {
    pub id: i64,
    pub alerts: u64,
    pub money_at_risk: Vec<Money>,
    /// The top dimension causes when the update was sent: `shop.payments.channel=card
    /// (100 % of the incident, 33 % of the traffic)`.
    #[serde(default)]
    pub causes: Vec<String>,
}

/// A dimension cause in words, with its figures.
fn cause_text(c: &DimensionCause) -> String {
    format!("{} ({:.0} % of the incident, {:.1} % of the traffic)", c.name, c.support * 100.0, c.baseline_share * 100.0)
}

/// The traffic's baseline as the pipeline last saved it.
pub(crate) fn baseline(sql: &mut dyn Sql) -> Result<Option<Profile>, AlertError> {
    let text = sql.row("SELECT profile_json FROM attribution_baseline WHERE name = 'traffic'", &[], |r| r.text(0))?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

/// Saves the traffic's baseline (replacing the last one).
pub(crate) fn save_baseline(sql: &mut dyn Sql, profile: &Profile, now: i64) -> Result<(), AlertError> {
    let json = serde_json::to_string(profile).unwrap_or_default();
    sql.execute(
        "INSERT INTO attribution_baseline (name, profile_json, updated_at) VALUES ('traffic', $1, $2) \
         ON CONFLICT (name) DO UPDATE SET profile_json = excluded.profile_json, updated_at = excluded.updated_at",
        &[json.into(), now.into()],
    )
    .map(|_| ())
}

/// Incidents, most recent first.
pub(crate) fn list(
    sql: &mut dyn Sql,
    status: Option<IncidentStatus>,
    limit: usize,
) -> Result<Vec<Incident>, AlertError> {
    let limit = crate::outbox::count(if limit == 0 { 100 } else { limit });
    match status {
        Some(s) => sql.rows(
            &format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE status = $1 ORDER BY last_at DESC, id DESC LIMIT $2"
            ),
            &[s.as_str().into(), limit],
            incident_from,
        ),
        None => sql.rows(
            &format!("SELECT {INCIDENT_COLUMNS} FROM incidents ORDER BY last_at DESC, id DESC LIMIT $1"),
            &[limit],
            incident_from,
        ),
    }
}

/// Incident `id` with its alerts and its ranked causes.
pub(crate) fn detail(sql: &mut dyn Sql, policy: &IncidentPolicy, id: i64) -> Result<IncidentDetail, AlertError> {
    let incident = sql
        .row(&format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1"), &[id.into()], incident_from)?
        .ok_or(AlertError::IncidentNotFound(id))?;
    let profile: Profile = sql
        .one("SELECT profile_json FROM incidents WHERE id = $1", &[id.into()], |r| r.text(0))
        .map(|t| serde_json::from_str(&t).unwrap_or_else(|_| Profile::new(INCIDENT_CAPACITY)))?;
    let keys =
        sql.one("SELECT count(DISTINCT key_json) FROM alerts WHERE incident_id = $1", &[id.into()], |r| r.int(0))?;
    let alert_ids = sql.rows(
        "SELECT id FROM alerts WHERE incident_id = $1 ORDER BY id LIMIT $2",
        &[id.into(), crate::outbox::count(DETAIL_ALERTS)],
        |r| r.int(0),
    )?;
    let mut profile = profile;
    let mut baseline = baseline(sql)?.unwrap_or_else(|| Profile::new(INCIDENT_CAPACITY));
    // Which rules its alerts come from, against every alert's rule: a flow of several rules
    // says which of them broke.
    let by_rule = |r: &Row| Ok((r.text(0)?, r.int(1)? as u64));
    // (An incident of one rule is all that rule by construction: nothing to rank.)
    let ours =
        sql.rows("SELECT rule, count(*) FROM alerts WHERE incident_id = $1 GROUP BY rule", &[id.into()], by_rule)?;
    if ours.len() > 1 {
        let all = sql.rows("SELECT rule, count(*) FROM alerts GROUP BY rule", &[], by_rule)?;
        profile.observe_counts(FINDINGS_TABLE, "rule", &ours);
        baseline.observe_counts(FINDINGS_TABLE, "rule", &all);
    }
    let dimensions = rank_dimensions(&profile, &baseline, CAUSES);
    let start = incident.started_at.as_micros();
    let changes = sql.rows(
        &format!("SELECT {CHANGE_COLUMNS} FROM changes WHERE at >= $1 AND at <= $2 ORDER BY at"),
        &[
            start.saturating_sub(fundguard_attribution::LOOKBACK).into(),
            start.saturating_add(fundguard_attribution::SLACK).into(),
        ],
        change_from,
    )?;
    let tables: Vec<String> = profile.tables().keys().filter(|t| !t.starts_with('(')).cloned().collect();
    let context = IncidentContext { start: incident.started_at, tables: &tables, owner: &incident.owner };
    let changes = rank_changes(&changes, &context, &policy.services, CAUSES);
    let mut feedback = sql.rows(
        "SELECT cause, verdict, actor, at, note FROM cause_feedback WHERE incident_id = $1 ORDER BY at",
        &[id.into()],
        |r| {
            Ok(Feedback {
                cause: r.text(0)?,
                verdict: r.text(1)?,
                actor: r.text(2)?,
                at: EventTime::from_micros(r.int(3)?),
                note: r.opt_text(4)?,
            })
        },
    )?;
    let mut take = |name: &str| {
        let i = feedback.iter().position(|f| f.cause == name)?;
        Some(feedback.remove(i))
    };
    let dimensions =
        dimensions.into_iter().map(|cause| Ranked { feedback: take(&cause.name), cause }).collect::<Vec<_>>();
    let changes = changes.into_iter().map(|cause| Ranked { feedback: take(&cause.name), cause }).collect::<Vec<_>>();
    Ok(IncidentDetail { incident, keys: keys as u64, alert_ids, dimensions, changes, feedback })
}

/// Records a person's verdict (`confirmed` or `rejected`) on a cause of incident `id`.
pub(crate) fn feedback(
    sql: &mut dyn Sql,
    id: i64,
    cause: &str,
    confirmed: bool,
    note: Option<&str>,
    actor: &str,
    now: i64,
) -> Result<(), AlertError> {
    sql.row("SELECT id FROM incidents WHERE id = $1", &[id.into()], |r| r.int(0))?
        .ok_or(AlertError::IncidentNotFound(id))?;
    let verdict = if confirmed { "confirmed" } else { "rejected" };
    sql.execute(
        "INSERT INTO cause_feedback (incident_id, cause, verdict, actor, at, note) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (incident_id, cause) DO UPDATE SET verdict = excluded.verdict, actor = excluded.actor, \
         at = excluded.at, note = excluded.note",
        &[id.into(), cause.into(), verdict.into(), actor.into(), now.into(), note.into()],
    )
    .map(|_| ())
}

/// Applies a person's change to every alert of incident `id` that it applies to, each
/// with its own timeline entry; only the incident's first alert notifies (the others
/// never did on their own). Acknowledging or resolving also sets the incident's status.
pub(crate) fn change(
    sql: &mut dyn Sql,
    routes: &Routes,
    id: i64,
    change: &AlertChange,
    actor: &str,
    now: EventTime,
) -> Result<usize, AlertError> {
    let first = sql
        .row("SELECT first_alert FROM incidents WHERE id = $1", &[id.into()], |r| r.int(0))?
        .ok_or(AlertError::IncidentNotFound(id))?;
    let alerts = sql.rows("SELECT id, status FROM alerts WHERE incident_id = $1 ORDER BY id", &[id.into()], |r| {
        Ok((r.int(0)?, r.text(1)?))
    })?;
    let silent = Routes::default();
    let mut changed = 0;
    for (alert, status) in alerts {
        let status = Status::parse(&status).unwrap_or(Status::Open);
        if change.apply_to(alert, status).is_err() {
            continue;
        }
        let routes = if alert == first { routes } else { &silent };
        crate::lifecycle::change(sql, routes, alert, change, actor, now)?;
        changed += 1;
    }
    let status = match change {
        AlertChange::Acknowledge => Some(IncidentStatus::Acknowledged),
        AlertChange::Resolve { .. } | AlertChange::FalsePositive { .. } | AlertChange::Expected { .. } => {
            Some(IncidentStatus::Resolved)
        }
        _ => None,
    };
    if let Some(status) = status {
        let resolved = (status == IncidentStatus::Resolved).then_some(now.as_micros());
        sql.execute(
            "UPDATE incidents SET status = $2, resolved_at = $3, root_cause = coalesce($4, root_cause) WHERE id = $1",
            &[id.into(), status.as_str().into(), resolved.into(), change.detail().into()],
        )?;
    }
    timeline(
        sql,
        first,
        now.as_micros(),
        actor,
        "incident_changed",
        Some(&format!("incident {id}: {} on {changed} alert(s)", change.action())),
    )?;
    Ok(changed)
}

const CHANGE_COLUMNS: &str = "id, service, kind, version, at, author, link, tables_json, description";

fn change_from(r: &Row) -> Result<Change, RowError> {
    Ok(Change {
        id: r.int(0)?,
        service: r.text(1)?,
        kind: r.text(2)?,
        version: r.opt_text(3)?,
        at: EventTime::from_micros(r.int(4)?),
        author: r.opt_text(5)?,
        link: r.opt_text(6)?,
        tables: serde_json::from_str(&r.text(7)?).unwrap_or_default(),
        description: r.opt_text(8)?,
    })
}

/// Stores a change; its id. A change already stored — same service, kind, version, time
/// and description — is not stored again: its id is returned. Sources send changes again
/// after a crash (a binlog's DDL is re-read from the last checkpoint), webhooks redeliver.
pub(crate) fn add_change(sql: &mut dyn Sql, change: &Change, now: i64) -> Result<i64, AlertError> {
    let stored = sql.rows(
        "SELECT id FROM changes WHERE service = $1 AND kind = $2 AND at = $3 \
         AND COALESCE(version, '') = $4 AND COALESCE(description, '') = $5 ORDER BY id LIMIT 1",
        &[
            change.service.as_str().into(),
            change.kind.as_str().into(),
            change.at.as_micros().into(),
            change.version.clone().unwrap_or_default().into(),
            change.description.clone().unwrap_or_default().into(),
        ],
        |r| r.int(0),
    )?;
    if let Some(id) = stored.first() {
        return Ok(*id);
    }
    sql.one(
        "INSERT INTO changes (service, kind, version, at, author, link, tables_json, description, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        &[
            change.service.as_str().into(),
            change.kind.as_str().into(),
            change.version.clone().into(),
            change.at.as_micros().into(),
            change.author.clone().into(),
            change.link.clone().into(),
            serde_json::to_string(&change.tables).unwrap_or_else(|_| "[]".into()).into(),
            change.description.clone().into(),
            now.into(),
        ],
        |r| r.int(0),
    )
}

/// Changes that took effect in `[from, to]`, oldest first.
pub(crate) fn changes(sql: &mut dyn Sql, from: EventTime, to: EventTime) -> Result<Vec<Change>, AlertError> {
    sql.rows(
        &format!("SELECT {CHANGE_COLUMNS} FROM changes WHERE at >= $1 AND at <= $2 ORDER BY at, id"),
        &[from.as_micros().into(), to.as_micros().into()],
        change_from,
    )
}
