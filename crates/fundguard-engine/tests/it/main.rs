//! Integration tests of the engine: check semantics, validation against schemas, determinism.

mod check;
mod confinement;
mod determinism;
mod drift;
mod lookup;
mod ordering;
mod projection;
mod props;
mod script;
mod stateful;
mod validation;

use std::sync::Arc;

use fundguard_core::{ChangeEvent, EventTime, Finding, Op, Position, Row, TableSchemas, Value};
use fundguard_engine::Engine;
use fundguard_rules::{Rule, parse_rule};

/// A rule from YAML text; panics with the diagnostics when it is invalid.
pub fn rule(text: &str) -> Rule {
    let (rule, problems) = parse_rule(Arc::from("test.yaml"), text);
    assert!(problems.is_empty(), "{problems:?}");
    rule.unwrap()
}

/// A check rule on `shop.t` with the given body lines.
pub fn check(id: &str, body: &str) -> Rule {
    rule(&format!("id: {id}\nowner: team\nseverity: critical\ncheck:\n  tables: [shop.t]\n{body}"))
}

pub fn row(cols: &[(&str, Value)]) -> Row {
    cols.iter().map(|(n, v)| (*n, v.clone())).collect()
}

pub fn event(seq: u64, op: Op, before: Option<Row>, after: Option<Row>) -> ChangeEvent {
    ChangeEvent {
        table: Arc::from("shop.t"),
        op,
        before,
        after,
        commit_time: EventTime::from_secs(1_700_000_000 + seq as i64),
        position: Position::Synthetic { seq },
    }
}

pub fn insert(seq: u64, cols: &[(&str, Value)]) -> ChangeEvent {
    event(seq, Op::Insert, None, Some(row(cols)))
}

/// Runs rules over events in batches of `batch` and returns the findings.
pub fn run(rules: &[Rule], events: &[ChangeEvent], batch: usize) -> Vec<Finding> {
    let mut engine = Engine::new(rules, &TableSchemas::default()).unwrap();
    let mut out = Vec::new();
    for chunk in events.chunks(batch.max(1)) {
        engine.process(chunk, EventTime::default(), &mut out).unwrap();
    }
    out
}

pub fn dec(s: &str) -> Value {
    Value::Decimal(s.parse().unwrap())
}
