#!/usr/bin/env bash
# Live MariaDB benchmark: a private MariaDB (ROW binlog, FULL images and metadata) on a
# free port, and the release `fundguard run` reading its binlog with the example rules.
#   1. latency  — a workload driver commits refund rows at 5,000, 20,000 and 50,000 row
#                 changes/s (100 rows per transaction, 1% with a negative amount that
#                 `refund-amount-positive` flags); per finding, latency = when fundguard
#                 wrote it − the row's commit (NOW(6) inside the committing transaction);
#                 p50/p99/max and fundguard's CPU and memory per rate;
#   2. catch-up — CHANGES row changes (default 5,000,000) committed while fundguard is
#                 stopped, then read from the start of the binlog: changes/s.
#   3. the same catch-up with no rules: what the binlog source alone reads per second.
# Rerun: scripts/bench-binlog.sh [CHANGES] [SECONDS_PER_RATE] (SECONDS_PER_RATE=0 skips the
# latency part). Uses $CARGO_TARGET_DIR when set, or FUNDGUARD_BIN=… (a release build made
# already); BASELINE_BIN="…" also times older binaries' catch-up on the same backlog, first.
# MariaDB runs with innodb_flush_log_at_trx_commit=2 and sync_binlog=0 so the 2-core box
# measures fundguard, not fsync.
set -euo pipefail
cd "$(dirname "$0")/.."
CHANGES=${1:-5000000}
SECONDS_PER_RATE=${2:-20}
if [ -n "${FUNDGUARD_BIN:-}" ]; then
    BIN=$(realpath "$FUNDGUARD_BIN")
else
    cargo build --release -p fundguard
    BIN="$(realpath "${CARGO_TARGET_DIR:-target}")/release/fundguard"
fi
WORK=$(mktemp -d)
source scripts/bench-db.sh
PORT=$(free_port)
cleanup() {
    [ -n "${FG_PID:-}" ] && kill "$FG_PID" 2>/dev/null || true
    stop_mariadb "$WORK"
    sleep 1
    rm -rf "$WORK"
}
trap cleanup EXIT
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
python3 -m pip install --quiet pymysql

start_mariadb "$WORK" "$PORT"
SQL="mariadb -h127.0.0.1 -P$PORT -uroot"
$SQL -e "CREATE DATABASE shop; CREATE TABLE shop.refunds (id BIGINT PRIMARY KEY, order_id BIGINT, payment_id BIGINT,
  status ENUM('PENDING','SUCCESS','FAILED'), amount BIGINT, currency VARCHAR(8), created_at DATETIME(6), updated_at DATETIME(6))"

mkdir "$WORK/no-rules"
start_fundguard() { # start: end | beginning; [binary] [rules directory]
    local bin=${2:-$BIN} rules=${3:-$PWD/examples/rules}
    cat > "$WORK/fundguard.yaml" <<YAML
rules: [$rules]
data_dir: $WORK/data
listen: 127.0.0.1:0
sources:
  - { name: shopdb, type: mysql, url: "mysql://root@127.0.0.1:$PORT", start: $1 }
sinks:
  - { type: jsonl, path: $WORK/findings.jsonl }
YAML
    rm -rf "$WORK/data" "$WORK/findings.jsonl"
    "$bin" run --config "$WORK/fundguard.yaml" 2> "$WORK/fundguard.log" &
    FG_PID=$!
    for _ in $(seq 100); do grep -q 'reading the binlog' "$WORK/fundguard.log" && break; sleep 0.1; done
    URL=$(grep -o 'http://[0-9.:]*' "$WORK/fundguard.log" | head -1)
}

if [ "$SECONDS_PER_RATE" != 0 ]; then
    echo "== commit-to-finding latency (${SECONDS_PER_RATE}s per rate) =="
    start_fundguard end
    python3 scripts/bench_binlog_driver.py latency --port "$PORT" --pid "$FG_PID" --findings "$WORK/findings.jsonl" \
        --seconds "$SECONDS_PER_RATE" --rates 5000,20000,50000
    kill "$FG_PID"; wait "$FG_PID" 2>/dev/null || true
fi

echo "== catch-up: $CHANGES row changes from a backlog =="
$SQL -e "RESET MASTER; TRUNCATE shop.refunds"
python3 scripts/bench_binlog_driver.py backlog --port "$PORT" --changes "$CHANGES"
echo "binlog: $(du -ch "$WORK"/db/mysql-bin.0* | tail -1 | cut -f1)"
catch_up() { # label binary rules-directory
    echo "-- $1"
    start_fundguard beginning "$2" "$3"
    python3 scripts/bench_binlog_driver.py catchup --url "$URL" --pid "$FG_PID" --changes "$CHANGES"
    kill "$FG_PID"; wait "$FG_PID" 2>/dev/null || true
    FG_PID=
}
for baseline in ${BASELINE_BIN:-}; do
    catch_up "baseline $baseline, all example rules" "$(realpath "$baseline")" "$PWD/examples/rules"
done
catch_up "$BIN, all example rules" "$BIN" "$PWD/examples/rules"
catch_up "$BIN, no rules (the source alone)" "$BIN" "$WORK/no-rules"
