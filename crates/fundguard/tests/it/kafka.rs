//! Kafka sources against a real Kafka-protocol broker (Tansu): Debezium and Canal messages
//! over several topics, consumed by a consumer group that commits only processed offsets,
//! so a killed and restarted fundguard skips nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::servers::Tansu;
use crate::service::{Service, now_ms, wait, write_config};
use crate::simulated::Simulated;
use crate::{path, read_jsonl, repo_root};

/// Simulated logs in both formats, split by table, and the check rules' expected findings.
struct Logs {
    sim: Simulated,
    /// (table, line) per format, in log order.
    debezium: Vec<(String, String)>,
    canal: Vec<String>,
    expected: BTreeSet<(String, String)>,
}

fn table_of(line: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let source = v.get("payload").map_or(&v["source"], |p| &p["source"]);
    source["table"].as_str().unwrap().to_string()
}

impl Logs {
    fn simulate() -> Logs {
        let sim = Simulated::new("debezium,canal", 120);
        let expected = sim.expected();
        let read = |name: &str| std::fs::read_to_string(sim.file(name)).unwrap();
        let debezium = read("debezium.jsonl").lines().map(|l| (table_of(l), l.to_string())).collect();
        let canal = read("canal.jsonl").lines().map(str::to_string).collect();
        Logs { sim, debezium, canal, expected }
    }
}

fn rule_keys(findings: &[serde_json::Value], from: impl Fn(&str) -> bool) -> BTreeSet<(String, String)> {
    findings
        .iter()
        .filter(|f| from(f["evidence"][0]["position"]["stream"].as_str().unwrap_or_default()))
        .map(|f| (f["rule"].as_str().unwrap().to_string(), f["key"].to_string()))
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn create_topics(brokers: &str, topics: &[&str]) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    let new: Vec<NewTopic> = topics.iter().map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1))).collect();
    let results = runtime().block_on(admin.create_topics(&new, &AdminOptions::new())).unwrap();
    for r in results {
        r.unwrap();
    }
}

fn produce(brokers: &str, messages: &[(String, &str)]) {
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    runtime().block_on(async {
        // All in flight at once; per-partition order is kept by the producer.
        let sends = messages.iter().map(|(topic, payload)| {
            producer.send(FutureRecord::<(), str>::to(topic).payload(payload), Duration::from_secs(10))
        });
        for result in futures::future::join_all(sends).await {
            result.map_err(|(e, _)| e).unwrap();
        }
    });
}

#[test]
fn kafka_consumer_groups_commit_processed_offsets_and_skip_nothing_across_a_kill() {
    let logs = Logs::simulate();
    let broker = Tansu::start();
    let tables = ["orders", "payments", "refunds", "settlements", "ledger_entries"];
    let mut topics: Vec<String> = tables.iter().map(|t| format!("dbz-{t}")).collect();
    topics.push("canal-shop".into());
    create_topics(&broker.brokers, &topics.iter().map(String::as_str).collect::<Vec<_>>());

    let debezium: Vec<(String, &str)> = logs.debezium.iter().map(|(t, l)| (format!("dbz-{t}"), l.as_str())).collect();
    let canal: Vec<(String, &str)> = logs.canal.iter().map(|l| ("canal-shop".to_string(), l.as_str())).collect();
    let (d_half, c_half) = (debezium.len() / 2, canal.len() / 2);
    produce(&broker.brokers, &debezium[..d_half]);
    produce(&broker.brokers, &canal[..c_half]);

    let work = tempfile::tempdir().unwrap();
    let dbz_topics: Vec<String> = tables.iter().map(|t| format!("\"dbz-{t}\"")).collect();
    let config = write_config(
        work.path(),
        &format!(
            "rules: [{rules}]\nschema: {schema}\ndata_dir: data\nlisten: 127.0.0.1:0\ncheckpoint_interval: 1s\nsources:\n  - {{ name: dbz, type: kafka, format: debezium, brokers: \"{b}\", group: fg-dbz, topics: [{t}] }}\n  - {{ name: canal, type: kafka, format: canal, brokers: \"{b}\", group: fg-canal, topics: [canal-shop] }}\nsinks:\n  - {{ type: jsonl, path: findings.jsonl }}\n",
            rules = path(&logs.sim.rules()),
            schema = path(&logs.sim.schema()),
            b = broker.brokers,
            t = dbz_topics.join(", "),
        ),
    );
    let findings = work.path().join("findings.jsonl");
    let service = Service::start(&config, &[]);
    let halfway = wait(Duration::from_secs(60), || {
        let s = service.sources();
        (s[0]["events"].as_u64().unwrap_or(0) >= d_half as u64 && s[1]["events"].as_u64().unwrap_or(0) >= c_half as u64)
            .then_some(())
    });
    assert!(halfway.is_some(), "both halves consumed: {}", service.sources());
    // Offsets are committed once a checkpoint (every second here) covers them.
    std::thread::sleep(Duration::from_millis(2500));
    drop(service); // SIGKILL

    produce(&broker.brokers, &debezium[d_half..]);
    produce(&broker.brokers, &canal[c_half..]);
    let service = Service::start(&config, &[]);
    let converged = wait(Duration::from_secs(90), || {
        let all = read_jsonl(&findings);
        let dbz = rule_keys(&all, |s| s.starts_with("dbz-"));
        let canal = rule_keys(&all, |s| s == "canal-shop");
        (dbz == logs.expected && canal == logs.expected).then_some(())
    });
    if converged.is_none() {
        let all = read_jsonl(&findings);
        let dbz = rule_keys(&all, |s| s.starts_with("dbz-"));
        let canal = rule_keys(&all, |s| s == "canal-shop");
        panic!(
            "missing from debezium: {:?}\nmissing from canal: {:?}\nextra: {:?} {:?}\nsources: {}",
            logs.expected.difference(&dbz).collect::<Vec<_>>(),
            logs.expected.difference(&canal).collect::<Vec<_>>(),
            dbz.difference(&logs.expected).collect::<Vec<_>>(),
            canal.difference(&logs.expected).collect::<Vec<_>>(),
            service.sources()
        );
    }
    // Consumer lag comes from librdkafka's statistics, every 5 s.
    let caught_up = wait(Duration::from_secs(15), || (service.sources()[0]["lag_events"] == 0).then_some(()));
    assert!(caught_up.is_some(), "lag reported and zero: {}", service.sources());
    // The restarted group resumed near where the first run stopped: not from the start.
    let second_run = service.sources()[0]["events"].as_u64().unwrap();
    assert!(
        second_run < debezium.len() as u64,
        "resumed from committed offsets, read {second_run} of {}",
        debezium.len()
    );
}

/// A topic of one partition delivers in the order written, like a binlog: a transition
/// rule fed by it alone applies each change on arrival. Nothing newer follows the
/// forbidden change and idleness is an hour away, so only that order guarantee can
/// release it (a topic of several partitions would wait for the allowed lateness).
#[test]
fn a_single_partition_topic_is_applied_on_arrival() {
    use fundguard_core::{ChangeEvent, EventTime, Op, Position, Row, Value};
    use fundguard_formats::debezium::{DecimalMode, EncodeOptions, encode};
    let broker = Tansu::start();
    create_topics(&broker.brokers, &["orders-1p"]);
    let committed = EventTime::from_micros(now_ms() * 1000);
    let change = |op, status: &str| {
        let after: Row = [("id", Value::Int(1)), ("status", Value::from(status))].into_iter().collect();
        let event = ChangeEvent {
            table: "shop.orders".into(),
            op,
            before: None,
            after: Some(after),
            commit_time: committed,
            position: Position::Synthetic { seq: 0 },
        };
        let options = EncodeOptions { schema_wrapper: false, decimal_mode: DecimalMode::String };
        encode(&event, &Default::default(), options)
    };
    let (created, shipped) = (change(Op::Insert, "CREATED"), change(Op::Update, "SHIPPED"));
    produce(&broker.brokers, &[("orders-1p".to_string(), created.as_str())]);
    produce(&broker.brokers, &[("orders-1p".to_string(), shipped.as_str())]);

    let work = tempfile::tempdir().unwrap();
    let config = write_config(
        work.path(),
        &format!(
            "rules: [{rule}]\ndata_dir: data\nlisten: 127.0.0.1:0\nidle_after: 1h\nsources:\n  - {{ name: bus, type: kafka, format: debezium, brokers: \"{b}\", group: fg-1p, topics: [orders-1p] }}\nsinks:\n  - {{ type: jsonl, path: findings.jsonl }}\n",
            rule = path(&repo_root().join("examples/rules/order-state-machine.yaml")),
            b = broker.brokers,
        ),
    );
    let _service = Service::start(&config, &[]);
    let findings = work.path().join("findings.jsonl");
    let found = wait(Duration::from_secs(30), || {
        read_jsonl(&findings).into_iter().find(|f| f["rule"] == "order-state-machine")
    });
    let found = found.expect("the forbidden transition is found without a newer event");
    assert!(found["message"].as_str().unwrap().contains("CREATED -> SHIPPED"), "{found}");
}
