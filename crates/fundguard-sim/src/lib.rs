//! A deterministic shop simulator: orders, payments, refunds, settlements and a
//! double-entry ledger, with injected incidents and an answer key.
//!
//! Orders arrive over several hours of simulated time; each walks its lifecycle
//! through a time-ordered queue of steps, so thousands of orders interleave the
//! way concurrent transactions do in a real binlog. The same seed always gives
//! the same events. Money is in minor units (fen), except `payments.amount_yuan`,
//! a DECIMAL(12,2) mirror of the amount that real systems keep for display.

mod incidents;
mod shop;

pub use incidents::{Expected, Ids, Incident, IncidentKind, Outage, SimChange, Slice};
pub use shop::{SimConfig, Simulator, schema};

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cfg: SimConfig) -> (Vec<fundguard_core::ChangeEvent>, Vec<Incident>) {
        let mut sim = Simulator::new(cfg);
        let mut events = Vec::new();
        sim.run(|e| events.push(e));
        (events, sim.incidents().to_vec())
    }

    #[test]
    fn events_come_in_commit_time_order() {
        let (events, _) = run(SimConfig { orders: 300, incident_rate: 0.3, ..SimConfig::default() });
        assert!(events.windows(2).all(|w| w[0].commit_time <= w[1].commit_time));
    }

    #[test]
    fn the_same_seed_gives_the_same_shop() {
        let cfg = SimConfig { orders: 200, incident_rate: 0.1, ..SimConfig::default() };
        assert_eq!(run(cfg.clone()), run(cfg.clone()));
        assert_ne!(run(cfg.clone()).0, run(SimConfig { seed: 43, ..cfg }).0);
    }

    #[test]
    fn every_kind_is_injected_in_turn() {
        let (_, incidents) = run(SimConfig { orders: 400, incident_rate: 0.2, ..SimConfig::default() });
        for kind in IncidentKind::ALL {
            assert!(incidents.iter().any(|i| i.kind == kind), "{kind:?} never injected");
        }
        let (_, none) = run(SimConfig { orders: 400, incident_rate: 0.0, ..SimConfig::default() });
        assert!(none.is_empty());
    }
}
