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
source scripts/bench-lib.sh
mkdir "$WORK/no-rules" "$WORK/stateful"
for f in examples/rules/*.yaml; do
    grep -qE '^(reconcile|transition|timeout):' "$f" && cp "$f" "$WORK/stateful/"
done
echo "input: $LINES lines, $(du -h "$LOG" | cut -f1); rules: $(ls "$WORK/stateful" | tr '\n' ' ')"

run "floor: decode only" "$WORK/no-rules"
FLOOR_KB=$LAST_KB
run "fundguard: stateful rules" "$WORK/stateful"
grep -E 'reconcile|transition|timeout' "$WORK/report.txt"
KEYS=$(awk '/reconcile|transition|timeout/ {k += $(NF-1)} END {print k}' "$WORK/report.txt")
echo "findings: $(wc -l < "$WORK/findings.jsonl"); keys held at the end: $KEYS"
echo "state per key: $(( (LAST_KB - FLOOR_KB) * 1024 / KEYS )) bytes measured (peak RSS over the decode-only run / keys)," \
     "$(awk '/reconcile|transition|timeout/ {b += $NF; k += $(NF-1)} END {printf "%d", b / k}' "$WORK/report.txt") bytes estimated by the rules"

# The comparison: payment vs order alone, fundguard and Pathway on the same first million events
# (Pathway holds its input in memory, ~1 GiB per million events here; 5 million exhausts 23 GiB).
SUB="$WORK/first-million.jsonl"
head -n 1000000 "$LOG" > "$SUB"
SUB_LINES=$(wc -l < "$SUB")
mkdir "$WORK/pay-vs-order" && cp examples/rules/payment-matches-order.yaml "$WORK/pay-vs-order/"
/usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$BIN" backtest --rules "$WORK/pay-vs-order" --input "$SUB" \
    --format debezium --schema "$WORK/schema.yaml" --findings "$WORK/sub-findings.jsonl" > /dev/null
read -r FG_SECS FG_KB < "$WORK/time.txt"
printf '%-34s %8.2f s  %12.0f events/s  %6d MiB peak  (%d findings)\n' "fundguard: payment vs order" "$FG_SECS" \
    "$(echo "$SUB_LINES / $FG_SECS" | bc -l)" "$((FG_KB / 1024))" "$(wc -l < "$WORK/sub-findings.jsonl")"
if python3 -c 'import pathway' 2>/dev/null || pip install --quiet pathway 2>/dev/null; then
    python3 scripts/bench_pathway.py "$SUB" 2>/dev/null | tee "$WORK/pathway.txt"
    PW_SECS=$(awk '{print $5}' "$WORK/pathway.txt")
    echo "ratio: fundguard is $(echo "scale=1; $PW_SECS / $FG_SECS" | bc -l)x faster than Pathway on the same input"
else
    echo "pathway comparison skipped: pip install pathway"
fi
