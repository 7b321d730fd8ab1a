//! Rule files stay loadable whatever text the sample holds: values with quotes, newlines,
//! YAML syntax or SQL quotes are written so the real loader reads them back unchanged.

use std::sync::Arc;

use fundguard_core::{Op, Value};
use fundguard_suggest::render::rule_file;
use fundguard_suggest::suggest::{Body, Suggestion, TestCase, TestEvent, sql_text};
use proptest::prelude::*;

fn suggestion(text: &str) -> Suggestion {
    Suggestion {
        id: "t-currency-known".into(),
        kind: "currency",
        tables: vec!["s.t".into()],
        columns: vec!["s.t.c".into()],
        invariant: format!("c is {text}"),
        evidence: vec![format!("seen {text}")],
        confidence: 80,
        review: vec![text.to_string()],
        owner: "t".into(),
        severity: "high",
        tags: vec!["suggested".into()],
        body: Body::Check {
            table: "s.t".into(),
            when: Some("op <> 'delete'".into()),
            assert: format!("after.c IN ({})", sql_text(text)),
            key: vec![("id".into(), "after.id".into())],
            money: None,
        },
        tests: vec![TestCase {
            name: text.to_string(),
            events: vec![TestEvent {
                at: 0,
                table: "s.t".into(),
                op: Op::Insert,
                after: vec![("id".into(), Value::Int(1)), ("c".into(), Value::String(text.to_string()))],
            }],
            expect: vec![],
        }],
    }
}

proptest! {
    #[test]
    fn any_text_round_trips_through_the_rule_file(text in "\\PC{1,40}|[\"'\\\\:#{}\\[\\],&*!|>%@` \n\t-]{1,20}") {
        prop_assume!(!text.trim().is_empty());
        let file = rule_file(&suggestion(&text));
        let (rule, problems) = fundguard_rules::parse_rule(Arc::from("t.yaml"), &file);
        prop_assert!(problems.is_empty(), "{problems:?}\n{file}");
        let rule = rule.unwrap();
        prop_assert_eq!(&rule.description, &format!("c is {text}"));
        let row = rule.tests[0].events[0].event.after.clone().unwrap();
        prop_assert_eq!(row.get("c"), Some(&Value::String(text.clone())));
        let outcomes = fundguard_engine::run_rule_tests(&[rule], &Default::default());
        prop_assert!(outcomes.iter().all(|o| o.passed()), "{outcomes:?}");
    }
}

#[test]
fn decimals_are_written_with_their_digits() {
    use fundguard_core::Decimal;
    use fundguard_suggest::render::scalar;
    assert_eq!(scalar(&Value::Decimal(Decimal::new(1999, 2))), "19.99");
    assert_eq!(scalar(&Value::Decimal(Decimal::new(1999, 0))), "1999.0");
    // More digits than a YAML number keeps exactly: written as text.
    assert_eq!(scalar(&Value::Decimal(Decimal::new(1_234_567_890_123_456_789, 2))), "\"12345678901234567.89\"");
}
