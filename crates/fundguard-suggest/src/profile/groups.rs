//! Rows grouped by a shared id (a ledger transaction's `txn_id`): per group, the amounts
//! on each side of a two-valued direction column (`DEBIT`/`CREDIT`), or the signed amounts
//! when there is none; at the end of the pass, how many complete groups balanced and how
//! far apart in time a group's rows arrived.

use std::collections::HashMap;

use fundguard_core::{Decimal, Row, Value};
use serde::Serialize;

use super::{Durations, key_text, number};
use crate::layout::TableLayout;

/// Group columns, amounts and direction columns considered per table.
const BOUND: usize = 4;
/// Groups whose rows are kept, to find a real balanced group for tests.
const EXAMPLE_GROUPS: usize = 32;
/// Rows of one group kept for an example.
const EXAMPLE_ROWS: usize = 6;

/// One way of balancing a table's groups.
#[derive(Debug, Clone, Serialize)]
pub struct GroupProfile {
    pub group: String,
    pub amount: String,
    /// The direction column and its two values; `None`: signed amounts.
    pub direction: Option<(String, [String; 2])>,
    /// Rows with a group id and an amount.
    pub rows: u64,
    pub groups: u64,
    /// Groups of more than one row.
    pub shared: u64,
    /// Groups complete by the end of the sample (their last row more than the window
    /// before it): the ones judged.
    pub judged: u64,
    /// Of those, groups whose two sides were equal (signed: summed to zero) with rows on
    /// both sides.
    pub balanced: u64,
    /// Time between a group's first and last row.
    pub spread: Durations,
    /// The window a group is complete in (from the spread).
    pub within: i64,
    /// Ids of judged groups that did not balance (the first few).
    pub unbalanced: Vec<String>,
    /// The rows of a real balanced group with both sides, with their commit times.
    #[serde(skip)]
    pub example: Vec<(i64, Row)>,
}

/// One group's running figures: per amount, per candidate side, the sums.
#[derive(Default)]
struct Group {
    first: i64,
    last: i64,
    rows: u64,
    /// Per amount × (signed positive, signed negative, then each direction's two values).
    sums: Vec<Decimal>,
    /// Per amount × side: rows counted.
    counts: Vec<u32>,
    /// Whether this group keeps its rows (one of the first groups).
    keeps: bool,
    example: Vec<(i64, Row)>,
}

/// The groups of one table, for every group column.
pub(super) struct Groups {
    columns: Vec<String>,
    amounts: Vec<String>,
    directions: Vec<Direction>,
    per_column: Vec<HashMap<String, Group>>,
    rows: Vec<u64>,
    kept: usize,
}

struct Direction {
    column: String,
    values: Vec<String>,
    /// A third value was seen: not a direction.
    dead: bool,
}

impl Groups {
    /// Only append-only tables are ledgers; whether this one was is judged at the end.
    pub(super) fn new(table: &TableLayout) -> Option<Groups> {
        let columns: Vec<String> = table.groups.iter().take(BOUND).cloned().collect();
        let amounts: Vec<String> = table.money.iter().take(BOUND).cloned().collect();
        if columns.is_empty() || amounts.is_empty() {
            return None;
        }
        let directions = table
            .dimensions
            .iter()
            .chain(table.status.iter())
            .take(BOUND)
            .map(|c| Direction { column: c.clone(), values: Vec::new(), dead: false })
            .collect();
        Some(Groups {
            per_column: columns.iter().map(|_| HashMap::new()).collect(),
            rows: vec![0; columns.len()],
            columns,
            amounts,
            directions,
            kept: 0,
        })
    }

    fn sides(&self) -> usize {
        2 + 2 * self.directions.len()
    }

    pub(super) fn observe(&mut self, at: i64, row: &Row) {
        // The side of the row in each direction column (None: no value, or not a direction).
        let mut side_of: Vec<Option<usize>> = Vec::with_capacity(self.directions.len());
        for d in &mut self.directions {
            let value = match row.get(&d.column) {
                Some(Value::String(s)) if !d.dead => Some(s.as_str()),
                _ => None,
            };
            let side = value.and_then(|v| match d.values.iter().position(|x| x == v) {
                Some(i) => Some(i),
                None if d.values.len() < 2 => {
                    d.values.push(v.to_string());
                    Some(d.values.len() - 1)
                }
                None => {
                    d.dead = true;
                    None
                }
            });
            side_of.push(side);
        }
        let amounts: Vec<Option<Decimal>> = self.amounts.iter().map(|a| row.get(a).and_then(number)).collect();
        let sides = self.sides();
        for (i, column) in self.columns.iter().enumerate() {
            let Some(key) = row.get(column).and_then(key_text) else { continue };
            self.rows[i] += 1;
            let kept = &mut self.kept;
            let group = self.per_column[i].entry(key).or_insert_with(|| {
                let keeps = *kept < EXAMPLE_GROUPS;
                *kept += usize::from(keeps);
                Group {
                    first: at,
                    last: at,
                    sums: vec![Decimal::ZERO; amounts.len() * sides],
                    counts: vec![0; amounts.len() * sides],
                    keeps,
                    ..Group::default()
                }
            });
            group.first = group.first.min(at);
            group.last = group.last.max(at);
            group.rows += 1;
            if group.keeps && group.example.len() < EXAMPLE_ROWS {
                group.example.push((at, row.clone()));
            }
            for (m, amount) in amounts.iter().enumerate() {
                let Some(amount) = amount else { continue };
                let base = m * sides;
                let mut add = |slot: usize, value: Decimal| {
                    group.sums[base + slot] =
                        group.sums[base + slot].checked_add(value).unwrap_or(group.sums[base + slot]);
                    group.counts[base + slot] += 1;
                };
                if amount.is_sign_negative() && !amount.is_zero() {
                    add(1, *amount);
                } else if !amount.is_zero() {
                    add(0, *amount);
                }
                for (d, side) in side_of.iter().enumerate() {
                    if let Some(s) = side {
                        add(2 + 2 * d + s, *amount);
                    }
                }
            }
        }
    }

    /// Every (group column, amount, direction) whose groups were judged, best first.
    pub(super) fn finish(self, end: i64) -> Vec<GroupProfile> {
        let sides = self.sides();
        let mut out = Vec::new();
        for (i, column) in self.columns.iter().enumerate() {
            let groups = &self.per_column[i];
            let shared = groups.values().filter(|g| g.rows > 1).count() as u64;
            let spreads: Vec<i64> = groups.values().filter(|g| g.rows > 1).map(|g| g.last - g.first).collect();
            let spread = Durations::of(spreads);
            let within = crate::suggest::window(spread.max_micros);
            for (m, amount) in self.amounts.iter().enumerate() {
                // `None`: signed amounts; `Some(d)`: direction column `d`.
                let ways = std::iter::once(None).chain(
                    self.directions
                        .iter()
                        .enumerate()
                        .filter(|(_, d)| !d.dead && d.values.len() == 2)
                        .map(|(d, _)| Some(d)),
                );
                for way in ways {
                    let (a, b) = match way {
                        None => (m * sides, m * sides + 1),
                        Some(d) => (m * sides + 2 + 2 * d, m * sides + 3 + 2 * d),
                    };
                    let balanced_group = |g: &Group| {
                        g.counts[a] > 0
                            && g.counts[b] > 0
                            && match way {
                                None => g.sums[a].checked_add(g.sums[b]).is_some_and(|s| s.is_zero()),
                                Some(_) => g.sums[a] == g.sums[b],
                            }
                    };
                    let mut judged = 0;
                    let mut balanced = 0;
                    let mut unbalanced = Vec::new();
                    for (key, g) in groups {
                        if g.last.saturating_add(within) > end {
                            continue;
                        }
                        judged += 1;
                        if balanced_group(g) {
                            balanced += 1;
                        } else if unbalanced.len() < 5 {
                            unbalanced.push(key.clone());
                        }
                    }
                    unbalanced.sort();
                    let example = groups
                        .values()
                        .filter(|g| g.keeps && g.example.len() as u64 == g.rows && balanced_group(g))
                        .min_by_key(|g| g.first)
                        .map(|g| g.example.clone())
                        .unwrap_or_default();
                    out.push(GroupProfile {
                        group: column.clone(),
                        amount: amount.clone(),
                        direction: way.map(|d| {
                            let dir = &self.directions[d];
                            (dir.column.clone(), [dir.values[0].clone(), dir.values[1].clone()])
                        }),
                        rows: self.rows[i],
                        groups: groups.len() as u64,
                        shared,
                        judged,
                        balanced,
                        spread: spread.clone(),
                        within,
                        unbalanced,
                        example,
                    });
                }
            }
        }
        out.sort_by_key(|g| std::cmp::Reverse(g.balanced));
        out
    }
}
