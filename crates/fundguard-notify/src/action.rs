//! Containment actions: the HTTP call a rule declares, run once when its alert opens.
//!
//! The call carries the alert as JSON (`{"action", "delivery", "alert"}`), the delivery id
//! (`X-Fundguard-Delivery`, for the receiver to drop a repeat after a crash) and, when the
//! action names a secret, an HMAC signature like the webhook's. A dry run calls nothing and
//! says what it would have sent; the alert's timeline keeps the outcome either way.

use fundguard_alerts::Notification;
use fundguard_core::ActionMode;

use crate::{SendError, agent, judge, webhook::signature};

/// Runs the actions the outbox hands it; secrets come from the process environment.
pub struct ActionRunner {
    agent: ureq::Agent,
}

impl Default for ActionRunner {
    fn default() -> Self {
        ActionRunner { agent: agent() }
    }
}

impl ActionRunner {
    /// Runs the action of `n`; `Ok` holds what the timeline should say about it.
    pub fn run(&self, n: &Notification) -> Result<String, SendError> {
        let Some(action) = &n.action else {
            return Err(SendError { message: "the outbox entry has no action".into(), permanent: true });
        };
        let key = |name: &str| match n.alert.key.get(name)? {
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
        let url = action.url_for(&n.alert.rule, n.alert.id, key);
        let what = format!("{} {} {url}", action.name, action.method);
        if action.mode == ActionMode::DryRun {
            return Ok(format!("dry run: would have called {what}"));
        }
        let body = serde_json::json!({ "action": action.name, "delivery": n.id, "alert": n.alert }).to_string();
        let mut request = ureq::http::Request::builder()
            .method(action.method.as_str())
            .uri(&url)
            .header("Content-Type", "application/json")
            .header("X-Fundguard-Delivery", n.id.to_string());
        if let Some(var) = &action.secret_env {
            let secret = std::env::var(var).map_err(|_| SendError {
                message: format!("the action's secret variable {var} is not set"),
                permanent: false,
            })?;
            request = request.header("X-Fundguard-Signature", signature(&secret, body.as_bytes()));
        }
        let request = request
            .body(body)
            .map_err(|e| SendError { message: format!("{what}: not a valid request: {e}"), permanent: true })?;
        let status = judge(&url, self.agent.run(request), |_| Ok(()))?;
        Ok(format!("{what}: HTTP {status}"))
    }
}
