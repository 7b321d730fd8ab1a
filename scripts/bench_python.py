"""The comparison passes of scripts/bench-core.sh: the same Debezium file, one core each.

orjson: parse every line (no rule work) -- the floor of a Python pipeline.
DuckDB: one SQL pass evaluating four of the example check predicates over all events.
"""
import resource
import sys
import time

import duckdb
import orjson

path = sys.argv[1]

start = time.perf_counter()
n = 0
with open(path, "rb") as f:
    for line in f:
        orjson.loads(line)
        n += 1
secs = time.perf_counter() - start
print(f"{'orjson: parse only':<34} {secs:8.2f} s  {n / secs:12.0f} events/s")

con = duckdb.connect()
con.execute("SET threads TO 1")
start = time.perf_counter()
violations = con.execute(
    f"""
    SELECT count(*) FILTER (WHERE source.table = 'orders' AND op <> 'd'
                            AND NOT coalesce(after.pay_amount = after.total_amount - after.discount_amount, false)),
           count(*) FILTER (WHERE source.table = 'payments' AND op <> 'd'
                            AND NOT coalesce(after.amount = CAST(after.amount_yuan AS DECIMAL(20, 2)) * 100, false)),
           count(*) FILTER (WHERE source.table = 'refunds' AND op <> 'd' AND NOT coalesce(after.amount > 0, false)),
           count(*) FILTER (WHERE source.table = 'payments' AND op <> 'd'
                            AND NOT coalesce(after.currency IN ('CNY', 'USD', 'EUR', 'HKD'), false)),
           count(*)
    FROM read_json('{path}', format = 'newline_delimited', union_by_name = true, sample_size = -1)
    """
).fetchone()
secs = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(f"{'duckdb: 4 check predicates':<34} {secs:8.2f} s  {violations[-1] / secs:12.0f} events/s  {rss:6d} MiB peak (process)")
