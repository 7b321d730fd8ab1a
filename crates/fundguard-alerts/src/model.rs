//! Alerts, their lifecycle and the changes people make to them.

use std::fmt;

use fundguard_core::{EventTime, Finding, Money, Severity};
use serde::{Deserialize, Serialize};

/// Where an alert stands.
///
/// ```text
/// open ──ack──▶ acknowledged ──resolve (root cause)──▶ resolved ──fires again──▶ open
///   └──────────────┴──false positive / expected──▶ closed for good (counts only)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Acknowledged,
    Resolved,
    FalsePositive,
    Expected,
}

impl Status {
    pub const ALL: [Status; 5] =
        [Status::Open, Status::Acknowledged, Status::Resolved, Status::FalsePositive, Status::Expected];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Acknowledged => "acknowledged",
            Status::Resolved => "resolved",
            Status::FalsePositive => "false_positive",
            Status::Expected => "expected",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Still someone's job: open or acknowledged.
    pub fn is_active(self) -> bool {
        matches!(self, Status::Open | Status::Acknowledged)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert: every finding of one fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: i64,
    pub fingerprint: String,
    pub rule: String,
    pub key: serde_json::Value,
    pub severity: Severity,
    /// The team that owns the rule.
    pub owner: String,
    pub status: Status,
    pub assignee: Option<String>,
    /// The latest finding's message.
    pub message: String,
    /// How many findings this alert has absorbed.
    pub count: u64,
    /// Commit time of the change behind the first finding.
    pub event_time: EventTime,
    /// When fundguard first and last found it.
    pub first_seen: EventTime,
    pub last_seen: EventTime,
    pub acknowledged_at: Option<EventTime>,
    pub resolved_at: Option<EventTime>,
    /// Why it happened; required to resolve, or the reason for false positive / expected.
    pub root_cause: Option<String>,
    /// The latest finding's money at risk: exact minor units, and the text people read
    /// (`{"amount_minor": "419845", "currency": "CNY", "exponent": 2, "display": "4,198.45 CNY"}`).
    pub money_at_risk: Option<Money>,
    pub evidence: serde_json::Value,
    /// The rule's tags when the alert opened.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The incident the alert belongs to (see `incidents.rs`).
    #[serde(default)]
    pub incident_id: Option<i64>,
}

impl Alert {
    /// Detection latency: commit → first finding, in microseconds.
    pub fn detection_micros(&self) -> i64 {
        self.first_seen.as_micros() - self.event_time.as_micros()
    }
}

/// One line of an alert's audit timeline: who did what, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    pub at: EventTime,
    pub actor: String,
    pub action: String,
    pub detail: Option<String>,
}

/// A change a person makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Acknowledge,
    Resolve {
        root_cause: String,
    },
    FalsePositive {
        reason: String,
    },
    Expected {
        reason: String,
    },
    Assign {
        to: String,
    },
    Note {
        text: String,
    },
    /// Lets the alert's containment action that waits for approval run.
    ApproveAction,
    /// Cancels the alert's containment action that waits for approval.
    RejectAction {
        reason: String,
    },
}

impl Change {
    pub fn action(&self) -> &'static str {
        match self {
            Change::Acknowledge => "acknowledged",
            Change::Resolve { .. } => "resolved",
            Change::FalsePositive { .. } => "false_positive",
            Change::Expected { .. } => "expected",
            Change::Assign { .. } => "assigned",
            Change::Note { .. } => "note",
            Change::ApproveAction => "action_approved",
            Change::RejectAction { .. } => "action_rejected",
        }
    }

    /// The text the timeline keeps with the change, if any.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Change::Acknowledge | Change::ApproveAction => None,
            Change::Resolve { root_cause: t }
            | Change::FalsePositive { reason: t }
            | Change::Expected { reason: t }
            | Change::Assign { to: t }
            | Change::Note { text: t }
            | Change::RejectAction { reason: t } => Some(t),
        }
    }

    /// The status after the change, or why the change is refused in `from`.
    pub fn apply_to(&self, id: i64, from: Status) -> Result<Status, AlertError> {
        let refuse = |what: &str| AlertError::InvalidChange(format!("alert {id} is {from}: {what}"));
        let closing_text = |text: &str, what: &str| {
            if text.trim().is_empty() {
                Err(AlertError::InvalidChange(format!("{what} must not be empty")))
            } else {
                Ok(())
            }
        };
        match self {
            Change::Acknowledge if from == Status::Open => Ok(Status::Acknowledged),
            Change::Acknowledge => Err(refuse("only open alerts can be acknowledged")),
            Change::Resolve { root_cause } => {
                closing_text(root_cause, "a root cause (resolving needs one)")?;
                if from.is_active() {
                    Ok(Status::Resolved)
                } else {
                    Err(refuse("only open or acknowledged alerts can be resolved"))
                }
            }
            Change::FalsePositive { reason } | Change::Expected { reason } => {
                closing_text(reason, "the reason")?;
                if !from.is_active() {
                    return Err(refuse("only open or acknowledged alerts can be closed"));
                }
                Ok(if matches!(self, Change::FalsePositive { .. }) { Status::FalsePositive } else { Status::Expected })
            }
            Change::Assign { to } => {
                closing_text(to, "the assignee")?;
                if from.is_active() { Ok(from) } else { Err(refuse("closed alerts are not assigned")) }
            }
            Change::Note { text } => closing_text(text, "a note").map(|()| from),
            Change::ApproveAction if from.is_active() => Ok(from),
            Change::ApproveAction => Err(refuse("an action of a closed alert is not run; reject it instead")),
            Change::RejectAction { reason } => closing_text(reason, "the reason").map(|()| from),
        }
    }
}

/// What recording one finding did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "alert", rename_all = "snake_case")]
pub enum Recorded {
    Opened(i64),
    Updated(i64),
    Reopened(i64),
}

impl Recorded {
    pub fn alert(self) -> i64 {
        match self {
            Recorded::Opened(id) | Recorded::Updated(id) | Recorded::Reopened(id) => id,
        }
    }
}

/// Which alerts to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub status: Option<Status>,
    pub owner: Option<String>,
    pub rule: Option<String>,
    pub severity: Option<Severity>,
    /// Only alerts last seen at or after this time.
    pub since: Option<EventTime>,
    /// At most this many (0: the default page of 100).
    pub limit: usize,
    pub offset: usize,
}

/// Why an alert operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("no alert {0}: `fundguard alerts list` shows the ids")]
    NotFound(i64),
    #[error("no incident {0}: `fundguard incidents list` shows the ids")]
    IncidentNotFound(i64),
    #[error("{0}")]
    InvalidChange(String),
    #[error("the alert store {path}: {source}")]
    Store { path: String, source: rusqlite::Error },
    #[error("the PostgreSQL alert store {url}: {message}")]
    Postgres { url: String, message: String },
    #[error(
        "the alert store {path} was written by a newer fundguard (schema {found}, this one knows {known}): upgrade fundguard"
    )]
    NewerSchema { path: String, found: i64, known: i64 },
}

/// The part of a finding's key that identifies its alert: the columns of the rule's
/// `fingerprint`, or the whole key.
pub fn alert_key(finding: &Finding) -> serde_json::Value {
    let key: serde_json::Map<String, serde_json::Value> = finding
        .key
        .iter()
        .filter(|(k, _)| finding.fingerprint_by.as_ref().is_none_or(|by| by.contains(k)))
        .map(|(k, v)| (k.clone(), v.to_json()))
        .collect();
    serde_json::Value::Object(key)
}

/// What identifies one finding (not its alert): the rule, the key, the event time, the
/// message and the evidence with its source positions. A replay produces the same
/// finding with the same receipt; two different findings never share one.
pub fn receipt(finding: &Finding) -> String {
    use sha2::Digest;
    let text =
        serde_json::to_vec(&(&finding.rule, &finding.key, finding.event_time, &finding.message, &finding.evidence))
            .unwrap_or_default();
    // 128 bits of SHA-256 (stable across builds, unlike std's hasher): short in the table.
    hex::encode(&sha2::Sha256::digest(&text)[..16])
}

/// Rule plus alert key: the identity of an alert. Keys are ordered maps, so the same
/// entity always gives the same text.
pub fn fingerprint(finding: &Finding) -> String {
    format!("{}|{}", finding.rule, alert_key(finding))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifecycle_allows_what_the_diagram_shows() {
        let resolve = Change::Resolve { root_cause: "yuan written as fen in the refund job".into() };
        assert_eq!(Change::Acknowledge.apply_to(1, Status::Open).unwrap(), Status::Acknowledged);
        assert!(Change::Acknowledge.apply_to(1, Status::Acknowledged).is_err());
        assert_eq!(resolve.apply_to(1, Status::Open).unwrap(), Status::Resolved);
        assert_eq!(resolve.apply_to(1, Status::Acknowledged).unwrap(), Status::Resolved);
        let error = resolve.apply_to(7, Status::Resolved).unwrap_err().to_string();
        assert_eq!(error, "alert 7 is resolved: only open or acknowledged alerts can be resolved");
        let empty = Change::Resolve { root_cause: "  ".into() }.apply_to(1, Status::Open).unwrap_err().to_string();
        assert!(empty.contains("root cause"), "{empty}");
        let fp = Change::FalsePositive { reason: "test merchant".into() };
        assert_eq!(fp.apply_to(1, Status::Open).unwrap(), Status::FalsePositive);
        assert!(Change::Assign { to: "ana".into() }.apply_to(1, Status::Expected).is_err());
        assert_eq!(Change::Note { text: "looking".into() }.apply_to(1, Status::Resolved).unwrap(), Status::Resolved);
        assert_eq!(Change::ApproveAction.apply_to(1, Status::Acknowledged).unwrap(), Status::Acknowledged);
        assert!(Change::ApproveAction.apply_to(1, Status::Resolved).is_err());
        assert!(Change::RejectAction { reason: " ".into() }.apply_to(1, Status::Open).is_err());
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
    }
}
