//! Validation against declared schemas: unknown columns and type errors, located.

use std::collections::BTreeMap;

use fundguard_core::{ColumnType, TableSchemas};
use fundguard_engine::Engine;

use crate::check;

fn schema() -> TableSchemas {
    let cols: BTreeMap<String, ColumnType> =
        [("id", ColumnType::Int), ("amount", ColumnType::Int), ("status", ColumnType::String)]
            .into_iter()
            .map(|(n, t)| (n.to_string(), t))
            .collect();
    TableSchemas { tables: [("shop.t".to_string(), cols)].into() }
}

fn problems(body: &str) -> Vec<String> {
    match Engine::new(&[check("r", body)], &schema()) {
        Ok(_) => Vec::new(),
        Err(d) => d.iter().map(|d| format!("{}:{}: {}", d.location.line, d.location.column, d.message)).collect(),
    }
}

#[test]
fn unknown_column_is_reported_at_its_expression() {
    let p = problems("  when: after.status = 'PAID'\n  assert: after.amout > 0\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("7:11: unknown column `after.amout`"), "{p:?}");
}

#[test]
fn unknown_names_outside_the_images() {
    let p = problems("  assert: amount > 0\n");
    assert!(
        p[0].contains("unknown column `amount`: expected op, table, commit_time, before.<column>, after.<column> or lookup.<name>.<column>"),
        "{p:?}"
    );
    let p = problems("  assert: left.amount > 0\n");
    assert!(p[0].contains("unknown row `left`"), "{p:?}");
}

#[test]
fn assert_must_be_boolean() {
    let p = problems("  assert: after.amount + 1\n");
    assert!(p[0].contains("expected a Boolean expression"), "{p:?}");
}

#[test]
fn syntax_errors_point_into_the_expression() {
    let p = problems("  assert: after.amount >\n");
    assert!(p[0].starts_with("6:11: in `after.amount >`: Expected: an expression"), "{p:?}");
}

#[test]
fn unknown_functions_are_errors() {
    let p = problems("  assert: lenght(after.status) > 0\n");
    assert!(p[0].contains("lenght"), "{p:?}");
}

#[test]
fn a_bad_message_template_is_reported() {
    let p = problems("  assert: after.amount > 0\n  message: \"{{ after.id \"\n");
    assert!(p[0].contains("message template"), "{p:?}");
}

/// Regression (found by fuzzing): DataFusion's planner recurses once per level of an
/// operator chain, and a 300-term `OR` overflowed a 2 MiB thread stack — the process
/// died on a rule reload. Deep expressions are refused, located, before planning.
#[test]
fn an_expression_nested_too_deep_is_refused_not_a_stack_overflow() {
    let chain = |n: usize| (0..n).map(|i| format!("after.amount = {i}")).collect::<Vec<_>>().join(" OR ");
    let p = problems(&format!("  assert: {}\n", chain(300)));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("6:11: ") && p[0].contains("nests more than 100 deep"), "{p:?}");
    assert!(p[0].contains("x IN (a, b, …)"), "{p:?}");
    let p = problems(&format!("  assert: {}\n", chain(3000)));
    assert!(p[0].contains("nests more than 100 deep"), "{p:?}");
    assert_eq!(problems(&format!("  assert: {}\n", chain(40))), Vec::<String>::new(), "a chain of 40 compiles");
}

/// Regression (found by fuzzing): minijinja parses a run of unary `-` (or `not`) by
/// recursion outside its depth guard; a few thousand overflowed the stack.
#[test]
fn a_message_template_with_a_long_run_of_prefix_operators_is_refused() {
    let message = |m: &str| problems(&format!("  assert: after.amount > 0\n  message: \"{m}\"\n"));
    let p = message(&format!("refund {{{{ {}after.amount }}}}", "- ".repeat(3000)));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("message template: more than 32 `-` or `not` in a row"), "{p:?}");
    assert!(message(&format!("{{{{ {} x }}}}", "not ".repeat(40)))[0].contains("more than 32"));
    assert_eq!(
        message("refund {{ after.id }} of -{{ -after.amount }} ---------- {{ not not after.ok }}"),
        Vec::<String>::new()
    );
}

/// Regression (found by fuzzing): DataFusion's planner takes tens of KiB of stack per level
/// in debug builds, and a 36-deep `a:b:…` path overflowed this 2 MiB test thread. Planning
/// runs on a stack of its own.
#[test]
fn an_expression_within_the_depth_limit_plans_without_overflowing() {
    let p = problems(&format!("  assert: \"after.amount{} = 1\"\n", ":a".repeat(90)));
    assert!(p.iter().all(|p| !p.contains("nests more than")), "{p:?}");
}

/// Arithmetic on a text column fails on every batch at run time ("Cannot coerce arithmetic
/// expression Int64 * Utf8"); with a schema it is found before any data is read — in a
/// check and in a reconciliation's `expect` alike.
#[test]
fn arithmetic_on_text_is_found_before_any_data_is_read() {
    let p = problems("  assert: after.amount * after.status > 0\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("6:11:") && p[0].contains("Cannot coerce arithmetic expression Int64 * Utf8"), "{p:?}");

    let rule = crate::rule(
        "id: r\nowner: t\nseverity: high\nreconcile:\n  left: { table: shop.t, key: after.id }\n  right: { table: shop.t, key: after.id }\n  within: 1m\n  expect: left.amount * right.status = 0\n",
    );
    let found = Engine::new(&[rule], &schema()).err().unwrap_or_default();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].location.line == 8, "{found:?}");
}

/// A reconciliation message naming a column its table does not declare is refused.
#[test]
fn a_reconcile_message_naming_an_undeclared_column_is_refused() {
    let rule = crate::rule(
        "id: r\nowner: t\nseverity: high\nreconcile:\n  left: { table: shop.t, key: after.id }\n  right: { table: shop.t, key: after.id }\n  within: 1m\n  message: \"{{ left.channle }} vs {{ right.amount }}\"\n",
    );
    let found = Engine::new(&[rule], &schema()).err().unwrap_or_default();
    assert!(found.iter().any(|d| d.message.contains("channle")), "{found:?}");
}
