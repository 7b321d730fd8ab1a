//! The live sources of `fundguard run`: files (read once or followed) and HTTP ingest.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use fundguard_core::Position;
use fundguard_server::{AppState, IngestBatch, IngestSource};
use fundguard_sources::{SourceHealth, open_lines};
use tokio::sync::{mpsc, oneshot};

use super::config::{Config, SourceKind};
use super::{Input, RawBatch};

const FILE_BATCH: usize = 1000;

/// Reads a file in batches, waiting for the pipeline to take each one; with `follow`,
/// keeps reading what is appended.
pub async fn file(index: usize, name: String, path: PathBuf, follow: bool, inputs: mpsc::Sender<Input>) {
    let result = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut lines = open_lines(&path).with_context(|| format!("source `{name}`: opening {}", path.display()))?;
        loop {
            let mut batch = Vec::with_capacity(FILE_BATCH);
            while batch.len() < FILE_BATCH {
                match lines.next_line()? {
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
        Ok(Err(e)) => eprintln!("fundguard: {e:#}"),
        Err(e) => eprintln!("fundguard: file source stopped: {e}"),
    }
}

/// Binds the HTTP listener, starts the server and the bridge from ingest requests to the pipeline.
pub async fn http(
    addr: &str,
    config: &Config,
    inputs: mpsc::Sender<Input>,
    health: Arc<Mutex<Vec<SourceHealth>>>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr} (`listen` in the config)"))?;
    let local = listener.local_addr()?;
    eprintln!("fundguard: listening on http://{local}");
    let mut ingest = HashMap::new();
    let mut index_of = HashMap::new();
    for (i, s) in config.sources.iter().enumerate() {
        if let SourceKind::Http { token, max_body_bytes, max_messages } = &s.kind {
            ingest.insert(
                s.name.clone(),
                IngestSource { token: token.clone(), max_body_bytes: *max_body_bytes, max_messages: *max_messages },
            );
            index_of.insert(s.name.clone(), i);
        }
    }
    let max_body = ingest.values().map(|s: &IngestSource| s.max_body_bytes).max().unwrap_or(1 << 20);
    let (batches, mut received) = mpsc::channel::<IngestBatch>(16);
    let state = AppState { ingest: Arc::new(ingest), pipeline: batches, health, max_body_bytes: max_body };
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
            eprintln!("fundguard: the HTTP server stopped: {e}");
        }
    }))
}

/// Consumes a NATS JetStream durable consumer: fetch, hand to the pipeline, then ack.
/// Reconnects with exponential backoff (1 s to 30 s); a configuration error stops the source.
pub async fn nats(
    index: usize,
    name: String,
    config: fundguard_sources::nats::NatsConfig,
    tables: HashMap<String, String>,
    inputs: mpsc::Sender<Input>,
    health: Arc<Mutex<Vec<SourceHealth>>>,
) {
    use fundguard_sources::nats::NatsSource;
    let set_state = |state: String, reconnect: bool| {
        if let Ok(mut h) = health.lock()
            && let Some(h) = h.get_mut(index)
        {
            h.state = state;
            if reconnect {
                h.reconnects += 1;
            }
        }
    };
    let mut backoff = Duration::from_secs(1);
    loop {
        match NatsSource::connect(&config).await {
            Ok(mut source) => {
                set_state("connected".into(), false);
                backoff = Duration::from_secs(1);
                loop {
                    let messages = match source.fetch(500, Duration::from_secs(1)).await {
                        Ok(m) if m.is_empty() => continue,
                        Ok(m) => m,
                        Err(e) => {
                            eprintln!("fundguard: source `{name}`: {e}");
                            break;
                        }
                    };
                    // Messages of mapped subjects go in one batch per table, in arrival order otherwise.
                    let mut groups: Vec<(Option<String>, RawBatch)> = Vec::new();
                    for m in &messages {
                        let table = tables.get(&m.subject).cloned();
                        match groups.last_mut() {
                            Some((t, g)) if *t == table => g.push((m.payload.clone(), m.position.clone())),
                            _ => groups.push((table, vec![(m.payload.clone(), m.position.clone())])),
                        }
                    }
                    for (table, batch) in groups {
                        let (reply, verdict) = oneshot::channel();
                        let input =
                            Input::Batch { source: index, messages: batch, table, all_or_nothing: false, reply };
                        if inputs.send(input).await.is_err() || verdict.await.is_err() {
                            return; // shutting down: unacknowledged messages are redelivered next time
                        }
                    }
                    if let Err(e) = source.ack(&messages).await {
                        eprintln!("fundguard: source `{name}`: {e}");
                        break;
                    }
                }
            }
            Err(e) if !e.retryable => {
                eprintln!("fundguard: source `{name}` stopped: {e}");
                set_state(format!("failed: {e}"), false);
                return;
            }
            Err(e) => eprintln!("fundguard: source `{name}`: {e}; retrying in {backoff:?}"),
        }
        set_state("disconnected".into(), true);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}
