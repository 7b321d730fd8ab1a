#!/usr/bin/env bash
# Live commit → finding latency per rule kind (check, transition, reconcile mismatch, timeout
# deadline), on a private MariaDB (binlog) and a private PostgreSQL 15 (wal2json slot), each
# read by its own release `fundguard run` with four benchmark rules (written below).
# scripts/bench_latency_driver.py commits order lifecycles at 2,000, 5,000 and 20,000 row
# changes/s (small transactions of ~20 changes, 1 % of orders breaking each rule), records
# the wall time right after each COMMIT returns, and per kind prints p50/p99/max of the
# finding's `detected_at` − that acknowledgement; for the timeout rule (`within: 2s`)
# `detected_at` − the deadline, and for the binlog also − (deadline + 1 s), the first moment
# whole-second binlog times can decide an inclusive deadline. Plus the rate achieved,
# fundguard's CPU and RSS, and whether every injected violation was found.
# Rerun: scripts/bench-latency.sh [SECONDS_PER_RATE] [RATES] [DATABASES]
#   (defaults 30, 2000,5000,20000 and mariadb,postgres). Uses $CARGO_TARGET_DIR when set;
#   FUNDGUARD_BIN=path skips the build and runs that binary instead; CHECKPOINT_INTERVAL=1h
#   (default 5s, fundguard's default) shows the latency without periodic checkpoints;
#   DUMP=file appends every found violation (commit ack, event_time, detected_at) as JSON lines.
# The databases trade durability for speed (scripts/bench-db.sh) so the 2-core box measures
# fundguard, not fsync; database, driver and fundguard share the two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RATE=${1:-30}
RATES=${2:-2000,5000,20000}
DATABASES=${3:-mariadb,postgres}
CHECKPOINT_INTERVAL=${CHECKPOINT_INTERVAL:-5s}   # fundguard's default; 1h keeps periodic checkpoints out of the way
if [ -z "${FUNDGUARD_BIN:-}" ]; then
    nice -n 19 cargo build --release -p fundguard
    BIN="$(realpath "${CARGO_TARGET_DIR:-target}")/release/fundguard"
else
    BIN=$(realpath "$FUNDGUARD_BIN")
fi
WORK=$(mktemp -d)
source scripts/bench-db.sh
cleanup() {
    [ -n "${FG_PID:-}" ] && kill "$FG_PID" 2>/dev/null || true
    stop_mariadb "$WORK"
    stop_postgres "$WORK"
    sleep 1
    rm -rf "$WORK"
}
trap cleanup EXIT
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "fundguard: $BIN ($("$BIN" --version 2>/dev/null || echo '?'))"
python3 -m pip install --quiet pymysql 'psycopg[binary]' 2>&1 | grep -v 'as the .root. user' || true

mkdir -p "$WORK/rules"
cat > "$WORK/rules/check.yaml" <<'YAML'
id: bench-payment-positive
owner: bench
severity: critical
check:
  tables: [shop.payments]
  assert: "after.amount > 0"
  key: { id: after.id }
YAML
cat > "$WORK/rules/transition.yaml" <<'YAML'
id: bench-order-lifecycle
owner: bench
severity: critical
transition:
  table: shop.orders
  key: after.id
  status: after.status
  initial: [CREATED]
  allowed:
    CREATED: [PAYING]
    PAYING: [PAID]
YAML
cat > "$WORK/rules/reconcile.yaml" <<'YAML'
id: bench-payment-matches-order
owner: bench
severity: critical
reconcile:
  left:  { table: shop.payments, key: after.order_id, when: "after.status = 'SUCCESS'" }
  right: { table: shop.orders,   key: after.id,       when: "after.status = 'PAID'" }
  within: 1m
  key_type: integer
  tolerance: { left: left.amount, right: right.pay_amount, absolute: 0 }
  message: "{{ verdict }}: payment {{ left.amount }}, order {{ right.pay_amount }}"
YAML
cat > "$WORK/rules/timeout.yaml" <<'YAML'
id: bench-order-paying-timeout
owner: bench
severity: critical
timeout:
  table: shop.orders
  key: after.id
  enter: "after.status = 'PAYING'"
  exit: "after.status <> 'PAYING'"
  within: 2s
YAML
"$BIN" validate "$WORK/rules" >/dev/null

start_fundguard() { # source entry (YAML flow mapping)
    cat > "$WORK/fundguard.yaml" <<YAML
rules: [$WORK/rules]
data_dir: $WORK/data
listen: 127.0.0.1:0
idle_after: 1h          # only the source's own signals (binlog heartbeats, slot keepalives) move event time
checkpoint_interval: $CHECKPOINT_INTERVAL
sources:
  - $1
sinks:
  - { type: jsonl, path: $WORK/findings.jsonl }
YAML
    rm -rf "$WORK/data" "$WORK/findings.jsonl"
    "$BIN" run --config "$WORK/fundguard.yaml" 2> "$WORK/fundguard.log" &
    FG_PID=$!
    for _ in $(seq 100); do grep -qs 'listening on' "$WORK/fundguard.log" && break; sleep 0.1; done
    URL=$(grep -o 'http://[0-9.:]*' "$WORK/fundguard.log" | head -1)
}

stop_fundguard() {
    kill "$FG_PID"
    wait "$FG_PID" 2>/dev/null || true
    FG_PID=
    if grep -v -e 'listening on' -e 'reading the binlog' -e 'shutting down' -e 'stopped cleanly' "$WORK/fundguard.log"; then
        echo "(fundguard's log above)"
    fi
}

measure() { # database port server-pid
    python3 scripts/bench_latency_driver.py run --database "$1" --port "$2" --db-pid "$3" --pid "$FG_PID" --url "$URL" \
        --findings "$WORK/findings.jsonl" --seconds "$SECONDS_PER_RATE" --rates "$RATES" ${DUMP:+--dump "$DUMP"}
}

if [[ ",$DATABASES," == *,mariadb,* ]]; then
    echo "== MariaDB $(mariadbd --version | grep -o '[0-9]*\.[0-9]*\.[0-9]*' | head -1), binlog =="
    PORT=$(free_port)
    start_mariadb "$WORK" "$PORT"
    python3 scripts/bench_latency_driver.py setup --database mariadb --port "$PORT"
    start_fundguard "{ name: shopdb, type: mysql, url: \"mysql://root@127.0.0.1:$PORT\", start: end, include: [\"shop.*\"] }"
    measure mariadb "$PORT" "$(cat "$WORK/db.pid")"
    stop_fundguard
    stop_mariadb "$WORK"
fi

if [[ ",$DATABASES," == *,postgres,* ]]; then
    echo "== PostgreSQL $(runuser -u postgres -- postgres --version 2>/dev/null | grep -o '[0-9][0-9.]*' | head -1 || true), wal2json slot =="
    PORT=$(free_port)
    start_postgres "$WORK" "$PORT"
    python3 scripts/bench_latency_driver.py setup --database postgres --port "$PORT"
    start_fundguard "{ name: shopdb, type: postgres, url: \"postgres://postgres@127.0.0.1:$PORT/postgres\", slot: fundguard, create_slot: true, include: [\"shop.*\"] }"
    measure postgres "$PORT" "$(head -1 "$WORK/pg/data/postmaster.pid")"
    stop_fundguard
    stop_postgres "$WORK"
fi
