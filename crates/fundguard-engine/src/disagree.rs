//! What disagreed, for default messages: the comparisons between two columns a rule's
//! `assert` or `expect` makes (read from its SQL syntax tree, as the compiler reads it), the
//! ones a finding's values fail, and how they read —
//! `shop.payments amount 4,198.45 CNY vs shop.orders pay_amount 4,200.00 CNY: −1.55`.
//!
//! Only comparisons ANDed at the top of the expression count (`a = b`, `a < b`, …, and the
//! tolerance form `abs((a) - (b)) <= bound`); anything else (an `OR`, a function of a column)
//! is not a simple comparison, and the caller falls back to listing the values read.

use std::cmp::Ordering;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments,
};
use fundguard_core::{ChangeEvent, Decimal, Money, MoneyUnit, Value};
use fundguard_rules::Expr;

use crate::columns::{ColumnRef, Image};
use crate::compile::{Scope, normalise, parse};

/// How two columns are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    /// `abs(a - b) <= bound`: a tolerance, whose bound is not shown.
    Within,
}

/// One comparison of two columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Comparison {
    pub a: ColumnRef,
    op: Op,
    pub b: ColumnRef,
}

/// The comparisons of two columns ANDed at the top of `expr`; none when it does not parse.
pub(crate) fn comparisons(expr: &Expr, scope: Scope) -> Vec<Comparison> {
    let Ok((parsed, _)) = parse(expr) else { return Vec::new() };
    let mut out = Vec::new();
    walk(&parsed, scope, &mut out);
    out
}

fn unnest(mut e: &SqlExpr) -> &SqlExpr {
    while let SqlExpr::Nested(inner) = e {
        e = inner;
    }
    e
}

fn column(e: &SqlExpr, scope: Scope) -> Option<ColumnRef> {
    match unnest(e) {
        SqlExpr::CompoundIdentifier(parts) => match parts.as_slice() {
            [q, name] => scope.image(&normalise(q)).map(|image| ColumnRef { image, name: normalise(name) }),
            _ => None,
        },
        _ => None,
    }
}

/// `abs(a - b)`: the two columns.
fn abs_difference(e: &SqlExpr, scope: Scope) -> Option<(ColumnRef, ColumnRef)> {
    let SqlExpr::Function(f) = unnest(e) else { return None };
    if !f.name.to_string().eq_ignore_ascii_case("abs") {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else { return None };
    let [FunctionArg::Unnamed(FunctionArgExpr::Expr(inner))] = list.args.as_slice() else { return None };
    match unnest(inner) {
        SqlExpr::BinaryOp { left, op: BinaryOperator::Minus, right } => {
            Some((column(left, scope)?, column(right, scope)?))
        }
        _ => None,
    }
}

/// Expressions are at most `compile::MAX_DEPTH` deep (refused at load otherwise), so this
/// recursion through `AND`s and parentheses is bounded.
fn walk(e: &SqlExpr, scope: Scope, out: &mut Vec<Comparison>) {
    let SqlExpr::BinaryOp { left, op, right } = unnest(e) else { return };
    let op = match op {
        BinaryOperator::And => {
            walk(left, scope, out);
            walk(right, scope, out);
            return;
        }
        BinaryOperator::Eq => Op::Eq,
        BinaryOperator::NotEq => Op::NotEq,
        BinaryOperator::Lt => Op::Lt,
        BinaryOperator::LtEq => Op::LtEq,
        BinaryOperator::Gt => Op::Gt,
        BinaryOperator::GtEq => Op::GtEq,
        _ => return,
    };
    if let (Some(a), Some(b)) = (column(left, scope), column(right, scope)) {
        out.push(Comparison { a, op, b });
    } else if matches!(op, Op::LtEq | Op::Lt)
        && let Some((a, b)) = abs_difference(left, scope)
    {
        out.push(Comparison { a, op: Op::Within, b });
    }
}

/// The exact number in a value, if it is one.
fn number(v: &Value) -> Option<Decimal> {
    match v {
        Value::Int(i) => Some(Decimal::from(*i)),
        Value::Decimal(d) => Some(*d),
        _ => None,
    }
}

/// Whether `a op b` fails on these values, as SQL would judge it (NULL fails).
fn fails(op: Op, a: &Value, b: &Value) -> bool {
    if a.is_null() || b.is_null() {
        return true;
    }
    let order = match (number(a), number(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (None, None) => a.to_string().cmp(&b.to_string()),
        // A number against text: SQL would have cast one side; say they disagree when they differ.
        _ => {
            return op != Op::NotEq && a.to_string() != b.to_string();
        }
    };
    !match op {
        Op::Eq => order == Ordering::Equal,
        Op::NotEq => order != Ordering::Equal,
        Op::Lt => order == Ordering::Less,
        Op::LtEq => order != Ordering::Greater,
        Op::Gt => order == Ordering::Greater,
        Op::GtEq => order != Ordering::Less,
        // The bound is the rule's; a difference is shown whenever there is one.
        Op::Within => order == Ordering::Equal,
    }
}

/// One side of a comparison as a message shows it: its label and value.
pub(crate) struct Shown<'a> {
    pub label: String,
    pub value: &'a Value,
}

/// The comparisons in `found` that fail on the values `side` looks up (a column's label and
/// value), as a default message reads them, joined by `; `; `None` when none fails — the
/// expression failed some other way, and the caller lists the values read instead. Amounts
/// are shown in `currency` (the finding's), after `unit` (the rule's `money.unit`), unless a
/// failing comparison of two texts (`CNY vs USD`) says the currencies themselves disagree.
pub(crate) fn describe<'a>(
    found: &[Comparison],
    side: impl Fn(&ColumnRef) -> Shown<'a>,
    currency: Option<&str>,
    unit: MoneyUnit,
) -> Option<String> {
    let sides: Vec<(Shown, Shown, Op)> = found.iter().map(|c| (side(&c.a), side(&c.b), c.op)).collect();
    let failing: Vec<&(Shown, Shown, Op)> = sides.iter().filter(|(a, b, op)| fails(*op, a.value, b.value)).collect();
    if failing.is_empty() {
        return None;
    }
    let texts_disagree = failing.iter().any(|(a, b, _)| number(a.value).is_none() && number(b.value).is_none());
    let currency = currency.filter(|_| !texts_disagree);
    let parts: Vec<String> = failing.iter().map(|(a, b, _)| pair(a, b, currency, unit)).collect();
    Some(parts.join("; "))
}

/// A check's failing comparisons over its event's rows (`after.amount 4,198.45 CNY vs …`),
/// amounts shown in the finding's currency.
pub(crate) fn in_event(
    found: &[Comparison],
    event: &ChangeEvent,
    money: Option<&Money>,
    unit: Option<MoneyUnit>,
) -> Option<String> {
    static NULL: Value = Value::Null;
    let side = |c: &ColumnRef| {
        let row = match c.image {
            Image::Before => event.before.as_ref(),
            _ => event.after.as_ref(),
        };
        Shown {
            label: format!("{}.{}", c.image.qualifier(), c.name),
            value: row.and_then(|r| r.get(&c.name)).unwrap_or(&NULL),
        }
    };
    describe(found, side, money.and_then(|m| m.currency.as_deref()), unit.unwrap_or_default())
}

/// `A 4,198.45 CNY vs B 4,200.00 CNY: −1.55` for two numbers (the difference A − B, exact);
/// `A CNY vs B USD`, `A 4,198.45 CNY vs B NULL` otherwise.
fn pair(a: &Shown, b: &Shown, currency: Option<&str>, unit: MoneyUnit) -> String {
    let money = |v: &Value| number(v).map(|x| Money::new(x, currency, unit));
    let (ma, mb) = (money(a.value), money(b.value));
    let shown = |m: &Option<Money>, v: &Value| m.as_ref().map_or_else(|| v.to_string(), Money::display);
    // Both in minor units of one currency, or both as given: the difference is exact either way.
    let difference = match (&ma, &mb) {
        (Some(x), Some(y)) if x.minor == y.minor => {
            x.amount.checked_sub(y.amount).map(|d| format!(": {}", Money { amount: d, ..x.clone() }.display_number()))
        }
        _ => None,
    };
    format!(
        "{} {} vs {} {}{}",
        a.label,
        shown(&ma, a.value),
        b.label,
        shown(&mb, b.value),
        difference.unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expr(sql: &str) -> Expr {
        Expr { sql: sql.into(), at: Default::default() }
    }

    fn names(found: &[Comparison]) -> Vec<String> {
        found
            .iter()
            .map(|c| {
                format!("{}.{} {:?} {}.{}", c.a.image.qualifier(), c.a.name, c.op, c.b.image.qualifier(), c.b.name)
            })
            .collect()
    }

    #[test]
    fn comparisons_of_two_columns_are_read_from_the_syntax_tree() {
        let found = comparisons(
            &expr(
                "(left.currency = right.currency) AND (abs((left.amount) - (right.pay_amount)) <= CAST(0 AS DECIMAL(38, 10)))",
            ),
            Scope::Pair,
        );
        assert_eq!(names(&found), ["left.currency Eq right.currency", "left.amount Within right.pay_amount"]);
        let found = comparisons(&expr("agg.refunded <= left.amount"), Scope::Pair);
        assert_eq!(names(&found), ["agg.refunded LtEq left.amount"]);
        assert_eq!(
            names(&comparisons(&expr("after.Amount = after.\"Paid\""), Scope::Event)),
            ["after.amount Eq after.Paid"]
        );
        // Not simple comparisons of two columns: nothing.
        assert!(comparisons(&expr("after.amount > 0"), Scope::Event).is_empty());
        assert!(comparisons(&expr("after.a = after.b OR after.c = after.d"), Scope::Event).is_empty());
        assert!(comparisons(&expr("after.a = after.b * 100"), Scope::Event).is_empty());
        assert!(comparisons(&expr("not sql ((("), Scope::Event).is_empty());
    }

    /// Describes `found` over a row of (label, value) per column name.
    fn over(found: &[Comparison], row: &[(&str, &str, Value)], currency: Option<&str>) -> Option<String> {
        describe(
            found,
            |c| {
                let (_, label, value) = row.iter().find(|(name, _, _)| *name == c.name).unwrap();
                Shown { label: label.to_string(), value }
            },
            currency,
            MoneyUnit::Auto,
        )
    }

    #[test]
    fn failing_comparisons_read_in_major_units_with_their_difference() {
        let d = |s: &str| Value::Decimal(s.parse().unwrap());
        let payment = |amount: Value, pay_amount: Value| {
            vec![("amount", "shop.payments amount", amount), ("pay_amount", "shop.orders pay_amount", pay_amount)]
        };
        let eq = comparisons(&expr("left.amount = right.pay_amount"), Scope::Pair);
        assert_eq!(
            over(&eq, &payment(d("4198.45"), d("4200.00")), Some("CNY")).unwrap(),
            "shop.payments amount 4,198.45 CNY vs shop.orders pay_amount 4,200.00 CNY: \u{2212}1.55"
        );
        assert_eq!(
            over(&eq, &payment(d("4198.45"), d("4200.00")), None).unwrap(),
            "shop.payments amount 4198.45 vs shop.orders pay_amount 4200.00: \u{2212}1.55"
        );
        let within = comparisons(&expr("abs((left.amount) - (right.pay_amount)) <= 0"), Scope::Pair);
        assert_eq!(
            over(&within, &payment(Value::Int(1_500), Value::Int(1_450)), Some("JPY")).unwrap(),
            "shop.payments amount 1,500 JPY vs shop.orders pay_amount 1,450 JPY: 50"
        );
        // Holding comparisons are not named; none failing: the caller falls back.
        assert_eq!(over(&eq, &payment(d("1.00"), d("1.00")), Some("CNY")), None);
        let both = comparisons(&expr("left.currency = right.currency AND left.amount = right.pay_amount"), Scope::Pair);
        let mut row = payment(d("4198.45"), Value::Null);
        row.extend([("currency", "", Value::from("CNY"))]);
        let row: Vec<(&str, &str, Value)> = row.into_iter().collect();
        assert_eq!(
            over(&both, &row, Some("CNY")).unwrap(),
            "shop.payments amount 4,198.45 CNY vs shop.orders pay_amount NULL"
        );
    }
}
