//! The most frequent values of one column, counted in bounded memory.
//!
//! Space-Saving (Metwally, Agrawal and El Abbadi, 2005): `capacity` counters; a value
//! already counted adds one to its counter; a new value takes a free counter, or the
//! smallest one, inheriting its count as an over-estimate (`error`). Every value that
//! occurs more than `rows / capacity` times is guaranteed a counter, and no count is
//! under its true value by construction or over it by more than its `error` — exactly what
//! ranking the dimension values of an incident needs: the frequent ones, with bounds.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// A value's count: at least `count - error`, at most `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    pub count: u64,
    pub error: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopK {
    capacity: usize,
    /// foldhash, not SipHash: the baseline looks up a value of every counted column of
    /// every sampled event, and none of it is chosen by an attacker who could flood a bucket
    /// (a flood only replaces counters).
    /// (A fixed seed: the same values in the same order give the same counters.)
    counters: HashMap<String, Counter, foldhash::fast::FixedState>,
    /// Values added.
    rows: u64,
    /// Counters taken over by a new value: a column with mostly new values (an id) keeps
    /// replacing, and [`TopK::is_saturated`] says so.
    replaced: u64,
    /// No counter is below this: a replacement takes the first counter at it, and scans
    /// them all only when none is left there (values seen once are many; a scan per new
    /// value would cost a pass over every counter).
    #[serde(default)]
    floor: u64,
}

impl TopK {
    pub fn new(capacity: usize) -> TopK {
        TopK { capacity: capacity.max(1), counters: HashMap::default(), rows: 0, replaced: 0, floor: 0 }
    }

    pub fn add(&mut self, value: &str) {
        self.add_n(value, 1);
    }

    /// Adds `n` occurrences of `value` at once.
    pub fn add_count(&mut self, value: &str, n: u64) {
        self.add_n(value, n);
    }

    fn add_n(&mut self, value: &str, n: u64) {
        self.rows += n;
        if let Some(c) = self.counters.get_mut(value) {
            c.count += n;
            return;
        }
        if self.counters.len() < self.capacity {
            self.counters.insert(value.to_string(), Counter { count: n, error: 0 });
            return;
        }
        let floor = self.floor;
        let at_floor = self.counters.iter().find(|(_, c)| c.count <= floor);
        let Some((smallest, min)) = at_floor.or_else(|| self.counters.iter().min_by_key(|(_, c)| c.count)) else {
            return;
        };
        let (smallest, min) = (smallest.clone(), min.count);
        self.floor = min;
        self.counters.remove(&smallest);
        self.counters.insert(value.to_string(), Counter { count: min + n, error: min });
        self.replaced += 1;
    }

    /// Values added.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Distinct values tracked.
    pub fn len(&self) -> usize {
        self.counters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    /// More distinct values than counters, so many of them new that a quarter of the rows
    /// took a counter over (an id, a free text): its counts say nothing about any one
    /// value, so it is not a dimension.
    pub fn is_saturated(&self) -> bool {
        self.rows >= 4 * self.capacity as u64 && self.replaced * 4 > self.rows
    }

    /// The count of `value`: its counter, or — for a value without one — at most the
    /// smallest counter when every counter is taken (it may have held one and lost it),
    /// and exactly zero when not.
    pub fn estimate(&self, value: &str) -> Counter {
        if let Some(c) = self.counters.get(value) {
            return *c;
        }
        if self.counters.len() < self.capacity {
            return Counter { count: 0, error: 0 };
        }
        let min = self.counters.values().map(|c| c.count).min().unwrap_or(0);
        Counter { count: min, error: min }
    }

    /// The tracked values, most frequent first (ties by value, so the order is stable).
    pub fn top(&self) -> Vec<(&str, Counter)> {
        let mut all: Vec<_> = self.counters.iter().map(|(v, c)| (v.as_str(), *c)).collect();
        all.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
        all
    }

    /// Adds another sketch's counts (both over disjoint rows).
    pub fn merge(&mut self, other: &TopK) {
        let rows = self.rows + other.rows;
        for (value, c) in &other.counters {
            self.add_n(value, c.count);
            if let Some(mine) = self.counters.get_mut(value.as_str()) {
                mine.error += c.error;
            }
        }
        self.rows = rows;
        self.replaced += other.replaced;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequent_values_are_counted_within_their_error() {
        let mut top = TopK::new(4);
        for i in 0..1000 {
            let value = if i % 2 == 0 { "card".to_string() } else { format!("id{i}") };
            top.add(&value);
        }
        let card = top.estimate("card");
        assert!(card.count >= 500 && card.count - card.error <= 500, "{card:?}");
        assert!(top.is_saturated(), "mostly unique values");
        assert_eq!(top.top()[0].0, "card");
        let mut few = TopK::new(4);
        (0..100).for_each(|i| few.add(["a", "b", "c"][i % 3]));
        assert!(!few.is_saturated());
        assert_eq!(few.estimate("a"), Counter { count: 34, error: 0 });
        assert_eq!(few.estimate("z"), Counter { count: 0, error: 0 }, "a free counter means never seen");
    }

    #[test]
    fn merging_two_halves_counts_like_one_sketch() {
        let (mut left, mut right, mut whole) = (TopK::new(8), TopK::new(8), TopK::new(8));
        for i in 0..300 {
            let v = ["a", "b", "c", "d"][i % 4];
            whole.add(v);
            if i < 150 { left.add(v) } else { right.add(v) }
        }
        left.merge(&right);
        assert_eq!(left.rows(), whole.rows());
        assert_eq!(left.top(), whole.top());
    }
}
