//! `fundguard run`: a long-running service over live sources.
//!
//! Shape: every source is a task that sends batches of raw messages to one
//! **pipeline thread**, which owns the decoders and the engine, and answers each
//! batch once it is evaluated — so a source only reads on (and an HTTP client only
//! gets its 2xx) after the pipeline took its batch. The channel is bounded: when the
//! pipeline is slow, sources wait instead of buffering without limit. A clock task
//! moves event time on when sources go quiet, so deadlines still fire; a reload task
//! swaps in new rules when their files change or on SIGHUP, after validating them; a
//! scheduler task runs `sql` rules when they are due and hands their findings to the
//! pipeline thread, which owns the sinks.

mod catalog;
pub mod checkpoint;
mod data_dir;
mod sources;
mod thread;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use fundguard_core::SourceHealth;
use tokio::sync::mpsc;

pub use self::thread::{Input, RawBatch};
use crate::config::{Config, SourceKind};

/// Runs until SIGTERM or Ctrl-C.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let warning = data_dir::prepare(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    if let Some(warning) = warning {
        eprintln!("fundguard: warning: {warning}");
    }
    let schemas = crate::commands::schemas(config.schema.as_ref())?;
    let catalog = Arc::new(catalog::Catalog::new(&config));
    let mut engine = catalog.build_engine(&schemas).map_err(|e| anyhow::anyhow!("{e}"))?;
    engine.set_state_budget(Some(config.state_memory));
    let restored = checkpoint::Checkpoint::load(&config.data_dir)?;
    let progress = |name: &str| restored.as_ref().and_then(|c| c.sources.get(name)).cloned().unwrap_or_default();
    let telemetry = Arc::new(fundguard_server::Telemetry::default());
    let health: Arc<Mutex<Vec<SourceHealth>>> = Arc::new(Mutex::new(
        config
            .sources
            .iter()
            .map(|s| SourceHealth { name: s.name.clone(), state: "starting".into(), ..Default::default() })
            .collect(),
    ));
    let (inputs, receiver) = mpsc::channel::<Input>(16);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut database_sources = Vec::new();
    let (covered_tx, covered) = tokio::sync::watch::channel(vec![0u64; config.sources.len()]);
    let resume: Vec<checkpoint::Progress> = config.sources.iter().map(|s| progress(&s.name)).collect();
    let pipeline = thread::spawn(
        &config,
        schemas.clone(),
        engine,
        restored,
        receiver,
        health.clone(),
        telemetry.clone(),
        covered_tx,
    )?;

    for (index, source) in config.sources.iter().enumerate() {
        match &source.kind {
            SourceKind::File { path, follow } => {
                set_state(&health, index, "reading");
                let done = resume[index].line;
                let max_line = config.max_message_bytes;
                let (name, path) = (source.name.clone(), path.clone());
                tokio::spawn(sources::file(index, name, path, *follow, done, max_line, inputs.clone()));
            }
            SourceKind::Nats { nats, tables } => {
                let (name, nats, tables) = (source.name.clone(), nats.clone(), tables.clone());
                let task = sources::messages::<fundguard_sources::nats::NatsSource>;
                tokio::spawn(task(index, name, nats, tables, inputs.clone(), health.clone(), covered.clone()));
            }
            SourceKind::Kafka { kafka, tables } => {
                let (name, kafka, tables) = (source.name.clone(), kafka.clone(), tables.clone());
                let task = sources::messages::<fundguard_sources::kafka::KafkaSource>;
                tokio::spawn(task(index, name, kafka, tables, inputs.clone(), health.clone(), covered.clone()));
            }
            SourceKind::Mysql(binlog) => {
                let start = binlog_start(&config, &source.name, resume[index].resume.as_deref())?;
                database_sources.push(tokio::spawn(sources::binlog(
                    index,
                    source.name.clone(),
                    binlog.clone(),
                    start,
                    inputs.clone(),
                    health.clone(),
                    stopping.clone(),
                )));
            }
            SourceKind::Postgres(pg) => {
                let name = source.name.clone();
                let lsn = resume[index].resume.clone();
                tokio::spawn(sources::postgres(index, name, pg.clone(), lsn, inputs.clone(), health.clone()));
            }
            SourceKind::Simulator { orders, incident_rate, seed, speed } => {
                let sim = sources::SimulatorSettings {
                    orders: *orders,
                    incident_rate: *incident_rate,
                    seed: *seed,
                    speed: *speed,
                };
                tokio::spawn(sources::simulator(index, source.name.clone(), sim, inputs.clone(), health.clone()));
            }
            SourceKind::Http { .. } => {} // served by the HTTP listener below
        }
    }
    let server = match &config.listen {
        Some(addr) => {
            let console = console(&config, catalog.clone(), telemetry.clone(), health.clone())?;
            let server =
                sources::http(addr, &config, inputs.clone(), health.clone(), telemetry.clone(), console).await?;
            for (index, source) in config.sources.iter().enumerate() {
                if matches!(source.kind, SourceKind::Http { .. }) {
                    set_state(&health, index, "listening");
                }
            }
            Some(server)
        }
        None => None,
    };
    let notifier = notifier(&config, telemetry.clone())?;
    tokio::spawn(clock(inputs.clone()));
    // Always running: sql rules may arrive with a later reload.
    tokio::spawn(scheduled_sql(config.clone(), catalog.clone(), inputs.clone(), telemetry.clone()));
    tokio::spawn(reload(config.clone(), catalog, schemas, inputs.clone()));

    shutdown_signal().await;
    eprintln!("fundguard: shutting down (at most {:?}, `shutdown_timeout`)", config.shutdown_timeout);
    let drain = async move {
        // Stop reading first: no new requests, database sources store their last
        // processed position; then the pipeline finishes what it has and flushes sinks.
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
        if let Some((stop, thread)) = notifier {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    };
    if tokio::time::timeout(config.shutdown_timeout, drain).await.is_err() {
        anyhow::bail!(
            "shutdown took longer than {:?} (`shutdown_timeout`): stopped without a complete drain; \
             sources resume from their last stored positions",
            config.shutdown_timeout
        );
    }
    eprintln!("fundguard: stopped cleanly");
    Ok(())
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

/// Opens an alert store from a plain thread: the PostgreSQL client runs its own small
/// runtime, which may not start inside this one. The store is then used only from the
/// pipeline or notifier thread, never from async code.
pub fn open_alert_store(
    location: &fundguard_alerts::StoreLocation,
    routes: fundguard_alerts::Routes,
) -> anyhow::Result<Box<dyn fundguard_alerts::AlertStore + Send>> {
    std::thread::scope(|s| s.spawn(|| location.open(routes)).join())
        .map_err(|_| anyhow::anyhow!("opening the alert store panicked"))?
        .map_err(Into::into)
}

/// Sets a source's state in the health table (sources without a task of their own).
fn set_state(health: &Mutex<Vec<SourceHealth>>, index: usize, state: &str) {
    if let Ok(mut all) = health.lock()
        && let Some(h) = all.get_mut(index)
    {
        h.state = state.to_string();
    }
}

/// The console and its API over the alert store, when there is one.
fn console(
    config: &Config,
    catalog: Arc<catalog::Catalog>,
    telemetry: Arc<fundguard_server::Telemetry>,
    health: Arc<Mutex<Vec<SourceHealth>>>,
) -> anyhow::Result<Option<Arc<fundguard_server::Console>>> {
    let Some(location) = config.alert_store() else { return Ok(None) };
    let store = open_alert_store(&location, config.notify.routes.clone())?;
    let figures_store = open_alert_store(&location, fundguard_alerts::Routes::default())?;
    Ok(Some(Arc::new(fundguard_server::Console {
        store: Arc::new(Mutex::new(store)),
        figures_store: Arc::new(Mutex::new(figures_store)),
        figures: Default::default(),
        slo: config.slo.clone(),
        auth: fundguard_server::Auth::new(config.console.users.clone(), config.console.tokens.clone())
            .with_policy(config.console.login.clone()),
        audit: fundguard_server::Audit::new(config.data_dir.join("audit.jsonl")),
        rules: catalog,
        telemetry,
        health,
    })))
}

/// The configured notification channels, by name.
pub fn channels(
    config: &Config,
) -> anyhow::Result<std::collections::HashMap<String, Box<dyn fundguard_notify::Channel>>> {
    use crate::config::ChannelKind;
    use fundguard_notify::{Channel, alertmanager, dingtalk, email, feishu, slack, webhook, wecom};
    config
        .notify
        .channels
        .iter()
        .map(|c| -> anyhow::Result<(String, Box<dyn Channel>)> {
            let (url, secret) = (c.url.clone(), c.secret.clone());
            let channel: Box<dyn Channel> = match c.kind {
                ChannelKind::Webhook => Box::new(webhook::Webhook::new(url, secret)),
                ChannelKind::Alertmanager => Box::new(alertmanager::Alertmanager::new(url)),
                ChannelKind::Slack => Box::new(slack::Slack::new(url)),
                ChannelKind::Feishu => Box::new(feishu::Feishu::new(url, secret)),
                ChannelKind::Dingtalk => Box::new(dingtalk::DingTalk::new(url, secret)),
                ChannelKind::Wecom => Box::new(wecom::WeCom::new(url)),
                ChannelKind::Email => Box::new(
                    email::Email::new(&url, &c.from, &c.to)
                        .map_err(|e| anyhow::anyhow!("channel `{}`: {e}", c.name))?,
                ),
            };
            Ok((c.name.clone(), channel))
        })
        .collect()
}

/// The notifier thread: delivers due notifications and containment actions from the
/// alert store's outbox, four times a second, and repeats firing alerts to Alertmanager,
/// until told to stop.
fn notifier(
    config: &Config,
    telemetry: Arc<fundguard_server::Telemetry>,
) -> anyhow::Result<Option<(Arc<std::sync::atomic::AtomicBool>, std::thread::JoinHandle<()>)>> {
    use fundguard_notify::{Notifier, Retry};
    let Some(location) = config.alert_store() else { return Ok(None) };
    let store = open_alert_store(&location, fundguard_alerts::Routes::default())?;
    let counts = open_alert_store(&location, fundguard_alerts::Routes::default())?;
    let observed = telemetry.clone();
    let mut notifier = Notifier::new(store, channels(config)?, Retry::default(), config.notify.link.clone())
        .repeating(config.notify.routes.clone(), config.notify.resend_every)
        .observed(Box::new(move |channel, outcome| observed.notification(channel, outcome)));
    for c in &config.notify.channels {
        if let Some(per_minute) = c.max_per_minute {
            notifier = notifier.limit(&c.name, per_minute);
        }
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::Builder::new().name("fundguard-notifier".into()).spawn(move || {
        let mut counted = std::time::Instant::now() - Duration::from_secs(60);
        while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
            const ROUND: usize = 100;
            let delivered = match notifier.deliver_due(now(), ROUND) {
                Ok(n) => n,
                Err(e) => {
                    eprintln!("fundguard: notifications: {e}");
                    0
                }
            };
            if let Err(e) = notifier.repeat_firing(now()) {
                eprintln!("fundguard: notifications: {e}");
            }
            // Alert counts for /metrics: a GROUP BY every five seconds, not per scrape.
            if counted.elapsed() >= Duration::from_secs(5) {
                counted = std::time::Instant::now();
                if let Ok(by_status) = counts.status_counts() {
                    telemetry
                        .alerts_by_status(by_status.into_iter().map(|(s, n)| (s.as_str().to_string(), n)).collect());
                }
            }
            // A full round means more is due: go on at once, so a burst of alerts drains at
            // the receivers' pace rather than at ROUND per pause.
            if delivered < ROUND {
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    })?;
    Ok(Some((stop, thread)))
}

/// The wall clock, as event time: live runs compare commit times with it.
pub fn now() -> fundguard_core::EventTime {
    crate::pipeline::wall_clock()
}

/// Ticks once a second; the pipeline decides whether sources have been idle long enough
/// for the clock to move event time on.
async fn clock(inputs: mpsc::Sender<Input>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if inputs.send(Input::Tick(now())).await.is_err() {
            return;
        }
    }
}

/// Runs the scheduled `sql` rules when they are due (see `fundguard_warehouse::Scheduler`).
/// Findings go to the pipeline thread like any other, and a run is recorded as done only
/// after they were written; a run cut off by a stop is repeated at the next start.
async fn scheduled_sql(
    config: Config,
    catalog: Arc<catalog::Catalog>,
    inputs: mpsc::Sender<Input>,
    telemetry: Arc<fundguard_server::Telemetry>,
) {
    use fundguard_warehouse::{History, Scheduler, Warehouse};
    let mut scheduler = match History::open(&config.data_dir) {
        Ok(history) => Scheduler::new(&catalog.scheduled_rules(), history),
        Err(e) => {
            eprintln!("fundguard: scheduled SQL rules are not run: {e}");
            return;
        }
    };
    let clock = chrono::Utc::now;
    loop {
        // Rule edits and console switches reach the scheduler through the catalogue.
        scheduler.set_rules(&catalog.scheduled_rules());
        let due = match scheduler.due(clock()) {
            Ok(due) => due,
            Err(e) => {
                eprintln!("fundguard: scheduled SQL: storing the schedule failed: {e}");
                Vec::new()
            }
        };
        if !due.is_empty() {
            // Connections are opened per round: a database that was down at the last one is tried again.
            let warehouse = Warehouse::open(&config.warehouse, &config.base_dir, |name| std::env::var(name).ok())
                .await
                .map_err(|e| e.to_string());
            for run in &due {
                let Some(outcome) = scheduler.run(warehouse.as_ref().map_err(String::as_str), run, &clock).await else {
                    continue;
                };
                let r = &outcome.record;
                eprintln!("fundguard: sql rule {r}");
                let ended = r.started + chrono::Duration::milliseconds(r.duration_ms as i64);
                telemetry.sql_run(&r.rule, r.status.as_str(), r.duration_ms as f64 / 1000.0, ended.timestamp() as f64);
                let (reply, written) = tokio::sync::oneshot::channel();
                let findings = outcome.findings.clone();
                if inputs.send(Input::Findings { findings, reply }).await.is_err() || written.await.is_err() {
                    return;
                }
                if let Err(e) = scheduler.done(&outcome) {
                    eprintln!("fundguard: scheduled SQL: recording the run failed: {e}");
                }
            }
        }
        let now = clock();
        let wake = scheduler
            .next_fire(now)
            .and_then(|next| (next - now).to_std().ok())
            .unwrap_or(Duration::from_secs(30))
            .min(Duration::from_secs(30));
        tokio::time::sleep(wake + Duration::from_millis(5)).await;
    }
}

/// Reloads rules when a rule file changes (checked every two seconds), on SIGHUP, or
/// when a rule is switched on or off from the console.
/// New rules are validated first; a bad edit keeps the running rules and says why.
async fn reload(
    config: Config,
    catalog: Arc<catalog::Catalog>,
    schemas: Arc<fundguard_core::TableSchemas>,
    inputs: mpsc::Sender<Input>,
) {
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut seen = rules_fingerprint(&config);
    let mut poll = tokio::time::interval(Duration::from_secs(2));
    loop {
        let forced = tokio::select! {
            _ = poll.tick() => false,
            _ = catalog.changed.notified() => true,
            Some(_) = async { match &mut hangup { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
        };
        let current = rules_fingerprint(&config);
        if !forced && current == seen {
            continue;
        }
        seen = current;
        match catalog.build_engine(&schemas) {
            Ok(engine) => {
                let n = engine.rule_ids().count();
                if inputs.send(Input::Reload(Box::new(engine))).await.is_err() {
                    return;
                }
                eprintln!("fundguard: rules reloaded: {n} rule(s) running");
            }
            Err(problems) => {
                eprintln!("fundguard: rule reload failed; the previous rules keep running:\n{problems}");
            }
        }
    }
}

/// Names, sizes and modification times of every rule file: a change of any is a reload.
fn rules_fingerprint(config: &Config) -> Vec<(std::path::PathBuf, u64, Option<SystemTime>)> {
    fn walk(p: &std::path::Path, out: &mut Vec<(std::path::PathBuf, u64, Option<SystemTime>)>) {
        if p.is_dir() {
            if let Ok(dir) = std::fs::read_dir(p) {
                for e in dir.flatten() {
                    walk(&e.path(), out);
                }
            }
        } else if let Ok(m) = std::fs::metadata(p) {
            out.push((p.to_path_buf(), m.len(), m.modified().ok()));
        }
    }
    let mut out = Vec::new();
    for p in &config.rules {
        walk(p, &mut out);
    }
    out.sort();
    out
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        Some(_) = async { match &mut term { Some(t) => t.recv().await, None => std::future::pending().await } } => {}
    }
}
