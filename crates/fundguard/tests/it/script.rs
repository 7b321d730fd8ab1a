//! `script` rules through the binary: validate, test and backtest, located errors, and
//! scripts that never end or allocate without bound stopped and reported.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::backtest::{backtest_json, json_log};
use crate::{fundguard, path, stderr, stdout};

/// Orders as business messages with their items: the second one's items do not add up.
const ORDERS: [&str; 3] = [
    r#"{"ts": 1700000000000, "id": 1, "amount": 0.50, "currency": "CNY", "items": [{"sku": "a", "price": 0.10, "qty": 3}, {"sku": "b", "price": 0.20, "qty": 1}]}"#,
    r#"{"ts": 1700000001000, "id": 2, "amount": 40, "currency": "USD", "items": [{"sku": "c", "price": 19.99, "qty": 2}]}"#,
    r#"{"ts": 1700000002000, "id": 3, "amount": 7, "currency": "CNY", "items": [{"sku": "d", "price": 7, "qty": 1}]}"#,
];

const ITEMS_ADD_UP: &str = r#"id: order-items-add-up
description: An order's amount is the sum of its items' price times quantity.
owner: orders
severity: high
script:
  table: shop.orders
  key: { id: after.id }
  source: |
    let total = 0;
    for item in after.items {
      total += item.price * item.qty;
    }
    if total != after.amount {
      report(#{
        message: `order ${after.id}: items add up to ${total}, the order says ${after.amount}`,
        amount: after.amount - total,
        currency: after.currency,
      });
    }
tests:
  - name: items that add up
    events:
      - { at: 0s, table: shop.orders, op: message, after: { id: 1, amount: 0.5, items: [{ price: 0.1, qty: 5 }] } }
    expect: []
  - name: a missing cent
    events:
      - { at: 0s, table: shop.orders, op: message, after: { id: 2, amount: 1, items: [{ price: 0.33, qty: 3 }] } }
    expect: [{ key: { id: 2 }, message: "order 2: items add up to 0.99, the order says 1" }]
"#;

#[test]
fn a_script_rule_is_validated_tested_and_backtested() {
    let dir = tempfile::tempdir().unwrap();
    let (rules, log) = json_log(dir.path(), &[("items.yaml", ITEMS_ADD_UP)], &ORDERS);

    let o = fundguard(&["validate", path(&rules)]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("1 rule(s) valid"), "{}", stdout(&o));

    let o = fundguard(&["test", path(&rules)]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));

    let o = backtest_json(&rules, &log, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let found: Vec<Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["rule"], "order-items-add-up");
    assert_eq!(found[0]["key"]["id"], 2);
    assert_eq!(found[0]["message"], "order 2: items add up to 39.98, the order says 40");
    let money = &found[0]["money_at_risk"];
    assert_eq!((&money["amount_minor"], &money["exponent"]), (&json!("2"), &json!(2)), "exact: {}", found[0]);
    assert_eq!((&money["currency"], &money["display"]), (&json!("USD"), &json!("0.02 USD")));
    let report = stderr(&o);
    assert!(report.contains("order-items-add-up") && report.contains("script"), "{report}");
}

#[test]
fn script_errors_carry_the_rule_files_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    // Line 8 is the script's second line: `aftr` is a misspelt name at column 15.
    let typo = "id: typo\nowner: t\nseverity: low\nscript:\n  table: shop.orders\n  source: |\n    let a = 1;\n    if a > 0 { aftr.id; }\n";
    let (rules, log) = json_log(dir.path(), &[("typo.yaml", typo)], &ORDERS);
    let o = fundguard(&["validate", path(&rules)]);
    assert!(!o.status.success());
    let out = stdout(&o);
    assert!(out.contains("typo.yaml:8:16: error: script: Undefined variable: aftr"), "{out}");

    // A runtime error: the test names the line and column the script failed at.
    let failing = "id: failing\nowner: t\nseverity: low\nscript:\n  table: shop.orders\n  source: |\n    let n = after.amount;\n    let share = n / (after.id - after.id);\ntests:\n  - name: divides\n    events:\n      - { at: 0s, table: shop.orders, op: message, after: { id: 1, amount: 2 } }\n    expect: []\n";
    std::fs::remove_file(rules.join("typo.yaml")).unwrap();
    std::fs::write(rules.join("failing.yaml"), failing).unwrap();
    let o = fundguard(&["test", path(&rules)]);
    assert!(!o.status.success());
    let out = format!("{}{}", stdout(&o), stderr(&o));
    assert!(out.contains("failing.yaml:8:19: Division by zero"), "{out}");
    let o = backtest_json(&rules, &log, &[]);
    assert!(!o.status.success());
    let report = stderr(&o);
    assert!(report.contains("rule errors:") && report.contains("failing.yaml:8:19"), "{report}");
    assert!(report.contains("orders.jsonl:3 of shop.orders, key id=3)"), "the row is named: {report}");
}

/// A script that loops forever, or grows a string, an array or its state without bound, is
/// stopped by its limits (the defaults) and reported; the backtest never hangs, and with
/// `--keep-going` every other row and rule still runs.
#[test]
fn a_script_that_never_ends_or_allocates_without_bound_is_stopped_and_reported() {
    // Default limits, but enough operations for the hoarding loop to reach the map's size.
    let runaway = |id: &str, body: &str| {
        let limits = if id == "hoarding" { "  limits: { operations: 1000000 }\n" } else { "" };
        format!(
            "id: {id}\nowner: t\nseverity: low\nscript:\n  table: shop.orders\n{limits}  source: |\n    if after.id == 2 {{\n      {body}\n    }}\n"
        )
    };
    let cases = [
        ("forever", "loop { }", "limits.operations"),
        ("doubling", "let s = \"x\"; loop { s += s; }", "limits.string_size"),
        ("pushing", "let a = []; loop { a.push(after.id); }", "limits.array_size"),
        ("nesting", "let a = []; loop { a.push(after.items); }", "limits.map_size"),
        ("hoarding", "let i = 0; loop { state.set(`${i}`, i); i += 1; }", "limits.map_size"),
    ];
    for (id, body, limit) in cases {
        let dir = tempfile::tempdir().unwrap();
        let rule = runaway(id, body);
        let (rules, log) = json_log(dir.path(), &[("runaway.yaml", &rule), ("items.yaml", ITEMS_ADD_UP)], &ORDERS);
        let started = Instant::now();
        let o = backtest_json(&rules, &log, &["--keep-going"]);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(60), "{id}: {took:?}");
        assert!(!o.status.success(), "{id}: a rule error fails the backtest");
        let report = stderr(&o);
        assert!(report.contains("3 messages, 3 events"), "{id}: ran to the end: {report}");
        let errors = report.split("rule errors:").nth(1).unwrap_or_else(|| panic!("{id}: {report}"));
        let line = errors.lines().find(|l| l.starts_with(id)).unwrap_or_else(|| panic!("{id}: {report}"));
        let line_no = if id == "hoarding" { "runaway.yaml:9:" } else { "runaway.yaml:8:" };
        assert!(line.contains(limit) && line.contains(line_no), "{id}: {line}");
        assert_eq!(line.split_whitespace().nth(2), Some("1"), "{id}: one failed call: {line}");
        let found: Vec<Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(found.len(), 1, "{id}: the other rule's finding still comes: {found:?}");

        let o = backtest_json(&rules, &log, &["--batch-size", "1"]);
        assert!(!o.status.success());
        let report = stderr(&o);
        assert!(report.contains("stopped at the first batch"), "{id}: {report}");
        assert!(report.contains("2 messages, 2 events"), "{id}: stopped at the failing row: {report}");
    }
}

/// The worked example of docs/rules.md: the example script rules over the simulator's shop
/// find every injected commission miscalculation and over-refund, and nothing else.
#[test]
fn the_example_script_rules_find_the_shops_fee_and_refund_incidents_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let o = fundguard(&[
        "simulate",
        "--out",
        path(dir.path()),
        "--orders",
        "3000",
        "--incident-rate",
        "0.05",
        "--seed",
        "5",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = fundguard(&["test", "examples/script-rules"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let findings = dir.path().join("findings.jsonl");
    let o = fundguard(&[
        "backtest",
        "--rules",
        "examples/script-rules",
        "--input",
        path(&dir.path().join("debezium.jsonl")),
        "--format",
        "debezium",
        "--schema",
        path(&dir.path().join("schema.yaml")),
        "--findings",
        path(&findings),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let found = crate::read_jsonl(&findings);
    // The example check and reconcile rules these two scripts stand in for.
    let expected: Vec<(String, Value)> = crate::read_jsonl(&dir.path().join("answer-key.jsonl"))
        .iter()
        .flat_map(|i| i["expected"].as_array().unwrap().clone())
        .filter_map(|e| {
            let rule = match e["rule"].as_str()? {
                "settlement-commission-computed" => "settlement-fees-add-up",
                "refunds-within-payment" => "refunds-never-exceed-payment",
                _ => return None,
            };
            Some((rule.to_string(), e["key"].clone()))
        })
        .collect();
    assert!(expected.len() >= 4, "incidents of both kinds were injected: {expected:?}");
    let meets = |(rule, key): &(String, Value), f: &Value| {
        f["rule"] == rule.as_str() && key.as_object().unwrap().iter().all(|(k, v)| f["key"][k] == *v)
    };
    for e in &expected {
        assert!(found.iter().any(|f| meets(e, f)), "{e:?} not found in {found:?}");
    }
    for f in &found {
        assert!(expected.iter().any(|e| meets(e, f)), "a finding with no incident behind it: {f}");
        assert!(f["money_at_risk"]["amount_minor"].is_string(), "{f}");
    }
}
