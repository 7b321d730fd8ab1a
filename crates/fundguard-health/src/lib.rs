//! Rule health: is each rule still doing its job?
//!
//! With hundreds of rules, rules rot quietly: a column is renamed and a rule reads NULL; a
//! status value changes and a state machine never matches; a warehouse file moves and the
//! D+1 check fails every night; a rule pages fifty times a day and is muted. This crate
//! judges each rule from what the alert store keeps about it (per-day statistics the
//! pipeline writes, drifts the engine saw, the rule's alerts) into one [`State`] with the
//! [`Reason`]s behind it:
//!
//! - [`policy`]: the thresholds, each with a documented default (`health:` in fundguard.yaml);
//! - [`assess`]: one rule's statistics, drifts, alerts and canary → its [`RuleHealth`];
//! - [`report`]: the weekly freshness report per owner, sent through notification channels.
//!
//! No IO and no clock: callers read the store, run the canaries (the rule's own tests) and
//! pass `now`, so the same judgement serves `fundguard rules health`, the console, the
//! metrics and the alerts a rule's owner gets when it turns failing, stale or drifted.

pub mod assess;
pub mod policy;
pub mod report;

pub use assess::{Canary, Reason, RuleHealth, State, Subject, Totals, assess};
pub use policy::HealthPolicy;
pub use report::FreshnessReport;
