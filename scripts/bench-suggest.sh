#!/usr/bin/env bash
# Suggest benchmark: `fundguard suggest` over EVENTS change events of the simulated shop
# (default 1,000,000; Debezium with its schema file), profiled in one pass, then every
# suggestion tested and backtested over the same events. Prints the phases' times (from the
# command's own last lines), the wall time and peak memory. The target is profiling under 30 s.
# Rerun: scripts/bench-suggest.sh [EVENTS]
# Uses $FUNDGUARD_BIN when set; else the release binary under $CARGO_TARGET_DIR (or target/)
# if one was built; else it builds and uses the dev binary (and says so: a dev build is
# several times slower than release, so a dev time under the target is a safe upper bound).
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-1000000}
TARGET=${CARGO_TARGET_DIR:-target}
if [ -n "${FUNDGUARD_BIN:-}" ]; then
    BIN=$FUNDGUARD_BIN
elif [ -x "$TARGET/release/fundguard" ]; then
    BIN="$TARGET/release/fundguard"
else
    cargo build -p fundguard
    BIN="$TARGET/debug/fundguard"
    echo "note: no release build; timing the dev build ($BIN)"
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
# The shop's orders arrive over hours in proportion to their number, as in a real day.
HOURS=$(( EVENTS / 250000 + 4 ))
"$BIN" simulate --out "$WORK/shop" --format debezium --events "$EVENTS" --hours "$HOURS" --incident-rate 0 >/dev/null
echo "input: $(wc -l < "$WORK/shop/debezium.jsonl") messages, $(du -h "$WORK/shop/debezium.jsonl" | cut -f1)"
/usr/bin/time -f "wall %e s, peak memory %M KiB" "$BIN" suggest --input "$WORK/shop/debezium.jsonl" --format debezium \
    --schema "$WORK/shop/schema.yaml" --limit "$EVENTS" --out "$WORK/suggested" 2>&1 | tail -4
echo "suggestions: $(ls "$WORK/suggested"/*.yaml | wc -l)"
