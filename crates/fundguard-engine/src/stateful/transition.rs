//! `transition`: a per-entity state machine over a status column.
//!
//! Each entity (by key) remembers its last status and, once it reaches a freezing
//! state, the values of its frozen fields. A record
//! whose status differs from the last one is a move: forbidden moves and moves the
//! `allowed` table does not list are findings; so is a change of a frozen field.

use std::sync::Arc;

use fundguard_core::{EventTime, Value};
use fundguard_rules::{Expr, KeyType, TransitionRule};
use serde::{Deserialize, Serialize};

use super::{
    DimensionCache, Emit, KeyNorm, Origin, Projection, Record, Snapshot, StateKey, StatefulKind, Sweeper, key_name,
    money_exprs, money_from,
};
use crate::FastMap;

#[derive(Clone, Serialize, Deserialize)]
struct Entity {
    status: String,
    /// Per frozen spec: the field values when the entity first reached one of its states.
    frozen: Vec<Option<Vec<Value>>>,
    /// Where the last row came from and its projected values: a finding shows it in full
    /// as the previous row. Empty in state restored from a checkpoint written before the
    /// values were kept; that row then shows key and status only.
    last: Origin,
    #[serde(default)]
    values: Vec<Value>,
    touched: EventTime,
}

impl Entity {
    /// An estimate of the bytes it holds, its key (`key_len`) included.
    fn bytes(&self, key_len: usize) -> usize {
        let snapshots = self.frozen.iter().flatten().flatten();
        160 + key_len + self.values.iter().chain(snapshots).map(super::reconcile::value_bytes).sum::<usize>()
    }
}

pub(crate) struct Transition {
    rule: TransitionRule,
    projections: Vec<Projection>,
    names: Vec<Arc<str>>,
    /// Column names of the frozen fields, in projection order after key and status.
    frozen_fields: Vec<String>,
    money_at: usize,
    key_name: String,
    /// Entities are shared with the copies checkpoints take ([`StatefulKind::snapshot`]):
    /// copying the map only counts references; a changed entity is replaced, never edited.
    entities: FastMap<StateKey, Arc<Entity>>,
    sweeper: Sweeper,
    bytes: usize,
}

impl Transition {
    pub(crate) fn new(rule: TransitionRule) -> Self {
        let mut frozen_fields: Vec<String> = rule.frozen.iter().flat_map(|(_, f)| f.iter().cloned()).collect();
        frozen_fields.sort();
        frozen_fields.dedup();
        let mut exprs = vec![("key".to_string(), rule.key.clone()), ("status".to_string(), rule.status.clone())];
        for f in &frozen_fields {
            exprs.push((f.clone(), Expr { sql: format!("after.\"{f}\""), at: rule.status.at.clone() }));
        }
        let money_at = exprs.len();
        exprs.extend(money_exprs(&rule.money));
        let projections = vec![Projection { table: rule.table.clone(), filter: rule.when.clone(), exprs }];
        let names = projections[0].exprs.iter().map(|(n, _)| Arc::from(n.as_str())).collect();
        Transition {
            names,
            key_name: key_name(&rule.key),
            rule,
            projections,
            frozen_fields,
            money_at,
            entities: FastMap::default(),
            sweeper: Sweeper::new(),
            bytes: 0,
        }
    }

    fn field(&self, record: &Record, name: &str) -> Value {
        let i = self.frozen_fields.iter().position(|f| f == name).map_or(usize::MAX, |i| i + 2);
        record.values.get(i).cloned().unwrap_or_default()
    }

    fn move_allowed(&self, from: &str, to: &str) -> Result<(), String> {
        if self.rule.forbidden.iter().any(|(a, b)| a == from && b == to) {
            return Err(format!("{from} -> {to} is forbidden"));
        }
        if let Some(allowed) = &self.rule.allowed {
            let ok = allowed.get(from).is_some_and(|next| next.iter().any(|n| n == to));
            if !ok {
                return Err(format!("{from} -> {to} is not an allowed transition"));
            }
        }
        Ok(())
    }
}

impl Transition {
    /// Keeps the entities `keep` accepts, accounting for the bytes freed.
    fn retain(&mut self, keep: impl Fn(&Entity) -> bool) {
        let mut freed = 0;
        self.entities.retain(|k, e| {
            let kept = keep(e);
            if !kept {
                freed += e.bytes(k.text_len());
            }
            kept
        });
        self.bytes = self.bytes.saturating_sub(freed);
    }
}

impl StatefulKind for Transition {
    fn projections(&self) -> &[Projection] {
        &self.projections
    }

    fn on_record(&mut self, record: Record, idle_before: EventTime, out: &mut Emit) {
        let norm = KeyNorm(KeyType::Text);
        let Some(key) = record.values.first().and_then(|v| norm.key(v)) else { return };
        let status = match record.values.get(1) {
            Some(Value::Null) | None => return,
            Some(v) => v.to_string(),
        };
        let money =
            || money_from(&self.rule.money, record.values.get(self.money_at), record.values.get(self.money_at + 1));
        let mut problems: Vec<String> = Vec::new();
        let stored = self.entities.get(&key);
        // An entity idle past the TTL is forgotten: the record starts it anew.
        let previous = stored.filter(|p| p.touched >= idle_before);
        match previous {
            None => {
                if let Some(initial) = &self.rule.initial
                    && !initial.contains(&status)
                {
                    problems.push(format!("starts in {status}, expected one of {}", initial.join(", ")));
                }
            }
            Some(p) if p.status != status => {
                if let Err(e) = self.move_allowed(&p.status, &status) {
                    problems.push(e);
                }
            }
            Some(_) => {}
        }
        // Frozen fields: compare with the values captured when a freezing state was first reached.
        if let Some(p) = previous {
            for (spec, (_, fields)) in self.rule.frozen.iter().enumerate() {
                let Some(Some(snapshot)) = p.frozen.get(spec) else { continue };
                for (field, was) in fields.iter().zip(snapshot) {
                    let now = self.field(&record, field);
                    if &now != was {
                        problems.push(format!(
                            "{field} changed from {was} to {now} after reaching {}",
                            self.rule.frozen[spec].0.join("/")
                        ));
                    }
                }
            }
        }
        if !problems.is_empty() {
            let mut evidence = Vec::new();
            if let Some(p) = previous {
                if p.values.is_empty() {
                    let shown = [record.values[0].clone(), Value::String(p.status.clone())];
                    evidence.push(p.last.evidence(&self.names[..2], &shown));
                } else {
                    evidence.push(p.last.evidence(&self.names, &p.values));
                }
            }
            evidence.push(record.origin.evidence(&self.names, &record.values));
            let message = format!("{}: {}={}: {}", out.rule.id, self.key_name, record.values[0], problems.join("; "));
            let shown_key = vec![(self.key_name.clone(), record.values[0].clone())];
            out.finding(shown_key, record.time, message, evidence, money());
        }
        let snapshot_of = |fields: &[String]| fields.iter().map(|f| self.field(&record, f)).collect::<Vec<_>>();
        let new_snapshots: Vec<Option<Vec<Value>>> = self
            .rule
            .frozen
            .iter()
            .enumerate()
            .map(|(i, (once, fields))| match previous.and_then(|p| p.frozen.get(i).cloned().flatten()) {
                Some(existing) => Some(existing),
                None if once.contains(&status) => Some(snapshot_of(fields)),
                None => None,
            })
            .collect();
        let key_len = key.text_len();
        let held = stored.map_or(0, |p| p.bytes(key_len));
        let entity =
            Entity { status, frozen: new_snapshots, last: record.origin, values: record.values, touched: record.time };
        self.bytes = self.bytes.saturating_sub(held) + entity.bytes(key_len);
        match self.entities.get_mut(&key) {
            Some(slot) => *slot = Arc::new(entity),
            None => {
                self.entities.insert(key, Arc::new(entity));
            }
        }
    }

    fn fire_timers(&mut self, _before: EventTime, _out: &mut Emit) {}

    fn evict(&mut self, before: EventTime, now: EventTime) {
        if !self.sweeper.due(before, now) {
            return;
        }
        self.retain(|e| e.touched >= before);
    }

    fn shed_oldest(&mut self, keys: usize) -> usize {
        let Some(cutoff) = super::shed_cutoff(self.entities.values().map(|e| e.touched).collect(), keys) else {
            return 0;
        };
        let before = self.entities.len();
        self.retain(|e| e.touched > cutoff);
        before - self.entities.len()
    }

    fn snapshot(&self) -> Snapshot {
        super::snapshot_of((self.entities.clone(), self.sweeper.clone(), self.bytes))
    }

    fn restore(&mut self, state: &[u8], dimensions: &mut DimensionCache) -> Result<(), String> {
        (self.entities, self.sweeper, self.bytes) = super::decode(state)?;
        for entity in self.entities.values_mut() {
            dimensions.share(&mut Arc::make_mut(entity).last.dimensions);
        }
        Ok(())
    }

    fn keys(&self) -> usize {
        self.entities.len()
    }

    fn state_bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use fundguard_core::{EventTime, Op, Position, Value};
    use serde::Serialize;

    use super::{Entity, Origin, StateKey};

    /// An entity as checkpoints wrote it before the previous row's values were kept.
    #[derive(Serialize)]
    struct EntityWithoutValues {
        status: String,
        frozen: Vec<Option<Vec<Value>>>,
        last: Origin,
        touched: EventTime,
    }

    #[test]
    fn checkpoints_of_the_old_entity_layout_still_restore() {
        let last = Origin {
            table: "s.ord".into(),
            op: Op::Insert,
            time: EventTime::from_secs(5),
            position: Position::Synthetic { seq: 3 },
            dimensions: Default::default(),
        };
        let old = HashMap::from([(
            "1".to_string(),
            EntityWithoutValues { status: "PAID".into(), frozen: vec![None], last, touched: EventTime::from_secs(5) },
        )]);
        let bytes = super::super::encode(&old).unwrap();
        // Keys were texts then; the integer one reads back as the integer key records make now.
        let restored: crate::FastMap<StateKey, Entity> = super::super::decode(&bytes).unwrap();
        let entity = &restored[&StateKey::Int(1)];
        assert_eq!(entity.status, "PAID");
        assert!(entity.values.is_empty(), "no values: the previous row shows key and status");
        assert_eq!(entity.last.position, Position::Synthetic { seq: 3 });
    }
}
