//! `coverage.yaml`: what people know that names and types cannot say — which tables count,
//! a class forced on a column, a relation no foreign key declares, a field waived as "not
//! money" (with a reason and an owner, reported as waived, never silently dropped) and the
//! owner of each table.
//!
//! ```yaml
//! include: ["shop.*"]
//! exclude: ["shop.audit_*"]
//! owners: { shop.orders: orders, shop.payments: payments }
//! classes: { shop.payments.amount_yuan: money }
//! relations:
//!   - { from: shop.ledger_entries, to: shop.payments }
//! waivers:
//!   - { column: shop.ledger_entries.account, reason: "an account name, not an amount", owner: finance }
//! intermediate_states: { shop.orders: [PAYING, PAID, SHIPPED] }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::CoverageError;
use crate::classify::Class;

/// The file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    /// Table name patterns (`*` matches any run of characters); empty: every table.
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Table → owning team; a table not listed is owned by the team owning most rules on it.
    #[serde(default)]
    pub owners: BTreeMap<String, String>,
    /// `table.column` → class name (`money`, `currency`, `unit`, `rate`, `status`, `other`, …).
    #[serde(default)]
    pub classes: BTreeMap<String, String>,
    #[serde(default)]
    pub relations: Vec<Relation>,
    #[serde(default)]
    pub waivers: Vec<Waiver>,
    /// Table → the states an entity must leave in time (each needs a timeout rule); by
    /// default the non-initial states a transition rule lets move on.
    #[serde(default)]
    pub intermediate_states: BTreeMap<String, Vec<String>>,
}

/// A relation between two tables that should be reconciled.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relation {
    pub from: String,
    pub to: String,
    /// The column of `from` that holds the reference, if there is one.
    #[serde(default)]
    pub via: Option<String>,
}

/// A field that needs no rule, and who said so.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Waiver {
    /// `table.column`.
    pub column: String,
    pub reason: String,
    pub owner: String,
}

impl Overrides {
    /// Reads and checks a coverage.yaml: every class name must be known.
    pub fn load(path: &Path) -> Result<Overrides, CoverageError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CoverageError::Read { path: path.display().to_string(), message: e.to_string() })?;
        Overrides::parse(&path.display().to_string(), &text)
    }

    pub fn parse(file: &str, text: &str) -> Result<Overrides, CoverageError> {
        let overrides: Overrides = serde_saphyr::from_str(text)
            .map_err(|e| CoverageError::Overrides { file: file.to_string(), message: e.to_string() })?;
        for (column, class) in &overrides.classes {
            if Class::parse(class).is_none() {
                return Err(CoverageError::Overrides {
                    file: file.to_string(),
                    message: format!(
                        "classes: `{column}: {class}`: unknown class; expected money, currency, unit, rate, status, event_time, identifier, reference or other"
                    ),
                });
            }
        }
        Ok(overrides)
    }

    /// Whether a table is measured: matched by `include` (or no `include`) and not `exclude`.
    pub fn keeps(&self, table: &str) -> bool {
        let included = self.include.is_empty() || self.include.iter().any(|p| matches(p, table));
        included && !self.exclude.iter().any(|p| matches(p, table))
    }

    /// The class forced on `table.column`, if any.
    pub fn class_of(&self, table: &str, column: &str) -> Option<Class> {
        self.classes.get(&format!("{table}.{column}")).and_then(|c| Class::parse(c))
    }

    pub fn waiver_of(&self, table: &str, column: &str) -> Option<&Waiver> {
        let key = format!("{table}.{column}");
        self.waivers.iter().find(|w| w.column.eq_ignore_ascii_case(&key))
    }
}

/// A glob with `*` only: enough for table names, and no regex to get wrong.
fn matches(pattern: &str, name: &str) -> bool {
    let pattern = pattern.to_lowercase();
    let name = name.to_lowercase();
    let mut pieces = pattern.split('*');
    let first = pieces.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else { return false };
    let pieces: Vec<&str> = pieces.collect();
    let Some((last, middle)) = pieces.split_last() else { return rest.is_empty() };
    for piece in middle {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(matches("shop.*", "shop.orders"));
        assert!(!matches("shop.*", "pay.orders"));
        assert!(matches("*.audit_*", "shop.audit_log"));
        assert!(matches("shop.orders", "SHOP.ORDERS"));
        assert!(!matches("shop.order", "shop.orders"));
        assert!(matches("a*a", "aa"));
        assert!(!matches("a*a", "a"));
    }

    #[test]
    fn reads_a_file_and_refuses_an_unknown_class() {
        let good = "include: [\"shop.*\"]\nwaivers:\n  - { column: shop.t.fee, reason: internal, owner: finance }\nclasses: { shop.t.x: money }\n";
        let o = Overrides::parse("c.yaml", good).unwrap();
        assert!(o.keeps("shop.t") && !o.keeps("pay.t"));
        assert_eq!(o.waiver_of("shop.t", "fee").map(|w| w.owner.as_str()), Some("finance"));
        assert_eq!(o.class_of("shop.t", "x"), Some(Class::MoneyAmount));
        let bad = Overrides::parse("c.yaml", "classes: { shop.t.x: moneyy }").unwrap_err();
        assert!(bad.to_string().contains("unknown class"), "{bad}");
    }
}
