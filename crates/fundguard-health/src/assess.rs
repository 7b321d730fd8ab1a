//! One rule's health: its statistics, drifts, alerts and canary judged by the policy.
//!
//! A rule can have several reasons at once (failing *and* noisy); its [`State`] is the
//! most urgent of them, in the order failing, drifted, stale, noisy, silent. A rule with
//! no reason is `ok`.

use std::time::Duration;

use fundguard_alerts::{RuleAlerts, RuleDay, RuleDrift};
use fundguard_core::EventTime;
use serde::Serialize;

use crate::policy::{HealthPolicy, NOISE_WINDOW_DAYS};

/// A rule's health, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Evaluation errors, failed scheduled runs, or its own tests fail.
    Failing,
    /// A column it reads vanished or changed type, or a status value it never mentions appeared.
    Drifted,
    /// A table it reads went quiet, or its `when` lets nothing through while the table is busy.
    Stale,
    /// Too many alerts a day, too many false positives, or alerts that flap.
    Noisy,
    /// No finding for a long time (its tests, run as canaries, say whether it still works).
    Silent,
    Ok,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Failing => "failing",
            State::Drifted => "drifted",
            State::Stale => "stale",
            State::Noisy => "noisy",
            State::Silent => "silent",
            State::Ok => "ok",
        }
    }

    /// Every state, most urgent first.
    pub const ALL: [State; 6] = [State::Failing, State::Drifted, State::Stale, State::Noisy, State::Silent, State::Ok];
}

/// Why a rule is in a state, with the figures that show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    pub state: State,
    /// In words, saying what to do.
    pub message: String,
    /// The figures or values behind it (a new status value and when it first appeared,
    /// the top keys of a noisy rule, the last error).
    pub evidence: Vec<String>,
    /// When what it describes started, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<EventTime>,
}

/// The rule as its definition describes it.
#[derive(Debug, Clone)]
pub struct Subject {
    pub id: String,
    pub owner: String,
    pub kind: String,
    /// `live`, or `shadow` (evaluated and recorded, never notified).
    pub mode: String,
    /// The tables it reads (none for `sql` rules).
    pub tables: Vec<String>,
    /// Whether it filters events (a `when`): only then can its filter be dead.
    pub filters: bool,
    /// When its file last changed: drifts seen before then were for an older definition.
    pub changed_at: Option<EventTime>,
}

/// The rule's own tests re-run against its current definition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Canary {
    pub tests: usize,
    pub passed: usize,
    /// The first failure, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// The figures a rule's health rests on, added up over the days read.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    pub events: u64,
    pub passed: u64,
    pub findings: u64,
    pub errors: u64,
    pub runs: u64,
    pub run_failures: u64,
    pub alerts: u64,
    pub false_positives: u64,
    pub reopened: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_event: Option<EventTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_finding: Option<EventTime>,
    pub state_bytes: u64,
    /// Per day: (day, events, findings, alerts) — for a shadow rule, what it would have raised.
    pub per_day: Vec<(String, u64, u64, u64)>,
    /// Per table it reads: (table, events, newest commit time).
    pub tables: Vec<(String, u64, Option<EventTime>)>,
}

/// A rule's judged health.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleHealth {
    pub id: String,
    pub owner: String,
    pub kind: String,
    pub mode: String,
    pub state: State,
    pub reasons: Vec<Reason>,
    pub totals: Totals,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary: Option<Canary>,
    /// The keys of its alerts seen most often (for tightening a noisy rule).
    pub top_keys: Vec<(String, u64)>,
}

fn ago(now: EventTime, d: Duration) -> EventTime {
    EventTime::from_micros(now.as_micros().saturating_sub(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)))
}

fn day_of(t: EventTime) -> String {
    t.to_string().chars().take(10).collect()
}

/// Adds up a rule's days (all belong to it), its alerts and per-table figures.
fn totals(days: &[&RuleDay], alerts: Option<&RuleAlerts>) -> Totals {
    let mut t = Totals::default();
    for d in days {
        t.events += d.events;
        t.passed += d.passed;
        t.findings += d.findings;
        t.errors += d.errors;
        t.runs += d.runs;
        t.run_failures += d.run_failures;
        if d.last_error.is_some() {
            t.last_error = d.last_error.clone();
        }
        t.last_event = t.last_event.max(d.last_event);
        t.last_finding = t.last_finding.max(d.last_finding);
        t.state_bytes = d.state_bytes;
        let opened = alerts.and_then(|a| a.per_day.iter().find(|(day, _)| *day == d.day)).map_or(0, |(_, n)| *n);
        t.per_day.push((d.day.clone(), d.events, d.findings, opened));
        for table in &d.tables {
            match t.tables.iter_mut().find(|(name, ..)| *name == table.table) {
                Some((_, events, last)) => {
                    *events += table.events;
                    *last = (*last).max(table.last_event);
                }
                None => t.tables.push((table.table.clone(), table.events, table.last_event)),
            }
        }
    }
    if let Some(a) = alerts {
        t.alerts = a.opened;
        t.false_positives = a.false_positives;
        t.reopened = a.reopened;
    }
    t
}

/// Judges one rule. `days` and `drifts` may hold other rules' too (they are filtered);
/// `canary` is the rule's tests re-run, when the caller ran them.
pub fn assess(
    subject: &Subject,
    days: &[RuleDay],
    drifts: &[RuleDrift],
    alerts: Option<&RuleAlerts>,
    canary: Option<Canary>,
    policy: &HealthPolicy,
    now: EventTime,
) -> RuleHealth {
    let mine: Vec<&RuleDay> = days.iter().filter(|d| d.rule == subject.id).collect();
    let totals = totals(&mine, alerts);
    let first_event = mine.iter().filter_map(|d| d.first_event).min();
    let mut reasons = Vec::new();

    // Failing: errors or failed runs recently, or its own tests fail.
    let recent_day = day_of(ago(now, policy.failing_within));
    let recent: Vec<&&RuleDay> = mine.iter().filter(|d| d.day >= recent_day).collect();
    let errors: u64 = recent.iter().map(|d| d.errors).sum();
    let failed_runs: u64 = recent.iter().map(|d| d.run_failures).sum();
    if errors > 0 || failed_runs > 0 {
        let what = match (errors, failed_runs) {
            (0, n) => format!("{n} scheduled run(s) failed"),
            (n, 0) => format!("{n} evaluation error(s)"),
            (e, r) => format!("{e} evaluation error(s) and {r} failed run(s)"),
        };
        reasons.push(Reason {
            state: State::Failing,
            message: format!("{what} since {recent_day}: fix the rule or what it reads (the last error says what)"),
            evidence: totals.last_error.iter().cloned().collect(),
            since: None,
        });
    }
    if let Some(c) = &canary
        && c.passed < c.tests
    {
        reasons.push(Reason {
            state: State::Failing,
            message: format!(
                "{} of its {} test(s) fail against its current definition: it would not find what it was written for",
                c.tests - c.passed,
                c.tests
            ),
            evidence: c.failure.iter().cloned().collect(),
            since: None,
        });
    }

    // Drifted: drifts seen since its definition last changed.
    for d in drifts.iter().filter(|d| d.rule == subject.id) {
        if subject.changed_at.is_some_and(|changed| d.last_seen < changed) {
            continue;
        }
        reasons.push(Reason {
            state: State::Drifted,
            message: format!("{}: update the rule to the stream as it is now", d.detail),
            evidence: vec![format!("{} {} in `{}`, first seen {}", d.kind, d.subject, d.table, d.first_seen)],
            since: Some(d.first_seen),
        });
    }

    // Stale: a quiet table, or a dead filter on a busy one. Only once the rule has been
    // watching long enough to tell.
    let stale_cutoff = ago(now, policy.stale_after);
    let watching_long = first_event.is_some_and(|f| f <= stale_cutoff);
    for table in &subject.tables {
        let last = totals.tables.iter().find(|(t, ..)| t == table).and_then(|(_, _, last)| *last);
        match last {
            Some(last) if last < stale_cutoff => reasons.push(Reason {
                state: State::Stale,
                message: format!(
                    "no events of `{table}` since {last} (more than {}): is its source still connected, or did the table move?",
                    duration_text(policy.stale_after)
                ),
                evidence: Vec::new(),
                since: Some(last),
            }),
            None if watching_long => reasons.push(Reason {
                state: State::Stale,
                message: format!(
                    "no event of `{table}` since the rule started watching: is the table name right, and does a source deliver it?"
                ),
                evidence: Vec::new(),
                since: first_event,
            }),
            _ => {}
        }
    }
    let dead_cutoff = ago(now, policy.dead_filter_after);
    let busy = totals.last_event.is_some_and(|l| l >= dead_cutoff);
    let last_passed = mine.iter().filter_map(|d| d.last_passed).max();
    if subject.filters && busy && first_event.is_some_and(|f| f <= dead_cutoff) {
        let dead = last_passed.is_none_or(|p| p < dead_cutoff);
        if dead {
            reasons.push(Reason {
                state: State::Stale,
                message: format!(
                    "its `when` let no event through for more than {} while its tables had {} event(s): a renamed status or value? Check the values the `when` names against the data",
                    duration_text(policy.dead_filter_after),
                    totals.events
                ),
                evidence: last_passed.map(|p| format!("last event let through: {p}")).into_iter().collect(),
                since: last_passed.or(first_event),
            });
        }
    }

    // Noisy: too many alerts a day, false positives, flapping — judged over the last days.
    let noise_from = day_of(ago(now, Duration::from_secs(u64::from(NOISE_WINDOW_DAYS - 1) * 86_400)));
    if let Some(a) = alerts {
        let worst = a.per_day.iter().filter(|(d, _)| *d >= noise_from).max_by_key(|(_, n)| *n);
        let top: Vec<String> = a.top_keys.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        if let Some((day, n)) = worst
            && *n > policy.max_alerts_per_day
        {
            reasons.push(Reason {
                state: State::Noisy,
                message: format!(
                    "{n} alerts opened on {day}, over the budget of {} a day: tighten it (its top keys are below)",
                    policy.max_alerts_per_day
                ),
                evidence: top.clone(),
                since: None,
            });
        }
        if a.opened >= policy.min_alerts_for_share
            && a.false_positives * 100 >= policy.max_false_positive_percent * a.opened
        {
            reasons.push(Reason {
                state: State::Noisy,
                message: format!(
                    "{} of its {} recent alerts were closed as false positives ({}%, budget {}%): what it flags is mostly not wrong",
                    a.false_positives,
                    a.opened,
                    a.false_positives * 100 / a.opened.max(1),
                    policy.max_false_positive_percent
                ),
                evidence: top.clone(),
                since: None,
            });
        }
        if a.reopened >= policy.max_reopened {
            reasons.push(Reason {
                state: State::Noisy,
                message: format!(
                    "its alerts reopened {} time(s) in the last {NOISE_WINDOW_DAYS} days (budget {}): it flaps between firing and clearing",
                    a.reopened, policy.max_reopened
                ),
                evidence: top,
                since: None,
            });
        }
    }

    // Silent: no finding for long.
    let silent_cutoff = ago(now, policy.silent_after);
    let silent = match totals.last_finding {
        Some(last) => last < silent_cutoff,
        None => first_event.is_some_and(|f| f <= silent_cutoff),
    };
    if silent {
        let proof = match &canary {
            Some(c) if c.tests == 0 => "it has no tests to show it still works: add one".to_string(),
            Some(c) if c.passed == c.tests => {
                format!("its {} test(s) pass: it still works, the data is clean", c.tests)
            }
            Some(_) => "its tests fail (see above)".to_string(),
            None => "its tests were not run".to_string(),
        };
        reasons.push(Reason {
            state: State::Silent,
            message: format!("no finding for more than {}; {proof}", duration_text(policy.silent_after)),
            evidence: Vec::new(),
            since: totals.last_finding.or(first_event),
        });
    }

    let state = reasons.iter().map(|r| r.state).min().unwrap_or(State::Ok);
    reasons.sort_by_key(|r| r.state);
    RuleHealth {
        id: subject.id.clone(),
        owner: subject.owner.clone(),
        kind: subject.kind.clone(),
        mode: subject.mode.clone(),
        state,
        reasons,
        totals,
        canary,
        top_keys: alerts.map(|a| a.top_keys.clone()).unwrap_or_default(),
    }
}

/// `6h`, `30m`, `45s`, `30d`: a threshold as people write it.
pub fn duration_text(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use fundguard_alerts::TableDay;

    use super::*;

    const HOUR: i64 = 3_600_000_000;

    fn now() -> EventTime {
        EventTime::parse("2026-12-06T12:00:00Z").unwrap()
    }

    fn at(hours_ago: i64) -> EventTime {
        EventTime::from_micros(now().as_micros() - hours_ago * HOUR)
    }

    fn subject(filters: bool) -> Subject {
        Subject {
            id: "r".into(),
            owner: "team".into(),
            kind: "check".into(),
            mode: "live".into(),
            tables: vec!["shop.orders".into()],
            filters,
            changed_at: None,
        }
    }

    /// A day of rule `r` on which its table had events from `first` to `last` hours ago.
    fn day(first: i64, last: i64, passed: Option<i64>) -> RuleDay {
        RuleDay {
            rule: "r".into(),
            day: "2026-12-06".into(),
            events: 100,
            passed: u64::from(passed.is_some()),
            first_event: Some(at(first)),
            last_event: Some(at(last)),
            last_passed: passed.map(at),
            last_finding: Some(at(last)),
            tables: vec![TableDay { table: "shop.orders".into(), events: 100, last_event: Some(at(last)) }],
            ..RuleDay::default()
        }
    }

    fn judge(subject: &Subject, days: &[RuleDay], drifts: &[RuleDrift], alerts: Option<&RuleAlerts>) -> RuleHealth {
        assess(subject, days, drifts, alerts, None, &HealthPolicy::default(), now())
    }

    #[test]
    fn a_busy_rule_that_finds_things_is_ok() {
        let h = judge(&subject(true), &[day(10, 0, Some(0))], &[], None);
        assert_eq!((h.state, h.reasons.len()), (State::Ok, 0), "{h:?}");
        assert_eq!(h.totals.tables, vec![("shop.orders".to_string(), 100, Some(at(0)))]);
    }

    #[test]
    fn errors_make_it_failing_and_show_the_last_error() {
        let mut d = day(10, 0, Some(0));
        d.errors = 2;
        d.last_error = Some("column `x` not found".into());
        let h = judge(&subject(false), &[d], &[], None);
        assert_eq!(h.state, State::Failing);
        assert_eq!(h.reasons[0].evidence, ["column `x` not found"]);
    }

    #[test]
    fn a_quiet_table_and_a_dead_filter_make_it_stale_but_only_after_the_threshold() {
        let quiet = judge(&subject(false), &[day(20, 7, None)], &[], None);
        assert_eq!(quiet.state, State::Stale);
        assert!(quiet.reasons[0].message.contains("no events of `shop.orders`"), "{quiet:?}");
        // The table is busy but the `when` has let nothing through for 7 hours.
        let dead = judge(&subject(true), &[day(20, 0, Some(7))], &[], None);
        assert_eq!(dead.state, State::Stale);
        assert!(dead.reasons[0].message.contains("`when` let no event through"), "{dead:?}");
        // Watched for only 2 hours: too early to tell.
        assert_eq!(judge(&subject(true), &[day(2, 0, None)], &[], None).state, State::Ok);
        // Without a `when` there is no filter to be dead.
        assert_eq!(judge(&subject(false), &[day(20, 0, None)], &[], None).state, State::Ok);
    }

    #[test]
    fn drifts_count_until_the_rule_is_edited() {
        let drift = RuleDrift {
            rule: "r".into(),
            kind: "new_status_value".into(),
            subject: "status=PARTIAL".into(),
            table: "shop.orders".into(),
            detail: "`shop.orders`.status shows the status `PARTIAL`".into(),
            first_seen: at(3),
            last_seen: at(1),
        };
        let h = judge(&subject(false), &[day(10, 0, Some(0))], std::slice::from_ref(&drift), None);
        assert_eq!(h.state, State::Drifted);
        assert!(h.reasons[0].evidence[0].contains("status=PARTIAL"), "{h:?}");
        let edited = Subject { changed_at: Some(at(0)), ..subject(false) };
        assert_eq!(judge(&edited, &[day(10, 0, Some(0))], &[drift], None).state, State::Ok);
    }

    #[test]
    fn false_positives_floods_and_flapping_make_it_noisy_with_its_top_keys() {
        let alerts = |opened, false_positives, reopened, today| RuleAlerts {
            rule: "r".into(),
            opened,
            false_positives,
            reopened,
            per_day: vec![("2026-12-06".into(), today)],
            top_keys: vec![("{\"id\":7}".into(), 12)],
        };
        let d = [day(10, 0, Some(0))];
        let fp = judge(&subject(false), &d, &[], Some(&alerts(6, 2, 0, 6)));
        assert_eq!(fp.state, State::Noisy);
        assert!(fp.reasons[0].message.contains("false positives"), "{fp:?}");
        assert_eq!(fp.reasons[0].evidence, ["{\"id\":7}: 12"]);
        assert_eq!(judge(&subject(false), &d, &[], Some(&alerts(6, 1, 0, 6))).state, State::Ok);
        assert_eq!(judge(&subject(false), &d, &[], Some(&alerts(51, 0, 0, 51))).state, State::Noisy);
        assert_eq!(judge(&subject(false), &d, &[], Some(&alerts(2, 0, 3, 2))).state, State::Noisy);
    }

    #[test]
    fn a_silent_rule_says_whether_its_tests_still_pass() {
        let mut d = day(24 * 40, 0, Some(0));
        d.last_finding = None;
        let policy = HealthPolicy::default();
        let run = |canary| assess(&subject(false), std::slice::from_ref(&d), &[], None, canary, &policy, now());
        let works = run(Some(Canary { tests: 2, passed: 2, failure: None }));
        assert_eq!(works.state, State::Silent);
        assert!(works.reasons[0].message.contains("2 test(s) pass"), "{works:?}");
        let broken = run(Some(Canary { tests: 2, passed: 1, failure: Some("expected a finding".into()) }));
        assert_eq!(broken.state, State::Failing);
        assert_eq!(broken.reasons.iter().map(|r| r.state).collect::<Vec<_>>(), [State::Failing, State::Silent]);
    }
}
