//! Relations between tables (from coverage: `payments.order_id` → `orders`), joined after the
//! pass: for every pair of states (a payment's first SUCCESS, its order's first PAID), how
//! many rows found their counterpart, how often the related amounts and currencies were
//! equal (and their ratios when not: 100 is fen against yuan), whether the referencing rows
//! of one key add up to at most the referenced amount, and the delay between the two sides.

use std::collections::{BTreeMap, HashMap};

use fundguard_core::{Decimal, Value};
use serde::Serialize;

use super::states::{Entity, KeptEntities, Visit};
use super::{Durations, number};
use crate::layout::Layout;

/// Distinct unequal ratios kept per amount pair.
const RATIO_BOUND: usize = 8;
/// Referencing rows of one key kept in an example.
const EXAMPLE_ROWS: usize = 3;

/// One relation, every pair of states.
#[derive(Debug, Clone, Serialize)]
pub struct RelationProfile {
    pub from: String,
    pub via: String,
    pub to: String,
    pub found_by: String,
    pub pairs: Vec<StatePair>,
}

/// Rows of `from` on their first visit to `from_state` against the referenced row's first
/// visit to `to_state` (`""`: the table has no status; every row counts).
#[derive(Debug, Clone, Serialize)]
pub struct StatePair {
    pub from_state: String,
    pub to_state: String,
    /// Referencing rows that reached `from_state` with a reference.
    pub from_rows: u64,
    /// Of those, rows whose referenced row reached `to_state`.
    pub matched: u64,
    /// Commit times of referencing rows with no counterpart.
    #[serde(skip)]
    pub unmatched_from: Vec<i64>,
    /// Referenced rows that reached `to_state`.
    pub to_rows: u64,
    /// Commit times of referenced rows that no referencing row in `from_state` points at.
    #[serde(skip)]
    pub unmatched_to: Vec<i64>,
    /// Referenced rows with more than one referencing row in `from_state`.
    pub keys_with_many: u64,
    /// Delay between the two sides of a match.
    pub delay: Durations,
    /// Matches where the referencing side came after the referenced side.
    pub from_after_to: u64,
    pub amounts: Vec<AmountPair>,
    pub currencies: Vec<CurrencyPair>,
    #[serde(skip)]
    pub example: Option<PairExample>,
}

/// Two amounts of a relation.
#[derive(Debug, Clone, Serialize)]
pub struct AmountPair {
    pub from_column: String,
    pub to_column: String,
    pub compared: u64,
    pub equal: u64,
    /// Referenced rows whose referencing amounts, summed, were compared with its amount.
    pub sums_compared: u64,
    /// … and were at most that amount.
    pub sums_within: u64,
    /// Ratios `from / to` of unequal pairs (a constant 100 is a unit difference).
    pub unequal_ratios: BTreeMap<Decimal, u64>,
}

/// Two currencies of a relation.
#[derive(Debug, Clone, Serialize)]
pub struct CurrencyPair {
    pub from_column: String,
    pub to_column: String,
    pub compared: u64,
    pub equal: u64,
}

/// A real matched key: the referencing rows and the referenced row, for rule tests.
#[derive(Debug, Clone)]
pub struct PairExample {
    pub via: Value,
    pub from: Vec<(Value, Visit)>,
    pub to: (Value, Visit),
    /// Column names of the visits' values (money then currencies) on each side.
    pub from_columns: Vec<String>,
    pub to_columns: Vec<String>,
}

/// Joins every relation whose both tables were tracked.
pub fn join(layout: &Layout, entities: &HashMap<String, KeptEntities>, _end: i64) -> Vec<RelationProfile> {
    let mut out = Vec::new();
    for relation in &layout.relations {
        let (Some(from), Some(to)) = (entities.get(&relation.from), entities.get(&relation.to)) else { continue };
        let Some(via_at) = from.via.iter().position(|v| *v == relation.via) else { continue };
        let (Some(from_layout), Some(to_layout)) = (layout.table(&relation.from), layout.table(&relation.to)) else {
            continue;
        };
        // Referenced key → referencing entities, in key order so examples are stable.
        let mut groups: BTreeMap<(u8, i64, String), Vec<&Entity>> = BTreeMap::new();
        for e in from.entities.values() {
            if let Some(Some(via)) = e.via.get(via_at) {
                groups.entry(order(via)).or_default().push(e);
            }
        }
        let money_from = from_layout.money.len();
        let money_to = to_layout.money.len();
        let mut pairs = Vec::new();
        for (fs, from_state) in from.states.iter().enumerate() {
            for (ts, to_state) in to.states.iter().enumerate() {
                let (fs, ts) = (fs as u16, ts as u16);
                let mut pair = StatePair {
                    from_state: from_state.clone(),
                    to_state: to_state.clone(),
                    from_rows: 0,
                    matched: 0,
                    unmatched_from: Vec::new(),
                    to_rows: 0,
                    unmatched_to: Vec::new(),
                    keys_with_many: 0,
                    delay: Durations::default(),
                    from_after_to: 0,
                    amounts: Vec::new(),
                    currencies: Vec::new(),
                    example: None,
                };
                for from_column in &from_layout.money {
                    for to_column in &to_layout.money {
                        pair.amounts.push(AmountPair {
                            from_column: from_column.clone(),
                            to_column: to_column.clone(),
                            compared: 0,
                            equal: 0,
                            sums_compared: 0,
                            sums_within: 0,
                            unequal_ratios: BTreeMap::new(),
                        });
                    }
                }
                for from_column in &from_layout.currencies {
                    for to_column in &to_layout.currencies {
                        pair.currencies.push(CurrencyPair {
                            from_column: from_column.clone(),
                            to_column: to_column.clone(),
                            compared: 0,
                            equal: 0,
                        });
                    }
                }
                let mut delays = Vec::new();
                let mut pointed: std::collections::HashSet<&str> = std::collections::HashSet::new();
                for ((_, _, via), members) in &groups {
                    let visits: Vec<(&Entity, &Visit)> =
                        members.iter().filter_map(|e| e.visit(fs).map(|v| (*e, v))).collect();
                    if visits.is_empty() {
                        continue;
                    }
                    pair.from_rows += visits.len() as u64;
                    let target = to.entities.get(via.as_str()).and_then(|t| t.visit(ts).map(|v| (t, v)));
                    let Some((t, tv)) = target else {
                        pair.unmatched_from.extend(visits.iter().map(|(_, v)| v.at));
                        continue;
                    };
                    pointed.insert(via.as_str());
                    pair.matched += visits.len() as u64;
                    if visits.len() > 1 {
                        pair.keys_with_many += 1;
                    }
                    for (_, fv) in &visits {
                        delays.push((fv.at - tv.at).abs());
                        if fv.at > tv.at {
                            pair.from_after_to += 1;
                        }
                    }
                    let mut k = 0;
                    for a in 0..money_from {
                        for b in 0..money_to {
                            let amount = &mut pair.amounts[k];
                            k += 1;
                            let Some(to_amount) = tv.values.get(b).and_then(number) else { continue };
                            let mut sum = Some(Decimal::ZERO);
                            for (_, fv) in &visits {
                                let Some(x) = fv.values.get(a).and_then(number) else {
                                    sum = None;
                                    continue;
                                };
                                sum = sum.and_then(|s| s.checked_add(x));
                                amount.compared += 1;
                                if x == to_amount {
                                    amount.equal += 1;
                                } else if !to_amount.is_zero()
                                    && amount.unequal_ratios.len() < RATIO_BOUND
                                    && let Some(r) = x.checked_div(to_amount)
                                {
                                    let r = r.normalize();
                                    let kept = amount.unequal_ratios.len();
                                    match amount.unequal_ratios.get_mut(&r) {
                                        Some(n) => *n += 1,
                                        None if kept < RATIO_BOUND => {
                                            amount.unequal_ratios.insert(r, 1);
                                        }
                                        None => {}
                                    }
                                }
                            }
                            if let Some(sum) = sum {
                                amount.sums_compared += 1;
                                if sum <= to_amount {
                                    amount.sums_within += 1;
                                }
                            }
                        }
                    }
                    let mut k = 0;
                    for a in 0..from_layout.currencies.len() {
                        for b in 0..to_layout.currencies.len() {
                            let c = &mut pair.currencies[k];
                            k += 1;
                            let Some(to_currency) = tv.values.get(money_to + b).filter(|v| !v.is_null()) else {
                                continue;
                            };
                            for (_, fv) in &visits {
                                let Some(x) = fv.values.get(money_from + a).filter(|v| !v.is_null()) else { continue };
                                c.compared += 1;
                                c.equal += u64::from(x == to_currency);
                            }
                        }
                    }
                    if pair.example.is_none() {
                        pair.example = Some(PairExample {
                            via: t.key.clone(),
                            from: visits
                                .iter()
                                .take(EXAMPLE_ROWS)
                                .map(|(e, v)| (e.key.clone(), (*v).clone()))
                                .collect(),
                            to: (t.key.clone(), tv.clone()),
                            from_columns: from.recorded.clone(),
                            to_columns: to.recorded.clone(),
                        });
                    }
                }
                for (key, t) in &to.entities {
                    if let Some(v) = t.visit(ts) {
                        pair.to_rows += 1;
                        if !pointed.contains(key.as_str()) {
                            pair.unmatched_to.push(v.at);
                        }
                    }
                }
                pair.delay = Durations::of(delays);
                if pair.from_rows > 0 && pair.to_rows > 0 {
                    pairs.push(pair);
                }
            }
        }
        out.push(RelationProfile {
            from: relation.from.clone(),
            via: relation.via.clone(),
            to: relation.to.clone(),
            found_by: relation.found_by.clone(),
            pairs,
        });
    }
    out
}

/// Integer keys by value, then text.
fn order(key: &str) -> (u8, i64, String) {
    match key.parse::<i64>() {
        Ok(i) => (0, i, key.to_string()),
        Err(_) => (1, 0, key.to_string()),
    }
}
