# Shared setup of the benchmark scripts (sourced, not run): builds the release binary,
# makes a scratch directory, prints the machine and writes EVENTS simulated Debezium events.
# Sets BIN, WORK, LOG and LINES. Uses $CARGO_TARGET_DIR when set.
cargo build --release -p fundguard
BIN="${CARGO_TARGET_DIR:-target}/release/fundguard"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$BIN" simulate --out "$WORK" --events "$EVENTS" --format debezium --incident-rate 0.001 --seed 1
LOG="$WORK/debezium.jsonl"
LINES=$(wc -l < "$LOG")
cat "$LOG" > /dev/null # warm the page cache so every pass reads from memory
