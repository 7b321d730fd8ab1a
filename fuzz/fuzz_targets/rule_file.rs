//! A rule file: parsed, validated and compiled by the engine. See `fundguard_fuzz::rule_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fundguard_fuzz::rule_file(data));
