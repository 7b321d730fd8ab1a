"""The D+1 reconciliation benchmark (see bench-sql.sh): fundguard vs DuckDB on one query."""

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import duckdb

BIN, WORK, ROWS = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
DS = "2026-11-25"
RUNS = 5

# The rule's query; both engines run this text with {{ ds }} rendered.
QUERY = """
SELECT o.merchant_id, '{{ ds }}' AS ds,
       COUNT(*) AS payments,
       SUM(o.pay_amount) AS ordered,
       SUM(p.amount) AS paid,
       SUM(p.amount) - SUM(o.pay_amount) AS difference
FROM orders o JOIN payments p ON p.order_id = o.id
WHERE o.ds = '{{ ds }}' AND p.ds = '{{ ds }}' AND p.status = 'SUCCESS'
GROUP BY o.merchant_id
HAVING SUM(p.amount) <> SUM(o.pay_amount)
"""


def generate():
    """10M orders over 2,000 merchants; one payment per order, 3% failed; every
    1,000,003rd payment captured one fen more than its order (the injected mismatches)."""
    con = duckdb.connect()
    for table in ("orders", "payments"):
        (WORK / table / f"ds={DS}").mkdir(parents=True)
    con.sql(f"""
        COPY (SELECT i AS id, i % 2000 AS merchant_id, (i * 7919) % 1000000 AS user_id,
                     1000 + (i * 37) % 50000 AS pay_amount, 'CNY' AS currency, 'PAID' AS status
              FROM range({ROWS}) t(i))
        TO '{WORK}/orders/ds={DS}/part-0.parquet' (FORMAT parquet)""")
    con.sql(f"""
        COPY (SELECT i AS id, i AS order_id,
                     CASE WHEN i % 33 = 0 THEN 'FAILED' ELSE 'SUCCESS' END AS status,
                     1000 + (i * 37) % 50000 + CASE WHEN i % 1000003 = 7 THEN 1 ELSE 0 END AS amount,
                     TIMESTAMP '{DS} 00:00:00' + to_seconds(i % 86400) AS paid_at
              FROM range({ROWS}) t(i))
        TO '{WORK}/payments/ds={DS}/part-0.parquet' (FORMAT parquet)""")


def fundguard():
    rules = WORK / "rules"
    rules.mkdir()
    (rules / "bench.yaml").write_text(
        "id: orders-vs-payments\nowner: finance\nseverity: high\nsql:\n  query: |\n"
        + "".join(f"    {line}\n" for line in QUERY.strip().splitlines())
        + "  key: [merchant_id, ds]\n  money: { amount: difference }\n  timeout: 1h\n  max_findings: 100000\n"
    )
    (WORK / "fundguard.yaml").write_text(
        f"rules: [rules]\ndata_dir: data\nwarehouse:\n"
        f"  - {{ name: orders, type: parquet, path: orders, partitions: [ds] }}\n"
        f"  - {{ name: payments, type: parquet, path: payments, partitions: [ds] }}\n"
    )
    walls = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(
            [BIN, "sql", "run", "orders-vs-payments", "--config", str(WORK / "fundguard.yaml"), "--date", DS,
             "--out", str(WORK / "findings.jsonl")],
            check=True, stderr=subprocess.DEVNULL)
        walls.append(time.perf_counter() - started)
    runs = [json.loads(l) for l in subprocess.run(
        [BIN, "sql", "runs", "--config", str(WORK / "fundguard.yaml"), "--json"],
        check=True, capture_output=True, text=True).stdout.splitlines()]
    queries = [r["duration_ms"] / 1000 for r in runs]
    found = sorted((f["key"]["merchant_id"], int(f["money_at_risk"]["amount"]))
                   for f in map(json.loads, (WORK / "findings.jsonl").read_text().splitlines()))
    return walls, queries, found


def duck():
    walls = []
    text = QUERY.replace("{{ ds }}", DS)
    for _ in range(RUNS):
        started = time.perf_counter()
        con = duckdb.connect()
        for table in ("orders", "payments"):
            con.sql(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{WORK}/{table}/*/*.parquet', hive_partitioning = true)")
        rows = con.sql(text).fetchall()
        walls.append(time.perf_counter() - started)
        con.close()
    return walls, sorted((r[0], int(r[5])) for r in rows)


started = time.perf_counter()
generate()
size = sum(f.stat().st_size for f in WORK.rglob("*.parquet"))
print(f"data: {ROWS:,} orders + {ROWS:,} payments, {size / 2**20:.0f} MiB Parquet, generated in {time.perf_counter() - started:.1f} s")
fg_walls, fg_queries, fg_found = fundguard()
dk_walls, dk_found = duck()
assert fg_found == dk_found, f"the engines disagree: {fg_found[:5]} vs {dk_found[:5]}"
print(f"both find the same {len(fg_found)} merchant(s) out of balance, e.g. {fg_found[:3]}")
line = "{:<44} best {:6.2f} s   median {:6.2f} s   runs: {}"
def show(name, times):
    print(line.format(name, min(times), statistics.median(times), " ".join(f"{t:.2f}" for t in times)))
show("fundguard sql run (whole process)", fg_walls)
show("fundguard query (run record duration)", fg_queries)
show("duckdb " + duckdb.__version__ + " (connect, views, query)", dk_walls)
print(f"ratio fundguard / duckdb (best whole process vs best): {min(fg_walls) / min(dk_walls):.2f}x")
