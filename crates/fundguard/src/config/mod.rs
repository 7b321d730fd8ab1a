//! `fundguard.yaml`: what `fundguard run` reads, where, and where findings go — the
//! configuration of the whole program, which the CLI commands read too.
//!
//! One module per section, each holding the section as written (a `…File` type that
//! serde reads) and validating itself into what the program uses:
//!
//! - [`file`]: the file as a whole, parsed with the place of every value;
//! - [`sources`]: one module per kind of source, and the registry that names them;
//! - [`sinks`], [`notify`], [`incidents`], [`console`], [`slo`], [`limits`];
//! - [`loader`]: what every section needs while validating (places, relative paths,
//!   environment, the problems found).
//!
//! Parsed with locations like rule files; secrets never appear in it — a source names
//! the environment variable (`*_env`) or the file (`password_file`) that holds its secret.
//! Every problem is reported, not just the first, each with its line and column.

mod console;
mod file;
#[cfg(test)]
mod fuzz;
mod health;
mod incidents;
mod limits;
mod loader;
mod lookups;
mod notify;
mod sinks;
mod slo;
mod sources;

use std::path::{Path, PathBuf};
use std::time::Duration;

use fundguard_rules::Diagnostic;

pub use console::{ConsoleConfig, SuggestionsConfig};
pub use health::HealthConfig;
pub use lookups::{LookupConfig, LookupSource};
pub use notify::{ChannelKind, NotifyConfig};
pub use sinks::SinkConfig;
pub use sources::{SourceConfig, SourceKind};

use file::ConfigFile;
use loader::Loader;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub rules: Vec<PathBuf>,
    pub schema: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub listen: Option<String>,
    pub idle_after: Duration,
    /// How long stopping may take: stop reading, drain the pipeline, checkpoint, exit.
    pub shutdown_timeout: Duration,
    /// How often a checkpoint is taken (and sources acknowledge upstream).
    pub checkpoint_interval: Duration,
    /// The memory budget of rule state, in bytes (default 2 GiB).
    pub state_memory: u64,
    /// Longer messages are dead-lettered unread (default [`fundguard_formats::MAX_MESSAGE_BYTES`]).
    pub max_message_bytes: usize,
    pub sources: Vec<SourceConfig>,
    pub sinks: Vec<SinkConfig>,
    pub notify: NotifyConfig,
    /// SLO deadlines per severity.
    pub slo: fundguard_alerts::Slo,
    /// Console and API access (served on `listen` when there is an alerts sink).
    pub console: ConsoleConfig,
    /// Rule health thresholds.
    pub health: HealthConfig,
    /// Tables `sql` rules query; relative file paths are read from `base_dir`.
    pub warehouse: Vec<fundguard_warehouse::TableSource>,
    /// Reference data rules read, and where each lookup's rows come from.
    pub lookups: Vec<LookupConfig>,
    /// How alerts group into incidents, and the services whose changes attribution ranks.
    pub incidents: fundguard_alerts::IncidentPolicy,
    /// The secret GitHub signs deployment webhooks with (`incidents.github_secret_env`).
    pub github_secret: Option<String>,
    /// The config file's directory.
    pub base_dir: PathBuf,
}

impl Config {
    /// What the alert store decides by this config: notification routes and incidents.
    pub fn store_policy(&self) -> fundguard_alerts::Policy {
        fundguard_alerts::Policy { routes: self.notify.routes.clone(), incidents: self.incidents.clone() }
    }

    /// [`Config::store_policy`] for recording the findings of `rules`: their incidents leave
    /// out the columns each rule's own conditions fix.
    pub fn store_policy_for(&self, rules: &[fundguard_rules::Rule]) -> fundguard_alerts::Policy {
        with_fixed_columns(self.store_policy(), rules)
    }

    /// The alert store of the `alerts` sink, if there is one.
    pub fn alert_store(&self) -> Option<fundguard_alerts::StoreLocation> {
        self.sinks.iter().find_map(|s| match s {
            SinkConfig::Alerts { postgres_url: Some(url), .. } => {
                Some(fundguard_alerts::StoreLocation::Postgres(url.clone()))
            }
            SinkConfig::Alerts { path, .. } => Some(fundguard_alerts::StoreLocation::Sqlite(
                path.clone().unwrap_or_else(|| self.data_dir.join("alerts.db")),
            )),
            _ => None,
        })
    }
}

/// `policy` with the columns each of `rules` fixes left out of its incidents' profiles.
pub fn with_fixed_columns(
    mut policy: fundguard_alerts::Policy,
    rules: &[fundguard_rules::Rule],
) -> fundguard_alerts::Policy {
    policy.incidents.fixed_columns = rules.iter().map(|r| (r.id.clone(), fundguard_engine::fixed_columns(r))).collect();
    policy
}

/// How often checkpoints are taken unless `checkpoint_interval` says otherwise.
const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);

/// Reads and validates a config file; paths in it are relative to the file's directory.
/// `env` looks up environment variables (injected so tests need not touch the process's).
pub fn load(path: &Path, env: impl Fn(&str) -> Option<String>) -> Result<Config, Vec<Diagnostic>> {
    let mut loader = Loader::new(path, &env);
    let file = ConfigFile::read(path, &loader)?;
    let idle_after = loader.duration_or("idle_after", file.idle_after.as_ref(), Duration::from_secs(5));
    let shutdown_timeout =
        loader.duration_or("shutdown_timeout", file.shutdown_timeout.as_ref(), Duration::from_secs(30));
    let checkpoint_interval =
        loader.duration_or("checkpoint_interval", file.checkpoint_interval.as_ref(), DEFAULT_CHECKPOINT_INTERVAL);
    let limits = file.limits.unwrap_or_default().validate(&mut loader);
    if file.rules.is_empty() {
        loader.problem(loader.at(0, 0), "`rules` is empty: expected at least one rule file or directory");
    }
    let sources = sources::validate(file.sources, file.listen.is_some(), &mut loader);
    let slo = slo::validate(&file.slo, &mut loader);
    let console = file.console.unwrap_or_default().validate(file.listen.as_deref(), &file.rules, &mut loader);
    let health = file.health.unwrap_or_default().validate(&mut loader);
    let has_alerts_sink = file.sinks.iter().any(|s| matches!(s, SinkConfig::Alerts { .. }));
    let notify = match file.notify {
        Some(spanned) => {
            let here = loader.at_value(&spanned);
            spanned.value.validate(has_alerts_sink, here, &mut loader)
        }
        None => NotifyConfig::default(),
    };
    sinks::check(&file.sinks, &mut loader);
    let lookups = lookups::validate(file.lookups, &mut loader);
    let incidents::Incidents { policy: incidents, github_secret } =
        file.incidents.unwrap_or_default().validate(&mut loader);
    if !loader.problems.is_empty() {
        return Err(loader.problems);
    }
    let data_dir = loader.rel(&file.data_dir.unwrap_or_else(|| PathBuf::from("fundguard-data")));
    Ok(Config {
        rules: file.rules.iter().map(|p| loader.rel(p)).collect(),
        schema: file.schema.as_deref().map(|p| loader.rel(p)),
        sinks: sinks::resolve(file.sinks, &data_dir, &loader),
        data_dir,
        listen: file.listen,
        idle_after,
        shutdown_timeout,
        checkpoint_interval,
        state_memory: limits.state_memory,
        max_message_bytes: limits.max_message_bytes,
        sources,
        notify,
        slo,
        console,
        health,
        warehouse: file.warehouse,
        lookups,
        incidents,
        github_secret,
        base_dir: loader.base,
    })
}
