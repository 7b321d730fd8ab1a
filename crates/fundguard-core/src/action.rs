//! Containment actions: what a rule asks fundguard to do the moment it first finds a loss.
//!
//! An action is an HTTP call to the system that can stop the bleeding — switch off a
//! coupon campaign, pause payouts to a merchant. It is declared in the rule file, travels
//! with the rule's findings, and is queued by the alert store when an alert opens, so it
//! runs once per alert however many findings follow.

use serde::{Deserialize, Serialize};

/// How an action runs when its alert opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionMode {
    /// Called at once.
    Run,
    /// Never called: the alert's timeline records the request that would have gone out.
    DryRun,
    /// Waits until a person approves it (`fundguard alerts approve`), for high-impact actions.
    Approval,
}

impl ActionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionMode::Run => "run",
            ActionMode::DryRun => "dry_run",
            ActionMode::Approval => "approval",
        }
    }
}

/// One containment action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// A short name people recognise in the timeline, e.g. `pause-coupon-campaign`.
    pub name: String,
    /// The HTTP method (`POST` unless the rule says otherwise).
    pub method: String,
    /// The URL; `{key.NAME}` is replaced by that key column of the alert (percent-encoded),
    /// `{rule}` by the rule id and `{alert}` by the alert id.
    pub url: String,
    pub mode: ActionMode,
    /// The environment variable holding the HMAC secret that signs the request body, if any.
    pub secret_env: Option<String>,
}

impl Action {
    /// The URL with its placeholders filled in for one alert; `key` gives the text of a
    /// key column. A placeholder that cannot be filled stays as written.
    pub fn url_for(&self, rule: &str, alert: i64, key: impl Fn(&str) -> Option<String>) -> String {
        let mut out = String::with_capacity(self.url.len());
        let mut rest = self.url.as_str();
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let Some(len) = rest[start..].find('}') else { break };
            let name = &rest[start + 1..start + len];
            let filled = match name {
                "rule" => Some(rule.to_string()),
                "alert" => Some(alert.to_string()),
                _ => name.strip_prefix("key.").and_then(&key),
            };
            match filled {
                Some(text) => out.push_str(&percent_encode(&text)),
                None => out.push_str(&rest[start..=start + len]),
            }
            rest = &rest[start + len + 1..];
        }
        out.push_str(rest);
        out
    }

    /// The placeholders of the URL that [`Action::url_for`] cannot fill: for validation.
    pub fn unknown_placeholders(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = self.url.as_str();
        while let Some(start) = rest.find('{') {
            let Some(len) = rest[start..].find('}') else {
                out.push(rest[start..].to_string());
                break;
            };
            let name = &rest[start + 1..start + len];
            if !(name == "rule" || name == "alert" || name.strip_prefix("key.").is_some_and(|k| !k.is_empty())) {
                out.push(format!("{{{name}}}"));
            }
            rest = &rest[start + len + 1..];
        }
        out
    }
}

/// Everything but unreserved characters (RFC 3986) escaped, so a key value stays one path segment.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::Value;

    fn action(url: &str) -> Action {
        Action { name: "a".into(), method: "POST".into(), url: url.into(), mode: ActionMode::Run, secret_env: None }
    }

    #[test]
    fn placeholders_are_filled_from_the_alert_and_escaped() {
        let key = BTreeMap::from([
            ("campaign_id".to_string(), Value::Int(42)),
            ("merchant".to_string(), Value::String("a/b c".into())),
        ]);
        let a = action("http://x/campaigns/{key.campaign_id}/pause?m={key.merchant}&r={rule}&a={alert}");
        let lookup = |k: &str| key.get(k).map(Value::to_string);
        assert_eq!(
            a.url_for("coupon.overuse", 7, lookup),
            "http://x/campaigns/42/pause?m=a%2Fb%20c&r=coupon.overuse&a=7"
        );
        assert_eq!(action("http://x/{key.missing}").url_for("r", 1, lookup), "http://x/{key.missing}");
        assert!(a.unknown_placeholders().is_empty());
        assert_eq!(action("http://x/{order}/{key.}").unknown_placeholders(), vec!["{order}", "{key.}"]);
    }
}
