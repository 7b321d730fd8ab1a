#!/usr/bin/env bash
# Coverage benchmark: TABLES tables × 40 columns of DDL (default 5,000) and RULES rules
# (default 1,000: check, reconcile, transition, timeout, rate and sql rules) measured by
# `fundguard coverage`. Prints the wall time and peak memory. The target is under 5 s.
# Rerun: scripts/bench-coverage.sh [TABLES] [RULES]
# Uses $FUNDGUARD_BIN when set; else the release binary under $CARGO_TARGET_DIR (or target/)
# if one was built; else it builds and uses the dev binary (and says so: a dev build is
# several times slower than release, so a dev time under the target is a safe upper bound).
set -euo pipefail
cd "$(dirname "$0")/.."
TABLES=${1:-5000}
RULES=${2:-1000}
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
python3 - "$WORK" "$TABLES" "$RULES" <<'PY'
import os, sys
work, tables, rules = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(f"{work}/rules")
with open(f"{work}/schema.sql", "w") as ddl:
    for i in range(tables):
        cols = ["id BIGINT PRIMARY KEY", f"t{max(i - 1, 0):04d}_id BIGINT", "status VARCHAR(16)", "currency CHAR(3)"]
        cols += [f"amount_{k} BIGINT" for k in range(10)]
        cols += ["fee DECIMAL(16,2)", "commission_rate DECIMAL(6,4)", "minor_unit SMALLINT", "created_at DATETIME(6)"]
        cols += [f"note_{k} VARCHAR(64) COMMENT 'free text {k}'" for k in range(22)]
        assert len(cols) == 40
        ddl.write(f"CREATE TABLE bench.t{i:04d} (\n  " + ",\n  ".join(cols) + "\n) ENGINE=InnoDB;\n")
head = "description: generated\nowner: team{owner}\nseverity: high\n"
for r in range(rules):
    t = f"bench.t{(r * 7919) % tables:04d}"
    kind = r % 50
    if kind < 35:
        body = f"check:\n  tables: [{t}]\n  when: \"after.status = 'PAID'\"\n  assert: \"after.amount_{r % 10} >= 0 AND after.currency IN ('CNY', 'USD')\"\n  key: {{ id: after.id }}\n"
    elif kind < 45:
        i = max((r * 7919) % tables, 1)
        body = (f"reconcile:\n  left: {{ table: bench.t{i:04d}, key: after.t{i - 1:04d}_id }}\n"
                f"  right: {{ table: bench.t{i - 1:04d}, key: after.id }}\n  within: 5m\n"
                f"  expect: \"left.amount_0 = right.amount_0 AND left.currency = right.currency\"\n")
    elif kind < 47:
        body = (f"transition:\n  table: {t}\n  key: after.id\n  status: after.status\n  initial: [NEW]\n"
                f"  allowed: {{ NEW: [PAYING], PAYING: [PAID, FAILED], PAID: [REFUNDED] }}\n")
    elif kind < 48:
        body = f"timeout:\n  table: {t}\n  key: after.id\n  enter: \"after.status = 'PAYING'\"\n  exit: \"after.status <> 'PAYING'\"\n  within: 10m\n"
    elif kind < 49:
        body = f"rate:\n  table: {t}\n  group: after.currency\n  numerator: \"after.status = 'FAILED'\"\n  window: 10m\n  min_volume: 20\n  max_ratio: \"0.3\"\n"
    else:
        i = max((r * 7919) % tables, 1)
        body = (f"sql:\n  query: |\n    SELECT a.id, a.amount_1 - b.amount_1 AS diff FROM bench.t{i:04d} a\n"
                f"    JOIN bench.t{i - 1:04d} b ON a.t{i - 1:04d}_id = b.id WHERE a.amount_1 <> b.amount_1\n  key: [id]\n")
    with open(f"{work}/rules/r{r:04d}.yaml", "w") as f:
        f.write(f"id: r{r:04d}\n" + head.format(owner=r % 20) + body)
PY
echo "input: $TABLES tables × 40 columns ($(du -h "$WORK/schema.sql" | cut -f1) of DDL), $(ls "$WORK/rules" | wc -l) rules"
/usr/bin/time -f "%e %M %P" -o "$WORK/time.txt" "$BIN" coverage --rules "$WORK/rules" --ddl "$WORK/schema.sql" \
    --format json > "$WORK/report.json"
read -r secs kb cpu < "$WORK/time.txt"
python3 - "$WORK/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
o = r["overall"]
unknown = sum(1 for x in r["rules"] if x.get("unknown"))
print(f"columns classified: {len(r['columns'])}, rules read: {len(r['rules'])} ({unknown} unknown), "
      f"field {o['field']['covered']}/{o['field']['total']}, metric {o['metric']['covered']}/{o['metric']['total']}, "
      f"cross-system {o['cross_system']['covered']}/{o['cross_system']['total']}")
PY
printf 'fundguard coverage --format json: %.2f s, %d MiB peak, %s CPU\n' "$secs" "$((kb / 1024))" "$cpu"
/usr/bin/time -f "%e %M %P" -o "$WORK/time.txt" "$BIN" coverage --rules "$WORK/rules" --ddl "$WORK/schema.sql" > /dev/null
read -r secs kb cpu < "$WORK/time.txt"
printf 'fundguard coverage (text):     %.2f s, %d MiB peak, %s CPU\n' "$secs" "$((kb / 1024))" "$cpu"
