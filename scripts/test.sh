#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: formatting, lints, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# Property tests: CI replays one fixed seed so that whether a change lands never depends
# on luck; everywhere else each run explores new cases, and proptest saves any failure it
# finds under crates/*/tests/proptest-regressions/ (commit those files: they replay first).
# The bounded fuzz runs (crates/fundguard-fuzz, and the config parser's in the binary: every
# decoder, binlog row images, wal2json, rule files, HTTP ingest bodies, events through the
# engine) are part of the workspace tests below and follow the same rule with their own seed;
# fuzz/README.md says how to fuzz longer, coverage-guided.
if [ -n "${CI:-}" ]; then
    export PROPTEST_RNG_SEED="${PROPTEST_RNG_SEED:-20261125}"
    export FUNDGUARD_FUZZ_SEED="${FUNDGUARD_FUZZ_SEED:-20261125}"
fi

# Test-only tools: wal2json for PostgreSQL, the Tansu Kafka broker (idempotent, quick when present).
scripts/install-test-deps.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --locked --no-fail-fast

# The container image (Dockerfile): built where a Docker daemon answers; elsewhere said so.
# deploy.rs checks what can be checked without one (the compose example against the image's
# paths, its config run for real).
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    docker build --tag fundguard:test .
else
    echo "scripts/test.sh: no Docker daemon on this machine: the container image was not built"
fi
