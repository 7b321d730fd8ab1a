//! MySQL/MariaDB binlog row images: a table map and a rows event, decoded as the binlog source does. See `fundguard_fuzz::binlog_rows`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fundguard_fuzz::binlog_rows(data));
