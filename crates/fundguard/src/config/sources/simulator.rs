//! `type: simulator` — the built-in shop simulator, replayed in real time with injected
//! incidents: a source that needs nothing else (what `fundguard demo` runs).

use serde::Deserialize;

use super::{Reported, Scope, SourceKind, SourceSpec};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct SimulatorSource {
    name: String,
    #[serde(default)]
    orders: Option<u64>,
    /// Fraction of orders carrying an incident.
    #[serde(default)]
    incident_rate: Option<f64>,
    #[serde(default)]
    seed: Option<u64>,
    /// Simulated seconds per real second.
    #[serde(default)]
    speed: Option<u32>,
}

impl SourceSpec for SimulatorSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(self: Box<Self>, scope: &mut Scope) -> Result<SourceKind, Reported> {
        let incident_rate = self.incident_rate.unwrap_or(0.02);
        if !(0.0..=1.0).contains(&incident_rate) {
            scope.problem(format_args!("incident_rate {incident_rate}: expected a fraction from 0 to 1"));
        }
        Ok(SourceKind::Simulator {
            orders: self.orders.unwrap_or(50_000),
            incident_rate,
            seed: self.seed.unwrap_or(7),
            speed: self.speed.unwrap_or(60).max(1),
        })
    }
}
