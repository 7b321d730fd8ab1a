//! Kafka: a consumer group over one or more topics, with offsets committed only after
//! the pipeline has processed the messages before them.
//!
//! Auto-commit is off: [`KafkaSource::commit`] commits, per partition, the offset after
//! the last message handed back. A crash before the commit means the group re-reads
//! those messages (at-least-once; crash safety de-duplicates findings later).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use fundguard_core::Position;
use futures::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::{ClientConfig, ClientContext, Message as _, Offset, Statistics, TopicPartitionList};

use crate::message::{Message, MessageSource, SourceError};

/// Where to consume from.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]`.
    pub brokers: String,
    /// The consumer group: its committed offsets survive restarts.
    pub group: String,
    pub topics: Vec<String>,
    /// Where a group with no committed offset starts.
    pub start: StartAt,
    /// This member's static id in the group (one per running fundguard).
    pub instance_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Earliest,
    Latest,
}

fn failed(what: &str, e: impl std::fmt::Display, retryable: bool) -> SourceError {
    SourceError::new("Kafka", format!("{what}: {e}"), retryable)
}

/// One consumed record: its topic, bytes and partition offset.
pub struct KafkaMessage {
    pub topic: String,
    pub payload: Vec<u8>,
    pub position: Position,
    partition: i32,
    offset: i64,
}

/// A subscribed consumer-group member.
pub struct KafkaSource {
    consumer: StreamConsumer<LagContext>,
    topics: BTreeMap<String, Arc<str>>,
    lag: Arc<AtomicI64>,
    /// Subscribed topics with exactly one partition: delivered in the order written.
    single_partition: Vec<String>,
}

/// Receives librdkafka's statistics (every 5 s) and keeps the group's lag: messages in
/// the assigned partitions not yet consumed, summed.
struct LagContext {
    lag: Arc<AtomicI64>,
}

impl ClientContext for LagContext {
    fn stats(&self, statistics: Statistics) {
        let lag: i64 = statistics
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            .filter(|p| p.partition >= 0)
            .map(|p| p.consumer_lag.max(0))
            .sum();
        self.lag.store(lag, Ordering::Relaxed);
    }
}

impl ConsumerContext for LagContext {}

impl Message for KafkaMessage {
    fn channel(&self) -> &str {
        &self.topic
    }

    fn payload(&self) -> &[u8] {
        &self.payload
    }

    fn position(&self) -> &Position {
        &self.position
    }
}

impl MessageSource for KafkaSource {
    type Config = KafkaConfig;
    type Message = KafkaMessage;

    async fn connect(config: &KafkaConfig) -> Result<KafkaSource, SourceError> {
        let lag = Arc::new(AtomicI64::new(-1));
        let consumer: StreamConsumer<LagContext> = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("group.id", &config.group)
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            // Static membership: a restarted fundguard takes its partitions back at once
            // instead of waiting for the broker to time out its previous incarnation.
            .set("group.instance.id", &config.instance_id)
            .set("session.timeout.ms", "10000")
            .set("statistics.interval.ms", "5000")
            .set(
                "auto.offset.reset",
                match config.start {
                    StartAt::Earliest => "earliest",
                    StartAt::Latest => "latest",
                },
            )
            .create_with_context(LagContext { lag: lag.clone() })
            .map_err(|e| failed("creating the consumer", e, false))?;
        let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(|e| failed(&format!("subscribing to {topics:?}"), e, true))?;
        // A topic's partition count decides whether its records come in one order; the
        // metadata call blocks, so it runs where blocking is allowed.
        let single_partition = tokio::task::block_in_place(|| {
            config
                .topics
                .iter()
                .filter(|topic| {
                    consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).is_ok_and(|m| {
                        m.topics().iter().any(|t| t.name() == topic.as_str() && t.partitions().len() == 1)
                    })
                })
                .cloned()
                .collect()
        });
        let topics = config.topics.iter().map(|t| (t.clone(), Arc::from(t.as_str()))).collect();
        Ok(KafkaSource { consumer, topics, lag, single_partition })
    }

    fn ordered_streams(&self) -> Vec<String> {
        self.single_partition.clone()
    }

    /// Messages in the assigned partitions not consumed yet, as of the last statistics.
    fn lag_events(&self, _fetched: &[KafkaMessage]) -> Option<u64> {
        u64::try_from(self.lag.load(Ordering::Relaxed)).ok()
    }

    /// Up to `max` messages: waits at most `wait` for the first, then takes what is ready.
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<KafkaMessage>, SourceError> {
        let mut out = Vec::new();
        let first = match tokio::time::timeout(wait, self.consumer.recv()).await {
            Err(_) => return Ok(out),
            Ok(received) => received,
        };
        let mut next = Some(first);
        while let Some(received) = next {
            let message = received.map_err(|e| failed("receiving", e, true))?;
            let topic = message.topic().to_string();
            let stream = self.topics.get(&topic).cloned().unwrap_or_else(|| Arc::from(topic.as_str()));
            out.push(KafkaMessage {
                payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                position: Position::Stream {
                    stream,
                    partition: message.partition().max(0) as u32,
                    offset: message.offset().max(0) as u64,
                    index: 0,
                },
                partition: message.partition(),
                offset: message.offset(),
                topic,
            });
            if out.len() >= max {
                break;
            }
            next = self.consumer.recv().now_or_never();
        }
        Ok(out)
    }

    /// Commits, per partition, the offset after the last of `messages`.
    async fn acknowledge(&mut self, messages: &[KafkaMessage]) -> Result<(), SourceError> {
        let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for m in messages {
            let entry = next.entry((m.topic.as_str(), m.partition)).or_insert(0);
            *entry = (*entry).max(m.offset + 1);
        }
        if next.is_empty() {
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        for ((topic, partition), offset) in next {
            list.add_partition_offset(topic, partition, Offset::Offset(offset))
                .map_err(|e| failed("listing offsets", e, true))?;
        }
        self.consumer.commit(&list, CommitMode::Async).map_err(|e| failed("committing offsets", e, true))
    }
}
