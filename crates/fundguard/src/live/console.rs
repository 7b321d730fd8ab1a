//! The web console and its API, assembled over the alert store. It gets stores of its
//! own: the pipeline thread's store is touched only on that thread, and the figures
//! (rules, SLO, dashboard) are computed on a second one, so an aggregate over a large
//! store never holds up the alert queue. Suggestions under review (`console.suggestions`)
//! are decided through the same catalogue that loads the rules.

use std::sync::{Arc, Mutex};

use fundguard_core::SourceHealth;
use fundguard_server::{Audit, Auth, Console, Telemetry};

use super::catalog::Catalog;
use super::suggestions::Review;
use crate::alerting::open_store;
use crate::config::Config;

/// The console over the alert store, when the config has one (an `alerts` sink).
pub fn open(
    config: &Config,
    catalog: Arc<Catalog>,
    schemas: Arc<fundguard_core::TableSchemas>,
    telemetry: Arc<Telemetry>,
    health: Arc<Mutex<Vec<SourceHealth>>>,
    rule_health: super::health::SharedHealth,
) -> anyhow::Result<Option<Arc<Console>>> {
    let Some(location) = config.alert_store() else { return Ok(None) };
    let store = open_store(&location, config.store_policy())?;
    let figures_store = open_store(&location, fundguard_alerts::Routes::default())?;
    Ok(Some(Arc::new(Console {
        store: Arc::new(Mutex::new(store)),
        figures_store: Arc::new(Mutex::new(figures_store)),
        figures: Default::default(),
        slo: config.slo.clone(),
        auth: Auth::new(config.console.users.clone(), config.console.tokens.clone())
            .with_policy(config.console.login.clone()),
        audit: Audit::new(config.data_dir.join("audit.jsonl")),
        suggestions: config
            .console
            .suggestions
            .as_ref()
            .map(|s| Arc::new(Review::new(s, catalog.clone(), schemas)) as Arc<dyn fundguard_server::SuggestionReview>),
        rules: catalog,
        telemetry,
        health,
        coverage_report: config.console.coverage_report.clone(),
        rule_health,
        github_secret: config.github_secret.clone(),
    })))
}
