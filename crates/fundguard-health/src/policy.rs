//! The thresholds rule health is judged by. Each has a default that suits a shop whose
//! money tables change at least hourly; fundguard.yaml's `health:` section overrides them.

use std::time::Duration;

/// When a rule is stale, noisy or silent, and how long its statistics are kept.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthPolicy {
    /// A table a rule reads with no events for this long makes the rule *stale* (default 6h).
    pub stale_after: Duration,
    /// A rule whose `when` let nothing through for this long while its tables had events is
    /// *stale* (a dead filter: a status renamed, a typo) (default 6h).
    pub dead_filter_after: Duration,
    /// Evaluation errors or failed scheduled runs within this long make a rule *failing*
    /// (default 1h).
    pub failing_within: Duration,
    /// More alerts opened on one day than this makes a rule *noisy* (default 50).
    pub max_alerts_per_day: u64,
    /// At least this share of its alerts closed as false positive (percent) makes a rule
    /// *noisy* (default 30) — once it has opened `min_alerts_for_share` (default 5).
    pub max_false_positive_percent: u64,
    pub min_alerts_for_share: u64,
    /// Its alerts reopened (resolved, then firing again) this often within the last
    /// [`NOISE_WINDOW_DAYS`] make a rule *noisy*: flapping (default 3).
    pub max_reopened: u64,
    /// No finding for this long makes a rule *silent* (default 30 days): shown with its
    /// tests re-run as canaries, so "silent and still works" differs from "silent and broken".
    pub silent_after: Duration,
    /// Days of per-rule statistics kept (default 90).
    pub retention_days: u32,
}

const HOUR: u64 = 3600;

/// Alerts are judged for noise over this many days, today included.
pub const NOISE_WINDOW_DAYS: u32 = 7;

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            stale_after: Duration::from_secs(6 * HOUR),
            dead_filter_after: Duration::from_secs(6 * HOUR),
            failing_within: Duration::from_secs(HOUR),
            max_alerts_per_day: 50,
            max_false_positive_percent: 30,
            min_alerts_for_share: 5,
            max_reopened: 3,
            silent_after: Duration::from_secs(30 * 24 * HOUR),
            retention_days: 90,
        }
    }
}
