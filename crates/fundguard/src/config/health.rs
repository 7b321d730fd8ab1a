//! `health:` — when a rule counts as stale, noisy or silent, how long its statistics are
//! kept, and how often `fundguard run` judges its rules. What is not given keeps the
//! default documented in `fundguard_health::HealthPolicy` and docs/health.md.

use std::time::Duration;

use fundguard_health::HealthPolicy;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::loader::Loader;

/// The section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HealthFile {
    #[serde(default)]
    stale_after: Option<Spanned<String>>,
    #[serde(default)]
    dead_filter_after: Option<Spanned<String>>,
    #[serde(default)]
    failing_within: Option<Spanned<String>>,
    #[serde(default)]
    silent_after: Option<Spanned<String>>,
    #[serde(default)]
    max_alerts_per_day: Option<u64>,
    #[serde(default)]
    max_false_positive_percent: Option<u64>,
    #[serde(default)]
    min_alerts_for_share: Option<u64>,
    #[serde(default)]
    max_reopened: Option<u64>,
    #[serde(default)]
    retention_days: Option<u32>,
    /// How often the running service judges its rules (default 30s).
    #[serde(default)]
    every: Option<Spanned<String>>,
}

/// The validated section.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    pub policy: HealthPolicy,
    /// How often `fundguard run` writes rule statistics and judges its rules.
    pub every: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig { policy: HealthPolicy::default(), every: Duration::from_secs(30) }
    }
}

impl HealthFile {
    pub fn validate(&self, loader: &mut Loader) -> HealthConfig {
        let mut health = HealthConfig::default();
        let p = &mut health.policy;
        for (given, field) in [
            (&self.stale_after, &mut p.stale_after),
            (&self.dead_filter_after, &mut p.dead_filter_after),
            (&self.failing_within, &mut p.failing_within),
            (&self.silent_after, &mut p.silent_after),
            (&self.every, &mut health.every),
        ] {
            if let Some(d) = given.as_ref().and_then(|d| loader.spanned_duration(d)) {
                *field = d;
            }
        }
        let p = &mut health.policy;
        p.max_alerts_per_day = self.max_alerts_per_day.unwrap_or(p.max_alerts_per_day);
        p.max_false_positive_percent = self.max_false_positive_percent.unwrap_or(p.max_false_positive_percent);
        p.min_alerts_for_share = self.min_alerts_for_share.unwrap_or(p.min_alerts_for_share);
        p.max_reopened = self.max_reopened.unwrap_or(p.max_reopened);
        p.retention_days = self.retention_days.unwrap_or(p.retention_days);
        if p.retention_days == 0 || p.max_false_positive_percent > 100 {
            loader.problem(
                loader.at(0, 0),
                "health: retention_days must be 1 or more and max_false_positive_percent at most 100",
            );
        }
        if health.every.is_zero() {
            loader.problem(loader.at(0, 0), "health.every: expected a positive duration, such as 30s");
        }
        health
    }
}
