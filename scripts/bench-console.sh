#!/usr/bin/env bash
# Console/API benchmark: the release `fundguard run` serving an SQLite alert store of
# ALERTS alerts (default 1,000,000, written by the ingest_storm example: 20 rules, 5 teams,
# 4 severities), and a load script timing list/filter requests through the HTTP API —
# p50/p99/max per query shape. Target: p99 < 100 ms.
# Rerun: scripts/bench-console.sh [ALERTS] [REQUESTS_PER_QUERY]. Uses $CARGO_TARGET_DIR when set.
set -euo pipefail
cd "$(dirname "$0")/.."
ALERTS=${1:-1000000}
REQUESTS=${2:-200}
cargo build --release -p fundguard
cargo build --release -p fundguard-alerts --example ingest_storm
TARGET="$(realpath "${CARGO_TARGET_DIR:-target}")/release"
WORK=$(mktemp -d)
cleanup() {
    [ -n "${FG_PID:-}" ] && kill "$FG_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$TARGET/examples/ingest_storm" "$ALERTS" "$ALERTS" 10000 "sqlite:$WORK/alerts.db"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/fundguard.yaml" <<YAML
rules: [$PWD/examples/rules]
data_dir: $WORK
listen: 127.0.0.1:$PORT
sinks:
  - { type: alerts, path: $WORK/alerts.db }
console:
  tokens:
    - { name: bench, role: viewer, token_env: FG_BENCH_TOKEN }
YAML
FG_BENCH_TOKEN=bench "$TARGET/fundguard" run --config "$WORK/fundguard.yaml" 2> "$WORK/fundguard.log" &
FG_PID=$!
python3 scripts/bench_console.py "http://127.0.0.1:$PORT" bench "$REQUESTS"
echo "fundguard RSS: $(ps -o rss= -p "$FG_PID" | awk '{printf "%.0f MiB", $1/1024}')"
