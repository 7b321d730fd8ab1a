//! Ranking the attributes of an incident against the baseline.
//!
//! For every value of every column of the incident's evidence rows (and every value pair
//! of the columns the baseline pairs) two shares are compared: how many of the incident's
//! rows of that table carry it (its *support*), and how many of the baseline's rows do.
//! Their ratio is the *lift* — MacroBase's risk ratio when the incident is small beside the
//! traffic: a channel that carries a third of the payments but every broken one has a lift
//! of 3; a merchant with 0.5 % of the orders and all of the incident's, 200.
//!
//! The score is `support_low × ln(lift)`: `support_low` is the lower bound of the Wilson
//! interval of the support (95 %), so that two alerts out of three do not outrank two
//! thousand out of two thousand, and the logarithm keeps a rare value from winning on
//! rarity alone. Values below [`MIN_SUPPORT`] of the incident explain too little of it to
//! be a cause, a lift under [`MIN_LIFT`] is noise, and a column the baseline cannot count (an
//! id) is not ranked at all. A pair
//! is listed when it scores above both of its halves: the two together explain more.

use serde::{Deserialize, Serialize};

use crate::profile::{Profile, TableProfile, pair_key, split_pair};
use crate::sketch::TopK;

/// The least share of an incident's rows a value must carry to be a cause.
pub const MIN_SUPPORT: f64 = 0.2;

/// The least lift that counts: a value a fifth more frequent in the incident than in the
/// traffic (below it, sampling noise).
pub const MIN_LIFT: f64 = 1.2;

/// Baseline rows a table needs before its shares mean anything.
pub const MIN_BASELINE_ROWS: u64 = 50;

/// A column's value, or a pair of them, of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    pub table: String,
    pub column: String,
    pub value: String,
}

impl std::fmt::Display for Attribute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}={}", self.table, self.column, self.value)
    }
}

/// One ranked dimension cause, with the figures behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DimensionCause {
    /// One attribute, or two that together explain more.
    pub attributes: Vec<Attribute>,
    /// `table.column=value` (pairs joined by ` & `): what people and feedback name it by.
    pub name: String,
    /// Incident rows of the table carrying it, and all incident rows of the table.
    pub incident_rows: u64,
    pub incident_total: u64,
    /// Its share of the incident's rows, and of the baseline's.
    pub support: f64,
    pub baseline_share: f64,
    pub lift: f64,
    pub score: f64,
}

/// Lower bound of the 95 % Wilson score interval of `k` successes in `n`.
pub fn wilson_lower(k: u64, n: u64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let (k, n, z) = (k as f64, n as f64, 1.96f64);
    let p = k / n;
    let centre = p + z * z / (2.0 * n);
    let margin = z * ((p * (1.0 - p) + z * z / (4.0 * n)) / n).sqrt();
    ((centre - margin) / (1.0 + z * z / n)).max(0.0)
}

/// The incident's attributes, best explanation first, at most `limit`.
pub fn rank_dimensions(incident: &Profile, baseline: &Profile, limit: usize) -> Vec<DimensionCause> {
    let mut causes = Vec::new();
    for (table, inc) in incident.tables() {
        let Some(base) = baseline.table(table).filter(|b| b.rows() >= MIN_BASELINE_ROWS) else { continue };
        let mut singles = Vec::new();
        for (column, top) in inc.columns() {
            let Some(base_top) = base.columns().get(column).filter(|b| !b.is_saturated()) else { continue };
            for (value, counter) in top.top() {
                let attribute = Attribute { table: table.clone(), column: column.clone(), value: value.to_string() };
                let k = counter.count - counter.error;
                if let Some(c) = cause(vec![attribute], k, inc.rows(), base_top, value, base.rows()) {
                    singles.push(c);
                }
            }
        }
        let pairs = rank_pairs(table, inc, base, &singles);
        causes.extend(singles);
        causes.extend(pairs);
    }
    causes.sort_by(|a, b| b.score.total_cmp(&a.score).then(b.support.total_cmp(&a.support)).then(a.name.cmp(&b.name)));
    causes.truncate(limit);
    causes
}

/// The value pairs of a table that score above both halves.
fn rank_pairs(table: &str, inc: &TableProfile, base: &TableProfile, singles: &[DimensionCause]) -> Vec<DimensionCause> {
    let mut out = Vec::new();
    if base.pair_rows() < MIN_BASELINE_ROWS {
        return out;
    }
    let base_pairs: std::collections::BTreeMap<_, _> = base.pairs().collect();
    for ((a, b), top) in inc.pairs() {
        let Some(base_top) = base_pairs.get(&(a, b)) else { continue };
        for (values, counter) in top.top() {
            let Some((va, vb)) = split_pair(values) else { continue };
            let attributes = vec![
                Attribute { table: table.to_string(), column: a.to_string(), value: va.to_string() },
                Attribute { table: table.to_string(), column: b.to_string(), value: vb.to_string() },
            ];
            let k = counter.count - counter.error;
            let Some(pair) = cause(attributes, k, inc.pair_rows(), base_top, &pair_key(va, vb), base.pair_rows())
            else {
                continue;
            };
            let single = |at: &Attribute| singles.iter().find(|s| s.attributes[0] == *at).map_or(0.0, |s| s.score);
            if pair.score > single(&pair.attributes[0]) && pair.score > single(&pair.attributes[1]) {
                out.push(pair);
            }
        }
    }
    out
}

/// The cause `attributes` make with `k` of `total` incident rows, against `base_rows`
/// baseline rows of which `base_top` counts `key`; `None` when it explains too little.
fn cause(
    attributes: Vec<Attribute>,
    k: u64,
    total: u64,
    base_top: &TopK,
    key: &str,
    base_rows: u64,
) -> Option<DimensionCause> {
    if total == 0 || (k as f64) < MIN_SUPPORT * total as f64 {
        return None;
    }
    let support = k as f64 / total as f64;
    // The baseline's count is an over-estimate (Space-Saving), which only lowers the lift;
    // half a row for a value the baseline never saw keeps the ratio finite.
    let in_base = base_top.estimate(key).count as f64;
    let baseline_share = (in_base.max(0.5) / base_rows as f64).min(1.0);
    let lift = support / baseline_share;
    if lift < MIN_LIFT {
        return None;
    }
    let score = wilson_lower(k, total) * lift.ln();
    let name = attributes.iter().map(Attribute::to_string).collect::<Vec<_>>().join(" & ");
    Some(DimensionCause {
        attributes,
        name,
        incident_rows: k,
        incident_total: total,
        support,
        baseline_share,
        lift,
        score,
    })
}
