//! One module per subcommand: its arguments (`Args`) and its `run`.

pub mod alerts;
pub mod backtest;
pub mod changes;
pub mod checkpoint;
pub mod coverage;
pub mod demo;
pub mod incidents;
pub mod report;
pub mod rules;
pub mod run;
pub mod schema;
pub mod simulate;
pub mod sql;
pub mod suggest;
pub mod test;
pub mod validate;

use std::path::PathBuf;

use anyhow::Context;
use fundguard_rules::{Rule, load_paths};

/// The rule files a command reads, and the optional schema file that types their tables.
#[derive(clap::Args)]
pub struct RuleFiles {
    /// Rule files or directories of them.
    #[arg(required = true)]
    pub rules: Vec<PathBuf>,
    /// Declared column types (`tables: {db.table: {column: type}}`): enables unknown-column and type checks.
    #[arg(long)]
    pub schema: Option<PathBuf>,
}

/// Loads rules, failing with every problem listed.
pub(crate) fn rules(paths: &[PathBuf]) -> anyhow::Result<Vec<Rule>> {
    let (rules, problems) = load_paths(paths);
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::bail!(
            "{}\n{} problem(s) in the rule files; `fundguard validate` lists them too",
            list.join("\n"),
            list.len()
        );
    }
    Ok(rules)
}

/// Reads a `fundguard.yaml`, failing with every problem listed.
pub(crate) fn load_config(path: &std::path::Path) -> anyhow::Result<crate::config::Config> {
    crate::config::load(path, |name| std::env::var(name).ok()).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("{}\n{} problem(s) in the configuration", list.join("\n"), list.len())
    })
}

/// Opens the config's `warehouse:` tables (connecting to its databases) on `runtime`.
pub(crate) fn open_warehouse(
    runtime: &tokio::runtime::Runtime,
    config: &crate::config::Config,
) -> anyhow::Result<fundguard_warehouse::Warehouse> {
    let opening =
        fundguard_warehouse::Warehouse::open(&config.warehouse, &config.base_dir, |name| std::env::var(name).ok());
    runtime.block_on(opening).context("opening the warehouse tables of the config")
}

/// Which alert store a command works on: the SQLite file, a PostgreSQL database, or
/// the one a `fundguard.yaml` names (which also gives the routing table, the SLO
/// deadlines and the notification channels).
#[derive(clap::Args)]
pub struct StoreArgs {
    /// The SQLite alert store (default: fundguard-data/alerts.db, where `fundguard run`
    /// keeps it with the default data_dir).
    #[arg(long, global = true)]
    store: Option<PathBuf>,
    /// Use the PostgreSQL alert store at the URL held by this environment variable.
    #[arg(long, global = true, conflicts_with = "store")]
    postgres_env: Option<String>,
    /// Take the store, routes, SLO deadlines and channels from this fundguard.yaml.
    #[arg(long, global = true, conflicts_with_all = ["store", "postgres_env"])]
    config: Option<PathBuf>,
}

/// An opened alert store and the settings that go with it.
pub struct AlertsAt {
    pub store: Box<dyn fundguard_alerts::AlertStore + Send>,
    pub slo: fundguard_alerts::Slo,
    /// The config file, when one was given.
    pub config: Option<crate::config::Config>,
}

impl StoreArgs {
    pub fn open(&self) -> anyhow::Result<AlertsAt> {
        use fundguard_alerts::{Routes, Slo, SqliteStore, StoreLocation};
        if let Some(path) = &self.config {
            let config = crate::config::load(path, |v| std::env::var(v).ok()).map_err(|problems| {
                let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
                anyhow::anyhow!("{}", list.join("\n"))
            })?;
            let location = config.alert_store().with_context(|| {
                format!(
                    "{}: no `alerts` sink, so no alert store: add `- {{ type: alerts }}` to `sinks`",
                    path.display()
                )
            })?;
            let store = location.open(config.store_policy())?;
            return Ok(AlertsAt { store, slo: config.slo.clone(), config: Some(config) });
        }
        let location = match &self.postgres_env {
            Some(var) => StoreLocation::Postgres(
                std::env::var(var).with_context(|| format!("--postgres-env {var}: the variable is not set"))?,
            ),
            None => {
                let path =
                    self.store.clone().unwrap_or_else(|| SqliteStore::default_path(&PathBuf::from("fundguard-data")));
                if !path.exists() {
                    anyhow::bail!(
                        "no alert store at {}: pass --store or --config, or run fundguard with an `alerts` sink first",
                        path.display()
                    );
                }
                StoreLocation::Sqlite(path)
            }
        };
        Ok(AlertsAt { store: location.open(Routes::default())?, slo: Slo::default(), config: None })
    }
}
