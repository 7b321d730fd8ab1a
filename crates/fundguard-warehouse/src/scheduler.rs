//! The scheduler of `sql` rules inside `fundguard run`.
//!
//! It is driven from outside with the time (`due(now)`), so tests move an injected clock
//! through days of fire times in milliseconds. A run's findings are delivered by the
//! caller before [`Scheduler::done`] records the run and moves the rule's cursor: a crash
//! in between repeats the run rather than losing its findings.

use chrono::{DateTime, Utc};
use fundguard_rules::{Rule, RuleBody};

use crate::Warehouse;
use crate::history::History;
use crate::run::{RunOutcome, failed, run};
use crate::schedule::{business_date, due, last_fire, next_fire};

/// At most this many missed runs of one rule are caught up after downtime (the newest).
pub const MAX_CATCH_UP: usize = 31;

/// A scheduled run that is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueRun {
    pub rule: String,
    pub fire: DateTime<Utc>,
}

/// Runs the scheduled `sql` rules of a rule set.
pub struct Scheduler {
    rules: Vec<Rule>,
    history: History,
}

impl Scheduler {
    /// Schedules the enabled `sql` rules with a `schedule`; other rules are ignored.
    pub fn new(rules: &[Rule], history: History) -> Scheduler {
        let mut scheduler = Scheduler { rules: Vec::new(), history };
        scheduler.set_rules(rules);
        scheduler
    }

    /// Replaces the rule set (after a rule file changed); cursors are kept by rule id.
    pub fn set_rules(&mut self, rules: &[Rule]) {
        self.rules = rules
            .iter()
            .filter(|r| r.enabled && matches!(&r.body, RuleBody::Sql(s) if s.schedule.is_some()))
            .cloned()
            .collect();
    }

    /// The runs due at `now`, oldest first. A rule seen for the first time starts its
    /// schedule at `now` (nothing before it is due).
    pub fn due(&mut self, now: DateTime<Utc>) -> std::io::Result<Vec<DueRun>> {
        let mut runs = Vec::new();
        for rule in &self.rules {
            let RuleBody::Sql(sql) = &rule.body else { continue };
            let Some(schedule) = &sql.schedule else { continue };
            let cursor = match self.history.cursor(&rule.id) {
                Some(c) => c,
                None => {
                    self.history.set_cursor(&rule.id, now)?;
                    now
                }
            };
            let fires = due(schedule, sql.catch_up, Some(cursor), now, MAX_CATCH_UP);
            if fires.is_empty() {
                // Fire times `catch_up: none` skipped are passed, so they are not reconsidered.
                if let Some(last) = last_fire(schedule, cursor, now) {
                    self.history.set_cursor(&rule.id, last)?;
                }
            }
            runs.extend(fires.into_iter().map(|fire| DueRun { rule: rule.id.clone(), fire }));
        }
        runs.sort_by(|a, b| (a.fire, &a.rule).cmp(&(b.fire, &b.rule)));
        Ok(runs)
    }

    /// Runs one due run in `warehouse` — or, when the warehouse could not be opened,
    /// records it failed with that error. `clock` stamps its start and findings.
    pub async fn run(
        &self,
        warehouse: Result<&Warehouse, &str>,
        due: &DueRun,
        clock: &(dyn Fn() -> DateTime<Utc> + Sync),
    ) -> Option<RunOutcome> {
        let rule = self.rules.iter().find(|r| r.id == due.rule)?;
        let RuleBody::Sql(sql) = &rule.body else { return None };
        let schedule = sql.schedule.as_ref()?;
        let ds = business_date(schedule, due.fire);
        Some(match warehouse {
            Ok(warehouse) => run(warehouse, rule, ds, Some(due.fire), clock).await,
            Err(error) => failed(rule, ds, Some(due.fire), clock(), error),
        })
    }

    /// Records a run whose findings were delivered and moves its rule's cursor past it.
    pub fn done(&mut self, outcome: &RunOutcome) -> std::io::Result<()> {
        self.history.record(&outcome.record)?;
        if let Some(fire) = outcome.record.scheduled_for {
            self.history.set_cursor(&outcome.record.rule, fire)?;
        }
        Ok(())
    }

    /// The earliest fire time after `now` of any scheduled rule.
    pub fn next_fire(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.rules
            .iter()
            .filter_map(|r| match &r.body {
                RuleBody::Sql(sql) => sql.schedule.as_ref().and_then(|s| next_fire(s, now)),
                _ => None,
            })
            .min()
    }

    /// The run history.
    pub fn history(&self) -> &History {
        &self.history
    }
}
