//! Unit consistency between two amounts of one row: a constant power-of-ten ratio (fen and
//! yuan: 100) that held on every row.

use fundguard_core::{Decimal, Value};

use super::{Body, Context, Kind, Suggestion, Suggestions, class_confidence, confidence, id_key, row_tests};

pub struct Units;

impl Kind for Units {
    fn name(&self) -> &'static str {
        "units"
    }

    fn suggest(&self, cx: &Context<'_>, out: &mut Suggestions) {
        for (name, table, profile) in cx.tables() {
            for ratio in &profile.ratios {
                let Some((&dominant, &held)) = ratio.ratios.iter().max_by_key(|(_, n)| **n) else { continue };
                if !is_power_of_ten(dominant) {
                    continue;
                }
                let subject = format!("{name}.{} / {name}.{}", ratio.numerator, ratio.denominator);
                if !cx.enough(out, self.name(), &subject, &format!("ratio {dominant}"), ratio.rows, held) {
                    continue;
                }
                let exceptions = ratio.rows - held;
                let (a, b) = (&ratio.numerator, &ratio.denominator);
                let assert = format!("after.{a} = after.{b} * {dominant}");
                let others: Vec<String> = ratio
                    .ratios
                    .iter()
                    .filter(|(r, _)| **r != dominant)
                    .map(|(r, n)| format!("{r} ({n} rows)"))
                    .collect();
                let mut evidence = vec![format!("{a} / {b} was exactly {dominant} on {held} of {} rows", ratio.rows)];
                let mut review = Vec::new();
                if exceptions > 0 {
                    evidence.push(format!("other ratios: {}", others.join(", ")));
                    review.push(format!("{exceptions} row(s) with another ratio are findings of this rule"));
                }
                let mut tests = Vec::new();
                if let Some(row) = &ratio.example {
                    // The smaller unit's value written into the larger unit's column (×100 error).
                    let bad = match row.get(a) {
                        Some(Value::Int(i)) => Value::Decimal(Decimal::from(*i)),
                        Some(v) => v.clone(),
                        None => Value::Null,
                    };
                    let test = format!("{b} holds the {a} value");
                    tests = row_tests(name, &table.id, row, &[a.as_str(), b.as_str()], b, bad, test);
                }
                let conf = class_confidence(table, a).min(class_confidence(table, b));
                out.made.push(Suggestion {
                    id: super::rule_id(&format!("{}-{a}-{b}-units", super::short(name))),
                    kind: self.name(),
                    tables: vec![name.to_string()],
                    columns: vec![format!("{name}.{a}"), format!("{name}.{b}")],
                    invariant: format!(
                        "{} {a} is exactly {dominant} times {b} (one amount in two units).",
                        super::short(name)
                    ),
                    evidence,
                    confidence: confidence(held, conf),
                    review,
                    owner: cx.owner(name),
                    severity: "critical",
                    tags: vec!["money".into(), "units".into(), "suggested".into()],
                    body: Body::Check {
                        table: name.to_string(),
                        when: Some(format!("op <> 'delete' AND after.{a} IS NOT NULL AND after.{b} IS NOT NULL")),
                        assert,
                        key: id_key(&table.id),
                        money: super::money_of(table, a),
                    },
                    tests,
                });
            }
        }
    }
}

/// 10, 100, 1000, … (a ratio of 1 is equality, not a unit).
fn is_power_of_ten(d: Decimal) -> bool {
    let d = d.normalize();
    if d.scale() != 0 || d <= Decimal::ONE {
        return false;
    }
    let text = d.to_string();
    text.starts_with('1') && text[1..].chars().all(|c| c == '0')
}
