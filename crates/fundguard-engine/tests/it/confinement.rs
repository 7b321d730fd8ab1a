//! A rule expression reads one row and nothing else: subqueries (the only way to name a
//! table, a table function or a file), statements and anything after the expression are
//! refused at load with their place; message templates read no file and no environment.

use fundguard_core::{TableSchemas, Value};
use fundguard_engine::Engine;

use crate::{check, insert, rule, run};

/// The problems of rules, as `line:column: message`.
fn problems(rules: &[fundguard_rules::Rule]) -> Vec<String> {
    match Engine::new(rules, &TableSchemas::default()) {
        Ok(_) => Vec::new(),
        Err(d) => d.iter().map(|d| format!("{}:{}: {}", d.location.line, d.location.column, d.message)).collect(),
    }
}

#[test]
fn subqueries_and_statements_are_refused_in_expressions_with_their_place() {
    let file = "/etc/hostname";
    for assert in [
        "EXISTS (SELECT 1)".to_string(),
        "NOT EXISTS (SELECT 1)".to_string(),
        "after.amount IN (SELECT amount FROM shop.t)".to_string(),
        "after.amount > ALL (SELECT 1)".to_string(),
        format!("(SELECT count(*) FROM '{file}') > 0"),
        "after.amount = (SELECT max(value) FROM generate_series(1, 3))".to_string(),
        "coalesce((SELECT 1), after.amount) > 0".to_string(),
    ] {
        let found = problems(&[check("sub", &format!("  assert: \"{assert}\"\n"))]);
        assert_eq!(found.len(), 1, "{assert}: {found:?}");
        assert!(found[0].starts_with("6:11: a subquery is not allowed in a rule expression"), "{assert}: {found:?}");
    }
    // The key, money and `when` are expressions too.
    let found = problems(&[check("key", "  assert: after.amount > 0\n  key: { id: \"(SELECT 1)\" }\n")]);
    assert!(found.iter().any(|p| p.starts_with("7:14: a subquery")), "{found:?}");
    let found = problems(&[check("when", "  when: \"EXISTS (SELECT 1)\"\n  assert: after.amount > 0\n")]);
    assert!(found.iter().any(|p| p.starts_with("6:9: a subquery")), "{found:?}");

    // Reconcile's expect reads a pair, not tables.
    let pair = rule(
        "id: r\nowner: t\nseverity: low\nreconcile:\n  left: { table: s.pay, key: after.order_id }\n  right: { table: s.ord, key: after.id }\n  within: 1m\n  expect: \"left.amount = (SELECT 1)\"\n",
    );
    let pair = problems(&[pair]);
    assert!(pair.iter().any(|p| p.starts_with("8:11: a subquery is not allowed")), "{pair:?}");

    // A statement is no expression, and nothing may follow the expression.
    for (assert, expected) in [
        ("DROP TABLE t", "6:16: in `DROP TABLE t`: expected the end of the expression, found `TABLE`"),
        (
            "after.amount > 0; DROP TABLE t",
            "6:27: in `after.amount > 0; DROP TABLE t`: expected the end of the expression, found `;`",
        ),
        (
            "after.amount > 0; SELECT 1",
            "6:27: in `after.amount > 0; SELECT 1`: expected the end of the expression, found `;`",
        ),
    ] {
        let found = problems(&[check("stmt", &format!("  assert: \"{assert}\"\n"))]);
        assert!(found.len() == 1 && found[0].starts_with(expected), "{assert}: {found:?}");
    }
}

#[test]
fn message_templates_read_no_file_and_no_environment() {
    let secret = Secret::new();
    let file = secret.0.display();
    let path = std::env::var("PATH").unwrap();
    for message in [
        format!("{{% include '{file}' %}}"),
        format!("{{% import '{file}' as s %}}x"),
        format!("{{% extends '{file}' %}}"),
        "{{ PATH }}{{ HOME }}{{ env }}".to_string(),
    ] {
        let r = check("m", &format!("  assert: after.amount > 0\n  message: \"{message}\"\n"));
        let findings = run(&[r], &[insert(1, &[("id", Value::Int(1)), ("amount", Value::Int(-1))])], 1);
        let [finding] = &findings[..] else { panic!("{message}: {findings:?}") };
        assert!(!finding.message.contains("hunter2") && !finding.message.contains(&path), "{}", finding.message);
    }
}

/// A file only the test knows, removed when the test ends.
struct Secret(std::path::PathBuf);

impl Secret {
    fn new() -> Secret {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let path = std::env::temp_dir().join(format!("fundguard-secret-{}-{nanos}", std::process::id()));
        std::fs::write(&path, "hunter2").unwrap();
        Secret(path)
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
