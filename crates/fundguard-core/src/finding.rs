//! Findings: one violation of one rule by concrete data.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{Action, EventTime, Money, Op, Position, Row, Severity, TableName, Value};

/// A row that took part in a finding, with where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub table: TableName,
    pub op: Op,
    pub commit_time: EventTime,
    pub position: Position,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Row>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Row>,
}

impl Evidence {
    /// The event a finding was made on, as its evidence.
    pub fn of(event: &crate::ChangeEvent) -> Evidence {
        Evidence {
            table: event.table.clone(),
            op: event.op,
            commit_time: event.commit_time,
            position: event.position.clone(),
            before: event.before.clone(),
            after: event.after.clone(),
        }
    }
}

/// One violation of a rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub rule: String,
    /// The team that owns the rule, and so the alert.
    pub owner: String,
    pub severity: Severity,
    /// The columns that identify the entity, e.g. `{"order_id": 42}`.
    pub key: BTreeMap<String, Value>,
    /// Event time of the change that revealed the violation.
    pub event_time: EventTime,
    /// When fundguard produced the finding (stamped by the caller, never by the engine).
    pub detected_at: EventTime,
    pub message: String,
    pub evidence: Vec<Evidence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub money_at_risk: Option<Money>,
    /// The rule's tags: notification routes can match on them.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub tags: Arc<[String]>,
    /// The rule's containment action, run when the finding opens an alert.
    #[serde(skip)]
    pub action: Option<Arc<Action>>,
    /// The key columns that identify an alert (the rule's `fingerprint`); `None`: all of them.
    #[serde(skip)]
    pub fingerprint_by: Option<Arc<[String]>>,
}

impl Finding {
    /// Detection latency: from the commit of the offending change to the finding, in microseconds.
    pub fn detection_latency_micros(&self) -> i64 {
        self.detected_at.micros_since(self.event_time)
    }
}
