//! The rule parser never panics, whatever the text.

use proptest::prelude::*;

use crate::parse;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = parse(&text);
    }

    #[test]
    fn yaml_shaped_text_never_panics(
        lines in prop::collection::vec(
            (0usize..3, prop::sample::select(vec!["id", "owner", "severity", "check", "tables", "assert", "when", "key", "tests", "events", "at", "op", "after", "expect", "- name", "deadline", "money"]),
             prop::sample::select(vec!["", " a", " low", " [a.b]", " 'x > 1'", " { id: 1 }", " -3.5", " 1d", " null", " [", " {"])),
            0..14,
        )
    ) {
        let text: String = lines.iter().map(|(indent, k, v)| format!("{}{k}:{v}\n", "  ".repeat(*indent))).collect();
        let _ = parse(&text);
    }
}
