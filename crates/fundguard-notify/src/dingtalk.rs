//! DingTalk (钉钉) custom bots. With a signing secret the URL gets `timestamp` (ms) and
//! `sign` = URL-encoded Base64(HMAC-SHA256(key = secret, message = "{timestamp}\n{secret}")).
//! Success is `{"errcode": 0}`.

use base64::Engine;
use fundguard_alerts::Notification;

use crate::{Channel, Report, SendError, agent, hmac_sha256, post_json, unix_millis, zero_code};

pub struct DingTalk {
    url: String,
    secret: Option<String>,
    agent: ureq::Agent,
}

impl DingTalk {
    pub fn new(url: String, secret: Option<String>) -> Self {
        DingTalk { url, secret, agent: agent() }
    }
}

/// The `sign` query value (already URL-encoded) for `timestamp` (ms) under `secret`.
pub fn sign(timestamp: u128, secret: &str) -> String {
    let mac = hmac_sha256(secret.as_bytes(), format!("{timestamp}\n{secret}").as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD.encode(mac);
    b64.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D")
}

impl Channel for DingTalk {
    fn send(&self, _: &[&Notification], text: &str) -> Result<(), SendError> {
        let body = serde_json::json!({ "msgtype": "text", "text": { "content": text } }).to_string();
        let url = match &self.secret {
            Some(secret) => {
                let timestamp = unix_millis();
                let join = if self.url.contains('?') { '&' } else { '?' };
                format!("{}{join}timestamp={timestamp}&sign={}", self.url, sign(timestamp, secret))
            }
            None => self.url.clone(),
        };
        post_json(&self.agent, &url, &body, &[], zero_code)
    }

    fn send_report(&self, report: &Report) -> Result<(), SendError> {
        self.send(&[], &format!("{}\n\n{}", report.title, report.text))
    }
}
