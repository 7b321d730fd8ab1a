//! Rule → the columns it really checks, read from its definition rather than its tags.
//!
//! A column covers only when the rule's verdict depends on it: `assert`, `expect` (with its
//! folded-in `tolerance`), reconcile keys and aggregates, a transition's status and frozen
//! fields, a timeout's `enter`/`exit`, a rate's `numerator` and `group`, the `before.x`/`after.x` a
//! script names (a script that uses a row as a whole is unknown coverage). A `when` only
//! chooses rows, so a column read there alone is not covered. Expressions are read with
//! the engine's own reader ([`fundguard_engine::columns_read`]); `sql` rules are planned by
//! DataFusion against empty tables of the known schema (see `sql.rs`).

use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, Value, visit_expressions};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use fundguard_engine::{Scope, columns_read, script_columns_read};
use fundguard_rules::{Expr, Rule, RuleBody};
use serde::Serialize;

/// What one rule covers.
#[derive(Debug, Clone, Serialize)]
pub struct RuleCoverage {
    pub id: String,
    pub owner: String,
    pub kind: &'static str,
    /// (table as the rule names it, column) pairs whose values decide a finding.
    pub checks: Vec<(String, String)>,
    pub reconciles: Vec<Reconciled>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<MetricUse>,
    /// Why the rule could not be analysed: it then covers nothing ("unknown coverage").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown: Option<String>,
}

/// Two tables whose rows a rule matches against each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reconciled {
    pub left: String,
    pub right: String,
    /// Every left row must find a right one (the right side is `required`).
    pub left_to_right: bool,
    /// Every right row must find a left one.
    pub right_to_left: bool,
}

/// What a rule contributes to a table's business metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MetricUse {
    /// A state machine; `intermediate`: its states with a way out that are not initial.
    Transition { table: String, intermediate: Vec<String> },
    /// A deadline on leaving the states its `enter` names.
    Timeout { table: String, states: Vec<String> },
    /// A windowed ratio or count of outcomes (failures) on the table.
    Rate { table: String },
}

/// A rule that covers nothing (yet).
pub fn analyse_nothing(rule: &Rule) -> RuleCoverage {
    RuleCoverage {
        id: rule.id.clone(),
        owner: rule.owner.clone(),
        kind: rule.body.kind(),
        checks: Vec::new(),
        reconciles: Vec::new(),
        metric: None,
        unknown: None,
    }
}

/// Analyses a streaming rule; `sql` rules go through [`crate::sql::SqlAnalyser`].
pub fn analyse(rule: &Rule) -> RuleCoverage {
    let mut coverage = analyse_nothing(rule);
    if let Err(problem) = read(rule, &mut coverage) {
        coverage.checks.clear();
        coverage.reconciles.clear();
        coverage.metric = None;
        coverage.unknown = Some(problem);
    }
    coverage.checks.sort();
    coverage.checks.dedup();
    coverage
}

fn read(rule: &Rule, out: &mut RuleCoverage) -> Result<(), String> {
    match &rule.body {
        RuleBody::Check(check) => {
            for table in &check.tables {
                event(&check.assert, table, out)?;
            }
        }
        RuleBody::Reconcile(r) => {
            for (_, side) in r.sides() {
                event(&side.key, &side.table, out)?;
            }
            for aggregate in &r.aggregates {
                if let Some(column) = &aggregate.column {
                    out.checks.push((r.side(aggregate.side).table.clone(), column.clone()));
                }
            }
            if let Some(expect) = &r.expect {
                for (row, column) in columns_read(expect, Scope::Pair).map_err(|d| d.to_string())? {
                    match row {
                        "left" => out.checks.push((r.left.table.clone(), column)),
                        "right" => out.checks.push((r.right.table.clone(), column)),
                        // `agg.<name>`: its column was added with the aggregates above.
                        _ => {}
                    }
                }
            }
            out.reconciles.push(Reconciled {
                left: r.left.table.clone(),
                right: r.right.table.clone(),
                left_to_right: r.right.required,
                right_to_left: r.left.required,
            });
        }
        RuleBody::Transition(t) => {
            event(&t.key, &t.table, out)?;
            event(&t.status, &t.table, out)?;
            for (_, fields) in &t.frozen {
                out.checks.extend(fields.iter().map(|f| (t.table.clone(), f.clone())));
            }
            let initial = t.initial.clone().unwrap_or_default();
            let mut intermediate: Vec<String> = t
                .allowed
                .iter()
                .flatten()
                .filter(|(state, next)| !next.is_empty() && !initial.contains(state))
                .map(|(state, _)| state.clone())
                .collect();
            intermediate.sort();
            out.metric = Some(MetricUse::Transition { table: t.table.clone(), intermediate });
        }
        RuleBody::Timeout(t) => {
            event(&t.key, &t.table, out)?;
            event(&t.enter, &t.table, out)?;
            event(&t.exit, &t.table, out)?;
            out.metric = Some(MetricUse::Timeout { table: t.table.clone(), states: string_literals(&t.enter.sql) });
        }
        RuleBody::Rate(r) => {
            event(&r.group, &r.table, out)?;
            if let Some(numerator) = &r.numerator {
                event(numerator, &r.table, out)?;
            }
            out.metric = Some(MetricUse::Rate { table: r.table.clone() });
        }
        RuleBody::Script(script) => {
            // The script decides (as a check's assert); its `when` and key only choose rows.
            let columns = script_columns_read(script).map_err(|d| d.to_string())?;
            for table in &script.tables {
                out.checks.extend(columns.iter().map(|(_, column)| (table.clone(), column.clone())));
            }
        }
        RuleBody::Sql(_) => return Err("a sql rule needs the schema: analysed by SqlAnalyser".into()),
    }
    Ok(())
}

/// Adds the columns an event expression reads (from `before` or `after`) on `table`.
fn event(expr: &Expr, table: &str, out: &mut RuleCoverage) -> Result<(), String> {
    let columns = columns_read(expr, Scope::Event).map_err(|d| d.to_string())?;
    out.checks.extend(columns.into_iter().map(|(_, column)| (table.to_string(), column)));
    Ok(())
}

/// The quoted strings of an expression: the states `after.status = 'PAYING'` enters.
fn string_literals(sql: &str) -> Vec<String> {
    let Ok(expr) = Parser::new(&GenericDialect {}).try_with_sql(sql).and_then(|mut p| p.parse_expr()) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let _ = visit_expressions(&expr, |e| {
        if let SqlExpr::Value(v) = e
            && let Value::SingleQuotedString(s) = &v.value
        {
            found.push(s.clone());
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    found.sort();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn rule(yaml: &str) -> Rule {
        let (rule, problems) = fundguard_rules::parse_rule(Arc::from("t.yaml"), yaml);
        assert!(problems.is_empty(), "{problems:?}");
        rule.unwrap()
    }

    #[test]
    fn a_filter_column_does_not_cover() {
        let c = analyse(&rule(
            "id: r\ndescription: d\nowner: o\nseverity: high\ncheck:\n  tables: [shop.t]\n  when: \"after.status = 'PAID'\"\n  assert: \"after.fee >= 0\"\n  key: { id: after.id }\n",
        ));
        assert_eq!(c.checks, vec![("shop.t".to_string(), "fee".to_string())]);
    }

    #[test]
    fn reconcile_covers_keys_expect_and_aggregates_with_its_direction() {
        let c = analyse(&rule(
            "id: r\ndescription: d\nowner: o\nseverity: high\nreconcile:\n  left: { table: a.p, key: after.order_id, when: \"after.status = 'S'\" }\n  right: { table: a.r, key: after.order_id, required: false }\n  within: 1m\n  cardinality: one_to_many\n  aggregates: { refunded: \"sum(right.amount)\" }\n  expect: \"agg.refunded <= left.amount\"\n",
        ));
        let checks: Vec<String> = c.checks.iter().map(|(t, c)| format!("{t}.{c}")).collect();
        assert_eq!(checks, ["a.p.amount", "a.p.order_id", "a.r.amount", "a.r.order_id"]);
        assert_eq!(
            c.reconciles,
            [Reconciled { left: "a.p".into(), right: "a.r".into(), left_to_right: false, right_to_left: true }]
        );
    }

    #[test]
    fn timeout_states_come_from_enter() {
        assert_eq!(string_literals("after.status IN ('PAYING', 'AUTHORISED')"), ["AUTHORISED", "PAYING"]);
        assert!(string_literals("((").is_empty());
    }
}
