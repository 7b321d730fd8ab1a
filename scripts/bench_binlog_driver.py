"""Workload driver and measurements for scripts/bench-binlog.sh (see there)."""
import argparse
import json
import time
import urllib.request

import pymysql

from bench_live import cpu_seconds, micros, percentile, rss_mib


def connect(port):
    return pymysql.connect(host="127.0.0.1", port=port, user="root", database="shop", autocommit=False)


def rows(first, n, bad_every):
    values = []
    for i in range(first, first + n):
        amount = -100 if i % bad_every == 0 else 1999
        values.append(f"({i},{i},{i},'SUCCESS',{amount},'CNY',NOW(6),NOW(6))")
    return "INSERT INTO refunds VALUES " + ",".join(values)


def latency(args):
    db = connect(args.port)
    cur = db.cursor()
    per_txn = 100
    print(f"{'rate (changes/s)':>16} {'achieved':>9} {'findings':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'CPU %':>6} {'RSS MiB':>8}")
    for phase, rate in enumerate(int(r) for r in args.rates.split(",")):
        base = (phase + 1) * 100_000_000
        cpu0, t0 = cpu_seconds(args.pid), time.time()
        sent = 0
        while time.time() - t0 < args.seconds:
            cur.execute(rows(base + sent, per_txn, 100))
            db.commit()
            sent += per_txn
            ahead = sent / rate - (time.time() - t0)
            if ahead > 0:
                time.sleep(ahead)
        elapsed = time.time() - t0
        time.sleep(3)  # let the last findings arrive
        cpu = (cpu_seconds(args.pid) - cpu0) / (elapsed + 3) * 100
        lat = []
        for line in open(args.findings):
            f = json.loads(line)
            if f["rule"] != "refund-amount-positive":
                continue
            after = f["evidence"][0]["after"]
            if base <= after["id"] < base + 100_000_000:
                lat.append((micros(f["detected_at"]) - micros(after["created_at"])) / 1000)
        lat.sort()
        expected = sent // 100
        print(f"{rate:>16} {sent / elapsed:>9.0f} {len(lat):>5}/{expected:<4}"
              f"{percentile(lat, 0.5):>8.0f} {percentile(lat, 0.99):>8.0f} {lat[-1]:>8.0f} {cpu:>6.0f} {rss_mib(args.pid):>8.0f}")


def backlog(args):
    db = connect(args.port)
    cur = db.cursor()
    t0, done, chunk = time.time(), 0, 500_000
    while done < args.changes:
        n = min(chunk, args.changes - done)
        cur.execute(f"INSERT INTO refunds SELECT seq, seq, seq, 'SUCCESS', IF(seq % 1000 = 0, -1, 1999), 'CNY', "
                    f"NOW(6), NOW(6) FROM seq_{done + 1}_to_{done + n}")
        db.commit()
        done += n
    print(f"backlog written: {done} row changes in {time.time() - t0:.0f} s")


def catchup(args):
    t0, cpu0 = time.time(), cpu_seconds(args.pid)
    events = 0
    while events < args.changes:
        time.sleep(0.2)
        with urllib.request.urlopen(f"{args.url}/v1/sources") as r:
            events = json.load(r)[0]["events"]
        if time.time() - t0 > 1800:
            break
    elapsed = time.time() - t0
    cpu = (cpu_seconds(args.pid) - cpu0) / elapsed * 100
    print(f"caught up: {events} changes in {elapsed:.1f} s = {events / elapsed:,.0f} changes/s "
          f"(fundguard {cpu:.0f}% CPU, {rss_mib(args.pid):.0f} MiB RSS)")


parser = argparse.ArgumentParser()
parser.add_argument("mode", choices=["latency", "backlog", "catchup"])
parser.add_argument("--port", type=int)
parser.add_argument("--pid", type=int)
parser.add_argument("--findings")
parser.add_argument("--seconds", type=float, default=20)
parser.add_argument("--rates", default="5000,20000,50000")
parser.add_argument("--changes", type=int, default=5_000_000)
parser.add_argument("--url")
args = parser.parse_args()
{"latency": latency, "backlog": backlog, "catchup": catchup}[args.mode](args)
