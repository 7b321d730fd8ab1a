//! Assembly: everything `fundguard run` opens before anything runs, gathered in a
//! [`Service`] that [`super::serve`] then starts. A problem found here (an unwritable
//! data directory, rules that do not validate, an unreadable checkpoint, an alert store
//! that does not open) stops the start before any source has read a message.
//!
//! The order matters: the data directory is prepared before anything touches it; rule
//! state is restored into the engine before the sinks open (a restart prints what it
//! resumed from first); the pipeline's sinks open the alert store before the console
//! and the notifier do.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use fundguard_core::{SourceHealth, TableSchemas};
use fundguard_engine::Engine;
use fundguard_server::{Console, Telemetry};
use tokio::sync::{mpsc, watch};

use super::catalog::Catalog;
use super::checkpoint::{Checkpoint, Progress};
use super::health::{HealthInput, HealthSender, HealthTask, SharedHealth};
use super::input::{self, Covered, Input};
use super::notifier::{self, NotifierParts};
use super::pipeline::{OwnedSink, PipelineParts};
use super::{console, data_dir};
use crate::alerting::open_store;
use crate::config::{Config, SinkConfig, SourceKind};
use crate::pipeline::{AlertSink, FindingsFile, QueuedLines};

/// The per-source health table: what `/healthz`, `/readyz` and the console show.
pub type Health = Arc<Mutex<Vec<SourceHealth>>>;

/// What `fundguard run` opened, ready to run.
pub struct Service {
    pub config: Config,
    pub schemas: Arc<TableSchemas>,
    pub catalog: Arc<Catalog>,
    pub telemetry: Arc<Telemetry>,
    pub health: Health,
    /// What the pipeline thread takes.
    pub pipeline: PipelineParts,
    /// The pipeline's input channel, for sources and tasks.
    pub inputs: mpsc::Sender<Input>,
    /// What the last checkpoint covers, for sources to acknowledge.
    pub covered: Covered,
    /// Per source, by index: where the checkpoint says it resumes.
    pub resume: Vec<Progress>,
    /// The console, when there is a listener and an alert store.
    pub console: Option<Arc<Console>>,
    pub notifier: Option<NotifierParts>,
    /// The rule health task and what it receives, when there is an alert store to keep
    /// rule statistics in.
    pub rule_health: Option<(HealthTask, mpsc::UnboundedReceiver<HealthInput>, HealthSender)>,
}

/// Opens everything the service needs, in the order described above.
pub fn assemble(config: Config) -> anyhow::Result<Service> {
    let warning = data_dir::prepare(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    if let Some(warning) = warning {
        tracing::warn!("warning: {warning}");
    }
    let schemas = crate::schemas::load(config.schema.as_ref())?;
    let catalog = Arc::new(Catalog::new(&config));
    let mut engine = catalog.build_engine(&schemas).map_err(|e| anyhow::anyhow!("{e}"))?;
    engine.set_state_budget(Some(config.state_memory));
    // Live, a drift of a rule's input is an alert for its owner (reloads keep this).
    engine.report_drift(true);
    let restored = Checkpoint::load(&config.data_dir)?;
    let progress = |name: &str| restored.as_ref().and_then(|c| c.sources.get(name)).cloned().unwrap_or_default();
    let resume = config.sources.iter().map(|s| progress(&s.name)).collect();
    let telemetry = Arc::new(Telemetry::default());
    let health: Health = Arc::new(Mutex::new(
        config
            .sources
            .iter()
            .map(|s| SourceHealth { name: s.name.clone(), state: "starting".into(), ..Default::default() })
            .collect(),
    ));
    let (inputs, receiver) = mpsc::channel::<Input>(input::CAPACITY);
    let (covered_tx, covered) = watch::channel(vec![0u64; config.sources.len()]);
    read_lookups(&config, &mut engine)?;
    let self_timed = self_timed(&config, &mut engine);
    restore_state(&mut engine, restored.as_ref())?;
    let (sink_names, sinks) = open_sinks(&config, &catalog.loaded_rules(), restored.as_ref())?;
    let shared_health: SharedHealth = Arc::default();
    let rule_health = config.alert_store().map(|location| {
        let (sender, received) = mpsc::unbounded_channel();
        let task = HealthTask {
            config: config.clone(),
            catalog: catalog.clone(),
            schemas: schemas.clone(),
            location,
            inputs: inputs.clone(),
            shared: shared_health.clone(),
            telemetry: telemetry.clone(),
        };
        (task, received, sender)
    });
    let pipeline = PipelineParts {
        config: config.clone(),
        schemas: schemas.clone(),
        engine,
        restored,
        self_timed,
        sinks,
        sink_names,
        inputs: receiver,
        health: health.clone(),
        telemetry: telemetry.clone(),
        covered: covered_tx,
        wake: inputs.downgrade(),
        rule_stats: rule_health.as_ref().map(|(_, _, sender)| sender.clone()),
    };
    // The console is served by the HTTP listener: without one it is not opened.
    let console = match &config.listen {
        Some(_) => console::open(
            &config,
            catalog.clone(),
            schemas.clone(),
            telemetry.clone(),
            health.clone(),
            shared_health.clone(),
        )?,
        None => None,
    };
    let notifier = notifier::open(&config, telemetry.clone())?;
    Ok(Service {
        config,
        schemas,
        catalog,
        telemetry,
        health,
        pipeline,
        inputs,
        covered,
        resume,
        console,
        notifier,
        rule_health,
    })
}

/// Database logs deliver in commit order and say when they are caught up: rules fed by
/// one of them alone need no allowed lateness, and no wall-clock idleness. Declares them
/// ordered to `engine` and returns their names.
fn self_timed(config: &Config, engine: &mut Engine) -> HashSet<String> {
    let self_timed: HashSet<String> = config
        .sources
        .iter()
        .filter(|s| matches!(s.kind, SourceKind::Mysql(_) | SourceKind::Postgres(_)))
        .map(|s| s.name.clone())
        .collect();
    for name in &self_timed {
        engine.declare_ordered(name);
    }
    self_timed
}

/// Reads the table lookups the rules read before the first event: without its reference
/// rows a rule would report every row as missing. (Stream lookups were attached when the
/// engine was built; their rows come with the checkpoint.)
fn read_lookups(config: &Config, engine: &mut Engine) -> anyhow::Result<()> {
    let read: Vec<String> = engine.lookup_names().map(str::to_string).collect();
    let tables = config
        .lookups
        .iter()
        .any(|l| read.contains(&l.name) && matches!(l.source, crate::config::LookupSource::Table { .. }));
    if !tables {
        return Ok(());
    }
    tokio::task::block_in_place(|| {
        let handle = tokio::runtime::Handle::current();
        let warehouse = handle
            .block_on(fundguard_warehouse::Warehouse::open(&config.warehouse, &config.base_dir, |n| {
                std::env::var(n).ok()
            }))
            .context("opening the warehouse tables the lookups read")?;
        handle.block_on(crate::lookups::fill(engine, &config.lookups, Some(&warehouse)))
    })
}

/// With a checkpoint from an earlier run, the engine takes its rule state; rules changed
/// since then start without.
fn restore_state(engine: &mut Engine, restored: Option<&Checkpoint>) -> anyhow::Result<()> {
    let Some(restored) = restored.filter(|r| !r.engine.is_empty()) else { return Ok(()) };
    let restoring = std::time::Instant::now();
    let outcome = engine.restore_state(&restored.engine).context("restoring rule state from the checkpoint")?;
    tracing::info!(
        epoch = restored.epoch,
        "resumed from checkpoint {} ({}): state of {} stateful rules ({} bytes) restored in {} ms",
        restored.epoch,
        restored.written_at,
        outcome.kept.len(),
        restored.engine.len(),
        restoring.elapsed().as_millis()
    );
    if !outcome.dropped.is_empty() {
        tracing::warn!(rules = %outcome.dropped.join(","), "rules changed since the checkpoint start without state: {}", outcome.dropped.join(", "));
    }
    Ok(())
}

/// The configured sinks, opened, with what they are called in messages and metrics.
/// After a restart, findings files are cut back to the checkpoint's marks (what came
/// after is replayed) and the alerts sink records each replayed finding once.
fn open_sinks(
    config: &Config,
    rules: &[fundguard_rules::Rule],
    restored: Option<&Checkpoint>,
) -> anyhow::Result<(Vec<String>, Vec<OwnedSink>)> {
    let epoch = restored.map_or(0, |r| r.epoch);
    let mut sinks: Vec<OwnedSink> = Vec::new();
    let mut sink_names = Vec::new();
    for sink in &config.sinks {
        sink_names.push(match sink {
            SinkConfig::Jsonl { path } => format!("jsonl {}", path.display()),
            SinkConfig::Stdout => "stdout".to_string(),
            SinkConfig::Alerts { .. } => "alerts".to_string(),
        });
        sinks.push(match sink {
            SinkConfig::Jsonl { path } => {
                let mark = restored.and_then(|r| r.findings_files.get(path).copied());
                Box::new(FindingsFile::open(path.clone(), mark)?)
            }
            SinkConfig::Stdout => Box::new(QueuedLines::new(std::io::stdout(), "stdout")),
            SinkConfig::Alerts { .. } => {
                let location = config.alert_store().context("an alerts sink has a store")?;
                let store = open_store(&location, config.store_policy_for(rules))?;
                Box::new(AlertSink::replayable(store, epoch))
            }
        });
    }
    Ok((sink_names, sinks))
}
