//! Running the tests inside rule files: each test's events through its rule alone.

use fundguard_core::{EventTime, Finding, TableSchemas, Value};
use fundguard_rules::{ExpectedFinding, Rule, RuleTest};

use crate::Engine;

/// The result of one rule test.
#[derive(Debug)]
pub struct TestOutcome {
    pub rule: String,
    pub test: String,
    /// Expected findings that did not occur.
    pub missing: Vec<ExpectedFinding>,
    /// Findings that occurred but were not expected.
    pub unexpected: Vec<Finding>,
    /// Set when the rule could not run at all.
    pub error: Option<String>,
}

impl TestOutcome {
    pub fn passed(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.error.is_none()
    }

    /// Why the test failed, in one line; `None` when it passed.
    pub fn failure(&self) -> Option<String> {
        if self.passed() {
            return None;
        }
        Some(match &self.error {
            Some(e) => format!("test `{}`: {e}", self.test),
            None => format!(
                "test `{}`: {} expected finding(s) missing, {} unexpected",
                self.test,
                self.missing.len(),
                self.unexpected.len()
            ),
        })
    }
}

/// Runs every test of every rule (disabled rules too: a rule is tested before it is enabled).
pub fn run_rule_tests(rules: &[Rule], schemas: &TableSchemas) -> Vec<TestOutcome> {
    let mut outcomes = Vec::new();
    for rule in rules {
        for test in &rule.tests {
            outcomes.push(run_one(rule, test, schemas));
        }
    }
    outcomes
}

fn run_one(rule: &Rule, test: &RuleTest, schemas: &TableSchemas) -> TestOutcome {
    let mut outcome = TestOutcome {
        rule: rule.id.clone(),
        test: test.name.clone(),
        missing: Vec::new(),
        unexpected: Vec::new(),
        error: None,
    };
    let mut enabled = rule.clone();
    enabled.enabled = true;
    let mut engine = match Engine::new(std::slice::from_ref(&enabled), schemas) {
        Ok(e) => e,
        Err(d) => {
            outcome.error = Some(d.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"));
            return outcome;
        }
    };
    for (name, rows) in &test.lookups {
        engine.set_lookup(name, crate::LookupSnapshot { rows: rows.clone(), as_of: None });
    }
    let mut events: Vec<_> = test.events.iter().map(|e| typed(e.event.clone(), schemas)).collect();
    events.sort_by_key(|e| e.commit_time);
    let mut findings = Vec::new();
    if let Err(e) = engine.process(&events, EventTime::default(), &mut findings) {
        outcome.error = Some(e.to_string());
        return outcome;
    }
    engine.finish(EventTime::default(), &mut findings);
    if let Some(stats) = engine.stats().first()
        && let Some(err) = &stats.last_error
    {
        outcome.error = Some(format!("rule error: {err}"));
    }
    let mut remaining = findings;
    for expected in &test.expect {
        match remaining.iter().position(|f| matches(expected, f)) {
            Some(i) => {
                remaining.remove(i);
            }
            None => outcome.missing.push(expected.clone()),
        }
    }
    outcome.unexpected = remaining;
    outcome
}

/// A test event typed as a decoder types what it reads: each value of a column the schema
/// declares is coerced to that type (kept as written when it cannot be), so a rule's tests
/// see what it sees live — `"7"` is the integer 7 in an `int` column.
fn typed(mut event: fundguard_core::ChangeEvent, schemas: &TableSchemas) -> fundguard_core::ChangeEvent {
    let Some(columns) = schemas.table(&event.table) else { return event };
    for row in [event.before.as_mut(), event.after.as_mut()].into_iter().flatten() {
        let _ = row.try_map_values(|name, value| {
            Ok::<_, ()>(match columns.get(name) {
                Some(t) => t.coerce(value.clone()).unwrap_or(value),
                None => value,
            })
        });
    }
    event
}

/// An expected finding matches when every key column it names is equal (numbers
/// compare by value, so `1000` matches `1000.00`) and, if given, the message is equal.
fn matches(expected: &ExpectedFinding, finding: &Finding) -> bool {
    expected.key.iter().all(|(k, v)| finding.key.get(k).is_some_and(|actual| same_value(v, actual)))
        && expected.message.as_ref().is_none_or(|m| *m == finding.message)
}

fn same_value(a: &Value, b: &Value) -> bool {
    use fundguard_core::Decimal;
    let as_decimal = |v: &Value| match v {
        Value::Int(i) => Some(Decimal::from(*i)),
        Value::Decimal(d) => Some(*d),
        _ => None,
    };
    match (as_decimal(a), as_decimal(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b || a.to_string() == b.to_string(),
    }
}
