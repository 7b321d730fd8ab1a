#!/usr/bin/env bash
# Many rules, one pass: the simulator writes EVENTS Debezium events (default 2,000,000), then
# backtest passes over the same file with no rules (the decode floor) and with 29, 130 and
# 520 rules — variations of the example rules in their proportions of kinds, written by
# scripts/gen_rules.py. Prints events/s, peak memory, findings and what each rule adds per
# event above the floor, so the growth with the rule count reads off one table.
# Rerun: scripts/bench-rules.sh [EVENTS] [COUNTS]   (COUNTS default "29 130 520")
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-2000000}
COUNTS=${2:-29 130 520}
source scripts/bench-lib.sh
echo "input: $LINES lines, $(du -h "$LOG" | cut -f1)"
mkdir "$WORK/rules-0"
run "floor: decode only" "$WORK/rules-0"
FLOOR=$LAST_SECS
for n in $COUNTS; do
    python3 scripts/gen_rules.py "$n" "$WORK/rules-$n"
    run "fundguard: $n rules" "$WORK/rules-$n"
    per_rule=$(echo "($LAST_SECS - $FLOOR) * 1000000000 / $n / $LINES" | bc -l)
    printf '%-34s %8d findings  %8.1f ns per rule per event above the floor\n' "" \
        "$(wc -l < "$WORK/findings.jsonl")" "$per_rule"
done
