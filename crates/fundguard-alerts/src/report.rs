//! The daily clearing report: per team, what the day brought and what is still open —
//! new, open, overdue, resolved and false-positive alerts, MTTA/MTTR and money at risk.

use std::collections::BTreeMap;
use std::fmt::Write;

use fundguard_core::{EventTime, Money, MoneyTotals};
use serde::Serialize;

use crate::model::{Alert, Status};
use crate::slo::Slo;

/// One team's line of the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TeamDay {
    /// Alerts first seen that day.
    pub new: u64,
    /// Open or acknowledged now.
    pub open: u64,
    /// Open now and past an SLO deadline.
    pub overdue: u64,
    /// Resolved that day.
    pub resolved: u64,
    /// Closed as false positive that day.
    pub false_positives: u64,
    /// Mean time to acknowledge / resolve of alerts acknowledged / resolved that day (ms).
    pub mtta_ms: Option<i64>,
    pub mttr_ms: Option<i64>,
    /// Money at risk of the day's new alerts, exact minor units per currency.
    pub money_at_risk: MoneyTotals,
}

/// The report for one day `[start, start + 24 h)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DailyReport {
    pub day: String,
    pub teams: BTreeMap<String, TeamDay>,
    /// The incidents of the day (opened in it, or still open), each with its likely cause.
    pub incidents: Vec<IncidentLine>,
}

/// One incident as the daily report lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentLine {
    pub id: i64,
    pub flow: String,
    pub owner: String,
    pub status: String,
    pub alerts: u64,
    pub money_at_risk: String,
    /// The first-ranked dimension and change, when there are.
    pub likely_cause: String,
}

fn mean_ms(v: &[i64]) -> Option<i64> {
    (!v.is_empty()).then(|| (v.iter().map(|&m| i128::from(m)).sum::<i128>() / v.len() as i128 / 1000) as i64)
}

/// What the open and acknowledged alerts add up to: per rule and status how many, and
/// their money at risk per team and currency (exact). Stores fill it row by row without
/// reading evidence, so it stays cheap over a large store.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ActiveFigures {
    pub by_rule: BTreeMap<String, u64>,
    pub by_status: BTreeMap<String, u64>,
    pub money: BTreeMap<String, MoneyTotals>,
}

impl ActiveFigures {
    /// Counts one active alert: its rule, team, status and money JSON.
    pub fn add(&mut self, rule: &str, owner: &str, status: &str, money_json: Option<&str>) {
        *self.by_rule.entry(rule.to_string()).or_default() += 1;
        *self.by_status.entry(status.to_string()).or_default() += 1;
        if let Some(money) = money_json.and_then(|m| serde_json::from_str::<Money>(m).ok()) {
            self.money.entry(owner.to_string()).or_default().add(&money);
        }
    }
}

/// Money at risk of `alerts` per team and currency, summed exactly in minor units.
pub fn money_at_risk<'a>(alerts: impl IntoIterator<Item = &'a Alert>) -> BTreeMap<String, MoneyTotals> {
    let mut out: BTreeMap<String, MoneyTotals> = BTreeMap::new();
    for a in alerts {
        if let Some(money) = &a.money_at_risk {
            out.entry(a.owner.clone()).or_default().add(money);
        }
    }
    out
}

impl DailyReport {
    /// The report of `day` (its label) starting at `start`, over `alerts`, as of `now`.
    pub fn compute(alerts: &[Alert], day: &str, start: EventTime, slo: &Slo, now: EventTime) -> DailyReport {
        let end = EventTime::from_micros(start.as_micros() + 24 * 3600 * 1_000_000);
        let within = |t: Option<EventTime>| t.is_some_and(|t| t >= start && t < end);
        let mut teams: BTreeMap<String, (TeamDay, Vec<i64>, Vec<i64>)> = BTreeMap::new();
        for a in alerts {
            let (team, acks, fixes) = teams.entry(a.owner.clone()).or_default();
            if within(Some(a.first_seen)) {
                team.new += 1;
                if let Some(money) = &a.money_at_risk {
                    team.money_at_risk.add(money);
                }
            }
            if a.status.is_active() {
                team.open += 1;
                team.overdue += u64::from(slo.overdue(a, now).any());
            }
            if within(a.resolved_at) {
                match a.status {
                    Status::Resolved => {
                        team.resolved += 1;
                        fixes.push(a.resolved_at.map_or(0, |t| t.as_micros() - a.first_seen.as_micros()));
                    }
                    Status::FalsePositive => team.false_positives += 1,
                    _ => {}
                }
            }
            if within(a.acknowledged_at) {
                acks.push(a.acknowledged_at.map_or(0, |t| t.as_micros() - a.first_seen.as_micros()));
            }
        }
        let teams = teams
            .into_iter()
            .map(|(name, (mut day, acks, fixes))| {
                day.mtta_ms = mean_ms(&acks);
                day.mttr_ms = mean_ms(&fixes);
                (name, day)
            })
            .collect();
        DailyReport { day: day.to_string(), teams, incidents: Vec::new() }
    }

    /// Adds the incidents of the day — those opened in `[start, start + 24 h)` and those
    /// still open — with their likely causes, from `store`.
    pub fn with_incidents(
        mut self,
        store: &dyn crate::AlertStore,
        start: EventTime,
    ) -> Result<DailyReport, crate::AlertError> {
        let end = EventTime::from_micros(start.as_micros() + 24 * 3600 * 1_000_000);
        for i in store.incidents(None, 1000)? {
            let of_the_day = i.opened_at >= start && i.opened_at < end;
            if !of_the_day && i.status == crate::IncidentStatus::Resolved {
                continue;
            }
            let detail = store.incident(i.id)?;
            let causes: Vec<String> = detail
                .dimensions
                .first()
                .map(|d| d.cause.name.clone())
                .into_iter()
                .chain(detail.changes.first().map(|c| {
                    let v = c.cause.change.version.as_deref().map(|v| format!(" {v}")).unwrap_or_default();
                    format!("{} {}{v}", c.cause.change.kind, c.cause.change.service)
                }))
                .collect();
            self.incidents.push(IncidentLine {
                id: i.id,
                flow: i.flow,
                owner: i.owner,
                status: i.status.as_str().to_string(),
                alerts: i.alerts,
                money_at_risk: i.money_display,
                likely_cause: if causes.is_empty() { "-".into() } else { causes.join("; ") },
            });
        }
        self.incidents.sort_by_key(|l| l.id);
        Ok(self)
    }

    const INCIDENT_HEADER: [&'static str; 7] =
        ["incident", "flow", "team", "status", "alerts", "money at risk", "likely cause"];

    fn incident_rows(&self) -> Vec<[String; 7]> {
        self.incidents
            .iter()
            .map(|l| {
                [
                    l.id.to_string(),
                    l.flow.clone(),
                    l.owner.clone(),
                    l.status.clone(),
                    l.alerts.to_string(),
                    l.money_at_risk.clone(),
                    l.likely_cause.clone(),
                ]
            })
            .collect()
    }

    fn rows(&self) -> Vec<[String; 9]> {
        let ms =
            |v: Option<i64>| v.map_or_else(|| "-".to_string(), |v| format!("{}m{:02}s", v / 60_000, v / 1000 % 60));
        self.teams
            .iter()
            .map(|(name, t)| {
                let money = t.money_at_risk.display();
                [
                    name.clone(),
                    t.new.to_string(),
                    t.open.to_string(),
                    t.overdue.to_string(),
                    t.resolved.to_string(),
                    t.false_positives.to_string(),
                    ms(t.mtta_ms),
                    ms(t.mttr_ms),
                    money,
                ]
            })
            .collect()
    }

    const HEADER: [&'static str; 9] =
        ["team", "new", "open", "overdue", "resolved", "false positives", "MTTA", "MTTR", "money at risk (new)"];

    pub fn text(&self) -> String {
        let mut out = format!("fundguard daily clearing — {}\n\n", self.day);
        let rows = self.rows();
        let widths: Vec<usize> =
            // Characters, not bytes: `−` and `—` are one column wide.
            (0..9).map(|i| rows.iter().map(|r| r[i].chars().count()).chain([Self::HEADER[i].len()]).max().unwrap_or(0)).collect();
        let line = |cells: Vec<&str>| {
            cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ")
        };
        let _ = writeln!(out, "{}", line(Self::HEADER.to_vec()).trim_end());
        for r in &rows {
            let _ = writeln!(out, "{}", line(r.iter().map(String::as_str).collect()).trim_end());
        }
        let incidents = self.incident_rows();
        if !incidents.is_empty() {
            let widths: Vec<usize> = (0..7)
                .map(|i| {
                    incidents
                        .iter()
                        .map(|r| r[i].chars().count())
                        .chain([Self::INCIDENT_HEADER[i].len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |cells: Vec<&str>| {
                cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ")
            };
            let _ = writeln!(out, "\nincidents\n{}", line(Self::INCIDENT_HEADER.to_vec()).trim_end());
            for r in &incidents {
                let _ = writeln!(out, "{}", line(r.iter().map(String::as_str).collect()).trim_end());
            }
        }
        out
    }

    pub fn markdown(&self) -> String {
        let mut out = format!(
            "# fundguard daily clearing — {}\n\n| {} |\n|{}\n",
            self.day,
            Self::HEADER.join(" | "),
            "---|".repeat(9)
        );
        for r in self.rows() {
            let _ = writeln!(out, "| {} |", r.map(|c| c.replace('|', "\\|")).join(" | "));
        }
        if !self.incidents.is_empty() {
            let _ = write!(out, "\n## Incidents\n\n| {} |\n|{}\n", Self::INCIDENT_HEADER.join(" | "), "---|".repeat(7));
            for r in self.incident_rows() {
                let _ = writeln!(out, "| {} |", r.map(|c| c.replace('|', "\\|")).join(" | "));
            }
        }
        out
    }

    pub fn html(&self) -> String {
        let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        let mut out = format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>fundguard daily clearing — {0}</title></head>\n<body>\n<h1>fundguard daily clearing — {0}</h1>\n<table>\n<tr>{1}</tr>\n",
            escape(&self.day),
            Self::HEADER.iter().map(|h| format!("<th>{h}</th>")).collect::<String>()
        );
        for r in self.rows() {
            let _ =
                writeln!(out, "<tr>{}</tr>", r.iter().map(|c| format!("<td>{}</td>", escape(c))).collect::<String>());
        }
        out.push_str("</table>\n");
        if !self.incidents.is_empty() {
            let _ = write!(
                out,
                "<h2>Incidents</h2>\n<table>\n<tr>{}</tr>\n",
                Self::INCIDENT_HEADER.iter().map(|h| format!("<th>{h}</th>")).collect::<String>()
            );
            for r in self.incident_rows() {
                let cells = r.iter().map(|c| format!("<td>{}</td>", escape(c))).collect::<String>();
                let _ = writeln!(out, "<tr>{cells}</tr>");
            }
            out.push_str("</table>\n");
        }
        out.push_str("</body></html>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fundguard_core::Severity;

    fn alert(owner: &str, money: serde_json::Value, status: Status, resolved: Option<i64>) -> Alert {
        let t = |s: i64| EventTime::from_secs(1_700_006_400 + s); // 2023-11-15T00:00:00Z + s
        Alert {
            incident_id: None,
            id: 1,
            fingerprint: String::new(),
            rule: "r".into(),
            key: serde_json::json!({}),
            severity: Severity::Low,
            owner: owner.into(),
            status,
            assignee: None,
            message: String::new(),
            count: 1,
            event_time: t(0),
            first_seen: t(10),
            last_seen: t(10),
            acknowledged_at: resolved.map(t),
            resolved_at: resolved.map(t),
            root_cause: None,
            money_at_risk: Money::from_json(&money),
            evidence: serde_json::json!([]),
            tags: Vec::new(),
        }
    }

    #[test]
    fn money_adds_up_exactly_per_currency_and_team() {
        let alerts = [
            alert("refunds", serde_json::json!({"amount": "0.10", "currency": "CNY"}), Status::Open, None),
            alert("refunds", serde_json::json!({"amount": "0.20", "currency": "CNY"}), Status::Resolved, Some(610)),
            alert("refunds", serde_json::json!({"amount": 5, "currency": "USD"}), Status::FalsePositive, Some(20)),
            // What this version stores: exact minor units (fen), added to the yuan above exactly.
            alert("refunds", serde_json::json!({"amount_minor": "419845", "currency": "CNY"}), Status::Open, None),
            alert("refunds", serde_json::json!({"amount_minor": "1500", "currency": "JPY"}), Status::Open, None),
            alert("payments", serde_json::json!({"amount": "1"}), Status::Open, None),
        ];
        let start = EventTime::from_secs(1_700_006_400);
        let report =
            DailyReport::compute(&alerts, "2023-11-15", start, &Slo::default(), EventTime::from_secs(1_700_010_000));
        let refunds = &report.teams["refunds"];
        assert_eq!((refunds.new, refunds.open, refunds.resolved, refunds.false_positives), (5, 3, 1, 1));
        // Major units with the currency's exponent: 0.10 + 0.20 yuan + 4,198.45 yuan; 5 cents; 1,500 yen.
        assert_eq!(refunds.money_at_risk.display(), "4,198.75 CNY, 1,500 JPY, 0.05 USD");
        assert_eq!(report.teams["payments"].money_at_risk.display(), "1");
        assert_eq!(refunds.mttr_ms, Some(600_000));
        assert!(report.markdown().contains("| refunds | 5 | 3 | 0 | 1 | 1 |"), "{}", report.markdown());
        assert!(report.html().contains("<td>4,198.75 CNY, 1,500 JPY, 0.05 USD</td>"), "{}", report.html());
        assert!(report.text().contains("4,198.75 CNY, 1,500 JPY, 0.05 USD"), "{}", report.text());
        // The next day sees none of them as new.
        let next = DailyReport::compute(
            &alerts,
            "2023-11-16",
            start.plus(std::time::Duration::from_secs(86_400)),
            &Slo::default(),
            EventTime::from_secs(1_700_100_000),
        );
        assert_eq!(next.teams["refunds"].new, 0);
    }
}
