//! Every change-log decoder (Debezium, Canal, Maxwell, plain JSON) on one message. See `fundguard_fuzz::decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fundguard_fuzz::decode(data));
