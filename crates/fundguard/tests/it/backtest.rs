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

/// Writes rule files and a JSON-lines log of `shop.orders` messages into `dir`.
pub(crate) fn json_log(
    dir: &std::path::Path,
    rules: &[(&str, &str)],
    rows: &[&str],
) -> (std::path::PathBuf, std::path::PathBuf) {
    let rules_dir = dir.join("rules");
    std::fs::create_dir_all(&rules_dir).unwrap();
    for (name, text) in rules {
        std::fs::write(rules_dir.join(name), text).unwrap();
    }
    let log = dir.join("orders.jsonl");
    std::fs::write(&log, rows.join("\n") + "\n").unwrap();
    (rules_dir, log)
}

/// `fundguard backtest` of a JSON-lines log of `shop.orders` messages, with `extra` flags.
pub(crate) fn backtest_json(rules: &std::path::Path, log: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args =
        vec!["backtest", "--rules", path(rules), "--input", path(log), "--format", "json", "--table", "shop.orders"];
    args.extend_from_slice(extra);
    fundguard(&args)
}

/// A rule that fails on every batch is never silent: the backtest names it in a table of
/// rule errors and exits non-zero — at once by default, at the end with --keep-going.
#[test]
fn a_rule_that_fails_on_every_batch_fails_the_backtest_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let broken = "id: amount-times-note\nowner: t\nseverity: high\ncheck:\n  tables: [shop.orders]\n  assert: after.amount * after.note > 0\n";
    let fine =
        "id: amount-positive\nowner: t\nseverity: high\ncheck:\n  tables: [shop.orders]\n  assert: after.amount > 0\n";
    let rows: Vec<String> = (0..10)
        .map(|i| {
            format!(r#"{{"ts": {}, "id": {i}, "amount": {}, "note": "n{i}"}}"#, 1_700_000_000_000i64 + i * 1000, i - 1)
        })
        .collect();
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    let (rules, log) = json_log(dir.path(), &[("broken.yaml", broken), ("fine.yaml", fine)], &rows);
    let run = |extra: &[&str]| backtest_json(&rules, &log, &[&["--batch-size", "2"], extra].concat());

    let o = run(&[]);
    assert!(!o.status.success(), "a failing rule fails the run");
    let report = stderr(&o);
    assert!(report.contains("rule errors:") && report.contains("amount-times-note"), "{report}");
    assert!(report.contains("Cannot coerce arithmetic expression Int64 * Utf8"), "{report}");
    assert!(report.contains("stopped at the first batch") && report.contains("--keep-going"), "{report}");
    assert!(report.contains("2 messages, 2 events"), "stopped after the first batch: {report}");

    let o = run(&["--keep-going"]);
    assert!(!o.status.success(), "--keep-going runs to the end and still fails");
    let report = stderr(&o);
    assert!(report.contains("10 messages, 10 events"), "{report}");
    let errors = report.lines().find(|l| l.starts_with("amount-times-note") && l.contains("Cannot coerce")).unwrap();
    assert!(errors.split_whitespace().nth(2) == Some("5"), "failed on all 5 batches: {errors}");
    let found: Vec<Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(found.len(), 2, "the other rule's findings still come (amounts -1 and 0): {found:?}");

    let o = backtest_json(&rules.join("fine.yaml"), &log, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `--final` makes a deadline still pending at the end of a complete period fire, saying so.
#[test]
fn final_fires_the_deadlines_left_pending_at_the_end_of_input() {
    let dir = tempfile::tempdir().unwrap();
    let rule = "id: stuck-paying\nowner: t\nseverity: high\ntimeout:\n  table: shop.orders\n  key: after.id\n  enter: \"after.status = 'PAYING'\"\n  exit: \"after.status <> 'PAYING'\"\n  within: 10m\n";
    let rows = [
        r#"{"ts": 1700000000000, "id": 1, "status": "PAYING"}"#,
        r#"{"ts": 1700003600000, "id": 2, "status": "PAYING"}"#,
        r#"{"ts": 1700003660000, "id": 3, "status": "PAID"}"#,
    ];
    let (rules, log) = json_log(dir.path(), &[("stuck.yaml", rule)], &rows);
    let run = |extra: &[&str]| {
        let o = backtest_json(&rules, &log, extra);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o).lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).collect::<Vec<_>>()
    };
    let pending = run(&[]);
    assert_eq!(pending.len(), 1, "order 2's deadline lies after the last event: {pending:?}");
    assert_eq!(pending[0]["key"]["id"], 1);
    assert!(!pending[0]["tags"].to_string().contains("end_of_input"));

    let all = run(&["--final"]);
    assert_eq!(all.len(), 2, "{all:?}");
    let without_detected_at = |f: &Value| {
        let mut f = f.clone();
        f.as_object_mut().unwrap().remove("detected_at");
        f
    };
    assert_eq!(without_detected_at(&all[0]), without_detected_at(&pending[0]), "findings before the end are unchanged");
    assert_eq!(all[1]["key"]["id"], 2);
    let message = all[1]["message"].as_str().unwrap();
    assert!(message.contains("fired at end of input"), "{message}");
    assert!(all[1]["tags"].as_array().unwrap().iter().any(|t| t == "end_of_input"), "{:?}", all[1]["tags"]);
}

/// The authoring options drive the binary as they drive the engine: a late counterpart
/// reported as missing, a check reported once per key, a sliding window catching a burst
/// that straddles two tumbling windows.
#[test]
fn late_counterparts_once_per_key_and_sliding_windows_in_a_backtest() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = "id: paid-within-a-minute\nowner: t\nseverity: high\nreconcile:\n  left: { table: shop.orders, key: after.order_id, when: \"after.kind = 'payment'\" }\n  right: { table: shop.orders, key: after.order_id, when: \"after.kind = 'order'\" }\n  within: 1m\n  late_counterpart: missing\n  expect: left.amount = right.amount\n";
    let once = "id: amount-positive\nowner: t\nseverity: high\ncheck:\n  tables: [shop.orders]\n  assert: after.amount > 0\n  key: { order_id: after.order_id }\n  once: per_key\n";
    let burst = "id: burst\nowner: t\nseverity: high\nrate:\n  table: shop.orders\n  group: after.kind\n  window: 3m\n  slide: 1m\n  max_count: 5\n";
    // 1_700_000_100 s is a multiple of 3 minutes.
    let ms = |secs: i64| (1_700_000_100 + secs) * 1000;
    let mut rows = vec![
        // Order 1 paid 2 minutes late: missing twice (the order's, then the payment's window).
        format!(r#"{{"ts": {}, "id": 1, "order_id": 1, "kind": "order", "amount": 100}}"#, ms(0)),
        format!(r#"{{"ts": {}, "id": 2, "order_id": 1, "kind": "payment", "amount": 100}}"#, ms(120)),
        // Order 2 twice with a negative amount: reported once.
        format!(r#"{{"ts": {}, "id": 3, "order_id": 2, "kind": "refund", "amount": -5}}"#, ms(130)),
        format!(r#"{{"ts": {}, "id": 4, "order_id": 2, "kind": "refund", "amount": -6}}"#, ms(135)),
    ];
    // Six `burst` rows over the boundary of two tumbling 3-minute windows (minutes 2 and 3).
    for i in 0..3 {
        rows.push(format!(
            r#"{{"ts": {}, "id": {}, "order_id": {}, "kind": "click", "amount": 1}}"#,
            ms(150 + i),
            10 + i,
            10 + i
        ));
        rows.push(format!(
            r#"{{"ts": {}, "id": {}, "order_id": {}, "kind": "click", "amount": 1}}"#,
            ms(190 + i),
            20 + i,
            20 + i
        ));
    }
    rows.push(format!(r#"{{"ts": {}, "id": 99, "order_id": 99, "kind": "end", "amount": 1}}"#, ms(3600)));
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    let (rules, log) =
        json_log(dir.path(), &[("pairs.yaml", pairs), ("once.yaml", once), ("burst.yaml", burst)], &rows);
    let o = backtest_json(&rules, &log, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let found: Vec<Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let of = |rule: &str| found.iter().filter(|f| f["rule"] == rule).collect::<Vec<_>>();

    let missing = of("paid-within-a-minute");
    assert_eq!(missing.len(), 2, "{missing:?}");
    assert!(missing.iter().all(|f| f["message"].as_str().unwrap().contains("no counterpart within")), "{missing:?}");

    let negative = of("amount-positive");
    assert_eq!(negative.len(), 1, "once per key: {negative:?}");
    assert!(negative[0]["message"].as_str().unwrap().contains("after.amount=-5"), "{negative:?}");

    let bursts = of("burst");
    let clicks: Vec<&&Value> = bursts.iter().filter(|f| f["key"]["kind"] == "click").collect();
    assert_eq!(clicks.len(), 2, "the windows [1m, 4m) and [2m, 5m) hold all six clicks: {bursts:?}");
}

/// docs/rules.md's three-table reconcile over the simulator's shop: an order's successful
/// payments net of its successful refunds never go negative — found in the stream, for
/// exactly the over-refunded orders, in every batch size.
#[test]
fn a_reconcile_over_three_tables_finds_every_over_refund_in_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), "0.05", "1500");
    let over_refunded: BTreeSet<i64> = read_jsonl(&dir.path().join("answer-key.jsonl"))
        .iter()
        .flat_map(|i| i["expected"].as_array().unwrap().clone())
        .filter(|e| e["rule"] == "refunds-within-payment")
        .map(|e| e["key"]["order_id"].as_i64().unwrap())
        .collect();
    assert!(over_refunded.len() >= 2, "{over_refunded:?}");
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("net.yaml"),
        r#"id: order-net-received
owner: payments
severity: critical
reconcile:
  left:  { table: shop.orders,   key: after.id,       when: "after.status IN ('PAID', 'SHIPPED', 'COMPLETED', 'REFUNDED')" }
  right: { table: shop.payments, key: after.order_id, when: "after.status = 'SUCCESS'" }
  sides:
    refunds: { table: shop.refunds, key: after.order_id, when: "after.status = 'SUCCESS'", required: false }
  within: 30m
  key_type: integer
  cardinality: one_to_many
  aggregates: { paid: "sum(right.amount)", refunded: "sum(refunds.amount)" }
  expect: "agg.paid - coalesce(agg.refunded, 0) >= 0 AND agg.paid = left.pay_amount"
  money: { amount: "coalesce(agg.refunded, 0) - agg.paid", currency: left.currency }
"#,
    )
    .unwrap();
    for batch in ["8192", "50"] {
        let findings = dir.path().join(format!("net-{batch}.jsonl"));
        let input = dir.path().join("debezium.jsonl");
        let o = fundguard(&[
            "backtest",
            "--rules",
            path(&rules),
            "--input",
            path(&input),
            "--format",
            "debezium",
            "--schema",
            path(&dir.path().join("schema.yaml")),
            "--findings",
            path(&findings),
            "--batch-size",
            batch,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let mismatched: BTreeSet<i64> = read_jsonl(&findings)
            .iter()
            .filter(|f| f["message"].as_str().unwrap().contains("disagree"))
            .map(|f| f["key"]["id"].as_i64().unwrap())
            .collect();
        assert_eq!(mismatched, over_refunded, "batch size {batch}");
    }
}

/// Money is shown in major units with its currency's ISO 4217 exponent (the store keeps exact
/// minor units), and a reconcile or check without a `message` names the two values that
/// disagree and their difference — in the findings, `alerts show` and the daily report.
#[test]
fn money_in_major_units_and_default_messages_name_what_disagreed() {
    let dir = tempfile::tempdir().unwrap();
    // Yuan as DECIMAL(12,2) text (`auto`: a decimal with fraction digits is major units).
    let pairs = "id: payment-matches-order\nowner: payments\nseverity: critical\nreconcile:\n  left: { table: shop.orders, key: after.order_id, when: \"after.kind = 'payment'\" }\n  right: { table: shop.orders, key: after.order_id, when: \"after.kind = 'order'\" }\n  within: 1m\n  key_type: integer\n  expect: \"left.currency = right.currency\"\n  tolerance: { left: left.amount, right: right.amount, absolute: 0 }\n  money: { amount: left.amount - right.amount, currency: left.currency }\n";
    // Yen as integers: minor units, exponent 0.
    let check = "id: paid-in-full\nowner: billing\nseverity: high\ncheck:\n  tables: [shop.orders]\n  when: \"after.kind = 'invoice'\"\n  assert: after.paid >= after.due\n  key: { id: after.id }\n  money: { amount: after.due - after.paid, currency: after.currency, unit: minor }\n";
    let bad_unit = "id: bad-unit\nowner: t\nseverity: low\ncheck:\n  tables: [shop.orders]\n  assert: after.amount > 0\n  money: { amount: after.amount, unit: cents }\n";
    let ms = |secs: i64| (1_700_000_100 + secs) * 1000;
    let rows = [
        format!(
            r#"{{"ts": {}, "id": 1, "order_id": 7, "kind": "order", "amount": 4200.00, "currency": "CNY"}}"#,
            ms(0)
        ),
        format!(
            r#"{{"ts": {}, "id": 2, "order_id": 7, "kind": "payment", "amount": 4198.45, "currency": "CNY"}}"#,
            ms(1)
        ),
        format!(r#"{{"ts": {}, "id": 3, "kind": "invoice", "paid": 1450, "due": 251450, "currency": "JPY"}}"#, ms(2)),
        format!(r#"{{"ts": {}, "id": 4, "kind": "end"}}"#, ms(600)),
    ];
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    let (rules, log) = json_log(dir.path(), &[("pairs.yaml", pairs), ("check.yaml", check)], &rows);

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, bad_unit).unwrap();
    let o = fundguard(&["validate", path(&bad)]);
    assert!(!o.status.success());
    let said = format!("{}{}", stdout(&o), stderr(&o));
    assert!(said.contains("money.unit `cents`: expected auto, minor or major") && said.contains(":7:"), "{said}");

    let store = dir.path().join("alerts.db");
    let o = backtest_json(&rules, &log, &["--alerts", path(&store)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let found: Vec<Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let of = |rule: &str| found.iter().find(|f| f["rule"] == rule).unwrap_or_else(|| panic!("{rule}: {found:?}"));

    let pair = of("payment-matches-order");
    assert_eq!(
        pair["message"],
        "payment-matches-order: shop.orders and shop.orders disagree for order_id=7: shop.orders amount 4,198.45 CNY vs shop.orders amount 4,200.00 CNY: \u{2212}1.55"
    );
    assert_eq!(
        pair["money_at_risk"],
        serde_json::json!({"amount_minor": "-155", "currency": "CNY", "exponent": 2, "display": "\u{2212}1.55 CNY"})
    );
    let invoice = of("paid-in-full");
    assert_eq!(
        invoice["message"],
        "paid-in-full does not hold for id=3: after.paid 1,450 JPY vs after.due 251,450 JPY: \u{2212}250,000"
    );
    assert_eq!(invoice["money_at_risk"]["display"], "250,000 JPY");

    let o = fundguard(&["alerts", "--store", path(&store), "list", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let alerts: Vec<Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let invoice_alert = alerts.iter().find(|a| a["rule"] == "paid-in-full").unwrap();
    assert_eq!(invoice_alert["money_at_risk"]["amount_minor"], "250000", "the store keeps exact minor units");
    let id = invoice_alert["id"].to_string();
    let o = fundguard(&["alerts", "--store", path(&store), "show", &id]);
    assert!(stdout(&o).contains("money:       250,000 JPY (250000 minor units)"), "{}", stdout(&o));

    let day = &invoice_alert["first_seen"].as_str().unwrap()[..10];
    let o = fundguard(&["report", "daily", "--store", path(&store), "--date", day]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = stdout(&o);
    assert!(report.lines().any(|l| l.starts_with("billing") && l.ends_with("250,000 JPY")), "{report}");
    assert!(report.lines().any(|l| l.starts_with("payments") && l.ends_with("\u{2212}1.55 CNY")), "{report}");
}
