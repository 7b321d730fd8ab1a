//! NATS JetStream: a durable pull consumer, acknowledged only after processing.
//!
//! Messages are fetched in batches; the caller hands a batch to the pipeline and calls
//! [`NatsSource::ack`] once the pipeline has it. A crash before the ack means JetStream
//! redelivers the batch (at-least-once; crash safety de-duplicates findings later).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer};
use fundguard_core::Position;
use futures::StreamExt;

use crate::message::{Message, MessageSource, SourceError};

/// Where to consume from.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    pub url: String,
    pub stream: String,
    /// Subjects of the stream, used when `create` makes it.
    pub subjects: Vec<String>,
    /// The durable consumer's name: its acknowledged position survives restarts.
    pub consumer: String,
    /// Create the stream and the consumer when they do not exist.
    pub create: bool,
    /// TLS to the server (required when given; `tls://` URLs also turn it on).
    pub tls: Option<crate::tls::TlsConfig>,
    /// A NATS `.creds` file (user JWT and NKey seed).
    pub credentials_file: Option<std::path::PathBuf>,
}

fn failed(what: &str, e: impl std::fmt::Display, retryable: bool) -> SourceError {
    SourceError::new("NATS JetStream", format!("{what}: {e}"), retryable)
}

/// The host of the first server of a NATS URL list (`nats://host:4222,...`).
fn host(url: &str) -> &str {
    let first = url.split(',').next().unwrap_or(url);
    let rest = first.split_once("://").map_or(first, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.rsplit_once(':').map_or(rest, |(host, _)| host).trim_start_matches('[').trim_end_matches(']')
}

/// One fetched message: its subject, bytes and stream position.
pub struct NatsMessage {
    pub subject: String,
    pub payload: Vec<u8>,
    pub position: Position,
    /// Messages the consumer has not been sent yet, after this one.
    pub pending: u64,
    inner: jetstream::Message,
}

/// A connected durable consumer.
pub struct NatsSource {
    consumer: PullConsumer,
    stream: Arc<str>,
}

impl Message for NatsMessage {
    fn channel(&self) -> &str {
        &self.subject
    }

    fn payload(&self) -> &[u8] {
        &self.payload
    }

    fn position(&self) -> &Position {
        &self.position
    }
}

impl MessageSource for NatsSource {
    type Config = NatsConfig;
    type Message = NatsMessage;

    async fn connect(config: &NatsConfig) -> Result<NatsSource, SourceError> {
        let mut options = async_nats::ConnectOptions::new();
        if let Some(path) = &config.credentials_file {
            options = options.credentials_file(path).await.map_err(|e| {
                failed(
                    &format!("credentials_file {}", path.display()),
                    format!("{} (expected a NATS .creds file)", e.kind()),
                    false,
                )
            })?;
        }
        if let Some(tls) = &config.tls {
            options = options.require_tls(true);
            if let Some(ca) = &tls.ca_file {
                options = options.add_root_certificates(ca.clone());
            }
            if let Some(client) = &tls.client {
                options = options.add_client_certificate(client.cert_file.clone(), client.key_file.clone());
            }
        }
        let client = options.connect(&config.url).await.map_err(|e| {
            let said = crate::tls::error_chain(&e);
            let refused =
                config.tls.as_ref().and_then(|tls| crate::tls::explain_refusal(tls, host(&config.url), &said));
            match refused {
                Some(why) => failed(&format!("connecting to {} with TLS", config.url), why, false),
                None => failed(&format!("connecting to {}", config.url), said, true),
            }
        })?;
        let js = jetstream::new(client);
        let stream = if config.create {
            js.get_or_create_stream(jetstream::stream::Config {
                name: config.stream.clone(),
                subjects: config.subjects.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| failed(&format!("creating stream {}", config.stream), e, true))?
        } else {
            js.get_stream(&config.stream)
                .await
                .map_err(|e| failed(&format!("stream {} (set `create: true` to create it)", config.stream), e, false))?
        };
        let consumer: PullConsumer = stream
            .get_or_create_consumer(
                &config.consumer,
                jetstream::consumer::pull::Config {
                    durable_name: Some(config.consumer.clone()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    // Acknowledgements wait for the next checkpoint (seconds): let that
                    // many messages be outstanding without the server pausing delivery.
                    max_ack_pending: 200_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| failed(&format!("consumer {}", config.consumer), e, true))?;
        Ok(NatsSource { consumer, stream: Arc::from(config.stream.as_str()) })
    }

    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<NatsMessage>, SourceError> {
        let mut batch = self
            .consumer
            .fetch()
            .max_messages(max)
            .expires(wait)
            .messages()
            .await
            .map_err(|e| failed("fetching", e, true))?;
        let mut out = Vec::new();
        while let Some(message) = batch.next().await {
            let message = message.map_err(|e| failed("receiving", e, true))?;
            let (offset, pending) = message.info().map(|i| (i.stream_sequence, i.pending)).unwrap_or_default();
            out.push(NatsMessage {
                subject: message.subject.to_string(),
                payload: message.payload.to_vec(),
                position: Position::Stream { stream: self.stream.clone(), partition: 0, offset, index: 0 },
                pending,
                inner: message,
            });
        }
        Ok(out)
    }

    async fn acknowledge(&mut self, messages: &[NatsMessage]) -> Result<(), SourceError> {
        for m in messages {
            m.inner.ack().await.map_err(|e| failed("acknowledging", e, true))?;
        }
        Ok(())
    }

    fn lag_events(&self, fetched: &[NatsMessage]) -> Option<u64> {
        fetched.last().map(|m| m.pending)
    }
}
