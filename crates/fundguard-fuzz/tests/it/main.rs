//! The bounded fuzz runs: every target on its seeds, the corpus, the saved crashes and a
//! fixed number of mutants (see `fundguard_fuzz::driver` for the knobs).

use fundguard_fuzz::{driver, fuzz, target};

/// Counts allocations, so a case that allocates without bound fails.
#[global_allocator]
static ALLOC: driver::Counting = driver::Counting;

#[test]
fn decode() {
    fuzz(target("decode"));
}

#[test]
fn binlog_rows() {
    fuzz(target("binlog_rows"));
}

#[test]
fn wal2json() {
    fuzz(target("wal2json"));
}

#[test]
fn pgoutput() {
    fuzz(target("pgoutput"));
}

/// The pgoutput seed is a transaction a PostgreSQL 15 server sent: mutants start from rows
/// that decode, with every value exact.
#[test]
fn the_pgoutput_seed_decodes_to_the_transaction_the_server_sent() {
    let seed = &(target("pgoutput").seeds)()[0];
    let rows = fundguard_fuzz::pgoutput::messages(seed);
    let out = fundguard_sources::postgres::decode_messages(&std::sync::Arc::from("pg"), &[], &rows);
    assert!(out.batch.dead_letters.is_empty(), "{:?}", out.batch.dead_letters);
    let shown: Vec<String> =
        out.batch.events.iter().map(|e| format!("{} {:?} {:?} -> {:?}", e.table, e.op, e.before, e.after)).collect();
    assert_eq!(shown.len(), 6, "{shown:#?}");
    let after = out.batch.events[0].after.as_ref().unwrap();
    assert_eq!(after.get("a").unwrap().to_string(), "12.34");
    assert_eq!(after.get("s").unwrap().to_string(), "héllo");
    assert_eq!(after.get("ts").unwrap().to_string(), "2026-01-01T19:04:05.123456Z");
    let key_update = &out.batch.events[3];
    assert_eq!(key_update.before.as_ref().unwrap().len(), 1, "the old key only: {shown:#?}");
    assert_eq!(out.batch.events[2].after.as_ref().unwrap().get("note"), Some(&fundguard_core::Value::Null));
}

#[test]
fn rule_file() {
    fuzz(target("rule_file"));
}

#[test]
fn ingest() {
    fuzz(target("ingest"));
}

#[test]
fn pipeline() {
    fuzz(target("pipeline"));
    let made = fundguard_fuzz::pipeline::findings_made();
    assert!(made > 0, "the pipeline target never reached a rule that found something");
    eprintln!("the pipeline target made {made} findings");
}

/// Every target has its test above (and a cargo-fuzz target in `fuzz/fuzz_targets/`).
#[test]
fn every_target_is_run() {
    let source = include_str!("main.rs");
    let cargo_fuzz = std::fs::read_to_string(driver::fuzz_dir().join("Cargo.toml")).unwrap();
    for t in fundguard_fuzz::TARGETS {
        assert!(source.contains(&format!("fuzz(target(\"{}\"))", t.name)), "no test runs `{}`", t.name);
        assert!(cargo_fuzz.contains(&format!("name = \"{}\"", t.name)), "no cargo-fuzz target `{}`", t.name);
    }
}
