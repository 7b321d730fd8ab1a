#!/usr/bin/env bash
# Core pipeline benchmark: the simulator writes EVENTS Debezium events (default 5,000,000),
# then three passes over the same file, each on one core:
#   1. floor    — decode only (fundguard backtest with no rules),
#   2. fundguard — decode + the 22 example check rules,
#   3. for scale — Python orjson parsing the same lines, and DuckDB evaluating check predicates.
# Prints events/s and peak memory for each. Rerun: scripts/bench-core.sh [EVENTS]
# BASELINE_BIN="a b" also times older release binaries on the same file, first (and checks
# that each finds what this one finds).
# Uses $CARGO_TARGET_DIR when set (a release build of DataFusion takes ~30 min on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-5000000}
source scripts/bench-lib.sh
mkdir "$WORK/no-rules" "$WORK/checks"
# The check rules of the examples (the stateful ones have their own benchmark).
for f in examples/rules/*.yaml; do grep -q '^check:' "$f" && cp "$f" "$WORK/checks/"; done
echo "input: $LINES lines, $(du -h "$LOG" | cut -f1)"

CURRENT=$BIN
for baseline in ${BASELINE_BIN:-}; do
    BIN=$baseline
    run "baseline $(basename "$(dirname "$baseline")"): decode only" "$WORK/no-rules"
    run "baseline: $(ls "$WORK/checks" | wc -l) check rules" "$WORK/checks"
    sed -E 's/"detected_at":"[^"]*"//' "$WORK/findings.jsonl" > "$WORK/baseline-findings.cmp"
done
BIN=$CURRENT
run "floor: decode only" "$WORK/no-rules"
run "fundguard: $(ls "$WORK/checks" | wc -l) check rules" "$WORK/checks"
echo "findings: $(wc -l < "$WORK/findings.jsonl")"
if [ -n "${BASELINE_BIN:-}" ]; then
    sed -E 's/"detected_at":"[^"]*"//' "$WORK/findings.jsonl" | cmp -s - "$WORK/baseline-findings.cmp" \
        && echo "findings identical to the last baseline's (but for detected_at)" \
        || echo "findings DIFFER from the last baseline's"
fi

if python3 -c 'import orjson, duckdb' 2>/dev/null || pip install --quiet orjson duckdb 2>/dev/null; then
    python3 scripts/bench_python.py "$LOG"
else
    echo "python comparison skipped: pip install orjson duckdb"
fi
