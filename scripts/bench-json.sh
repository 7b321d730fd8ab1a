#!/usr/bin/env bash
# JSON parsers on our events (issue 23 item 1): the simulator writes EVENTS Debezium events
# (default 1,000,000), then fundguard-formats' `json_parsers` example times serde_json,
# sonic-rs and simd-json on them — whole documents and a nine-field projection — beside
# fundguard's own Debezium decoder, built twice: as the release binary is (no CPU flags)
# and with `-C target-cpu=native` (the SIMD parsers choose their instructions when compiled).
# Python's orjson parses the same lines for scale. One core; lines held in memory.
# Rerun: scripts/bench-json.sh [EVENTS]. Uses $CARGO_TARGET_DIR when set, FUNDGUARD_BIN for
# the binary that simulates.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-1000000}
source scripts/bench-lib.sh
TARGET=$(realpath "${CARGO_TARGET_DIR:-target}")
echo "input: $LINES lines, $(du -h "$LOG" | cut -f1)"
echo "== release profile, no CPU flags (as fundguard ships) =="
CARGO_TARGET_DIR="$TARGET" cargo run --quiet --release -p fundguard-formats --features json-parser-bench \
    --example json_parsers -- "$LOG"
echo "== -C target-cpu=native =="
RUSTFLAGS="-C target-cpu=native" CARGO_TARGET_DIR="$TARGET/native" cargo run --quiet --release -p fundguard-formats \
    --features json-parser-bench --example json_parsers -- "$LOG"
if python3 -c 'import orjson' 2>/dev/null || pip install --quiet orjson 2>/dev/null; then
    python3 - "$LOG" <<'PY'
import sys, time, orjson
lines = open(sys.argv[1], "rb").read().splitlines()
best = min(
    (lambda t0: (any(orjson.loads(l) is None for l in lines), time.perf_counter() - t0)[1])(time.perf_counter())
    for _ in range(3)
)
print(f"{'python orjson: whole document (orjson.loads)':<64} {len(lines) / best:>12.0f} lines/s")
PY
fi
