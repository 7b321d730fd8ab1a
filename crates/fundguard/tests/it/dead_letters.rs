//! Bad input loses nothing and stops nothing.

use crate::{fundguard, path, read_jsonl, stderr, stdout};

#[test]
fn bad_lines_go_to_the_dead_letter_file_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("log.jsonl");
    let good = r#"{"database":"shop","table":"refunds","type":"insert","ts":1714550401,"data":{"id":1,"amount":-5,"currency":"CNY"}}"#;
    let lines =
        [good, "{broken json", r#"{"database":"shop","table":"refunds","type":"upsert","ts":1,"data":{}}"#, "", good];
    std::fs::write(&input, lines.join("\n")).unwrap();
    let findings = dir.path().join("out.jsonl");
    let o = fundguard(&[
        "backtest",
        "--rules",
        "examples/rules",
        "--input",
        path(&input),
        "--format",
        "maxwell",
        "--findings",
        path(&findings),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_jsonl(&findings).len(), 2, "both good lines were evaluated");
    let out = stdout(&o);
    assert!(out.contains("2 dead letters"), "{out}");
    assert!(out.contains("1 tombstones"), "{out}");
    let letters = read_jsonl(&dir.path().join("out.jsonl.dead-letter.jsonl"));
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0]["position"]["line"], 2);
    assert_eq!(letters[0]["position"]["input"], path(&input));
    assert!(letters[0]["reason"].as_str().unwrap().starts_with("not valid JSON"));
    assert_eq!(letters[0]["message"], "{broken json");
    assert_eq!(letters[1]["position"]["line"], 3);
    assert!(letters[1]["reason"].as_str().unwrap().contains("unknown Maxwell type `upsert`"));
}

#[test]
fn strict_stops_at_the_first_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("log.jsonl");
    std::fs::write(&input, "{}\n").unwrap();
    let o =
        fundguard(&["backtest", "--rules", "examples/rules", "--input", path(&input), "--format", "canal", "--strict"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains(":1: not valid JSON") && err.contains("--strict"), "{err}");
}

/// Decoders convert only the columns rules read: evidence still shows whole rows, and a bad
/// value in a column no rule reads does not cost the event its evaluation.
#[test]
fn a_bad_value_no_rule_reads_does_not_dead_letter_the_event_and_evidence_stays_whole() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("refund.yaml"),
        "id: refund-positive\nowner: payments\nseverity: high\ncheck:\n  tables: [shop.refunds]\n  assert: after.amount > 0\n",
    )
    .unwrap();
    let input = dir.path().join("log.jsonl");
    let lines = [
        r#"{"database":"shop","table":"refunds","type":"insert","ts":1714550401,"data":{"id":1,"amount":-5,"currency":"CNY","note":"late"}}"#,
        // 33 digits: no exact decimal holds it, so decoding the whole row refuses the message.
        r#"{"database":"shop","table":"refunds","type":"insert","ts":1714550402,"data":{"id":2,"amount":-7,"note":123456789012345678901234567890123}}"#,
    ];
    std::fs::write(&input, lines.join("\n")).unwrap();
    let findings = dir.path().join("out.jsonl");
    let o = fundguard(&[
        "backtest",
        "--rules",
        path(&rules),
        "--input",
        path(&input),
        "--format",
        "maxwell",
        "--findings",
        path(&findings),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let found = read_jsonl(&findings);
    assert_eq!(found.len(), 2, "both events were evaluated: {found:?}");
    let whole = &found[0]["evidence"][0]["after"];
    assert_eq!(whole.as_object().unwrap().keys().collect::<Vec<_>>(), ["amount", "currency", "id", "note"], "{whole}");
    assert_eq!(whole["note"], "late", "a column no rule reads is in the evidence");
    let partial = &found[1]["evidence"][0]["after"];
    assert_eq!(partial.as_object().unwrap().keys().collect::<Vec<_>>(), ["amount", "id"], "{partial}");
    assert!(
        !dir.path().join("out.jsonl.dead-letter.jsonl").exists()
            || read_jsonl(&dir.path().join("out.jsonl.dead-letter.jsonl")).is_empty()
    );
}
