//! `timeout`: an entity that enters a state must leave it within a duration.
//!
//! Entering arms a deadline; leaving disarms it; a deadline the watermark passes
//! while still armed is a finding. Leaving exactly at the deadline is in time.

use std::collections::BTreeSet;
use std::sync::Arc;

use fundguard_core::{EventTime, Value};
use fundguard_rules::{KeyType, TimeoutRule};
use serde::{Deserialize, Serialize};

use super::{
    DimensionCache, Emit, KeyNorm, Origin, Projection, Record, Snapshot, StateKey, StatefulKind, key_name, money_exprs,
    money_from,
};
use crate::FastMap;

#[derive(Clone, Serialize, Deserialize)]
struct Armed {
    deadline: EventTime,
    /// The row that entered the state: where it came from and its projected values.
    origin: Origin,
    values: Vec<Value>,
}

pub(crate) struct Timeout {
    rule: TimeoutRule,
    projections: Vec<Projection>,
    names: Vec<Arc<str>>,
    key_name: String,
    /// Shared with the copies checkpoints take ([`StatefulKind::snapshot`]): copying
    /// only counts references. Armed entities are inserted and removed, never edited.
    armed: FastMap<StateKey, Arc<Armed>>,
    deadlines: BTreeSet<(EventTime, StateKey)>,
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
        let names = projections[0].exprs.iter().map(|(n, _)| Arc::from(n.as_str())).collect();
        Timeout {
            key_name: key_name(&rule.key),
            rule,
            projections,
            names,
            armed: FastMap::default(),
            deadlines: BTreeSet::new(),
        }
    }
}

impl StatefulKind for Timeout {
    fn projections(&self) -> &[Projection] {
        &self.projections
    }

    fn on_record(&mut self, record: Record, _idle_before: EventTime, _out: &mut Emit) {
        let Some(key) = record.values.first().and_then(|v| KeyNorm(KeyType::Text).key(v)) else { return };
        let is = |i: usize| matches!(record.values.get(i), Some(Value::Bool(true)));
        if is(2) {
            if let Some((key, a)) = self.armed.remove_entry(&key) {
                self.deadlines.remove(&(a.deadline, key));
            }
        } else if is(1) && !self.armed.contains_key(&key) {
            let deadline = record.time.plus(self.rule.within);
            self.deadlines.insert((deadline, key.clone()));
            self.armed.insert(key, Arc::new(Armed { deadline, origin: record.origin, values: record.values }));
        }
    }

    fn fire_timers(&mut self, before: EventTime, out: &mut Emit) {
        while let Some((deadline, _)) = self.deadlines.first() {
            if *deadline >= before {
                break;
            }
            let Some((deadline, key)) = self.deadlines.pop_first() else { break };
            let Some(a) = self.armed.remove(&key) else { continue };
            let shown_key = a.values.first().cloned().unwrap_or_default();
            let message = format!(
                "{}: {}={} entered at {} and had not left by its deadline {} ({:?})",
                out.rule.id, self.key_name, shown_key, a.origin.time, deadline, self.rule.within
            );
            let money = money_from(&self.rule.money, a.values.get(3), a.values.get(4));
            let evidence = vec![a.origin.evidence(&self.names, &a.values)];
            out.finding(vec![(self.key_name.clone(), shown_key)], deadline, message, evidence, money);
        }
    }

    /// Armed entities are never evicted: their deadline always comes first.
    fn evict(&mut self, _before: EventTime, _now: EventTime) {}

    /// Drops the entities that entered their state longest ago.
    fn shed_oldest(&mut self, keys: usize) -> usize {
        let Some(cutoff) = super::shed_cutoff(self.armed.values().map(|a| a.origin.time).collect(), keys) else {
            return 0;
        };
        let before = self.armed.len();
        self.armed.retain(|_, a| a.origin.time > cutoff);
        let armed = &self.armed;
        self.deadlines.retain(|(_, k)| armed.contains_key(k));
        before - self.armed.len()
    }

    fn snapshot(&self) -> Snapshot {
        super::snapshot_of((self.armed.clone(), self.deadlines.clone()))
    }

    fn restore(&mut self, state: &[u8], dimensions: &mut DimensionCache) -> Result<(), String> {
        (self.armed, self.deadlines) = super::decode(state)?;
        for armed in self.armed.values_mut() {
            dimensions.share(&mut Arc::make_mut(armed).origin.dimensions);
        }
        Ok(())
    }

    fn keys(&self) -> usize {
        self.armed.len()
    }

    fn state_bytes(&self) -> usize {
        self.armed
            .iter()
            .map(|(k, a)| 2 * k.text_len() + 160 + a.values.iter().map(super::reconcile::value_bytes).sum::<usize>())
            .sum()
    }
}
