//! Message transports that acknowledge upstream only after processing (NATS JetStream,
//! Kafka): one trait, so `fundguard run` drives them all with one loop.

use std::future::Future;
use std::time::Duration;

use fundguard_core::Position;

/// Why a source cannot go on; `retryable` says whether reconnecting may help
/// (a lost connection) or a person must act (a missing stream, a refused login).
#[derive(Debug, thiserror::Error)]
#[error("{kind} source: {message}")]
pub struct SourceError {
    pub kind: &'static str,
    pub message: String,
    pub retryable: bool,
}

impl SourceError {
    pub fn new(kind: &'static str, message: impl Into<String>, retryable: bool) -> Self {
        SourceError { kind, message: message.into(), retryable }
    }
}

/// One fetched message.
pub trait Message {
    /// The subject or topic it arrived on (JSON sources map these to tables).
    fn channel(&self) -> &str;
    fn payload(&self) -> &[u8];
    fn position(&self) -> &Position;
}

/// A transport of raw messages with at-least-once delivery.
pub trait MessageSource: Sized + Send {
    type Config: Clone + Send + Sync + 'static;
    type Message: Message + Send;

    fn connect(config: &Self::Config) -> impl Future<Output = Result<Self, SourceError>> + Send;

    /// Up to `max` messages, waiting at most `wait` for the first ones.
    fn fetch(
        &mut self,
        max: usize,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<Self::Message>, SourceError>> + Send;

    /// Acknowledges messages the pipeline has processed (after they are, never before).
    fn acknowledge(&mut self, messages: &[Self::Message]) -> impl Future<Output = Result<(), SourceError>> + Send;

    /// Messages waiting upstream after `fetched`, when the transport tells.
    fn lag_events(&self, fetched: &[Self::Message]) -> Option<u64>;

    /// The streams (as positions name them) this source delivers in commit order — a
    /// Kafka topic of one partition: rules fed by one of them alone need no allowed lateness.
    fn ordered_streams(&self) -> Vec<String> {
        Vec::new()
    }
}
