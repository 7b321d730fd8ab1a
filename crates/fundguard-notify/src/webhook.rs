//! A generic webhook: the notification as JSON, signed with HMAC-SHA256 when a secret
//! is configured (`X-Fundguard-Signature: sha256=<hex of HMAC(secret, body)>`).

use fundguard_alerts::Notification;

use crate::{Channel, Report, SendError, agent, any_body, hmac_sha256, post_json};

pub struct Webhook {
    pub url: String,
    pub secret: Option<String>,
    agent: ureq::Agent,
}

impl Webhook {
    pub fn new(url: String, secret: Option<String>) -> Self {
        Webhook { url, secret, agent: agent() }
    }
}

/// `sha256=<hex>` of the body under `secret`: what a receiver recomputes to trust a message.
pub fn signature(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac_sha256(secret.as_bytes(), body)))
}

impl Channel for Webhook {
    /// One alert: `{"delivery", "event", "text", "alert"}` (and `"incident"` on an incident
    /// update: its id, alerts, money at risk and likely causes); a group adds `"alerts"` (all of
    /// them) and `"deliveries"`, and `delivery` is the first one's.
    fn send(&self, batch: &[&Notification], text: &str) -> Result<(), SendError> {
        let Some(n) = batch.first() else { return Ok(()) };
        let mut body = serde_json::json!({ "delivery": n.id, "event": n.event, "text": text, "alert": n.alert });
        if let Some(incident) = &n.incident {
            body["incident"] = serde_json::to_value(incident).unwrap_or_default();
        }
        if batch.len() > 1 {
            body["alerts"] = batch.iter().map(|n| serde_json::to_value(&n.alert).unwrap_or_default()).collect();
            body["deliveries"] = batch.iter().map(|n| n.id).collect();
        }
        let body = body.to_string();
        let headers = vec![("X-Fundguard-Delivery", n.id.to_string()), ("X-Fundguard-Event", n.event.clone())];
        self.post(&body, headers)
    }

    /// `{"event": "report", "title", "text", "html"}`.
    fn send_report(&self, report: &Report) -> Result<(), SendError> {
        let body =
            serde_json::json!({ "event": "report", "title": report.title, "text": report.text, "html": report.html });
        self.post(&body.to_string(), vec![("X-Fundguard-Event", "report".to_string())])
    }
}

impl Webhook {
    /// Posts `body`, signed when a secret is configured.
    fn post(&self, body: &str, mut headers: Vec<(&str, String)>) -> Result<(), SendError> {
        if let Some(secret) = &self.secret {
            headers.push(("X-Fundguard-Signature", signature(secret, body.as_bytes())));
        }
        post_json(&self.agent, &self.url, body, &headers, any_body)
    }
}
