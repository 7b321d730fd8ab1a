//! PostgreSQL wal2json records, decoded as the logical-decoding source does. See `fundguard_fuzz::wal2json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fundguard_fuzz::wal2json(data));
