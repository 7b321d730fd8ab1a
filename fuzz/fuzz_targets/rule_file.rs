//! The rule-file parser on arbitrary text: diagnostics, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = fundguard_rules::parse_rule("fuzz.yaml".into(), text);
    }
});
