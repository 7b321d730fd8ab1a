//! The example rules, built into the binary so `fundguard demo` runs with nothing else on disk.
//!
//! The files live in `examples/rules/`; a test checks this list names every one of them.

use std::sync::Arc;

use fundguard_rules::{Diagnostic, Rule, parse_rule};

/// `(file name, text)` of every example rule.
pub const EXAMPLE_RULES: &[(&str, &str)] = &[
    ("ledger-append-only.yaml", include_str!("../../../examples/rules/ledger-append-only.yaml")),
    ("ledger-balanced.yaml", include_str!("../../../examples/rules/ledger-balanced.yaml")),
    ("ledger-entry-valid.yaml", include_str!("../../../examples/rules/ledger-entry-valid.yaml")),
    ("order-amounts-add-up.yaml", include_str!("../../../examples/rules/order-amounts-add-up.yaml")),
    ("order-amounts-non-negative.yaml", include_str!("../../../examples/rules/order-amounts-non-negative.yaml")),
    ("order-currency-valid.yaml", include_str!("../../../examples/rules/order-currency-valid.yaml")),
    ("order-discount-within-total.yaml", include_str!("../../../examples/rules/order-discount-within-total.yaml")),
    ("order-never-deleted.yaml", include_str!("../../../examples/rules/order-never-deleted.yaml")),
    ("order-pay-amount-cap.yaml", include_str!("../../../examples/rules/order-pay-amount-cap.yaml")),
    ("order-pay-amount-frozen.yaml", include_str!("../../../examples/rules/order-pay-amount-frozen.yaml")),
    ("order-state-machine.yaml", include_str!("../../../examples/rules/order-state-machine.yaml")),
    ("order-status-no-regression.yaml", include_str!("../../../examples/rules/order-status-no-regression.yaml")),
    ("order-stuck-in-paying.yaml", include_str!("../../../examples/rules/order-stuck-in-paying.yaml")),
    ("payment-amount-frozen.yaml", include_str!("../../../examples/rules/payment-amount-frozen.yaml")),
    ("payment-amount-positive.yaml", include_str!("../../../examples/rules/payment-amount-positive.yaml")),
    ("payment-currency-valid.yaml", include_str!("../../../examples/rules/payment-currency-valid.yaml")),
    ("payment-failure-rate.yaml", include_str!("../../../examples/rules/payment-failure-rate.yaml")),
    ("payment-matches-order.yaml", include_str!("../../../examples/rules/payment-matches-order.yaml")),
    (
        "payment-minor-units-consistent.yaml",
        include_str!("../../../examples/rules/payment-minor-units-consistent.yaml"),
    ),
    ("payment-status-final.yaml", include_str!("../../../examples/rules/payment-status-final.yaml")),
    ("payment-status-known.yaml", include_str!("../../../examples/rules/payment-status-known.yaml")),
    ("refund-amount-positive.yaml", include_str!("../../../examples/rules/refund-amount-positive.yaml")),
    ("refund-currency-valid.yaml", include_str!("../../../examples/rules/refund-currency-valid.yaml")),
    ("refund-status-final.yaml", include_str!("../../../examples/rules/refund-status-final.yaml")),
    ("refunds-within-payment.yaml", include_str!("../../../examples/rules/refunds-within-payment.yaml")),
    (
        "settlement-commission-computed.yaml",
        include_str!("../../../examples/rules/settlement-commission-computed.yaml"),
    ),
    (
        "settlement-commission-rate-bounds.yaml",
        include_str!("../../../examples/rules/settlement-commission-rate-bounds.yaml"),
    ),
    ("settlement-matches-order.yaml", include_str!("../../../examples/rules/settlement-matches-order.yaml")),
    ("settlement-net-adds-up.yaml", include_str!("../../../examples/rules/settlement-net-adds-up.yaml")),
];

/// Parses the built-in example rules.
pub fn example_rules() -> Result<Vec<Rule>, Vec<Diagnostic>> {
    let mut rules = Vec::new();
    let mut problems = Vec::new();
    for (name, text) in EXAMPLE_RULES {
        let (rule, mut found) = parse_rule(Arc::from(format!("examples/rules/{name}")), text);
        problems.append(&mut found);
        rules.extend(rule);
    }
    if problems.is_empty() { Ok(rules) } else { Err(problems) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_file_is_built_in() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/rules");
        let mut on_disk: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        on_disk.sort();
        let built_in: Vec<String> = EXAMPLE_RULES.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(built_in, on_disk, "add new example rules to EXAMPLE_RULES");
        assert_eq!(example_rules().unwrap().len(), on_disk.len());
    }
}
