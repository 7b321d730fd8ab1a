#!/usr/bin/env bash
# Checkpoint cost benchmark: the simulator writes EVENTS Debezium events (default 2,100,000,
# which leave about 1,000,000 keys pending in the six stateful example rules), then:
#   1. backtest  — the stateful rules over the file: keys held at the end (the pending keys);
#   2. live runs — `fundguard run` reading the same file with checkpoints effectively off
#                  (interval 24h), at the default interval (5s) and at 1s: events/s of each
#                  and the throughput lost to checkpoints; checkpoint size on disk, time to
#                  write one (as the pipeline measures it), shutdown with a final checkpoint,
#                  and time to restore the state on the next start.
# Rerun: scripts/bench-checkpoint.sh [EVENTS]. Uses $CARGO_TARGET_DIR when set.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-2100000}
source scripts/bench-lib.sh
mkdir "$WORK/stateful"
for f in examples/rules/*.yaml; do
    grep -qE '^(reconcile|transition|timeout):' "$f" && cp "$f" "$WORK/stateful/"
done
echo "input: $LINES lines, $(du -h "$LOG" | cut -f1); rules: $(ls "$WORK/stateful" | tr '\n' ' ')"
run "backtest: stateful rules" "$WORK/stateful"
KEYS=$(awk '/reconcile|transition|timeout/ {k += $(NF-1)} END {print k}' "$WORK/report.txt")
echo "pending keys at the end of the input: $KEYS"
python3 scripts/bench_checkpoint.py "$(realpath "$BIN")" "$WORK" "$WORK/stateful" "$WORK/schema.yaml" "$LOG"
