//! A generic webhook: the notification as JSON, signed with HMAC-SHA256 when a secret
//! is configured (`X-Fundguard-Signature: sha256=<hex of HMAC(secret, body)>`).

use std::time::Duration;

use fundguard_alerts::Notification;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::{Channel, SendError};

pub struct Webhook {
    pub url: String,
    pub secret: Option<String>,
    agent: ureq::Agent,
}

impl Webhook {
    pub fn new(url: String, secret: Option<String>) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .into();
        Webhook { url, secret, agent }
    }
}

/// `sha256=<hex>` of the body under `secret`: what a receiver recomputes to trust a message.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Channel for Webhook {
    fn send(&self, n: &Notification, text: &str) -> Result<(), SendError> {
        let body = serde_json::json!({
            "delivery": n.id,
            "event": n.event,
            "text": text,
            "alert": n.alert,
        })
        .to_string();
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("X-Fundguard-Delivery", &n.id.to_string())
            .header("X-Fundguard-Event", &n.event);
        if let Some(secret) = &self.secret {
            request = request.header("X-Fundguard-Signature", &signature(secret, body.as_bytes()));
        }
        match request.send(body.as_bytes()) {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => {
                let status = response.status().as_u16();
                // A 4xx (except timeout and rate limit) will not get better by retrying.
                let permanent = (400..500).contains(&status) && status != 408 && status != 429;
                Err(SendError { message: format!("{} answered HTTP {status}", self.url), permanent })
            }
            Err(e) => Err(SendError { message: format!("{}: {e}", self.url), permanent: false }),
        }
    }
}
