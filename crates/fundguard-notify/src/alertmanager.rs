//! Prometheus Alertmanager (API v2): an opened alert is posted firing, a resolved one is
//! posted again with `endsAt`, so Alertmanager groups, routes, silences and resolves it
//! like any other. Labels: `alertname` (the rule), `severity`, `team`, `fundguard_alert`
//! (the alert id) and `key`.
//!
//! Like Prometheus, fundguard repeats firing alerts (the notifier's `repeat_firing`, every
//! 5 minutes by default) with `endsAt` an hour ahead: an alert still firing stays active
//! however long it is open, and if fundguard itself goes away its alerts end by
//! themselves instead of firing forever.

use fundguard_alerts::Notification;
use fundguard_core::EventTime;

use crate::{Channel, SendError, agent, any_body, post_json, unix_millis};

/// How long a firing alert stays active in Alertmanager without a repeat.
const FIRING_FOR_MICROS: i64 = 3600 * 1_000_000;

pub struct Alertmanager {
    /// The base URL, e.g. `http://alertmanager:9093`.
    url: String,
    agent: ureq::Agent,
}

impl Alertmanager {
    pub fn new(url: String) -> Self {
        Alertmanager { url: url.trim_end_matches('/').to_string(), agent: agent() }
    }
}

impl Channel for Alertmanager {
    /// Every alert of a group is posted as itself: Alertmanager does its own grouping.
    fn send(&self, batch: &[&Notification], text: &str) -> Result<(), SendError> {
        let alerts: Vec<serde_json::Value> = batch
            .iter()
            .map(|n| {
                let a = &n.alert;
                let ends = match (n.event.as_str(), a.resolved_at) {
                    ("resolved", Some(at)) => at,
                    _ => EventTime::from_micros(unix_millis() as i64 * 1000 + FIRING_FOR_MICROS),
                };
                let description =
                    if batch.len() == 1 && !text.is_empty() { text.to_string() } else { crate::message_text(n, None) };
                serde_json::json!({
                    "labels": {
                        "alertname": a.rule,
                        "severity": a.severity.as_str(),
                        "team": a.owner,
                        "fundguard_alert": a.id.to_string(),
                        "key": a.key.to_string(),
                    },
                    "annotations": { "summary": a.message, "description": description },
                    "startsAt": a.first_seen.to_string(),
                    "endsAt": ends.to_string(),
                })
            })
            .collect();
        let body = serde_json::Value::Array(alerts).to_string();
        post_json(&self.agent, &format!("{}/api/v2/alerts", self.url), &body, &[], any_body)
    }

    fn wants_repeats(&self) -> bool {
        true
    }
}
