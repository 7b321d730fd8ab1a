//! Rule health for the commands and the service: reads what the alert store keeps about
//! each rule and judges it with `fundguard_health` — shared by `fundguard rules health`,
//! the running service's health task and the console.

use std::collections::HashMap;

use fundguard_alerts::AlertStore;
use fundguard_core::{EventTime, TableSchemas};
use fundguard_health::{Canary, HealthPolicy, RuleHealth, State, Subject, assess};
use fundguard_rules::{Mode, Rule};

/// `YYYY-MM-DD` of the UTC day `days` before `now`.
pub fn day_before(now: EventTime, days: u32) -> String {
    let t = EventTime::from_micros(now.as_micros() - i64::from(days) * 86_400_000_000);
    t.to_string().chars().take(10).collect()
}

/// The rule as health sees it.
fn subject(rule: &Rule) -> Subject {
    let changed_at = std::fs::metadata(&*rule.at.file)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| EventTime::from_micros(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)));
    Subject {
        id: rule.id.clone(),
        owner: rule.owner.clone(),
        kind: rule.body.kind().to_string(),
        mode: if rule.mode == Mode::Shadow { "shadow" } else { "live" }.to_string(),
        tables: if rule.body.is_streaming() { rule.body.tables() } else { Vec::new() },
        filters: rule.body.filters(),
        changed_at,
    }
}

/// The rule's own tests, re-run against its definition as it is now.
fn canary(rule: &Rule, schemas: &TableSchemas) -> Canary {
    let outcomes = fundguard_engine::run_rule_tests(std::slice::from_ref(rule), schemas);
    let failure = outcomes.iter().find_map(fundguard_engine::TestOutcome::failure);
    Canary { tests: outcomes.len(), passed: outcomes.iter().filter(|o| o.passed()).count(), failure }
}

/// Judges every rule of a service's config, now, from its alert store: what `fundguard
/// rules health` and `fundguard report freshness` show.
pub fn assess_config(config: &crate::config::Config) -> anyhow::Result<Vec<RuleHealth>> {
    use anyhow::Context;
    let location = config
        .alert_store()
        .context("the config has no `alerts` sink, so no statistics are kept: add `sinks: [{ type: alerts }]`")?;
    let store = crate::alerting::open_store(&location, fundguard_alerts::Routes::default())?;
    let rules = crate::commands::rules(&config.rules)?;
    let schemas = crate::schemas::load(config.schema.as_ref())?;
    let now = crate::pipeline::wall_clock();
    assess_rules(&rules, store.as_ref(), &config.health.policy, &schemas, now)
}

/// Judges every rule from what `store` keeps. A rule found silent has its tests re-run as
/// canaries (so "silent and still works" differs from "silent and broken").
pub fn assess_rules(
    rules: &[Rule],
    store: &dyn AlertStore,
    policy: &HealthPolicy,
    schemas: &TableSchemas,
    now: EventTime,
) -> anyhow::Result<Vec<RuleHealth>> {
    let since = day_before(now, policy.retention_days.saturating_sub(1));
    let alerts_since = day_before(now, fundguard_health::policy::NOISE_WINDOW_DAYS - 1);
    let history = store.rule_history(&since, &alerts_since)?;
    let alerts: HashMap<&str, &fundguard_alerts::RuleAlerts> =
        history.alerts.iter().map(|a| (a.rule.as_str(), a)).collect();
    let mut judged = Vec::with_capacity(rules.len());
    for rule in rules {
        let subject = subject(rule);
        let of_rule = alerts.get(rule.id.as_str()).copied();
        let mut health = assess(&subject, &history.days, &history.drifts, of_rule, None, policy, now);
        if health.reasons.iter().any(|r| r.state == State::Silent) {
            let canary = canary(rule, schemas);
            health = assess(&subject, &history.days, &history.drifts, of_rule, Some(canary), policy, now);
        }
        judged.push(health);
    }
    judged.sort_by(|a, b| (a.state, &a.owner, &a.id).cmp(&(b.state, &b.owner, &b.id)));
    Ok(judged)
}
