//! An HTTP ingest body: split into messages and decoded all or nothing. See `fundguard_fuzz::ingest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fundguard_fuzz::ingest(data));
