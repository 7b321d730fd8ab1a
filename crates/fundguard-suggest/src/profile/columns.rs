//! Per column: nulls, sign, range, decimal places, magnitude and distinct values; per
//! table: the sums, differences and constant ratios between its money columns.

use std::collections::BTreeMap;

use fundguard_core::{Decimal, Row, Value};
use serde::Serialize;

use fundguard_core::distinct::{Distinct, DistinctSummary};

/// Ratios kept exactly per pair of columns; more distinct ratios are only counted.
const RATIO_BOUND: usize = 16;

/// What one column held over the row images of the sample (inserts, updates, messages).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ColumnProfile {
    pub rows: u64,
    pub nulls: u64,
    /// Rows with an integer or decimal value.
    pub numbers: u64,
    pub negative: u64,
    pub zero: u64,
    pub positive: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<Decimal>,
    /// The most decimal places a value had.
    pub max_scale: u32,
    /// The most digits before the decimal point.
    pub max_integer_digits: u32,
    pub distinct: DistinctSummary,
    #[serde(skip)]
    pub values: Distinct,
    /// Reused to write numbers as text without allocating per row.
    #[serde(skip)]
    text: String,
    /// The first row with a value in this column: a real row for rule tests.
    #[serde(skip)]
    pub example: Option<Row>,
    /// The first row whose value was zero or negative, when there was one (evidence).
    #[serde(skip)]
    pub non_positive_example: Option<Row>,
}

impl ColumnProfile {
    pub fn observe(&mut self, value: &Value, row: &Row) {
        self.rows += 1;
        if value.is_null() {
            self.nulls += 1;
            return;
        }
        if self.example.is_none() {
            self.example = Some(row.clone());
        }
        match value {
            Value::String(s) => self.values.add(s),
            Value::Int(i) => {
                use std::fmt::Write;
                self.text.clear();
                let _ = write!(self.text, "{i}");
                self.values.add(&self.text);
            }
            Value::Decimal(d) => {
                use std::fmt::Write;
                self.text.clear();
                let _ = write!(self.text, "{}", d.normalize());
                self.values.add(&self.text);
            }
            Value::Bool(b) => self.values.add(if *b { "true" } else { "false" }),
            _ => {}
        }
        let Some(n) = super::number(value) else { return };
        self.numbers += 1;
        if n.is_sign_negative() && !n.is_zero() {
            self.negative += 1;
        } else if n.is_zero() {
            self.zero += 1;
        } else {
            self.positive += 1;
        }
        if !n.is_sign_positive() || n.is_zero() {
            self.non_positive_example.get_or_insert_with(|| row.clone());
        }
        self.min = Some(self.min.map_or(n, |m| m.min(n)));
        self.max = Some(self.max.map_or(n, |m| m.max(n)));
        self.max_scale = self.max_scale.max(n.normalize().scale());
        let digits = n.abs().trunc().normalize().to_string().trim_start_matches('0').len() as u32;
        self.max_integer_digits = self.max_integer_digits.max(digits);
    }

    pub(super) fn finish(&mut self) {
        self.distinct = self.values.summary();
    }

    /// Rows with a value.
    pub fn present(&self) -> u64 {
        self.rows - self.nulls
    }
}

/// `a = b + c` or `a = b - c` between three money columns of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityOp {
    Plus,
    Minus,
}

/// How often a sum or difference between money columns held.
#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    pub result: String,
    pub left: String,
    pub op: IdentityOp,
    pub right: String,
    /// Rows where all three had a value.
    pub rows: u64,
    pub held: u64,
    #[serde(skip)]
    at: [usize; 3],
    #[serde(skip)]
    pub example: Option<Row>,
}

/// Every candidate identity between the money columns (at most six columns are paired:
/// a wide table would have thousands of triples).
pub fn identities(money: &[String]) -> Vec<Identity> {
    let n = money.len().min(6);
    let mut out = Vec::new();
    for a in 0..n {
        for b in 0..n {
            for c in 0..n {
                if a == b || a == c || b == c {
                    continue;
                }
                let mut push = |op| {
                    out.push(Identity {
                        result: money[a].clone(),
                        left: money[b].clone(),
                        op,
                        right: money[c].clone(),
                        rows: 0,
                        held: 0,
                        at: [a, b, c],
                        example: None,
                    })
                };
                if b < c {
                    push(IdentityOp::Plus);
                }
                push(IdentityOp::Minus);
            }
        }
    }
    out
}

impl Identity {
    pub(super) fn observe(&mut self, amounts: &[Option<Decimal>], row: &Row) {
        let [a, b, c] = self.at;
        let (Some(Some(a)), Some(Some(b)), Some(Some(c))) = (amounts.get(a), amounts.get(b), amounts.get(c)) else {
            return;
        };
        self.rows += 1;
        let computed = match self.op {
            IdentityOp::Plus => b.checked_add(*c),
            IdentityOp::Minus => b.checked_sub(*c),
        };
        if computed == Some(*a) {
            self.held += 1;
            if self.example.is_none() {
                self.example = Some(row.clone());
            }
        }
    }

    /// `after.pay_amount = after.total_amount - after.discount_amount`.
    pub fn sql(&self) -> String {
        let op = match self.op {
            IdentityOp::Plus => "+",
            IdentityOp::Minus => "-",
        };
        format!("after.{} = after.{} {op} after.{}", self.result, self.left, self.right)
    }
}

/// The ratio `numerator / denominator` between two money columns of one row.
#[derive(Debug, Clone, Serialize)]
pub struct RatioProfile {
    pub numerator: String,
    pub denominator: String,
    /// Rows where both had a value and the denominator was not zero.
    pub rows: u64,
    /// Exact ratios and how many rows had each (the first few distinct ones).
    pub ratios: BTreeMap<Decimal, u64>,
    /// Rows whose ratio was not among those kept.
    pub other: u64,
    #[serde(skip)]
    at: [usize; 2],
    #[serde(skip)]
    pub example: Option<Row>,
}

/// Every ordered pair of money columns (of the first six).
pub fn ratios(money: &[String]) -> Vec<RatioProfile> {
    let n = money.len().min(6);
    let mut out = Vec::new();
    for a in 0..n {
        for b in 0..n {
            if a != b {
                out.push(RatioProfile {
                    numerator: money[a].clone(),
                    denominator: money[b].clone(),
                    rows: 0,
                    ratios: BTreeMap::new(),
                    other: 0,
                    at: [a, b],
                    example: None,
                });
            }
        }
    }
    out
}

impl RatioProfile {
    pub(super) fn observe(&mut self, amounts: &[Option<Decimal>], row: &Row) {
        let [a, b] = self.at;
        let (Some(Some(a)), Some(Some(b))) = (amounts.get(a), amounts.get(b)) else { return };
        if b.is_zero() || a.is_zero() {
            return;
        }
        self.rows += 1;
        if self.example.is_none() {
            self.example = Some(row.clone());
        }
        // A multiplication confirms the ratio seen first (cheaper than a division); a pair
        // whose ratios are already scattered is only counted.
        if let Some((first, n)) = self.ratios.iter_mut().next()
            && b.checked_mul(*first) == Some(*a)
        {
            *n += 1;
            return;
        }
        if self.ratios.len() >= RATIO_BOUND {
            self.other += 1;
            return;
        }
        let Some(ratio) = a.checked_div(*b) else {
            self.other += 1;
            return;
        };
        let ratio = ratio.normalize();
        let kept = self.ratios.len();
        match self.ratios.get_mut(&ratio) {
            Some(n) => *n += 1,
            None if kept < RATIO_BOUND => {
                self.ratios.insert(ratio, 1);
            }
            None => self.other += 1,
        }
    }

    /// The ratio every row had, if there was one.
    pub fn constant(&self) -> Option<Decimal> {
        match (self.ratios.len(), self.other) {
            (1, 0) => self.ratios.keys().next().copied(),
            _ => None,
        }
    }
}
