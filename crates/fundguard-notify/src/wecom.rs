//! WeCom (企业微信) group bots: `{"msgtype": "text", …}`; success is `{"errcode": 0}`.

use fundguard_alerts::Notification;

use crate::{Channel, Report, SendError, agent, post_json, zero_code};

pub struct WeCom {
    url: String,
    agent: ureq::Agent,
}

impl WeCom {
    pub fn new(url: String) -> Self {
        WeCom { url, agent: agent() }
    }
}

impl Channel for WeCom {
    fn send(&self, _: &[&Notification], text: &str) -> Result<(), SendError> {
        let body = serde_json::json!({ "msgtype": "text", "text": { "content": text } }).to_string();
        post_json(&self.agent, &self.url, &body, &[], zero_code)
    }

    fn send_report(&self, report: &Report) -> Result<(), SendError> {
        self.send(&[], &format!("{}\n\n{}", report.title, report.text))
    }
}
