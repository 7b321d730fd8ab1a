//! `timeout`: an entity that enters a state must leave it within a duration.
//!
//! Entering arms a deadline; leaving disarms it; a deadline the watermark passes
//! while still armed is a finding. Leaving exactly at the deadline is in time.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use fundguard_core::{EventTime, Evidence, Money, Value};
use fundguard_rules::{KeyType, TimeoutRule};

use super::{Emit, KeyNorm, Projection, Record, StatefulKind, key_name, money_exprs, money_from};

struct Armed {
    deadline: EventTime,
    entered: EventTime,
    shown_key: Value,
    evidence: Arc<Evidence>,
    money: Option<Money>,
}

pub(crate) struct Timeout {
    rule: TimeoutRule,
    projections: Vec<Projection>,
    key_name: String,
    armed: HashMap<String, Armed>,
    deadlines: BTreeSet<(EventTime, String)>,
}

impl Timeout {
    pub(crate) fn new(rule: TimeoutRule) -> Self {
        let mut exprs = vec![
            ("key".to_string(), rule.key.clone()),
            ("entered".to_string(), rule.enter.clone()),
            ("left".to_string(), rule.exit.clone()),
        ];
        exprs.extend(money_exprs(&rule.money));
        let projections = vec![Projection { table: rule.table.clone(), filter: None, exprs }];
        Timeout { key_name: key_name(&rule.key), rule, projections, armed: HashMap::new(), deadlines: BTreeSet::new() }
    }
}

impl StatefulKind for Timeout {
    fn projections(&self) -> &[Projection] {
        &self.projections
    }

    fn on_record(&mut self, record: Record, _out: &mut Emit) {
        let Some(key) = record.values.first().and_then(|v| KeyNorm(KeyType::Text).key(v)) else { return };
        let is = |i: usize| matches!(record.values.get(i), Some(Value::Bool(true)));
        if is(2) {
            if let Some(a) = self.armed.remove(&key) {
                self.deadlines.remove(&(a.deadline, key));
            }
        } else if is(1) && !self.armed.contains_key(&key) {
            let deadline = record.time.plus(self.rule.within);
            self.deadlines.insert((deadline, key.clone()));
            self.armed.insert(
                key,
                Armed {
                    deadline,
                    entered: record.time,
                    shown_key: record.values[0].clone(),
                    evidence: record.evidence.clone(),
                    money: money_from(record.values.get(3), record.values.get(4)),
                },
            );
        }
    }

    fn fire_timers(&mut self, before: EventTime, out: &mut Emit) {
        while let Some((deadline, _)) = self.deadlines.first() {
            if *deadline >= before {
                break;
            }
            let Some((deadline, key)) = self.deadlines.pop_first() else { break };
            let Some(a) = self.armed.remove(&key) else { continue };
            let message = format!(
                "{}: {}={} entered at {} and had not left by its deadline {} ({:?})",
                out.rule.id, self.key_name, a.shown_key, a.entered, deadline, self.rule.within
            );
            out.finding(vec![(self.key_name.clone(), a.shown_key)], deadline, message, vec![a.evidence], a.money);
        }
    }

    /// Armed entities are never evicted: their deadline always comes first.
    fn evict(&mut self, _before: EventTime) {}

    fn keys(&self) -> usize {
        self.armed.len()
    }

    fn state_bytes(&self) -> usize {
        self.armed.keys().map(|k| 2 * k.len() + 200).sum()
    }
}
