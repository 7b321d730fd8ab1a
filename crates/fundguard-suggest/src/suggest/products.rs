//! A money column that is the product of an amount and a rate (`commission = gross ×
//! rate`, `fee = base × bps / 10000`), rounded to its minor unit, when that held on (nearly)
//! every row. The rule states it in exact decimal arithmetic: no division, no float literal.

use fundguard_core::{Decimal, Value};

use super::{Body, Context, Kind, Suggestion, Suggestions, class_confidence, confidence, id_key, row_tests};
use crate::profile::{ProductFit, ProductProfile};

pub struct Products;

/// How far from the exact product a stored result may be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tolerance {
    Exact,
    /// Half a minor unit: rounded half up, half even or half away from zero.
    Half,
    /// One minor unit: truncated or rounded up.
    One,
}

impl Kind for Products {
    fn name(&self) -> &'static str {
        "product"
    }

    fn suggest(&self, cx: &Context<'_>, out: &mut Suggestions) {
        for (name, table, profile) in cx.tables() {
            // One product per result column: the amount and rate it fitted best.
            for result in &table.money {
                let best = profile
                    .products
                    .iter()
                    .filter(|p| p.result == *result)
                    .max_by_key(|p| (p.best().within_one, p.best().within_half, std::cmp::Reverse(p.rate.clone())));
                let Some(p) = best else { continue };
                let fit = p.best();
                // Products that fit on fewer than half the rows are not candidates at all.
                if fit.within_one * 2 <= p.rows {
                    continue;
                }
                let subject = format!("{name}.{} = {name}.{} × {name}.{}", p.result, p.amount, p.rate);
                let what = format!("{} = {} × {}{}", p.result, p.amount, p.rate, power(fit.exponent));
                let Some(tolerance) = tolerance(fit, p.rows) else {
                    cx.enough(out, self.name(), &subject, &what, p.rows, fit.within_one);
                    continue;
                };
                let held = match tolerance {
                    Tolerance::Exact => fit.exact,
                    Tolerance::Half => fit.within_half,
                    Tolerance::One => fit.within_one,
                };
                let nonzero = format!("{what} with a result other than zero");
                if !cx.enough(out, self.name(), &subject, &what, p.rows, held)
                    || !cx.enough(out, self.name(), &subject, &nonzero, p.nonzero, p.nonzero)
                {
                    continue;
                }
                let scale = profile.columns.get(&p.result).map_or(0, |c| c.max_scale);
                out.made.push(suggestion(cx, name, table, p, fit, tolerance, held, scale));
            }
        }
    }
}

/// The tightest tolerance that held within [`super::within_tolerance`], if any did.
fn tolerance(fit: &ProductFit, rows: u64) -> Option<Tolerance> {
    [(Tolerance::Exact, fit.exact), (Tolerance::Half, fit.within_half), (Tolerance::One, fit.within_one)]
        .into_iter()
        .find(|(_, held)| rows > 0 && super::within_tolerance(rows - held, rows))
        .map(|(t, _)| t)
}

/// ` × 10^-2` for the evidence.
fn power(exponent: i32) -> String {
    if exponent == 0 { String::new() } else { format!(" × 10^{exponent}") }
}

/// `10^-exponent`: what the result is multiplied by to compare it with the product.
fn factor(exponent: i32) -> i64 {
    10i64.pow(exponent.unsigned_abs())
}

/// The assertion in exact arithmetic: the result scaled up by `10^-k` against amount × rate,
/// the tolerance in minor units multiplied out so every literal is an integer.
fn assertion(p: &ProductProfile, exponent: i32, tolerance: Tolerance, scale: u32) -> String {
    let f = factor(exponent);
    let times = |n: i64| if n == 1 { String::new() } else { format!(" * {n}") };
    let result = format!("after.{}{}", p.result, times(f));
    let product = format!("after.{} * after.{}", p.amount, p.rate);
    let places = 10i64.pow(scale.min(12));
    match tolerance {
        Tolerance::Exact => format!("{result} = {product}"),
        // |result·f − product| ≤ f · unit / 2, unit = 10^-scale: × 2·10^scale on both sides.
        Tolerance::Half => format!("abs({result} - {product}){} <= {f}", times(2 * places)),
        Tolerance::One => format!("abs({result} - {product}){} <= {f}", times(places)),
    }
}

#[allow(clippy::too_many_arguments)]
fn suggestion(
    cx: &Context<'_>,
    name: &str,
    table: &crate::layout::TableLayout,
    p: &ProductProfile,
    fit: &ProductFit,
    tolerance: Tolerance,
    held: u64,
    scale: u32,
) -> Suggestion {
    let (m, a, r) = (&p.result, &p.amount, &p.rate);
    let assert = assertion(p, fit.exponent, tolerance, scale);
    let rounding = match tolerance {
        Tolerance::Exact => "exactly".to_string(),
        Tolerance::Half => "rounded to the nearest minor unit".to_string(),
        Tolerance::One => "within one minor unit".to_string(),
    };
    let scaled = match fit.exponent {
        0 => String::new(),
        -2 => " / 100 (a percentage)".to_string(),
        -4 => " / 10000 (basis points)".to_string(),
        k => format!(" × 10^{k}"),
    };
    let mut evidence = vec![
        format!(
            "{m} = {a} × {r}{scaled}: exactly on {} of {} rows, within half a minor unit on {}, within one on {}",
            fit.exact, p.rows, fit.within_half, fit.within_one
        ),
        format!("the largest distance from the exact product within one minor unit: {}", fit.largest.normalize()),
    ];
    if tolerance != Tolerance::Exact {
        evidence.push(
            "rounded values: the assertion allows the distance rounding leaves (half up, half even and half away from zero all stay within it)".into(),
        );
    }
    let mut review = Vec::new();
    let exceptions = p.rows - held;
    if exceptions > 0 {
        review.push(format!("{exceptions} row(s) where it did not hold are findings of this rule"));
    }
    let mut tests = Vec::new();
    if let Some(row) = &fit.example {
        // Ten minor units off: beyond any rounding.
        let bad = match row.get(m) {
            Some(Value::Int(i)) => Value::Int(i.saturating_add(10)),
            Some(Value::Decimal(d)) => Value::Decimal(d.checked_add(Decimal::new(10, d.scale())).unwrap_or(*d)),
            _ => Value::Int(10),
        };
        let columns = [m.as_str(), a.as_str(), r.as_str()];
        tests = row_tests(name, &table.id, row, &columns, m, bad, format!("{m} ten minor units off {a} × {r}"));
    }
    let money = if fit.exponent == 0 {
        Some((format!("after.{m} - after.{a} * after.{r}"), table.currencies.first().map(|c| format!("after.{c}"))))
    } else {
        super::money_of(table, m)
    };
    let conf = class_confidence(table, m).min(class_confidence(table, a));
    Suggestion {
        id: super::rule_id(&format!("{}-{m}-is-{a}-times-{r}", super::short(name))),
        kind: "product",
        tables: vec![name.to_string()],
        columns: [m, a, r].iter().map(|c| format!("{name}.{c}")).collect(),
        invariant: format!("{} {m} is {a} × {r}{scaled}, {rounding}.", super::short(name)),
        evidence,
        confidence: confidence(held, conf),
        review,
        owner: cx.owner(name),
        severity: "critical",
        tags: vec!["money".into(), "product".into(), "suggested".into()],
        body: Body::Check {
            table: name.to_string(),
            when: Some(format!(
                "op <> 'delete' AND after.{m} IS NOT NULL AND after.{a} IS NOT NULL AND after.{r} IS NOT NULL"
            )),
            assert,
            key: id_key(&table.id),
            money,
        },
        tests,
    }
}
