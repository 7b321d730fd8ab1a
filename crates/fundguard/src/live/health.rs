//! Rule health in the running service.
//!
//! - The pipeline thread turns the engine's running counters into increments per rule
//!   ([`StatsTracker`]) every few seconds and sends them here, with new drifts; scheduled
//!   `sql` runs send theirs. The health task adds them to the alert store (its own
//!   connection), so figures survive restarts and add up across instances.
//! - Every `health.every` it judges every rule ([`crate::health::assess_rules`]), keeps
//!   the result for the console and `/metrics`, and raises an alert to a rule's owner when
//!   the rule turns failing or stale (drifts are raised by the engine as they happen).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fundguard_alerts::{AlertStore, RuleDay, RuleDrift, StoreLocation, TableDay};
use fundguard_core::{EventTime, Finding, Severity, TableSchemas, Value};
use fundguard_engine::{HEALTH_TAG, RuleStats};
use fundguard_health::{RuleHealth, State};
use fundguard_server::Telemetry;
use tokio::sync::mpsc;

use super::catalog::Catalog;
use super::input::Input;
use crate::config::Config;

/// What the pipeline and the scheduler tell the health task.
pub enum HealthInput {
    /// Increments of the rules' counters since the last ones, and drifts new since then.
    Stats { days: Vec<RuleDay>, drifts: Vec<RuleDrift> },
    /// One scheduled run of a `sql` rule.
    Run { rule: String, failed: bool, error: Option<String>, at: EventTime },
}

pub type HealthSender = mpsc::UnboundedSender<HealthInput>;

/// The last judgement of every rule, and when it was made: what the console shows.
pub type SharedHealth = fundguard_server::SharedRuleHealth;

/// How often the pipeline thread sends increments.
pub const SEND_EVERY: Duration = Duration::from_secs(2);

/// The UTC day of `t`.
fn day_of(t: EventTime) -> String {
    t.to_string().chars().take(10).collect()
}

/// A rule's counters as last sent.
#[derive(Default)]
struct Sent {
    events: u64,
    passed: u64,
    findings: u64,
    errors: u64,
    tables: Vec<u64>,
    drifts: usize,
    last_error: Option<String>,
}

/// Turns the engine's running counters into increments. A counter lower than last sent
/// belongs to a new engine (a reload that changed the rule): its whole value is new.
#[derive(Default)]
pub struct StatsTracker {
    sent: HashMap<String, Sent>,
}

impl StatsTracker {
    /// What changed since the last call, as increments dated `now`'s day. Times are when
    /// fundguard *processed* what changed (the wall clock `now`), not the events' commit
    /// times: health asks whether a rule works now, also while a source replays old data.
    pub fn increments(&mut self, stats: &[RuleStats], now: EventTime) -> (Vec<RuleDay>, Vec<RuleDrift>) {
        let today = day_of(now);
        let (mut days, mut drifts) = (Vec::new(), Vec::new());
        for s in stats {
            let sent = self.sent.entry(s.rule.clone()).or_default();
            let more = |now: u64, before: u64| if now >= before { now - before } else { now };
            let tables: Vec<TableDay> = s
                .per_table
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let events = more(t.events, sent.tables.get(i).copied().unwrap_or(0));
                    TableDay { table: t.table.clone(), events, last_event: (events > 0).then_some(now) }
                })
                .collect();
            let (events, passed, findings) =
                (more(s.events, sent.events), more(s.passed, sent.passed), more(s.findings, sent.findings));
            let when = |n: u64| (n > 0).then_some(now);
            let day = RuleDay {
                rule: s.rule.clone(),
                day: today.clone(),
                events,
                passed,
                findings,
                errors: more(s.errors, sent.errors),
                last_error: s.last_error.clone().filter(|e| Some(e) != sent.last_error.as_ref()),
                first_event: when(events),
                last_event: when(events),
                last_passed: when(passed),
                last_finding: when(findings),
                state_bytes: s.state_bytes,
                tables,
                ..RuleDay::default()
            };
            let new_drifts = if s.drifts.len() >= sent.drifts { &s.drifts[sent.drifts..] } else { &s.drifts[..] };
            drifts.extend(new_drifts.iter().map(|d| RuleDrift {
                rule: d.rule.clone(),
                kind: d.kind.as_str().to_string(),
                subject: d.subject.clone(),
                table: d.table.clone(),
                detail: d.detail.clone(),
                first_seen: d.first_seen,
                last_seen: d.first_seen,
            }));
            let changed = day.events + day.passed + day.findings + day.errors > 0 || day.last_error.is_some();
            *sent = Sent {
                events: s.events,
                passed: s.passed,
                findings: s.findings,
                errors: s.errors,
                tables: s.per_table.iter().map(|t| t.events).collect(),
                drifts: s.drifts.len(),
                last_error: s.last_error.clone(),
            };
            if changed {
                days.push(day);
            }
        }
        (days, drifts)
    }
}

/// The health task: writes what it is sent, judges every rule every `health.every`.
pub struct HealthTask {
    pub config: Config,
    pub catalog: Arc<Catalog>,
    pub schemas: Arc<TableSchemas>,
    pub location: StoreLocation,
    pub inputs: mpsc::Sender<Input>,
    pub shared: SharedHealth,
    pub telemetry: Arc<Telemetry>,
}

impl HealthTask {
    pub async fn run(self, mut received: mpsc::UnboundedReceiver<HealthInput>) {
        let store = match crate::alerting::open_store(&self.location, fundguard_alerts::Routes::default()) {
            Ok(store) => Arc::new(Mutex::new(store)),
            Err(e) => {
                tracing::error!(error = %e, "rule health is not kept: the alert store does not open: {e:#}");
                return;
            }
        };
        let mut judge = tokio::time::interval(self.config.health.every);
        judge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut states: HashMap<String, State> = HashMap::new();
        loop {
            tokio::select! {
                input = received.recv() => {
                    let Some(input) = input else { return };
                    let mut batch = vec![input];
                    while let Ok(more) = received.try_recv() {
                        batch.push(more);
                    }
                    write(&store, batch).await;
                }
                _ = judge.tick() => {
                    if !self.judge(&store, &mut states).await {
                        return;
                    }
                }
            }
        }
    }

    /// Judges every rule; `false` once the pipeline is gone.
    async fn judge(&self, store: &Arc<Mutex<Box<dyn AlertStore + Send>>>, states: &mut HashMap<String, State>) -> bool {
        let now = crate::pipeline::wall_clock();
        let (store, rules, schemas, policy) =
            (store.clone(), self.catalog.loaded_rules(), self.schemas.clone(), self.config.health.policy.clone());
        let judged = tokio::task::spawn_blocking(move || {
            let store = store.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let judged = crate::health::assess_rules(&rules, store.as_ref(), &policy, &schemas, now);
            let horizon = crate::health::day_before(now, policy.retention_days);
            judged.and_then(|j| store_prune(store, &horizon).map(|()| j))
        })
        .await;
        let judged = match judged {
            Ok(Ok(judged)) => judged,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "judging rule health failed: {e:#}");
                return true;
            }
            Err(_) => return true,
        };
        self.telemetry.rule_health(judged.iter().map(|h| (h.id.clone(), h.owner.clone(), h.state.as_str())).collect());
        let mut findings = Vec::new();
        for h in &judged {
            let before = states.insert(h.id.clone(), h.state);
            if matches!(h.state, State::Failing | State::Stale) && before != Some(h.state) {
                findings.push(health_finding(h, now));
            }
        }
        if let Ok(mut shared) = self.shared.lock() {
            *shared = Some((now, judged));
        }
        if findings.is_empty() {
            return true;
        }
        let (reply, written) = tokio::sync::oneshot::channel();
        self.inputs.send(Input::Findings { findings, reply }).await.is_ok() && written.await.is_ok()
    }
}

/// Forgets per-rule days past the retention horizon (a no-op most rounds).
fn store_prune(mut store: std::sync::MutexGuard<'_, Box<dyn AlertStore + Send>>, before: &str) -> anyhow::Result<()> {
    store.prune_rule_stats(before)?;
    Ok(())
}

/// Adds increments and runs to the store.
async fn write(store: &Arc<Mutex<Box<dyn AlertStore + Send>>>, batch: Vec<HealthInput>) {
    let (mut days, mut drifts) = (Vec::new(), Vec::new());
    for input in batch {
        match input {
            HealthInput::Stats { days: d, drifts: r } => {
                days.extend(d);
                drifts.extend(r);
            }
            HealthInput::Run { rule, failed, error, at } => days.push(RuleDay {
                rule,
                day: day_of(at),
                runs: 1,
                run_failures: u64::from(failed),
                last_error: error,
                ..RuleDay::default()
            }),
        }
    }
    let store = store.clone();
    let written = tokio::task::spawn_blocking(move || {
        let mut store = store.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        store.record_rule_stats(&days, &drifts)
    })
    .await;
    if let Ok(Err(e)) = written {
        tracing::warn!(error = %e, "rule statistics could not be written to the alert store: {e}");
    }
}

/// An alert for the rule's owner: the rule turned failing or stale.
fn health_finding(h: &RuleHealth, now: EventTime) -> Finding {
    let reasons: Vec<&str> = h.reasons.iter().filter(|r| r.state == h.state).map(|r| r.message.as_str()).collect();
    Finding {
        rule: h.id.clone(),
        owner: h.owner.clone(),
        severity: Severity::High,
        key: [("health".to_string(), Value::from(h.state.as_str()))].into_iter().collect(),
        event_time: now,
        detected_at: now,
        message: format!("rule `{}` is {}: {}", h.id, h.state.as_str(), reasons.join("; ")),
        evidence: Vec::new(),
        money_at_risk: None,
        tags: Arc::from(vec![HEALTH_TAG.to_string(), h.state.as_str().to_string()]),
        action: None,
        fingerprint_by: None,
    }
}
