//! Severities and the detection deadlines the practice attaches to them.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How bad a violation is; decides how fast it must be detected and answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Severity::Critical, Severity::High, Severity::Medium, Severity::Low];

    /// Default detection deadline: 1 minute, 5 minutes, 1 hour, next day (24 hours).
    pub fn default_deadline(self) -> Duration {
        match self {
            Severity::Critical => Duration::from_secs(60),
            Severity::High => Duration::from_secs(5 * 60),
            Severity::Medium => Duration::from_secs(60 * 60),
            Severity::Low => Duration::from_secs(24 * 60 * 60),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
