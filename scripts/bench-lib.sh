# Shared setup of the benchmark scripts (sourced, not run): builds the release binary,
# makes a scratch directory, prints the machine and writes EVENTS simulated Debezium events.
# Sets BIN, WORK, LOG and LINES, and defines `run NAME RULES_DIR` (which sets LAST_SECS and LAST_KB). Uses $CARGO_TARGET_DIR when set.
# FUNDGUARD_BIN names a release binary built already (as for scripts/bench-latency.sh).
if [ -z "${FUNDGUARD_BIN:-}" ]; then
    cargo build --release -p fundguard
fi
BIN="${FUNDGUARD_BIN:-${CARGO_TARGET_DIR:-target}/release/fundguard}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$BIN" simulate --out "$WORK" --events "$EVENTS" --format debezium --incident-rate 0.001 --seed 1
LOG="$WORK/debezium.jsonl"
LINES=$(wc -l < "$LOG")
cat "$LOG" > /dev/null # warm the page cache so every pass reads from memory

run() { # name, rules dir: one backtest pass, timed; sets LAST_SECS and LAST_KB, leaves the report in $WORK/report.txt
    local name=$1 rules=$2 out="$WORK/time.txt"
    /usr/bin/time -f "%e %M %P" -o "$out" "$BIN" backtest --rules "$rules" --input "$LOG" --format debezium \
        --schema "$WORK/schema.yaml" --findings "$WORK/findings.jsonl" > "$WORK/report.txt"
    read -r secs kb cpu < "$out"
    printf '%-34s %8.2f s  %12.0f events/s  %6d MiB peak  %s CPU\n' "$name" "$secs" \
        "$(echo "$LINES / $secs" | bc -l)" "$((kb / 1024))" "$cpu"
    LAST_SECS=$secs
    LAST_KB=$kb
}
