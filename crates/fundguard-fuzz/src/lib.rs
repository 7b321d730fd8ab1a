//! Fuzz targets: one function per kind of untrusted input fundguard reads, each taking
//! arbitrary bytes and holding the code under it to never panicking, never hanging and
//! never allocating without bound — and to the invariants the pipeline relies on (a
//! decoded commit time is in range; a refusal has a reason).
//!
//! The same functions run two ways: coverage-guided with cargo-fuzz (`fuzz/`, nightly,
//! as long as you like) and bounded in the test suite on stable (`tests/it`, every
//! `scripts/test.sh`: seeds and a fixed number of mutants, see [`driver`]).
//!
//! | target        | input                                                              |
//! |---------------|--------------------------------------------------------------------|
//! | `decode`      | one message for every decoder (Debezium, Canal, Maxwell, JSON)      |
//! | `binlog_rows` | a MySQL/MariaDB table map and rows event (row images)               |
//! | `wal2json`    | PostgreSQL wal2json records                                         |
//! | `pgoutput`    | PostgreSQL pgoutput messages of one connection                      |
//! | `rule_file`   | a rule file, parsed, validated and compiled                         |
//! | `ingest`      | an HTTP ingest body, split and decoded all or nothing               |
//! | `pipeline`    | events (decoded, or of any content) through the engine's example rules |
//!
//! The config parser lives in the binary; its bounded run is a unit test there
//! (`live/config_fuzz.rs`) driving [`driver::fuzz`] too.

pub mod binlog;
pub mod decode;
pub mod driver;
pub mod ingest;
mod input;
pub mod pgoutput;
pub mod pipeline;
pub mod rules;
mod seeds;
pub mod wal2json;

pub use binlog::binlog_rows;
pub use decode::decode;
pub use driver::{Target, fuzz};
pub use ingest::ingest;
pub use pgoutput::pgoutput;
pub use pipeline::pipeline;
pub use rules::rule_file;
pub use wal2json::wal2json;

/// Every target with what its bounded run needs. The mutant counts keep the whole bounded
/// run near a minute on the CI machine (2 cores, debug build).
pub const TARGETS: &[Target] = &[
    Target {
        name: "decode",
        run: decode,
        seeds: decode::seeds,
        dictionary: decode::DICTIONARY,
        cases: 50_000,
        max_len: 64 << 10,
    },
    Target {
        name: "binlog_rows",
        run: binlog_rows,
        seeds: binlog::seeds,
        dictionary: &[],
        cases: 20_000,
        max_len: 4 << 10,
    },
    Target {
        name: "wal2json",
        run: wal2json,
        seeds: wal2json::seeds,
        dictionary: wal2json::DICTIONARY,
        cases: 10_000,
        max_len: 64 << 10,
    },
    Target {
        name: "pgoutput",
        run: pgoutput,
        seeds: pgoutput::seeds,
        dictionary: pgoutput::DICTIONARY,
        cases: 10_000,
        max_len: 16 << 10,
    },
    Target {
        name: "rule_file",
        run: rule_file,
        seeds: rules::seeds,
        dictionary: rules::DICTIONARY,
        cases: 4_000,
        max_len: 16 << 10,
    },
    Target {
        name: "ingest",
        run: ingest,
        seeds: ingest::seeds,
        dictionary: ingest::DICTIONARY,
        cases: 30_000,
        max_len: 64 << 10,
    },
    Target {
        name: "pipeline",
        run: pipeline,
        seeds: pipeline::seeds,
        dictionary: decode::DICTIONARY,
        cases: 2_000,
        max_len: 16 << 10,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> &'static Target {
    TARGETS.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no fuzz target `{name}`"))
}
