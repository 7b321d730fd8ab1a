//! Determinism: findings do not depend on how the input is cut into micro-batches.

use fundguard_core::Value;
use proptest::prelude::*;

use crate::{check, dec, insert, run};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn findings_are_independent_of_batch_size(
        rows in prop::collection::vec((any::<bool>(), -1000i64..1000, 0u32..4, prop::sample::select(vec!["CNY", "USD", "XXX"])), 1..80),
        batch in 1usize..100,
    ) {
        let rules = vec![
            check("a", "  assert: after.amount > 0\n"),
            check("b", "  when: \"after.currency <> 'USD'\"\n  assert: \"after.currency IN ('CNY', 'USD')\"\n"),
        ];
        let events: Vec<_> = rows.iter().enumerate().map(|(i, (is_dec, amount, scale, currency))| {
            let amount = if *is_dec { dec(&fundguard_core::Decimal::new(*amount, *scale).to_string()) } else { Value::Int(*amount) };
            insert(i as u64, &[("id", (i as i64).into()), ("amount", amount), ("currency", (*currency).into())])
        }).collect();
        let strip = |fs: Vec<fundguard_core::Finding>| fs.into_iter().map(|f| (f.rule, f.key, f.message)).collect::<Vec<_>>();
        let whole = strip(run(&rules, &events, events.len()));
        let cut = strip(run(&rules, &events, batch));
        prop_assert_eq!(whole, cut);
    }
}
