//! Amounts of one row that add up: `pay = total - discount`, `net = gross - commission`,
//! when the identity held on every row.

use crate::profile::IdentityOp;
use fundguard_core::{Decimal, Value};

use super::{
    Body, Context, Kind, Suggestion, Suggestions, class_confidence, confidence, id_key, row_tests, within_tolerance,
};

pub struct Sums;

impl Kind for Sums {
    fn name(&self) -> &'static str {
        "sum"
    }

    fn suggest(&self, cx: &Context<'_>, out: &mut Suggestions) {
        for (name, table, profile) in cx.tables() {
            let mut taken: Vec<[&str; 3]> = Vec::new();
            // `total = discount + pay` reads better than `discount = total - pay`: sums first.
            let mut identities: Vec<_> = profile.identities.iter().collect();
            identities.sort_by_key(|i| i.op != IdentityOp::Plus);
            for identity in identities {
                if identity.rows < cx.options.min_rows
                    || !within_tolerance(identity.rows - identity.held, identity.rows)
                {
                    continue;
                }
                let mut set = [identity.result.as_str(), identity.left.as_str(), identity.right.as_str()];
                set.sort_unstable();
                // `a = b + c` and `b = a - c` are one invariant: the first form found is kept.
                if taken.contains(&set) {
                    continue;
                }
                taken.push(set);
                // A column that is always zero makes `a = b + 0` trivially true.
                let zero_only = [&identity.left, &identity.right, &identity.result]
                    .iter()
                    .any(|c| profile.columns.get(c.as_str()).is_none_or(|p| p.zero == p.numbers));
                if zero_only {
                    continue;
                }
                let exceptions = identity.rows - identity.held;
                let sql = identity.sql();
                let mut tests = Vec::new();
                if let Some(row) = &identity.example {
                    let bad = match row.get(&identity.result) {
                        Some(Value::Int(i)) => Value::Int(i.saturating_add(1)),
                        Some(Value::Decimal(d)) => Value::Decimal(d.checked_add(Decimal::ONE).unwrap_or(*d)),
                        _ => Value::Int(1),
                    };
                    let columns = [identity.result.as_str(), identity.left.as_str(), identity.right.as_str()];
                    let test = format!("{} off by one", identity.result);
                    tests = row_tests(name, &table.id, row, &columns, &identity.result, bad, test);
                }
                let mut review = Vec::new();
                if exceptions > 0 {
                    review.push(format!("{exceptions} row(s) where it did not hold are findings of this rule"));
                }
                let conf = class_confidence(table, &identity.result);
                out.made.push(Suggestion {
                    id: super::rule_id(&format!("{}-{}-adds-up", super::short(name), identity.result)),
                    kind: self.name(),
                    tables: vec![name.to_string()],
                    columns: [&identity.result, &identity.left, &identity.right]
                        .iter()
                        .map(|c| format!("{name}.{c}"))
                        .collect(),
                    invariant: format!("{} {}.", super::short(name), sql.replace("after.", "")),
                    evidence: vec![format!(
                        "held on {} of {} rows with all three amounts",
                        identity.held, identity.rows
                    )],
                    confidence: confidence(identity.held, conf),
                    review,
                    owner: cx.owner(name),
                    severity: "critical",
                    tags: vec!["money".into(), "sum".into(), "suggested".into()],
                    body: Body::Check {
                        table: name.to_string(),
                        when: Some(format!(
                            "op <> 'delete' AND after.{} IS NOT NULL AND after.{} IS NOT NULL AND after.{} IS NOT NULL",
                            identity.result, identity.left, identity.right
                        )),
                        assert: sql,
                        key: id_key(&table.id),
                        money: super::money_of(table, &identity.result),
                    },
                    tests,
                });
            }
        }
    }
}
