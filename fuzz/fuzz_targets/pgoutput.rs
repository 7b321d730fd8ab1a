//! PostgreSQL pgoutput messages, decoded as the logical-decoding source does. See `fundguard_fuzz::pgoutput`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fundguard_fuzz::pgoutput(data));
