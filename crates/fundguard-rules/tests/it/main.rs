//! Integration tests of rule files: parsing, located diagnostics, properties.

mod diagnostics;
mod parse;
mod props;

use std::sync::Arc;

use fundguard_rules::{Diagnostic, Rule, parse_rule};

/// Parses a rule text named `rule.yaml`.
pub fn parse(text: &str) -> (Option<Rule>, Vec<Diagnostic>) {
    parse_rule(Arc::from("rule.yaml"), text)
}

/// The diagnostics of a text, as `line:column: message` strings.
pub fn problems(text: &str) -> Vec<String> {
    parse(text).1.iter().map(|d| format!("{}:{}: {}", d.location.line, d.location.column, d.message)).collect()
}
