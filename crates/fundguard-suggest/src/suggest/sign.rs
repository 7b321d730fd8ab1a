//! Amounts that are never negative (or never zero either): one check per money column.

use fundguard_core::{Decimal, Value};

use super::{
    Context, Kind, Skipped, Suggestion, Suggestions, class_confidence, confidence, id_key, money_of, row_tests,
    within_tolerance,
};

pub struct Sign;

impl Kind for Sign {
    fn name(&self) -> &'static str {
        "sign"
    }

    fn suggest(&self, cx: &Context<'_>, out: &mut Suggestions) {
        for (name, table, profile) in cx.tables() {
            for column in &table.money {
                let subject = format!("{name}.{column}");
                let Some(c) = profile.columns.get(column) else { continue };
                let present = c.numbers;
                if present < cx.options.min_rows {
                    out.skipped.push(Skipped {
                        kind: self.name(),
                        subject,
                        reason: format!(
                            "only {present} row(s) with an amount; at least {} are needed",
                            cx.options.min_rows
                        ),
                    });
                    continue;
                }
                if !within_tolerance(c.negative, present) {
                    out.skipped.push(Skipped {
                        kind: self.name(),
                        subject,
                        reason: format!("{} of {present} amounts are negative: the sign is not fixed", c.negative),
                    });
                    continue;
                }
                let positive = c.zero == 0;
                let (op, words, suffix) =
                    if positive { (">", "positive", "positive") } else { (">=", "never negative", "non-negative") };
                let column_sql = format!("after.{column}");
                let assert = if c.nulls > 0 {
                    format!("{column_sql} IS NULL OR {column_sql} {op} 0")
                } else {
                    format!("{column_sql} {op} 0")
                };
                let mut evidence = vec![format!(
                    "{present} amounts: {} positive, {} zero, {} negative; min {}, max {}, at most {} decimal place(s)",
                    c.positive,
                    c.zero,
                    c.negative,
                    c.min.unwrap_or_default(),
                    c.max.unwrap_or_default(),
                    c.max_scale
                )];
                if c.nulls > 0 {
                    evidence.push(format!("{} row(s) without a value (allowed)", c.nulls));
                }
                let mut review = Vec::new();
                if c.negative > 0 {
                    review.push(format!(
                        "{} negative amount(s) in the sample are findings of this rule: look at them",
                        c.negative
                    ));
                }
                let mut tests = Vec::new();
                if let Some(row) = &c.example {
                    let mut columns = vec![column.as_str()];
                    columns.extend(table.currencies.first().map(String::as_str));
                    let amount = row.get(column).and_then(crate::profile::number).unwrap_or(Decimal::ONE);
                    let bad =
                        if amount.is_sign_positive() && !amount.is_zero() { -amount } else { Decimal::NEGATIVE_ONE };
                    let bad = match row.get(column) {
                        Some(Value::Int(_)) => i64::try_from(bad).map(Value::Int).unwrap_or(Value::Decimal(bad)),
                        _ => Value::Decimal(bad),
                    };
                    let test = format!("the same row with {column} {bad}");
                    tests = row_tests(name, &table.id, row, &columns, column, bad, test);
                }
                out.made.push(Suggestion {
                    id: super::rule_id(&format!("{}-{column}-{suffix}", super::short(name))),
                    kind: self.name(),
                    tables: vec![name.to_string()],
                    columns: vec![subject],
                    invariant: format!("{} {column} is {words}.", super::short(name)),
                    evidence,
                    confidence: confidence(present, class_confidence(table, column)),
                    review,
                    owner: cx.owner(name),
                    severity: "critical",
                    tags: vec!["money".into(), "sign".into(), "suggested".into()],
                    body: super::Body::Check {
                        table: name.to_string(),
                        when: Some("op <> 'delete'".into()),
                        assert,
                        key: id_key(&table.id),
                        money: money_of(table, column),
                    },
                    tests,
                });
            }
        }
    }
}
