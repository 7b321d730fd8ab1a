//! Input built to hurt, through the binary (a debug build: an arithmetic overflow panics):
//! commit times at the ends of `i64`, a line over the message limit, deep nesting, huge
//! numbers, invalid UTF-8 — each dead-lettered with its reason while the good lines
//! around them are evaluated, in `fundguard backtest` and in a `fundguard run` file source.

use std::time::Duration;

use crate::service::{Service, wait, write_config};
use crate::{fundguard, path, read_jsonl, repo_root, stderr};

fn refund(ts: &str, id: i64) -> String {
    format!(
        r#"{{"database":"shop","table":"refunds","type":"insert",{ts},"data":{{"id":{id},"order_id":3,"amount":-5,"currency":"CNY"}}}}"#
    )
}

/// Bad lines and their expected reasons, then a good line (a negative refund: one finding).
fn log() -> (Vec<u8>, Vec<&'static str>) {
    let lines: Vec<Vec<u8>> = vec![
        // Regression: `ts` in seconds saturated to i64::MIN, and lag and latency overflowed.
        refund(r#""ts":-9300000000000"#, 1).into_bytes(),
        refund(r#""ts":9300000000000000"#, 2).into_bytes(),
        refund(r#""ts":1714550401,"ts_ms":9223372036854775807"#, 3).into_bytes(),
        refund(&format!(r#""ts":1714550401,"memo":"{}""#, "x".repeat(2048)), 4).into_bytes(),
        format!("{}1{}", "[".repeat(400), "]".repeat(400)).into_bytes(),
        refund(r#""ts":1714550401"#, 6).replace("-5", "1e400").into_bytes(),
        [b"{\"database\":\"shop\",\"table\":\"refunds\xff\xfe\"}".as_slice()].concat(),
        refund(r#""ts":1714550401"#, 8).into_bytes(),
    ];
    let reasons = vec![
        "`ts`: commit time -9300000000000 s is out of range: expected a time from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z",
        "`ts`: commit time 9300000000000000 s is out of range",
        "`ts_ms`: commit time 9223372036854775807 ms is out of range",
        "message over the limit of 1024 bytes (`max_message_bytes`): not decoded",
        "expected a JSON object, found `[[[[",
        "number `1e400` does not fit an exact decimal",
        "not UTF-8 text",
    ];
    (lines.join(&b'\n'), reasons)
}

fn check_dead_letters(letters: &[serde_json::Value], reasons: &[&str]) {
    assert_eq!(letters.len(), reasons.len(), "{letters:#?}");
    for (i, (letter, reason)) in letters.iter().zip(reasons).enumerate() {
        assert_eq!(letter["position"]["line"], i + 1, "{letter}");
        let got = letter["reason"].as_str().unwrap();
        assert!(got.starts_with(reason), "line {}: `{got}`, expected `{reason}`", i + 1);
    }
}

#[test]
fn extreme_commit_times_and_hostile_lines_are_dead_lettered_in_a_backtest() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("log.jsonl");
    let (log, reasons) = log();
    std::fs::write(&input, log).unwrap();
    let findings = dir.path().join("out.jsonl");
    let o = fundguard(&[
        "backtest",
        "--rules",
        "examples/rules",
        "--input",
        path(&input),
        "--format",
        "maxwell",
        "--max-message-bytes",
        "1024",
        "--findings",
        path(&findings),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    let found = read_jsonl(&findings);
    assert_eq!(found.len(), 1, "only the good line is evaluated: {found:?}");
    assert_eq!(found[0]["key"]["id"], 8);
    check_dead_letters(&read_jsonl(&dir.path().join("out.jsonl.dead-letter.jsonl")), &reasons);
}

#[test]
fn extreme_commit_times_and_hostile_lines_are_dead_lettered_by_a_file_source() {
    let dir = tempfile::tempdir().unwrap();
    let (log, reasons) = log();
    std::fs::write(dir.path().join("maxwell.jsonl"), log).unwrap();
    let rules = repo_root().join("examples/rules");
    let config = write_config(
        dir.path(),
        &format!(
            "rules: [{}]\ndata_dir: data\nlisten: 127.0.0.1:0\nlimits: {{ max_message_bytes: 1KiB }}\nsources:\n  - {{ name: log, type: file, path: maxwell.jsonl, format: maxwell }}\nsinks:\n  - {{ type: jsonl, path: findings.jsonl }}\n",
            path(&rules)
        ),
    );
    let service = Service::start(&config, &[]);
    let found = wait(Duration::from_secs(20), || {
        let f = read_jsonl(&dir.path().join("findings.jsonl"));
        (!f.is_empty()).then_some(f)
    })
    .unwrap_or_else(|| panic!("the good line's finding; stderr: {:?}", service.stderr.lock().unwrap()));
    assert_eq!(found[0]["key"]["id"], 8);
    let letters = wait(Duration::from_secs(10), || {
        let l = read_jsonl(&dir.path().join("data/dead-letter-log.jsonl"));
        (l.len() >= reasons.len()).then_some(l)
    })
    .unwrap_or_default();
    check_dead_letters(&letters, &reasons);
    // The pipeline thread lives on: its lag is measured every second without overflowing.
    std::thread::sleep(Duration::from_millis(1500));
    let health = &service.sources()[0];
    assert_eq!((health["events"].as_u64(), health["dead_letters"].as_u64()), (Some(1), Some(7)), "{health}");
    assert!(health["lag_ms"].as_i64().is_some_and(|lag| lag > 0), "{health}");
    let log = service.stderr.lock().unwrap().join("\n");
    assert!(!log.contains("panicked"), "{log}");
}
