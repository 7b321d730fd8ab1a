//! Past the decoder: events of any content through the engine with the example rules. See `fundguard_fuzz::pipeline`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fundguard_fuzz::pipeline(data));
