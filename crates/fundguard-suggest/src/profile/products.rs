//! Products of two columns of one row: how often a money column equals an amount times a
//! rate, scaled by a power of ten (`commission = gross × rate`, `fee = base × bps / 10000`),
//! and how far from the exact product the stored value was (its rounding).

use fundguard_core::{Decimal, Row, Value};
use serde::Serialize;

use super::number;

/// The powers of ten a rate may be written in: a fraction (0), a percentage (-2), basis
/// points (-4).
pub const EXPONENTS: [i32; 3] = [0, -2, -4];

/// Money columns, amounts and rates paired at most (a wide table would have thousands of
/// triples).
const BOUND: usize = 6;

/// How `result = amount × rate × 10^exponent` held on the rows with all three values.
#[derive(Debug, Clone, Serialize)]
pub struct ProductProfile {
    pub result: String,
    pub amount: String,
    pub rate: String,
    /// Rows with all three values.
    pub rows: u64,
    /// Of those, rows whose result was not zero.
    pub nonzero: u64,
    /// One fit per exponent of [`EXPONENTS`].
    pub fits: [ProductFit; 3],
    #[serde(skip)]
    at: [usize; 3],
}

/// How close the result came to the product at one exponent, in minor units of the result
/// (a unit of its last decimal place: 1 for integers, 0.01 for `12.50`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProductFit {
    pub exponent: i32,
    /// The result was exactly the product.
    pub exact: u64,
    /// At most half a minor unit away: the product rounded (half up, half even or half
    /// away from zero) to the result's places.
    pub within_half: u64,
    /// At most one minor unit away (truncated, or rounded up).
    pub within_one: u64,
    /// The largest distance of a row within one unit, for the evidence.
    pub largest: Decimal,
    /// A row where it held exactly or within half a unit: a real row for tests.
    #[serde(skip)]
    pub example: Option<Row>,
}

/// Every candidate product of a table: each money column as the result of another money
/// column times a rate column.
pub fn candidates(money: &[String], rates: &[String]) -> (Vec<String>, Vec<ProductProfile>) {
    let money = &money[..money.len().min(BOUND)];
    let rates = &rates[..rates.len().min(BOUND)];
    // Columns read per row: the money columns, then the rates.
    let columns: Vec<String> = money.iter().chain(rates).cloned().collect();
    let mut out = Vec::new();
    for (r, result) in money.iter().enumerate() {
        for (a, amount) in money.iter().enumerate() {
            if a == r {
                continue;
            }
            for (k, rate) in rates.iter().enumerate() {
                out.push(ProductProfile {
                    result: result.clone(),
                    amount: amount.clone(),
                    rate: rate.clone(),
                    rows: 0,
                    nonzero: 0,
                    fits: EXPONENTS.map(|exponent| ProductFit { exponent, ..ProductFit::default() }),
                    at: [r, a, money.len() + k],
                });
            }
        }
    }
    (columns, out)
}

/// The numbers a row holds in the candidate columns, as [`candidates`] listed them.
pub fn read(columns: &[String], row: &Row) -> Vec<Option<Decimal>> {
    columns.iter().map(|c| row.get(c).and_then(number)).collect()
}

impl ProductProfile {
    pub(super) fn observe(&mut self, values: &[Option<Decimal>], row: &Row) {
        let [r, a, k] = self.at;
        let (Some(Some(result)), Some(Some(amount)), Some(Some(rate))) = (values.get(r), values.get(a), values.get(k))
        else {
            return;
        };
        self.rows += 1;
        if !result.is_zero() {
            self.nonzero += 1;
        }
        let Some(product) = amount.checked_mul(*rate) else { return };
        // The result's minor unit: its last decimal place as stored.
        let unit = match row.get(&self.result) {
            Some(Value::Decimal(d)) => Decimal::new(1, d.scale()),
            _ => Decimal::ONE,
        };
        let half = unit / Decimal::TWO;
        for fit in &mut self.fits {
            let scale = Decimal::new(1, fit.exponent.unsigned_abs());
            let Some(scaled) = product.checked_mul(scale) else { continue };
            let Some(distance) = result.checked_sub(scaled).map(|d| d.abs()) else { continue };
            if distance > unit {
                continue;
            }
            fit.within_one += 1;
            fit.largest = fit.largest.max(distance);
            if distance <= half {
                fit.within_half += 1;
                if fit.example.is_none() {
                    fit.example = Some(row.clone());
                }
            }
            if distance.is_zero() {
                fit.exact += 1;
            }
        }
    }

    /// The exponent that held on the most rows.
    pub fn best(&self) -> &ProductFit {
        self.fits.iter().max_by_key(|f| (f.within_one, f.exact, f.exponent)).unwrap_or(&self.fits[0])
    }
}
