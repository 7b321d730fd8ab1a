//! Running: [`Service::run`] starts what assembly opened — the pipeline thread first,
//! then one task per source, the HTTP listener, the notifier, the clock, scheduled SQL
//! and the reload watcher — and waits for SIGTERM or Ctrl-C. Then it drains: sources
//! stop reading, the pipeline evaluates what it was sent, flushes the sinks and takes a
//! last checkpoint, and the notifier stops last, all within `shutdown_timeout`.

use std::sync::Arc;

use anyhow::Context;
use fundguard_server::{Console, Telemetry};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::assemble::{Health, Service};
use super::checkpoint::Progress;
use super::input::{Covered, Input};
use super::notifier::{self, RunningNotifier};
use super::sources::{self, SourceLink};
use super::{clock, reload, scheduled, thread};
use crate::config::{Config, SourceKind};

impl Service {
    /// Runs until SIGTERM or Ctrl-C, then drains.
    pub async fn run(self) -> anyhow::Result<()> {
        let Service {
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
        } = self;
        let (stop, stopping) = watch::channel(false);
        // The pipeline is ready (its first checkpoint written) before any source reads.
        let pipeline = thread::spawn(pipeline)?;
        let links = SourceLinks { config: &config, inputs: &inputs, health: &health, covered: &covered };
        let database_sources = links.start(&resume, &stopping)?;
        let server = links.serve_http(&telemetry, console).await?;
        let notifier = notifier.map(notifier::spawn).transpose()?;
        tokio::spawn(clock::tick(inputs.clone()));
        let health_sender = rule_health.map(|(task, received, sender)| {
            tokio::spawn(task.run(received));
            sender
        });
        // Always running: sql rules may arrive with a later reload.
        tokio::spawn(scheduled::run(config.clone(), catalog.clone(), inputs.clone(), telemetry.clone(), health_sender));
        tokio::spawn(super::lookups::refresh(config.clone(), inputs.clone()));
        tokio::spawn(reload::watch(config.clone(), catalog, schemas, inputs.clone()));
        if let Some(report) = config.console.coverage_report.clone() {
            tokio::spawn(super::coverage::watch(report, telemetry.clone()));
        }

        shutdown_signal().await;
        tracing::info!("shutting down (at most {:?}, `shutdown_timeout`)", config.shutdown_timeout);
        let running = Running { server, stop, database_sources, inputs, pipeline, notifier };
        if tokio::time::timeout(config.shutdown_timeout, running.drain()).await.is_err() {
            anyhow::bail!(
                "shutdown took longer than {:?} (`shutdown_timeout`): stopped without a complete drain; \
                 sources resume from their last stored positions",
                config.shutdown_timeout
            );
        }
        tracing::info!("stopped cleanly");
        Ok(())
    }
}

/// What every source task is connected to (each gets a [`SourceLink`] of it): the
/// config, the pipeline's channel, the health table and what the checkpoints cover.
struct SourceLinks<'a> {
    config: &'a Config,
    inputs: &'a mpsc::Sender<Input>,
    health: &'a Health,
    covered: &'a Covered,
}

impl SourceLinks<'_> {
    /// Starts one task per source (HTTP sources are served by the listener), each from
    /// where the checkpoint says it resumes. Returns the database sources' tasks: at
    /// shutdown they are awaited, as they store their last processed position.
    fn start(&self, resume: &[Progress], stopping: &watch::Receiver<bool>) -> anyhow::Result<Vec<JoinHandle<()>>> {
        let config = self.config;
        let mut database_sources = Vec::new();
        for (index, source) in config.sources.iter().enumerate() {
            let link = self.link(index, &source.name);
            match &source.kind {
                SourceKind::File { path, follow } => {
                    set_state(self.health, index, "reading");
                    let (done, max_line) = (resume[index].line, config.max_message_bytes);
                    tokio::spawn(sources::file(link, path.clone(), *follow, done, max_line));
                }
                SourceKind::Nats { nats, tables } => {
                    let task = sources::messages::<fundguard_sources::nats::NatsSource>;
                    tokio::spawn(task(link, nats.clone(), tables.clone(), self.covered.clone()));
                }
                SourceKind::Kafka { kafka, tables } => {
                    let task = sources::messages::<fundguard_sources::kafka::KafkaSource>;
                    tokio::spawn(task(link, kafka.clone(), tables.clone(), self.covered.clone()));
                }
                SourceKind::Mysql(binlog) => {
                    let start = binlog_start(config, &source.name, resume[index].resume.as_deref())?;
                    database_sources.push(tokio::spawn(sources::binlog(link, binlog.clone(), start, stopping.clone())));
                }
                SourceKind::Postgres(pg) => {
                    tokio::spawn(sources::postgres(link, pg.clone(), resume[index].resume.clone()));
                }
                SourceKind::Simulator { orders, incident_rate, seed, speed } => {
                    let sim = sources::SimulatorSettings {
                        orders: *orders,
                        incident_rate: *incident_rate,
                        seed: *seed,
                        speed: *speed,
                    };
                    tokio::spawn(sources::simulator(link, sim));
                }
                SourceKind::Http { .. } => {} // served by the HTTP listener below
            }
        }
        Ok(database_sources)
    }

    /// What source `index`, called `name`, is given.
    fn link(&self, index: usize, name: &str) -> SourceLink {
        SourceLink { index, name: name.to_string(), inputs: self.inputs.clone(), health: self.health.clone() }
    }

    /// Binds the listener (`listen`), when configured: HTTP sources, the API, the
    /// console, health and metrics.
    async fn serve_http(
        &self,
        telemetry: &Arc<Telemetry>,
        console: Option<Arc<Console>>,
    ) -> anyhow::Result<Option<JoinHandle<()>>> {
        let Some(addr) = &self.config.listen else { return Ok(None) };
        let (inputs, health) = (self.inputs.clone(), self.health.clone());
        let server = sources::http(addr, self.config, inputs, health, telemetry.clone(), console).await?;
        for (index, source) in self.config.sources.iter().enumerate() {
            if matches!(source.kind, SourceKind::Http { .. }) {
                set_state(self.health, index, "listening");
            }
        }
        Ok(Some(server))
    }
}

/// Where a binlog source starts: the checkpoint's position, else a position file an
/// older fundguard stored (`DATA_DIR/positions/NAME.json`), else its configured start.
fn binlog_start(
    config: &Config,
    name: &str,
    checkpointed: Option<&str>,
) -> anyhow::Result<Option<fundguard_sources::binlog::BinlogPosition>> {
    if let Some(text) = checkpointed {
        return serde_json::from_str(text)
            .map(Some)
            .with_context(|| format!("source `{name}`: the checkpoint's binlog position `{text}` is unreadable"));
    }
    Ok(fundguard_sources::PositionStore::new(&config.data_dir, name).load()?)
}

/// Sets a source's state in the health table (sources without a task of their own).
fn set_state(health: &Health, index: usize, state: &str) {
    if let Ok(mut all) = health.lock()
        && let Some(h) = all.get_mut(index)
    {
        h.state = state.to_string();
    }
}

/// What runs until shutdown, and what the drain stops.
struct Running {
    server: Option<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    database_sources: Vec<JoinHandle<()>>,
    inputs: mpsc::Sender<Input>,
    pipeline: std::thread::JoinHandle<()>,
    notifier: Option<RunningNotifier>,
}

impl Running {
    /// Stops reading first: no new requests, database sources store their last processed
    /// position; then the pipeline finishes what it has and flushes sinks; then the
    /// notifier thread stops.
    async fn drain(self) {
        let Running { server, stop, database_sources, inputs, pipeline, notifier } = self;
        if let Some(server) = server {
            server.abort();
        }
        let _ = stop.send(true);
        for task in database_sources {
            let _ = task.await;
        }
        let _ = inputs.send(Input::Shutdown).await;
        drop(inputs);
        tokio::task::spawn_blocking(move || pipeline.join()).await.ok();
        if let Some(notifier) = notifier {
            notifier.stop().await;
        }
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        Some(_) = async { match &mut term { Some(t) => t.recv().await, None => std::future::pending().await } } => {}
    }
}
