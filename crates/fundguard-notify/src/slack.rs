//! Slack incoming webhooks: `{"text": …}`; the URL itself is the secret.

use fundguard_alerts::Notification;

use crate::{Channel, Report, SendError, agent, any_body, post_json};

pub struct Slack {
    url: String,
    agent: ureq::Agent,
}

impl Slack {
    pub fn new(url: String) -> Self {
        Slack { url, agent: agent() }
    }
}

impl Channel for Slack {
    fn send(&self, _: &[&Notification], text: &str) -> Result<(), SendError> {
        post_json(&self.agent, &self.url, &serde_json::json!({ "text": text }).to_string(), &[], any_body)
    }

    fn send_report(&self, report: &Report) -> Result<(), SendError> {
        self.send(&[], &format!("*{}*\n```{}```", report.title, report.text))
    }
}
