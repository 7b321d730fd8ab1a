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
