//! The rule file as written: serde types that mirror the YAML one to one.
//!
//! Every struct denies unknown keys, and every value a later check may complain
//! about is [`Spanned`], so the complaint can point at its line and column.
//! These types are only the input to validation ([`crate::Rule`] is what runs).

use std::collections::BTreeMap;

use fundguard_core::Severity;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// One rule file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    pub id: Spanned<String>,
    #[serde(default)]
    pub description: String,
    pub owner: Spanned<String>,
    pub severity: Spanned<Severity>,
    /// Overrides the severity's default detection deadline.
    #[serde(default)]
    pub deadline: Option<Spanned<String>>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The body: exactly one rule kind must be present.
    #[serde(default)]
    pub check: Option<Spanned<CheckBody>>,
    #[serde(default)]
    pub tests: Vec<TestCase>,
}

fn yes() -> bool {
    true
}

/// A `check` rule: every change event of the watched tables that passes `when` must satisfy `assert`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    pub tables: Vec<Spanned<String>>,
    #[serde(default)]
    pub when: Option<Spanned<String>>,
    pub assert: Spanned<String>,
    /// Finding key: output name → SQL expression.
    #[serde(default)]
    pub key: Option<BTreeMap<String, Spanned<String>>>,
    #[serde(default)]
    pub message: Option<Spanned<String>>,
    #[serde(default)]
    pub money: Option<MoneyBody>,
}

/// Money at risk: SQL expressions for the amount and (optionally) the currency.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoneyBody {
    pub amount: Spanned<String>,
    #[serde(default)]
    pub currency: Option<Spanned<String>>,
}

/// A test inside a rule file: events in, findings expected.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub name: Spanned<String>,
    pub events: Vec<Spanned<TestEventBody>>,
    #[serde(default)]
    pub expect: Vec<ExpectBody>,
}

/// One event of a test timeline.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestEventBody {
    /// Offset from the test's start (`0s`, `2m`) or an RFC 3339 timestamp.
    pub at: Spanned<String>,
    pub table: String,
    pub op: Spanned<String>,
    #[serde(default)]
    pub before: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub after: Option<BTreeMap<String, serde_json::Value>>,
}

/// A finding a test expects.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectBody {
    pub key: BTreeMap<String, serde_json::Value>,
    /// When given, the finding's message must equal it.
    #[serde(default)]
    pub message: Option<String>,
}
