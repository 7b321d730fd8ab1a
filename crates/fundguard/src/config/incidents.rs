//! `incidents:` — how alerts group into incidents and how incidents notify, and the
//! services whose changes attribution ranks (see docs/attribution.md).
//!
//! ```yaml
//! incidents:
//!   burst: 10m                 # alerts of one flow this close in event time: one incident
//!   notify: per_incident       # or per_alert
//!   flows:                     # related rules that share their incidents
//!     payments: [payment-matches-order, payment-amount-positive]
//!   services:                  # what each service writes, and its team
//!     payment-gateway: { tables: [shop.payments], team: payments }
//!   github_secret_env: FG_GITHUB_SECRET   # POST /api/v1/changes/github checks it
//! ```

use std::collections::BTreeMap;

use fundguard_alerts::IncidentPolicy;
use fundguard_attribution::{Service, ServiceMap};
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::loader::Loader;

/// The section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IncidentsFile {
    #[serde(default)]
    burst: Option<Spanned<String>>,
    #[serde(default)]
    notify: Option<Spanned<String>>,
    #[serde(default)]
    flows: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    services: BTreeMap<String, ServiceFile>,
    /// The variable holding the secret GitHub signs `deployment_status` webhooks with.
    #[serde(default)]
    github_secret_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceFile {
    #[serde(default)]
    tables: Vec<String>,
    #[serde(default)]
    team: Option<String>,
}

/// The validated section: the store's policy, and the secret of GitHub's webhooks.
pub struct Incidents {
    pub policy: IncidentPolicy,
    pub github_secret: Option<String>,
}

impl IncidentsFile {
    pub fn validate(self, loader: &mut Loader) -> Incidents {
        let github_secret = match &self.github_secret_env {
            Some(var) => {
                let secret = loader.env(var);
                if secret.is_none() {
                    loader.problem(
                        loader.at(0, 0),
                        format!("incidents.github_secret_env: the variable `{var}` is not set (or empty)"),
                    );
                }
                secret
            }
            None => None,
        };
        let mut policy = IncidentPolicy::default();
        if let Some(given) = &self.burst
            && let Some(burst) = loader.spanned_duration(given)
        {
            match i64::try_from(burst.as_micros()) {
                Ok(micros) if micros > 0 => policy.burst_micros = micros,
                _ => {
                    let at = loader.at_value(given);
                    loader.problem(at, "incidents.burst: expected a positive duration, such as 10m")
                }
            }
        }
        if let Some(notify) = &self.notify {
            match notify.value.as_str() {
                "per_incident" => {}
                "per_alert" => policy.notify_every_alert = true,
                other => {
                    let at = loader.at_value(notify);
                    loader
                        .problem(at, format!("incidents.notify: expected `per_incident` or `per_alert`, not `{other}`"))
                }
            }
        }
        for (flow, rules) in self.flows {
            for rule in rules {
                if let Some(other) = policy.flows.insert(rule.clone(), flow.clone()) {
                    loader.problem(
                        loader.at(0, 0),
                        format!(
                            "incidents.flows: rule `{rule}` is in both `{other}` and `{flow}`: a rule has one flow"
                        ),
                    );
                }
            }
        }
        policy.services = ServiceMap {
            services: self
                .services
                .into_iter()
                .map(|(name, s)| (name, Service { tables: s.tables, team: s.team }))
                .collect(),
        };
        Incidents { policy, github_secret }
    }
}
