//! The live sources of `fundguard run`: one task per source, handing batches to the
//! pipeline thread and moving on only once it has processed them.
//!
//! Message sources (files, HTTP, NATS, Kafka) send raw messages; database logs
//! (binlog, PostgreSQL) send events they decoded with where they resume. Upstream
//! acknowledgements (JetStream acks, Kafka commits, slot confirmations) wait until a
//! checkpoint covers what they acknowledge ([`Covered`]); a restart resumes from the
//! checkpoint's positions.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use fundguard_core::Position;
use fundguard_core::SourceHealth;
use fundguard_server::{AppState, IngestBatch, IngestSource};
use fundguard_sources::{DecodedBatch, Message, MessageSource, open_lines};
use tokio::sync::{mpsc, oneshot, watch};

use super::clock;
use super::input::{Covered, Input, RawBatch};
use crate::config::{Config, SourceKind};

const FILE_BATCH: usize = 1000;

/// What connects one source's task to the service: which source it is (its index in
/// the config, used on every input, and its name, used in messages), the pipeline's
/// channel and the health table.
pub struct SourceLink {
    pub index: usize,
    pub name: String,
    pub inputs: mpsc::Sender<Input>,
    pub health: Arc<Mutex<Vec<SourceHealth>>>,
}

/// Reads a file in batches, waiting for the pipeline to take each one; with `follow`,
/// keeps reading what is appended. After a restart, lines up to `done` (the
/// checkpoint's) are skipped. Of a line over `max_line` bytes only the start is held
/// (the pipeline dead-letters it as over the limit).
pub async fn file(link: SourceLink, path: PathBuf, follow: bool, done: Option<u64>, max_line: usize) {
    let SourceLink { index, name, inputs, .. } = link;
    let result = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let lines = open_lines(&path).with_context(|| format!("source `{name}`: opening {}", path.display()))?;
        let mut lines = lines.with_max_line(max_line);
        let done = done.unwrap_or(0);
        loop {
            let mut batch = Vec::with_capacity(FILE_BATCH);
            while batch.len() < FILE_BATCH {
                match lines.next_line()? {
                    Some((_, Position::Line { line, .. })) if line <= done => {}
                    Some((line, position)) => batch.push((line.to_vec(), position)),
                    None => break,
                }
            }
            let at_end = batch.len() < FILE_BATCH;
            if !batch.is_empty() {
                let (reply, verdict) = oneshot::channel();
                let input = Input::Batch { source: index, messages: batch, table: None, all_or_nothing: false, reply };
                if inputs.blocking_send(input).is_err() || verdict.blocking_recv().is_err() {
                    return Ok(()); // shutting down
                }
            }
            if at_end {
                if !follow {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    })
    .await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %format!("{e:#}"), "{e:#}"),
        Err(e) => tracing::error!(error = %e, "file source stopped: {e}"),
    }
}

/// Binds the HTTP listener, starts the server and the bridge from ingest requests to the pipeline.
pub async fn http(
    addr: &str,
    config: &Config,
    inputs: mpsc::Sender<Input>,
    health: Arc<Mutex<Vec<SourceHealth>>>,
    telemetry: Arc<fundguard_server::Telemetry>,
    console: Option<Arc<fundguard_server::Console>>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr} (`listen` in the config)"))?;
    let local = listener.local_addr()?;
    tracing::info!(address = %local, "listening on http://{local}");
    let mut ingest = HashMap::new();
    let mut index_of = HashMap::new();
    for (i, s) in config.sources.iter().enumerate() {
        if let SourceKind::Http { token, max_body_bytes, max_messages, rate } = &s.kind {
            ingest.insert(s.name.clone(), IngestSource::new(token.clone(), *max_body_bytes, *max_messages, *rate));
            index_of.insert(s.name.clone(), i);
        }
    }
    let max_body = ingest.values().map(|s: &IngestSource| s.max_body_bytes).max().unwrap_or(1 << 20);
    let (batches, mut received) = mpsc::channel::<IngestBatch>(16);
    let state =
        AppState { ingest: Arc::new(ingest), pipeline: batches, health, max_body_bytes: max_body, telemetry, console };
    tokio::spawn(async move {
        let mut seq: HashMap<usize, u64> = HashMap::new();
        while let Some(batch) = received.recv().await {
            let Some(&source) = index_of.get(&batch.source) else { continue };
            let input_name: Arc<str> = Arc::from(format!("http:{}", batch.source));
            let counter = seq.entry(source).or_insert(0);
            let messages = batch
                .messages
                .into_iter()
                .map(|m| {
                    *counter += 1;
                    (m, Position::Line { input: input_name.clone(), line: *counter, index: 0 })
                })
                .collect();
            let input = Input::Batch { source, messages, table: None, all_or_nothing: true, reply: batch.reply };
            if inputs.send(input).await.is_err() {
                return;
            }
        }
    });
    Ok(tokio::spawn(async move {
        if let Err(e) = fundguard_server::serve(listener, state, std::future::pending()).await {
            tracing::error!(error = %e, "the HTTP server stopped: {e}");
        }
    }))
}

/// Consumes a message transport (NATS JetStream, Kafka): fetch, hand to the pipeline,
/// then — once a checkpoint covers them — acknowledge. Reconnects with exponential
/// backoff (1 s to 30 s); a problem that needs a person is shown and retried ([`wait_for_a_fix`]).
pub async fn messages<S: MessageSource>(
    link: SourceLink,
    config: S::Config,
    tables: HashMap<String, String>,
    mut covered: Covered,
) {
    let SourceLink { index, name, inputs, health } = link;
    let health = HealthHandle { health, index };
    let mut backoff = Backoff::default();
    // Inputs sent so far, and the messages of each not yet acknowledged.
    let mut sent = 0u64;
    loop {
        match S::connect(&config).await {
            Ok(mut source) => {
                health.set("connected");
                backoff.reset();
                let ordered = source.ordered_streams();
                if !ordered.is_empty() && inputs.send(Input::Ordered(ordered)).await.is_err() {
                    return;
                }
                let mut unacked: std::collections::VecDeque<(u64, Vec<S::Message>)> = Default::default();
                loop {
                    let messages = match source.fetch(1000, Duration::from_secs(1)).await {
                        Ok(m) => m,
                        Err(e) => {
                            health.lost(&name, &e);
                            break;
                        }
                    };
                    if !messages.is_empty() {
                        let groups = group_by_table(&messages, &tables);
                        sent += groups.len() as u64;
                        if !send_grouped(index, groups, &inputs).await {
                            return; // shutting down: what was not acknowledged is delivered again next time
                        }
                        let lag = source.lag_events(&messages);
                        health.update(|h| h.lag_events = lag);
                        unacked.push_back((sent, messages));
                    }
                    let done = covered.borrow_and_update().get(index).copied().unwrap_or(0);
                    let mut result = Ok(());
                    while result.is_ok() && unacked.front().is_some_and(|(n, _)| *n <= done) {
                        let Some((_, messages)) = unacked.pop_front() else { break };
                        result = source.acknowledge(&messages).await;
                    }
                    if let Err(e) = result {
                        health.lost(&name, &e);
                        break;
                    }
                }
            }
            Err(e) if !e.retryable => {
                wait_for_a_fix(&name, &e, &health, &mut backoff, None).await;
                continue;
            }
            Err(e) => health.lost(&name, &format!("{e}; retrying in {:?}", backoff.next)),
        }
        health.disconnected();
        backoff.wait().await;
    }
}

/// Reads a MySQL/MariaDB binlog from `resume` (the checkpoint's position) or its
/// configured start; every batch carries the position after it for the next checkpoint.
pub async fn binlog(
    link: SourceLink,
    config: fundguard_sources::binlog::BinlogConfig,
    resume: Option<fundguard_sources::binlog::BinlogPosition>,
    mut stop: watch::Receiver<bool>,
) {
    use fundguard_sources::binlog::BinlogSource;
    let SourceLink { index, name, inputs, health } = link;
    let health = HealthHandle { health, index };
    let mut at = resume;
    let mut backoff = Backoff::default();
    let mut handoff = Handoff::new(index, &inputs);
    'connect: loop {
        let connected = tokio::select! {
            c = BinlogSource::connect(&name, &config, at.as_ref()) => c,
            _ = stop.changed() => return,
        };
        match connected {
            Ok(mut source) => {
                health.set("connected");
                backoff.reset();
                tracing::info!(source = %name, position = %source.position(), "source `{name}`: reading the binlog from {}", source.position());
                if at.is_none() {
                    // Where a configured start (`current`) put us: checkpointed at once, so
                    // a crash before the first batch does not move the start on.
                    let position = source.position().clone();
                    let resume = serde_json::to_string(&position).ok();
                    if !handoff.send(DecodedBatch::default(), position.to_string(), resume).await {
                        return;
                    }
                    at = Some(position);
                }
                loop {
                    let next = tokio::select! {
                        next = source.next_batch(2000) => next,
                        _ = stop.changed() => return,
                    };
                    let (batch, position) = match next {
                        Ok(next) => next,
                        Err(e) if !e.retryable => {
                            if !wait_for_a_fix(&name, &e, &health, &mut backoff, Some(&mut stop)).await {
                                return;
                            }
                            continue 'connect;
                        }
                        Err(e) => {
                            health.lost(&name, &e);
                            break;
                        }
                    };
                    // A heartbeat's empty batch still carries how far event time may move.
                    if !batch.is_empty() || batch.caught_up.is_some() {
                        let resume = serde_json::to_string(&position).ok();
                        if !handoff.send(batch, position.to_string(), resume).await {
                            return;
                        }
                    }
                    at = Some(position);
                }
            }
            Err(e) if !e.retryable => {
                if !wait_for_a_fix(&name, &e, &health, &mut backoff, Some(&mut stop)).await {
                    return;
                }
                continue;
            }
            Err(e) => health.lost(&name, &format!("{e}; retrying in {:?}", backoff.next)),
        }
        health.disconnected();
        tokio::select! {
            _ = backoff.wait() => {}
            _ = stop.changed() => return,
        }
    }
}

/// Reads a PostgreSQL logical replication slot. The slot hands out changes from its
/// confirmed position every time it is read, so each batch is checkpointed before the
/// slot is confirmed past it (the pipeline takes the checkpoint on request); on
/// (re)connecting the slot is first advanced to the checkpoint's LSN.
pub async fn postgres(
    link: SourceLink,
    config: fundguard_sources::postgres::PostgresConfig,
    mut resume: Option<String>,
) {
    use fundguard_sources::postgres::{Delivered, PostgresSource};
    let SourceLink { index, name, inputs, health } = link;
    let health = HealthHandle { health, index };
    let mut backoff = Backoff::default();
    let mut acks = SlotAcks::new(resume.clone());
    let mut delivered = Delivered::default();
    let mut handoff = Handoff::new(index, &inputs);
    'connect: loop {
        match PostgresSource::connect(&name, &config).await {
            Ok(mut source) => {
                health.set("connected");
                backoff.reset();
                source.delivered_before(std::mem::take(&mut delivered));
                let advanced = match &resume {
                    Some(lsn) => source.confirm(lsn).await,
                    None => Ok(()),
                };
                if let Err(e) = advanced {
                    health.lost(&name, &e);
                } else {
                    loop {
                        // Confirm what a written checkpoint covers; reading goes on meanwhile.
                        match acks.covered(&inputs).await {
                            SlotCovered::Nothing => {}
                            SlotCovered::UpTo(lsn) => {
                                // Written, so a new connection may confirm it if this one fails.
                                resume = Some(lsn.clone());
                                if let Err(e) = source.confirm(&lsn).await {
                                    health.lost(&name, &e);
                                    break;
                                }
                            }
                            SlotCovered::ShuttingDown => return,
                        }
                        let next = match source.next_batch(SLOT_BATCH).await {
                            Ok(next) => next,
                            Err(e) if !e.retryable => {
                                delivered = source.take_delivered();
                                wait_for_a_fix(&name, &e, &health, &mut backoff, None).await;
                                continue 'connect;
                            }
                            Err(e) => {
                                health.lost(&name, &e);
                                break;
                            }
                        };
                        let Some(lsn) = next.confirm else {
                            // Nothing to confirm; an empty slot still moves event time on.
                            if next.batch.caught_up.is_some() {
                                let at = acks.sent().unwrap_or_default();
                                if !handoff.send(next.batch, at, None).await {
                                    return;
                                }
                            }
                            continue;
                        };
                        if !handoff.send(next.batch, lsn.clone(), Some(lsn.clone())).await {
                            return; // shutting down: the slot re-delivers what was not confirmed
                        }
                        acks.delivered(lsn);
                    }
                }
                delivered = source.take_delivered();
            }
            Err(e) if !e.retryable => {
                wait_for_a_fix(&name, &e, &health, &mut backoff, None).await;
                continue;
            }
            Err(e) => health.lost(&name, &format!("{e}; retrying in {:?}", backoff.next)),
        }
        health.disconnected();
        backoff.wait().await;
    }
}

/// Changes a slot read asks for at a time.
const SLOT_BATCH: usize = 5000;

/// What a slot source may confirm now.
enum SlotCovered {
    Nothing,
    /// A written checkpoint covers every batch up to this commit LSN.
    UpTo(String),
    ShuttingDown,
}

/// A slot source's acknowledgements: the newest batch delivered, and the one checkpoint
/// it asked for. Reading goes on meanwhile; batches delivered while one checkpoint is
/// written are covered by the next, so a slow checkpoint (large rule state) makes the slot
/// advance in bigger steps instead of holding reads up.
struct SlotAcks {
    /// Newest commit LSN delivered to the pipeline (or resumed from).
    sent: Option<String>,
    /// Newest delivered LSN that no checkpoint was asked for yet.
    unasked: Option<String>,
    /// The checkpoint asked for: the LSN it covers and its answer.
    asked: Option<(String, oneshot::Receiver<bool>)>,
    /// When the last checkpoint was asked for.
    last_asked: Option<tokio::time::Instant>,
}

/// The least time between two checkpoints a slot source asks for. Confirming only lets the
/// server drop WAL (reading never waits for it), so there is no hurry; every checkpoint
/// copies and writes all rule state.
const SLOT_CONFIRM_EVERY: Duration = Duration::from_secs(2);

impl SlotAcks {
    fn new(resume: Option<String>) -> SlotAcks {
        SlotAcks { sent: resume, unasked: None, asked: None, last_asked: None }
    }

    fn sent(&self) -> Option<String> {
        self.sent.clone()
    }

    fn delivered(&mut self, lsn: String) {
        self.sent = Some(lsn.clone());
        self.unasked = Some(lsn);
    }

    /// What a written checkpoint now covers (never waiting for one); then asks for the next
    /// checkpoint if batches were delivered that none covers.
    async fn covered(&mut self, inputs: &mpsc::Sender<Input>) -> SlotCovered {
        let mut covered = SlotCovered::Nothing;
        if let Some((lsn, answer)) = &mut self.asked {
            let written = match answer.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => return self.ask(inputs, covered).await,
                Err(oneshot::error::TryRecvError::Closed) => None,
                Ok(written) => Some(written),
            };
            match written {
                Some(true) => covered = SlotCovered::UpTo(lsn.clone()),
                Some(false) => {
                    // The pipeline reported why; asked again when the next one is due.
                    if self.unasked.is_none() {
                        self.unasked = Some(lsn.clone());
                    }
                }
                None => return SlotCovered::ShuttingDown,
            }
            self.asked = None;
        }
        self.ask(inputs, covered).await
    }

    async fn ask(&mut self, inputs: &mpsc::Sender<Input>, covered: SlotCovered) -> SlotCovered {
        let due = self.last_asked.is_none_or(|at| at.elapsed() >= SLOT_CONFIRM_EVERY);
        if self.asked.is_none()
            && due
            && let Some(lsn) = self.unasked.take()
        {
            let (reply, answer) = oneshot::channel();
            if inputs.send(Input::Checkpoint { reply }).await.is_err() {
                return SlotCovered::ShuttingDown;
            }
            self.asked = Some((lsn, answer));
            self.last_asked = Some(tokio::time::Instant::now());
        }
        covered
    }
}

/// Messages of mapped subjects or topics go in one batch per table; the rest keep
/// their arrival order in batches between them.
fn group_by_table(messages: &[impl Message], tables: &HashMap<String, String>) -> Vec<(Option<String>, RawBatch)> {
    let mut groups: Vec<(Option<String>, RawBatch)> = Vec::new();
    for m in messages {
        let table = tables.get(m.channel()).cloned();
        let message = (m.payload().to_vec(), m.position().clone());
        match groups.last_mut() {
            Some((t, g)) if *t == table => g.push(message),
            _ => groups.push((table, vec![message])),
        }
    }
    groups
}

/// Sends grouped raw batches and waits for each to be processed; `false` when shutting down.
async fn send_grouped(index: usize, groups: Vec<(Option<String>, RawBatch)>, inputs: &mpsc::Sender<Input>) -> bool {
    for (table, batch) in groups {
        let (reply, verdict) = oneshot::channel();
        let input = Input::Batch { source: index, messages: batch, table, all_or_nothing: false, reply };
        if inputs.send(input).await.is_err() || verdict.await.is_err() {
            return false;
        }
    }
    true
}

/// What the simulator source simulates.
pub struct SimulatorSettings {
    pub orders: u64,
    pub incident_rate: f64,
    pub seed: u64,
    /// Simulated seconds per real second.
    pub speed: u32,
}

/// Replays the built-in shop simulator (a simulated day) in real time, `speed` times
/// faster: every event is sent when its moment comes, stamped with the wall-clock time
/// it stands for, so the rules see a live shop with injected incidents.
pub async fn simulator(link: SourceLink, settings: SimulatorSettings) {
    use fundguard_core::EventTime;
    use fundguard_sim::{SimConfig, Simulator};
    let SourceLink { index, name, inputs, health } = link;
    let health = HealthHandle { health, index };
    let generated = tokio::task::spawn_blocking(move || {
        let mut sim = Simulator::new(SimConfig {
            seed: settings.seed,
            orders: settings.orders,
            incident_rate: settings.incident_rate,
            hours: 24,
            ..SimConfig::default()
        });
        let mut events = Vec::new();
        sim.run(|e| events.push(e));
        events.sort_by_key(|e| e.commit_time);
        events
    })
    .await;
    let Ok(events) = generated else { return health.fail(&name, &"the simulator failed") };
    let Some(sim_start) = events.first().map(|e| e.commit_time.as_micros()) else { return health.set("finished") };
    let real_start = clock::now().as_micros();
    let speed = i64::from(settings.speed);
    health.set("reading");
    let mut pending = events.into_iter().peekable();
    let mut seq = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while pending.peek().is_some() {
        tick.tick().await;
        let due = sim_start + (clock::now().as_micros() - real_start) * speed;
        let mut batch = Vec::new();
        while let Some(mut event) = pending.next_if(|e| e.commit_time.as_micros() <= due) {
            seq += 1;
            event.commit_time =
                EventTime::from_micros(real_start + (event.commit_time.as_micros() - sim_start) / speed);
            event.position = Position::Synthetic { seq };
            batch.push(event);
        }
        if batch.is_empty() {
            continue;
        }
        let position = format!("{name}#{seq}");
        let batch = DecodedBatch { events: batch, ..DecodedBatch::default() };
        if !send_decoded(index, batch, position, None, &inputs).await {
            return;
        }
    }
    health.set("finished");
}

/// Sends a decoded batch and waits until it is processed; `false` when shutting down.
async fn send_decoded(
    index: usize,
    batch: DecodedBatch,
    position: String,
    resume: Option<String>,
    inputs: &mpsc::Sender<Input>,
) -> bool {
    let mut handoff = Handoff::new(index, inputs);
    handoff.send(batch, position, resume).await && handoff.settled().await
}

/// Hands a database-log source's batches to the pipeline one ahead: the source decodes
/// the next batch while the pipeline evaluates the one in flight, so on a backlog
/// decoding and the rules run on two cores instead of taking turns. At most one batch
/// waits, so memory stays bounded by two batches per source.
///
/// Sending without waiting keeps every guarantee: the pipeline takes inputs in the order
/// they were sent, so a batch in flight is processed before anything the source sends
/// after it (a checkpoint request included), and a source that reconnects resumes after
/// the last batch it sent — that batch is queued, not lost.
struct Handoff<'a> {
    index: usize,
    inputs: &'a mpsc::Sender<Input>,
    in_flight: Option<oneshot::Receiver<()>>,
}

impl<'a> Handoff<'a> {
    fn new(index: usize, inputs: &'a mpsc::Sender<Input>) -> Handoff<'a> {
        Handoff { index, inputs, in_flight: None }
    }

    /// Waits for the batch in flight, then sends this one; `false` when shutting down.
    async fn send(&mut self, batch: DecodedBatch, position: String, resume: Option<String>) -> bool {
        if !self.settled().await {
            return false;
        }
        let (reply, done) = oneshot::channel();
        let input = Input::Events { source: self.index, batch, position, resume, reply };
        if self.inputs.send(input).await.is_err() {
            return false;
        }
        self.in_flight = Some(done);
        true
    }

    /// Waits until the batch in flight (if any) is processed; `false` when shutting down.
    async fn settled(&mut self) -> bool {
        match self.in_flight.take() {
            Some(done) => done.await.is_ok(),
            None => true,
        }
    }
}

/// One source's slot in the shared health table.
struct HealthHandle {
    health: Arc<Mutex<Vec<SourceHealth>>>,
    index: usize,
}

impl HealthHandle {
    fn update(&self, f: impl FnOnce(&mut SourceHealth)) {
        if let Ok(mut all) = self.health.lock()
            && let Some(h) = all.get_mut(self.index)
        {
            f(h);
        }
    }

    fn set(&self, state: &str) {
        self.update(|h| h.state = state.to_string());
    }

    /// The connection was lost or could not be made (reconnecting fixes it): logged, and
    /// kept as the source's `last_error`, so `/v1/sources` and the console say why.
    fn lost(&self, name: &str, e: &dyn std::fmt::Display) {
        tracing::warn!(source = %name, error = %e, "source `{name}`: {e}");
        self.update(|h| h.last_error = Some(e.to_string()));
    }

    fn disconnected(&self) {
        self.update(|h| {
            h.state = "disconnected".into();
            h.reconnects += 1;
        });
    }

    /// A problem the source cannot get past while the process runs (the simulator
    /// failed): it stops for good and says why.
    fn fail(&self, name: &str, e: &dyn std::fmt::Display) {
        tracing::error!(source = %name, error = %e, "source `{name}` stopped: {e}");
        self.update(|h| h.state = format!("failed: {e}"));
    }

    /// A problem that needs a person, tried again after `wait`: the state keeps the
    /// `failed: ` prefix (`/readyz` holds back) until a retry connects.
    fn failing(&self, name: &str, e: &dyn std::fmt::Display, wait: Duration) {
        tracing::error!(source = %name, error = %e, retry_in = ?wait, "source `{name}` failed: {e}; retrying in {wait:?}");
        self.update(|h| {
            h.state = format!("failed: {e} (retrying in {wait:?})");
            h.last_error = Some(e.to_string());
        });
    }
}

/// A problem reconnecting at once cannot fix — a server setting, a permission, a missing
/// slot or stream, a purged position: the source says why, on stderr and in its health,
/// and tries again after [`Backoff::needs_a_person`], so fixing the cause is enough and
/// no restart is needed. `false` when the source is told to stop meanwhile.
async fn wait_for_a_fix(
    name: &str,
    e: &fundguard_sources::SourceError,
    health: &HealthHandle,
    backoff: &mut Backoff,
    stop: Option<&mut watch::Receiver<bool>>,
) -> bool {
    let wait = backoff.needs_a_person();
    health.failing(name, e, wait);
    match stop {
        Some(stop) => tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            _ = stop.changed() => false,
        },
        None => {
            tokio::time::sleep(wait).await;
            true
        }
    }
}

/// Exponential backoff: between reconnects after a lost connection 1 s doubling to 30 s;
/// between retries of a problem that needs a person 5 s doubling to 60 s, slower because
/// it persists until someone acts, yet picking a fix up within a minute.
struct Backoff {
    next: Duration,
    /// The wait after the next problem that needs a person, and when the last such retry began.
    fix: Duration,
    retried: Option<Instant>,
}

const FIX_FIRST: Duration = Duration::from_secs(5);
const FIX_MAX: Duration = Duration::from_secs(60);

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: Duration::from_secs(1), fix: FIX_FIRST, retried: None }
    }
}

impl Backoff {
    /// After a successful connect. The wait for a fix is not reset here: a source that
    /// connects and then fails at once (a slot it may not read) still backs off.
    fn reset(&mut self) {
        self.next = Duration::from_secs(1);
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(Duration::from_secs(30));
    }

    /// The wait before retrying a problem that needs a person. A source that ran longer
    /// than the longest wait since its last retry starts again from the shortest.
    fn needs_a_person(&mut self) -> Duration {
        if self.retried.is_some_and(|began| began.elapsed() > FIX_MAX) {
            self.fix = FIX_FIRST;
        }
        let wait = self.fix;
        self.fix = (self.fix * 2).min(FIX_MAX);
        self.retried = Some(Instant::now() + wait);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_that_need_a_person_back_off_from_5_s_to_a_minute_and_start_over_after_a_good_run() {
        let mut backoff = Backoff::default();
        let waits: Vec<u64> = (0..6).map(|_| backoff.needs_a_person().as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 60, 60]);
        // A connection that worked in between does not shorten the wait...
        backoff.reset();
        assert_eq!(backoff.needs_a_person().as_secs(), 60);
        // ...running for longer than the longest wait since the last retry does.
        backoff.retried = Instant::now().checked_sub(Duration::from_secs(61));
        assert_eq!(backoff.needs_a_person().as_secs(), 5);
    }
}
