#!/usr/bin/env bash
# Stateful rules benchmark: the simulator writes EVENTS Debezium events (default 5,000,000),
# then on one core:
#   1. floor     — decode only,
#   2. fundguard — the reconcile, transition and timeout example rules (payment vs order,
#                  refunds vs payment, settlement vs order, ledger balance, order state machine,
#                  stuck PAYING), reporting events/s, peak memory and state per key,
#   3. Pathway   — the payment-vs-order reconciliation on the same file (pip install pathway).
# Rerun: scripts/bench-stateful.sh [EVENTS]. Uses $CARGO_TARGET_DIR when set.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-5000000}
cargo build --release -p fundguard
BIN="${CARGO_TARGET_DIR:-target}/release/fundguard"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/no-rules" "$WORK/stateful"
for f in examples/rules/*.yaml; do
    grep -qE '^(reconcile|transition|timeout):' "$f" && cp "$f" "$WORK/stateful/"
done

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$BIN" simulate --out "$WORK" --events "$EVENTS" --format debezium --incident-rate 0.001 --seed 1
LOG="$WORK/debezium.jsonl"
LINES=$(wc -l < "$LOG")
echo "input: $LINES lines, $(du -h "$LOG" | cut -f1); rules: $(ls "$WORK/stateful" | tr '\n' ' ')"
cat "$LOG" > /dev/null

run() { # name, rules dir
    local name=$1 rules=$2 out="$WORK/time.txt"
    /usr/bin/time -f "%e %M %P" -o "$out" "$BIN" backtest --rules "$rules" --input "$LOG" --format debezium \
        --schema "$WORK/schema.yaml" --findings "$WORK/findings.jsonl" > "$WORK/report.txt"
    read -r secs kb cpu < "$out"
    printf '%-34s %8.2f s  %12.0f events/s  %6d MiB peak  %s CPU\n' "$name" "$secs" \
        "$(echo "$LINES / $secs" | bc -l)" "$((kb / 1024))" "$cpu"
    LAST_KB=$kb
}
run "floor: decode only" "$WORK/no-rules"
FLOOR_KB=$LAST_KB
run "fundguard: stateful rules" "$WORK/stateful"
grep -E 'reconcile|transition|timeout' "$WORK/report.txt"
KEYS=$(awk '/reconcile|transition|timeout/ {k += $(NF-1)} END {print k}' "$WORK/report.txt")
echo "findings: $(wc -l < "$WORK/findings.jsonl"); keys held at the end: $KEYS"
echo "state per key: $(( (LAST_KB - FLOOR_KB) * 1024 / KEYS )) bytes measured (peak RSS over the decode-only run / keys)," \
     "$(awk '/reconcile|transition|timeout/ {b += $NF; k += $(NF-1)} END {printf "%d", b / k}' "$WORK/report.txt") bytes estimated by the rules"

if python3 -c 'import pathway' 2>/dev/null || pip install --quiet pathway 2>/dev/null; then
    python3 scripts/bench_pathway.py "$LOG"
else
    echo "pathway comparison skipped: pip install pathway"
fi
