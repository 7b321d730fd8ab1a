//! SLO clocks: how fast alerts are detected, answered and resolved, against deadlines
//! per severity.
//!
//! Defaults follow the practice: a critical loss is detected within 1 minute, answered
//! within 5 and resolved within 10; lower severities get longer, and a low one is
//! cleared the next day.

use std::collections::BTreeMap;
use std::time::Duration;

use fundguard_core::{EventTime, Severity};
use serde::Serialize;

use crate::model::{Alert, Status};

/// Deadlines for one severity, each counted from the commit of the offending change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Deadlines {
    #[serde(with = "whole_seconds")]
    pub detect: Duration,
    #[serde(with = "whole_seconds")]
    pub respond: Duration,
    #[serde(with = "whole_seconds")]
    pub resolve: Duration,
}

/// Deadlines serialise as whole seconds.
mod whole_seconds {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

/// Deadlines per severity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slo {
    pub deadlines: BTreeMap<Severity, Deadlines>,
}

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

impl Default for Slo {
    fn default() -> Self {
        let d = |detect, respond, resolve| Deadlines {
            detect: Duration::from_secs(detect),
            respond: Duration::from_secs(respond),
            resolve: Duration::from_secs(resolve),
        };
        Slo {
            deadlines: BTreeMap::from([
                (Severity::Critical, d(MINUTE, 5 * MINUTE, 10 * MINUTE)),
                (Severity::High, d(5 * MINUTE, 30 * MINUTE, 4 * HOUR)),
                (Severity::Medium, d(HOUR, 4 * HOUR, DAY)),
                (Severity::Low, d(DAY, DAY, 2 * DAY)),
            ]),
        }
    }
}

/// Which clocks an alert has run past.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Overdue {
    /// Found later than the detection deadline.
    pub detect: bool,
    /// Not acknowledged (or acknowledged late) relative to the response deadline.
    pub respond: bool,
    /// Not resolved (or resolved late) relative to the resolution deadline.
    pub resolve: bool,
}

impl Overdue {
    pub fn any(self) -> bool {
        self.detect || self.respond || self.resolve
    }
}

impl Slo {
    /// The deadlines of one severity.
    pub fn of(&self, severity: Severity) -> Deadlines {
        self.deadlines.get(&severity).copied().unwrap_or(Slo::default().deadlines[&severity])
    }

    /// The clocks `alert` has run past at `now`. Response and resolution count from
    /// when the alert was (re)opened; closing as false positive or expected stops them.
    pub fn overdue(&self, alert: &Alert, now: EventTime) -> Overdue {
        let d = self.of(alert.severity);
        let late = |from: EventTime, until: Option<EventTime>, limit: Duration| {
            until.unwrap_or(now).as_micros() - from.as_micros() > limit.as_micros() as i64
        };
        let answered = alert.acknowledged_at.or(alert.resolved_at);
        let closed = alert.resolved_at.or((!alert.status.is_active()).then_some(alert.last_seen));
        Overdue {
            detect: late(alert.event_time, Some(alert.first_seen), d.detect),
            respond: late(alert.first_seen, answered, d.respond),
            resolve: late(alert.first_seen, closed, d.resolve),
        }
    }
}

/// Mean times and overdue counts for one group of alerts (a team or a rule).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SloFigures {
    pub alerts: u64,
    pub open: u64,
    pub overdue: u64,
    pub false_positives: u64,
    /// Mean time to detect, acknowledge and resolve, in milliseconds (None when there
    /// is nothing to average).
    pub mttd_ms: Option<i64>,
    pub mtta_ms: Option<i64>,
    pub mttr_ms: Option<i64>,
}

/// SLO figures per team and per rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SloReport {
    pub by_team: BTreeMap<String, SloFigures>,
    pub by_rule: BTreeMap<String, SloFigures>,
}

#[derive(Default)]
struct Sums {
    figures: SloFigures,
    detect: Vec<i64>,
    ack: Vec<i64>,
    resolve: Vec<i64>,
}

/// The mean of microsecond spans, in whole milliseconds.
fn mean_ms(v: &[i64]) -> Option<i64> {
    (!v.is_empty()).then(|| v.iter().map(|&m| i128::from(m)).sum::<i128>() / v.len() as i128 / 1000).map(|m| m as i64)
}

impl SloReport {
    /// Figures over `alerts` as they stand at `now`.
    pub fn compute(alerts: &[Alert], slo: &Slo, now: EventTime) -> SloReport {
        let mut teams: BTreeMap<String, Sums> = BTreeMap::new();
        let mut rules: BTreeMap<String, Sums> = BTreeMap::new();
        for a in alerts {
            let overdue = slo.overdue(a, now);
            for sums in [teams.entry(a.owner.clone()).or_default(), rules.entry(a.rule.clone()).or_default()] {
                sums.figures.alerts += 1;
                sums.figures.open += u64::from(a.status.is_active());
                sums.figures.overdue += u64::from(overdue.any());
                sums.figures.false_positives += u64::from(a.status == Status::FalsePositive);
                sums.detect.push(a.detection_micros());
                if let Some(t) = a.acknowledged_at {
                    sums.ack.push(t.as_micros() - a.first_seen.as_micros());
                }
                if let (Some(t), Status::Resolved) = (a.resolved_at, a.status) {
                    sums.resolve.push(t.as_micros() - a.first_seen.as_micros());
                }
            }
        }
        let finish = |m: BTreeMap<String, Sums>| {
            m.into_iter()
                .map(|(k, s)| {
                    let mut f = s.figures;
                    f.mttd_ms = mean_ms(&s.detect);
                    f.mtta_ms = mean_ms(&s.ack);
                    f.mttr_ms = mean_ms(&s.resolve);
                    (k, f)
                })
                .collect()
        };
        SloReport { by_team: finish(teams), by_rule: finish(rules) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(severity: Severity, status: Status, opened: i64, ack: Option<i64>, resolved: Option<i64>) -> Alert {
        let t = |s: i64| EventTime::from_secs(1_700_000_000 + s);
        Alert {
            incident_id: None,
            id: 1,
            fingerprint: "r|{}".into(),
            rule: "r".into(),
            key: serde_json::json!({}),
            severity,
            owner: "payments".into(),
            status,
            assignee: None,
            message: String::new(),
            count: 1,
            event_time: t(0),
            first_seen: t(opened),
            last_seen: t(opened),
            acknowledged_at: ack.map(t),
            resolved_at: resolved.map(t),
            root_cause: None,
            money_at_risk: None,
            tags: Default::default(),
            evidence: serde_json::json!([]),
        }
    }

    #[test]
    fn critical_clocks_follow_the_practice() {
        let slo = Slo::default();
        let now = |s: i64| EventTime::from_secs(1_700_000_000 + s);
        // Found in 2 s, acknowledged after 4 min, resolved after 9: within every deadline.
        let good = alert(Severity::Critical, Status::Resolved, 2, Some(242), Some(542));
        assert!(!slo.overdue(&good, now(10_000)).any());
        // Still open after 6 minutes: the response clock has run out, not yet the resolution one.
        let open = alert(Severity::Critical, Status::Open, 2, None, None);
        assert_eq!(slo.overdue(&open, now(362)), Overdue { detect: false, respond: true, resolve: false });
        // Found 90 s after the commit: detection missed its minute.
        assert!(slo.overdue(&alert(Severity::Critical, Status::Open, 90, None, None), now(91)).detect);
        // A low alert has a day.
        assert!(!slo.overdue(&alert(Severity::Low, Status::Open, 60, None, None), now(3_600)).any());
    }

    #[test]
    fn figures_per_team_and_rule() {
        let alerts = [
            alert(Severity::Critical, Status::Resolved, 2, Some(62), Some(302)),
            alert(Severity::Critical, Status::Resolved, 4, Some(124), Some(604)),
            alert(Severity::Critical, Status::Open, 6, None, None),
        ];
        let report = SloReport::compute(&alerts, &Slo::default(), EventTime::from_secs(1_700_000_000 + 1_000));
        let team = &report.by_team["payments"];
        assert_eq!((team.alerts, team.open, team.overdue), (3, 1, 1));
        assert_eq!(team.mttd_ms, Some(4_000));
        assert_eq!(team.mtta_ms, Some(90_000));
        assert_eq!(team.mttr_ms, Some(450_000));
        assert_eq!(report.by_rule["r"], *team);
    }
}
