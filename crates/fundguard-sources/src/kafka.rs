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
    /// TLS to the brokers (`None`: clear text).
    pub tls: Option<crate::tls::TlsConfig>,
    /// SASL authentication.
    pub sasl: Option<Sasl>,
}

/// SASL credentials: the password came from the environment or a file.
#[derive(Clone)]
pub struct Sasl {
    /// `SCRAM-SHA-256`, `SCRAM-SHA-512` or `PLAIN`.
    pub mechanism: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Sasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sasl")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The SASL mechanisms fundguard speaks to Kafka.
pub const SASL_MECHANISMS: [&str; 3] = ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"];

/// librdkafka settings for TLS and SASL: `security.protocol` and its companions.
pub fn security(config: &KafkaConfig) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let protocol = match (&config.tls, &config.sasl) {
        (None, None) => "plaintext",
        (Some(_), None) => "ssl",
        (None, Some(_)) => "sasl_plaintext",
        (Some(_), Some(_)) => "sasl_ssl",
    };
    out.push(("security.protocol", protocol.to_string()));
    if let Some(tls) = &config.tls {
        out.push(("enable.ssl.certificate.verification", "true".into()));
        let check_name = match tls.verify {
            crate::tls::Verify::Full => "https",
            crate::tls::Verify::Ca => "none",
        };
        out.push(("ssl.endpoint.identification.algorithm", check_name.into()));
        if let Some(ca) = &tls.ca_file {
            out.push(("ssl.ca.location", ca.display().to_string()));
        }
        if let Some(client) = &tls.client {
            out.push(("ssl.certificate.location", client.cert_file.display().to_string()));
            out.push(("ssl.key.location", client.key_file.display().to_string()));
        }
    }
    if let Some(sasl) = &config.sasl {
        out.push(("sasl.mechanism", sasl.mechanism.clone()));
        out.push(("sasl.username", sasl.username.clone()));
        out.push(("sasl.password", sasl.password.clone()));
    }
    out
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
    /// The client's latest error (a refused certificate, a failed login), for `connect`.
    last_error: Arc<std::sync::Mutex<Option<String>>>,
}

impl LagContext {
    /// Keeps `said` as the latest error, unless it would replace one about TLS or SASL
    /// with a vaguer one ("all brokers down" follows every failed handshake).
    fn keep(&self, said: String) {
        let about_security =
            |text: &str| ["SSL", "SASL", "certificate", "Authentication"].iter().any(|w| text.contains(w));
        if let Ok(mut last) = self.last_error.lock()
            && (about_security(&said) || !last.as_deref().is_some_and(about_security))
        {
            *last = Some(said);
        }
    }
}

impl ClientContext for LagContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.keep(format!("{error}: {reason}"));
    }

    /// librdkafka says why a handshake or login failed in its log too.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        if (level as i32) <= rdkafka::config::RDKafkaLogLevel::Warning as i32 {
            self.keep(format!("{fac}: {message}"));
        }
    }

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
        let last_error = Arc::new(std::sync::Mutex::new(None));
        let mut client = ClientConfig::new();
        for (key, value) in security(config) {
            client.set(key, value);
        }
        let consumer: StreamConsumer<LagContext> = client
            .set_log_level(rdkafka::config::RDKafkaLogLevel::Warning)
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
            .create_with_context(LagContext { lag: lag.clone(), last_error: last_error.clone() })
            .map_err(|e| failed("creating the consumer", e, false))?;
        // Reach the brokers once before subscribing: a refused certificate or login is
        // an error that says so, not a consumer that waits forever.
        if let Err(e) = tokio::task::block_in_place(|| consumer.fetch_metadata(None, Duration::from_secs(10))) {
            // The reason is in librdkafka's log, served by polling: poll a moment (nothing
            // is subscribed yet, so no message can be taken).
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                loop {
                    let _ = consumer.recv().await;
                }
            })
            .await;
            let said = last_error.lock().ok().and_then(|l| l.clone()).unwrap_or_else(|| e.to_string());
            let host = config.brokers.split(',').next().unwrap_or_default();
            let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
            let refused = config.tls.as_ref().and_then(|tls| crate::tls::explain_refusal(tls, host, &said));
            return Err(match refused {
                Some(why) => failed(&format!("connecting to {} with TLS", config.brokers), why, false),
                None if said.contains("SASL authentication") || said.contains("Authentication failed") => failed(
                    &format!("logging in to {}", config.brokers),
                    format!("{said} (check sasl.mechanism, sasl.username and the password)"),
                    false,
                ),
                None => failed(&format!("reaching {}", config.brokers), said, true),
            });
        }
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

#[cfg(test)]
mod tests {
    use rdkafka::ClientConfig;
    use rdkafka::consumer::BaseConsumer;

    use super::{KafkaConfig, SASL_MECHANISMS, Sasl, StartAt, security};
    use crate::tls::{TlsConfig, Verify};

    fn config(tls: Option<TlsConfig>, mechanism: &str) -> KafkaConfig {
        KafkaConfig {
            brokers: "127.0.0.1:9".into(),
            group: "g".into(),
            topics: vec!["t".into()],
            start: StartAt::Earliest,
            instance_id: "i".into(),
            tls,
            sasl: Some(Sasl { mechanism: mechanism.into(), username: "fundguard".into(), password: "pw".into() }),
        }
    }

    /// Whether librdkafka, as this build links it, takes `settings` (it checks names and
    /// values when a client is created: a mechanism it was built without is refused here).
    fn accepted(settings: Vec<(&'static str, String)>) -> Result<(), String> {
        let mut client = ClientConfig::new();
        for (key, value) in settings {
            client.set(key, value);
        }
        client.set("bootstrap.servers", "127.0.0.1:9").set("group.id", "g");
        client.create::<BaseConsumer>().map(drop).map_err(|e| e.to_string())
    }

    /// No test broker here speaks SASL (Tansu 0.6 does not keep SCRAM users), so this is
    /// what holds SCRAM and PLAIN to what librdkafka understands, over TLS and without.
    #[test]
    fn every_sasl_mechanism_is_one_this_librdkafka_takes() {
        let tls = TlsConfig { verify: Verify::Full, ca_file: None, client: None };
        for mechanism in SASL_MECHANISMS {
            for tls in [None, Some(tls.clone())] {
                let settings = security(&config(tls.clone(), mechanism));
                let protocol = if tls.is_some() { "sasl_ssl" } else { "sasl_plaintext" };
                assert!(settings.contains(&("security.protocol", protocol.into())), "{settings:?}");
                assert!(settings.contains(&("sasl.mechanism", mechanism.into())));
                accepted(settings).unwrap_or_else(|e| panic!("{mechanism} (tls {}): {e}", tls.is_some()));
            }
        }
        let unknown = security(&config(None, "NOT-A-MECHANISM"));
        assert!(accepted(unknown).is_err(), "librdkafka refuses a mechanism it does not know");
    }

    #[test]
    fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
        let full = TlsConfig { verify: Verify::Full, ca_file: None, client: None };
        let ca = TlsConfig { verify: Verify::Ca, ..full.clone() };
        let name_check = |tls: TlsConfig| {
            security(&config(Some(tls), "PLAIN"))
                .into_iter()
                .find(|(k, _)| *k == "ssl.endpoint.identification.algorithm")
                .map(|(_, v)| v)
        };
        assert_eq!(name_check(full).as_deref(), Some("https"));
        assert_eq!(name_check(ca).as_deref(), Some("none"));
    }
}
