//! The routing table: which notification channels hear about which alerts.

use fundguard_core::Severity;

use crate::model::Alert;

/// One row of the routing table: an alert matches when it meets every criterion given
/// (an empty list matches anything); its channels are the union of all matching rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    pub severities: Vec<Severity>,
    pub owners: Vec<String>,
    pub rules: Vec<String>,
    /// The alert's rule carries at least one of these tags.
    pub tags: Vec<String>,
    pub channels: Vec<String>,
}

/// The whole table; no rows means no notifications.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes(pub Vec<Route>);

impl Routes {
    /// Channels for `alert`, each once, in table order.
    pub fn channels_for(&self, alert: &Alert) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for route in &self.0 {
            let matches = (route.severities.is_empty() || route.severities.contains(&alert.severity))
                && (route.owners.is_empty() || route.owners.contains(&alert.owner))
                && (route.rules.is_empty() || route.rules.contains(&alert.rule))
                && (route.tags.is_empty() || route.tags.iter().any(|t| alert.tags.contains(t)));
            if matches {
                for c in &route.channels {
                    if !out.contains(c) {
                        out.push(c.clone());
                    }
                }
            }
        }
        out
    }
}
