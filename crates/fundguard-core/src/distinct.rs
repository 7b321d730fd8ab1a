//! Distinct values — of a column, of a rule's finding keys — counted exactly up to a bound,
//! then estimated by a k-minimum-values sketch, so a stream of ids costs a fixed amount of
//! memory however long it runs.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use serde::Serialize;

/// Exact values kept per column before switching to the sketch.
pub const EXACT_BOUND: usize = 256;
/// Hashes the sketch keeps (its relative error is about 1/sqrt(K)).
const K: usize = 1024;

/// The distinct values of one column.
#[derive(Debug, Clone)]
pub struct Distinct {
    /// Value text → rows, while there are at most [`EXACT_BOUND`] of them.
    exact: Option<BTreeMap<String, u64>>,
    /// The K smallest hashes seen (always kept, so the switch loses nothing).
    smallest: BTreeSet<u64>,
}

/// What a reader needs: exact counts or an estimate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DistinctSummary {
    Exact { count: usize },
    Estimated { at_least: usize, estimate: u64 },
}

impl Default for Distinct {
    fn default() -> Self {
        Distinct::new()
    }
}

impl Default for DistinctSummary {
    fn default() -> Self {
        DistinctSummary::Exact { count: 0 }
    }
}

impl Distinct {
    pub fn new() -> Self {
        Distinct { exact: Some(BTreeMap::new()), smallest: BTreeSet::new() }
    }

    pub fn add(&mut self, value: &str) {
        if let Some(exact) = &mut self.exact {
            let kept = exact.len();
            match exact.get_mut(value) {
                Some(n) => {
                    *n += 1;
                    return;
                }
                None if kept < EXACT_BOUND => {
                    exact.insert(value.to_string(), 1);
                    return;
                }
                None => {
                    // Past the bound: the sketch starts from every value seen so far.
                    for seen in exact.keys() {
                        self.smallest.insert(hash(seen));
                    }
                    while self.smallest.len() > K {
                        self.smallest.pop_last();
                    }
                    self.exact = None;
                }
            }
        }
        let h = hash(value);
        if self.smallest.len() < K {
            self.smallest.insert(h);
        } else if let Some(&largest) = self.smallest.last()
            && h < largest
            && self.smallest.insert(h)
        {
            self.smallest.pop_last();
        }
    }

    /// The values and their row counts, when there were few enough to keep.
    pub fn values(&self) -> Option<&BTreeMap<String, u64>> {
        self.exact.as_ref()
    }

    pub fn summary(&self) -> DistinctSummary {
        match &self.exact {
            Some(e) => DistinctSummary::Exact { count: e.len() },
            None => DistinctSummary::Estimated { at_least: EXACT_BOUND + 1, estimate: self.estimate() },
        }
    }

    /// The k-minimum-values estimate: (K - 1) / (the K-th smallest hash as a fraction of the range).
    pub fn estimate(&self) -> u64 {
        if let Some(exact) = &self.exact {
            return exact.len() as u64;
        }
        if self.smallest.len() < K {
            return self.smallest.len() as u64;
        }
        let kth = self.smallest.last().copied().unwrap_or(u64::MAX).max(1);
        // (K - 1) * 2^64 / kth, in u128 so nothing overflows.
        let estimate = ((K as u128 - 1) << 64) / u128::from(kth);
        u64::try_from(estimate).unwrap_or(u64::MAX).max((EXACT_BOUND + 1) as u64)
    }
}

fn hash(value: &str) -> u64 {
    // SipHash with fixed keys: the same sample always gives the same estimate.
    let mut h = std::hash::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_then_estimated_within_ten_percent() {
        let mut d = Distinct::new();
        for i in 0..100 {
            d.add(&format!("v{}", i % 10));
        }
        assert_eq!(d.summary(), DistinctSummary::Exact { count: 10 });
        assert_eq!(d.values().unwrap()["v3"], 10);
        for i in 0..50_000 {
            d.add(&i.to_string());
        }
        let DistinctSummary::Estimated { estimate, .. } = d.summary() else { panic!("still exact") };
        assert!((45_000..=55_000).contains(&estimate), "{estimate}");
    }
}
