//! Validated rules: what the engine compiles and runs.

use std::time::Duration;

use fundguard_core::{ChangeEvent, Severity, Value};

use crate::Location;

/// A SQL expression with where it was written, so the engine's errors can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    pub sql: String,
    pub at: Location,
}

/// A validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub description: String,
    pub owner: String,
    pub severity: Severity,
    /// The detection deadline: the severity's default unless the file sets one.
    pub deadline: Duration,
    pub tags: Vec<String>,
    pub enabled: bool,
    pub body: RuleBody,
    pub tests: Vec<RuleTest>,
    /// Where the rule's `id` is: the rule's own location.
    pub at: Location,
}

/// What a rule checks. One variant per rule kind.
#[derive(Debug, Clone)]
pub enum RuleBody {
    Check(CheckRule),
}

impl RuleBody {
    pub fn kind(&self) -> &'static str {
        match self {
            RuleBody::Check(_) => "check",
        }
    }

    /// The tables the rule reads.
    pub fn tables(&self) -> &[String] {
        match self {
            RuleBody::Check(c) => &c.tables,
        }
    }
}

/// A row-level invariant on change events.
#[derive(Debug, Clone)]
pub struct CheckRule {
    pub tables: Vec<String>,
    pub when: Option<Expr>,
    pub assert: Expr,
    /// Finding key columns: output name → expression. Never empty.
    pub key: Vec<(String, Expr)>,
    /// A MiniJinja template over `table`, `op`, `commit_time`, `before` and `after`.
    pub message: Option<Expr>,
    pub money: Option<MoneyExprs>,
}

/// Expressions for the money at risk.
#[derive(Debug, Clone)]
pub struct MoneyExprs {
    pub amount: Expr,
    pub currency: Option<Expr>,
}

/// A test from a rule file.
#[derive(Debug, Clone)]
pub struct RuleTest {
    pub name: String,
    pub events: Vec<TestEvent>,
    pub expect: Vec<ExpectedFinding>,
    pub at: Location,
}

/// A test event, already turned into a change event.
#[derive(Debug, Clone)]
pub struct TestEvent {
    pub event: ChangeEvent,
    pub at: Location,
}

/// A finding a test expects: its key and, optionally, its exact message.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedFinding {
    pub key: Vec<(String, Value)>,
    pub message: Option<String>,
}
