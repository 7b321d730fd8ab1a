"""Pathway doing fundguard's payment-vs-order reconciliation on the same Debezium file.

Payments with status SUCCESS are joined with orders with status PAID on order id; a pair
whose amount or currency differs is a mismatch. Run on one thread, static mode.
"""
import os
import resource
import sys
import time

os.environ.setdefault("PATHWAY_THREADS", "1")
import pathway as pw  # noqa: E402

path = sys.argv[1]


class Envelope(pw.Schema):
    after: pw.Json
    source: pw.Json
    op: str


start = time.perf_counter()
events = pw.io.jsonlines.read(path, schema=Envelope, mode="static")
rows = events.select(
    table=pw.this.source.get("table").as_str(),
    row_id=pw.this.after.get("id").as_int(),
    order_id=pw.this.after.get("order_id").as_int(),
    status=pw.this.after.get("status").as_str(),
    amount=pw.this.after.get("amount").as_int(),
    pay_amount=pw.this.after.get("pay_amount").as_int(),
    currency=pw.this.after.get("currency").as_str(),
)
payments = rows.filter((pw.this.table == "payments") & (pw.this.status == "SUCCESS"))
orders = rows.filter((pw.this.table == "orders") & (pw.this.status == "PAID"))
pairs = payments.join(orders, pw.left.order_id == pw.right.row_id).select(
    order_id=pw.left.order_id,
    amount=pw.left.amount,
    pay_amount=pw.right.pay_amount,
    left_currency=pw.left.currency,
    right_currency=pw.right.currency,
)
mismatches = pairs.filter((pw.this.amount != pw.this.pay_amount) | (pw.this.left_currency != pw.this.right_currency))
counted = mismatches.reduce(n=pw.reducers.count())
out = []
pw.io.subscribe(counted, lambda key, row, time, is_addition: out.append(row["n"]) if is_addition else None)
pw.run(monitoring_level=pw.MonitoringLevel.NONE)
secs = time.perf_counter() - start
lines = sum(1 for _ in open(path, "rb"))
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(f"{'pathway: payment vs order':<34} {secs:8.2f} s  {lines / secs:12.0f} events/s  {rss:6d} MiB peak  ({out[-1] if out else 0} mismatches)")
