//! Simulator output backtested in every format: every injected incident a check rule
//! covers is found, nothing else is, and the three formats agree.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::{fundguard, path, read_jsonl, stderr, stdout};

fn simulate(dir: &std::path::Path, rate: &str, orders: &str) {
    let o = fundguard(&["simulate", "--out", path(dir), "--orders", orders, "--incident-rate", rate, "--seed", "11"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn backtest(dir: &std::path::Path, format: &str, extra: &[&str]) -> Vec<Value> {
    let input = dir.join(format!("{format}.jsonl"));
    let findings = dir.join(format!("{format}.findings.jsonl"));
    let schema = dir.join("schema.yaml");
    let mut args = vec![
        "backtest",
        "--rules",
        "examples/rules",
        "--input",
        path(&input),
        "--format",
        format,
        "--schema",
        path(&schema),
        "--findings",
        path(&findings),
    ];
    args.extend_from_slice(extra);
    let o = fundguard(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("distinct keys"), "the per-rule table is printed: {out}");
    assert!(out.contains(" 0 dead letters"), "{out}");
    read_jsonl(&findings)
}

fn rule_and_key(f: &Value) -> (String, String) {
    (f["rule"].as_str().unwrap().to_string(), f["key"].to_string())
}

/// A finding meets an expected one when the rule is the same and the key has every expected column.
fn meets(expected: &Value, finding: &Value) -> bool {
    expected["rule"] == finding["rule"]
        && expected["key"].as_object().unwrap().iter().all(|(k, v)| finding["key"][k] == *v)
}

#[test]
fn incidents_are_found_in_every_format_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), "0.05", "1500");
    let incidents = read_jsonl(&dir.path().join("answer-key.jsonl"));
    assert!(incidents.len() >= 24, "every kind injected at least twice: {}", incidents.len());
    let expected: Vec<&Value> = incidents.iter().flat_map(|i| i["expected"].as_array().unwrap()).collect();

    let mut per_format = Vec::new();
    for format in ["debezium", "canal", "maxwell"] {
        let findings = backtest(dir.path(), format, &[]);
        for (incident, e) in
            incidents.iter().flat_map(|i| i["expected"].as_array().unwrap().iter().map(move |e| (i, e)))
        {
            assert!(findings.iter().any(|f| meets(e, f)), "{format}: {e} of incident {incident} not found");
        }
        for f in &findings {
            assert!(expected.iter().any(|e| meets(e, f)), "{format}: finding with no injected incident behind it: {f}");
            for field in ["rule", "severity", "key", "event_time", "detected_at", "message", "evidence"] {
                assert!(!f[field].is_null(), "{format}: finding lacks `{field}`: {f}");
            }
        }
        per_format.push(findings.iter().map(rule_and_key).collect::<BTreeSet<_>>());
    }
    assert_eq!(per_format[0], per_format[1], "debezium and canal agree");
    assert_eq!(per_format[0], per_format[2], "debezium and maxwell agree");
}

#[test]
fn clean_shop_violates_no_example_rule() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), "0", "1500");
    assert!(read_jsonl(&dir.path().join("answer-key.jsonl")).is_empty());
    for format in ["debezium", "canal", "maxwell"] {
        let findings = backtest(dir.path(), format, &["--batch-size", "333"]);
        assert!(findings.is_empty(), "{format}: {:?}", findings.first());
    }
}

#[test]
fn debezium_with_schema_wrapper_needs_no_schema_file() {
    let dir = tempfile::tempdir().unwrap();
    let o = fundguard(&[
        "simulate",
        "--out",
        path(dir.path()),
        "--orders",
        "400",
        "--incident-rate",
        "0.1",
        "--format",
        "debezium",
        "--schema-wrapper",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let findings = dir.path().join("f.jsonl");
    let input = dir.path().join("debezium.jsonl");
    let o = fundguard(&[
        "backtest",
        "--rules",
        "examples/rules",
        "--input",
        path(&input),
        "--format",
        "debezium",
        "--findings",
        path(&findings),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let units: Vec<_> =
        read_jsonl(&findings).into_iter().filter(|f| f["rule"] == "payment-minor-units-consistent").collect();
    assert!(!units.is_empty(), "precise decimals from the schema reach the rules");
    assert!(stdout(&o).contains(" 0 dead letters"));
}

#[test]
fn gzip_and_stdin_inputs() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), "0.05", "300");
    let plain = std::fs::read(dir.path().join("maxwell.jsonl")).unwrap();
    let gz = dir.path().join("maxwell.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    enc.write_all(&plain).unwrap();
    enc.finish().unwrap();
    let from_plain = backtest(dir.path(), "maxwell", &[]);
    let o = fundguard(&["backtest", "--rules", "examples/rules", "--input", path(&gz), "--format", "maxwell"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let from_gz: Vec<Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(from_gz.len(), from_plain.len());
    assert!(stderr(&o).contains("distinct keys"), "with findings on stdout the table goes to stderr");

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fundguard"))
        .args(["backtest", "--rules", "examples/rules", "--input", "-", "--format", "maxwell"])
        .current_dir(crate::repo_root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&plain).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(stdout(&o).lines().count(), from_plain.len());
}
