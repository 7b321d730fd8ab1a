//! The config parser on arbitrary text, fuzzed like every other reader of outside input
//! (`fundguard-fuzz`): diagnostics with their place, never a panic. A unit test of this
//! binary because the parser lives here; see `fuzz/README.md` for the other targets.

use std::path::Path;

fn parse(data: &[u8]) {
    thread_local!(static DIR: tempfile::TempDir = tempfile::tempdir().expect("a temporary directory"));
    DIR.with(|dir| {
        let path = dir.path().join("fundguard.yaml");
        std::fs::write(&path, data).expect("the config file is written");
        // Every secret variable is set, so the parser gets past them.
        if let Err(problems) = super::load(&path, |_| Some("s3cret".into())) {
            assert!(!problems.is_empty(), "a refusal without a problem");
            for p in &problems {
                assert!(!p.message.is_empty(), "a problem without a message: {p}");
            }
        }
    });
}

/// The configurations the documentation shows.
fn seeds() -> Vec<Vec<u8>> {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let mut seeds = Vec::new();
    for doc in ["sources.md", "alerts.md", "console.md", "security.md", "rules.md"] {
        let text = std::fs::read_to_string(docs.join(doc)).unwrap_or_default();
        for block in text.split("```yaml\n").skip(1) {
            let yaml = block.split("```").next().unwrap_or_default();
            if yaml.contains("sources:") || yaml.contains("sinks:") || yaml.contains("rules:") {
                seeds.push(yaml.as_bytes().to_vec());
            }
        }
    }
    seeds.push(b"rules: [examples/rules]\nsources:\n  - { name: a, type: file, path: x.jsonl, format: maxwell }\nlimits: { state_memory: 512MiB, max_message_bytes: 1MiB }\n".to_vec());
    seeds
}

const DICTIONARY: &[&str] = &[
    "\nsources:\n  - ",
    "{ name: s, type: http, format: json, token_env: T }",
    "{ name: k, type: kafka, brokers: b:9092, group: g, topics: [t], format: canal }",
    "{ name: m, type: mysql, url: mysql://u@h, start_gtid: 0-1-1 }",
    "{ name: p, type: postgres, url: postgres://u@h/d, slot: s }",
    "{ name: p, type: postgres, url: postgres://u@h/d, slot: s, plugin: pgoutput, publication: p, create_publication: true }",
    "{ name: n, type: nats, url: n, stream: S, consumer: c, format: debezium }",
    "{ name: sim, type: simulator, orders: 18446744073709551615 }",
    "\nsinks:\n  - { type: jsonl, path: f.jsonl }",
    "\nlimits:\n  state_memory: ",
    "\nlimits:\n  max_message_bytes: ",
    "18446744073709551615GiB",
    "99999999999999999999",
    "-1",
    "1e400",
    "\nidle_after: ",
    "\ncheckpoint_interval: ",
    "\nshutdown_timeout: ",
    "9999999999999d",
    "0s",
    "\nlisten: ",
    "\nnotify:\n  channels:\n    - { name: c, type: webhook, url: u }\n  routes:\n    - { severity: [critical], channels: [c] }",
    "\nconsole:\n  users:\n    - { name: u, role: admin, password_env: P }",
    "\nwarehouse:\n  - { name: t, type: parquet, path: p }",
    "datetime_offset: \"+99:99\"",
    "&a ",
    "*a",
    "<<: *a",
    "!!str ",
    "? ",
    "\t",
];

#[test]
fn config_files_never_panic() {
    let target = fundguard_fuzz::Target {
        name: "config",
        run: parse,
        seeds,
        dictionary: DICTIONARY,
        cases: 3_000,
        max_len: 16 << 10,
    };
    fundguard_fuzz::fuzz(&target);
}
