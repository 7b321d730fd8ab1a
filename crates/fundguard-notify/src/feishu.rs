//! Feishu / Lark custom bots. With a signing secret the body carries `timestamp` (seconds)
//! and `sign` = Base64(HMAC-SHA256(key = "{timestamp}\n{secret}", message = "")), which
//! the bot checks within an hour. Success is `{"code": 0}` (refusals also come as HTTP 200).

use base64::Engine;
use fundguard_alerts::Notification;

use crate::{Channel, Report, SendError, agent, hmac_sha256, post_json, unix_millis, zero_code};

pub struct Feishu {
    url: String,
    secret: Option<String>,
    agent: ureq::Agent,
}

impl Feishu {
    pub fn new(url: String, secret: Option<String>) -> Self {
        Feishu { url, secret, agent: agent() }
    }
}

/// The `sign` for `timestamp` (seconds) under `secret`.
pub fn sign(timestamp: u64, secret: &str) -> String {
    let key = format!("{timestamp}\n{secret}");
    base64::engine::general_purpose::STANDARD.encode(hmac_sha256(key.as_bytes(), b""))
}

impl Channel for Feishu {
    fn send(&self, _: &[&Notification], text: &str) -> Result<(), SendError> {
        let mut body = serde_json::json!({ "msg_type": "text", "content": { "text": text } });
        if let Some(secret) = &self.secret {
            let timestamp = (unix_millis() / 1000) as u64;
            body["timestamp"] = timestamp.to_string().into();
            body["sign"] = sign(timestamp, secret).into();
        }
        post_json(&self.agent, &self.url, &body.to_string(), &[], zero_code)
    }

    fn send_report(&self, report: &Report) -> Result<(), SendError> {
        self.send(&[], &format!("{}\n\n{}", report.title, report.text))
    }
}
