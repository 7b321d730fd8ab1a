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
        p[0].contains("unknown column `amount`: expected op, table, commit_time, before.<column> or after.<column>"),
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
