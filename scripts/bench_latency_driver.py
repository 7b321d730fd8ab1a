"""Workload driver and measurements for scripts/bench-latency.sh (see there).

  setup — creates shop.orders and shop.payments (MariaDB database / PostgreSQL schema `shop`);
  run   — per rate: commits order lifecycles at that many row changes/s for --seconds, then
          reads fundguard's findings file and prints, per rule kind, commit ack → detected_at.

Every transaction ("step") moves a pipeline of orders on by one stage, n orders per stage:
inserts n new orders (CREATED), moves the previous step's orders to PAYING, the ones before
them to PAID together with their SUCCESS payment — 4n row changes. An order's id decides
whether, and how, it breaks a rule (1 % of orders per kind, each finding maps to one order):
  id % 100 == 11  check       a FAILED payment with a negative amount is inserted with the order
  id % 100 == 37  transition  CREATED → SHIPPED instead of → PAYING
  id % 100 == 53  reconcile   the payment is one fen more than the order (a mismatch)
  id % 100 == 79  timeout     the order stays in PAYING (the rule's `within` is 2 s)
Latency of check, transition and reconcile findings: the finding's `detected_at` − the wall
time right after the COMMIT that made the violation returned (the acknowledgement). Timeout
findings: `detected_at` − the deadline (the finding's `event_time`); binlog commit times are
whole seconds and deadlines inclusive, so the binlog can first decide at deadline + 1 s,
reported as a second figure.
"""
import argparse
import json
import os
import time
import urllib.request

from bench_live import busiest, cpu_seconds, machine_cpu, metrics, micros, percentile, processes, rss_mib, tree_cpu_seconds

CHECK, TRANSITION, MISMATCH, STUCK = 11, 37, 53, 79
NEGATIVE = 10**12  # id of the negative FAILED payment of order i: NEGATIVE + i
RULES = {
    "bench-payment-positive": "check",
    "bench-order-lifecycle": "transition",
    "bench-payment-matches-order": "reconcile",
    "bench-order-paying-timeout": "timeout",
}
KINDS = ["check", "transition", "reconcile", "timeout"]
PHASE_IDS = 100_000_000  # order ids of rate #k are in [(k + 1) * PHASE_IDS, (k + 2) * PHASE_IDS)


class MariaDb:
    begin = "START TRANSACTION"

    def __init__(self, port):
        import pymysql
        from pymysql.constants import CLIENT

        self.db = pymysql.connect(host="127.0.0.1", port=port, user="root", autocommit=True,
                                  client_flag=CLIENT.MULTI_STATEMENTS)
        self.cur = self.db.cursor()

    def run(self, sql):
        """Statements separated by `;` in one round trip; returns once the last one answered."""
        self.cur.execute(sql)
        while self.cur.nextset():
            pass

    def setup(self):
        self.run("CREATE DATABASE IF NOT EXISTS shop; "
                 "CREATE TABLE shop.orders (id BIGINT PRIMARY KEY, status VARCHAR(16) NOT NULL, "
                 "pay_amount BIGINT NOT NULL, currency VARCHAR(8) NOT NULL); "
                 "CREATE TABLE shop.payments (id BIGINT PRIMARY KEY, order_id BIGINT NOT NULL, "
                 "status VARCHAR(16) NOT NULL, amount BIGINT NOT NULL, currency VARCHAR(8) NOT NULL)")


class Postgres:
    begin = "BEGIN"

    def __init__(self, port):
        import psycopg

        self.db = psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True)

    def run(self, sql):
        # No parameters: psycopg sends the text as one simple query, all statements in one round trip.
        self.db.execute(sql)

    def setup(self):
        self.run("CREATE SCHEMA IF NOT EXISTS shop; "
                 "CREATE TABLE shop.orders (id BIGINT PRIMARY KEY, status TEXT NOT NULL, "
                 "pay_amount BIGINT NOT NULL, currency TEXT NOT NULL); "
                 "CREATE TABLE shop.payments (id BIGINT PRIMARY KEY, order_id BIGINT NOT NULL, "
                 "status TEXT NOT NULL, amount BIGINT NOT NULL, currency TEXT NOT NULL)")


def amount(order):
    return 1000 + order % 9000


def step(db, new, paying, paid):
    """One transaction: `new` orders inserted, `paying` moved on from CREATED, `paid` from
    PAYING with their payments. Returns (row changes, wall time of the COMMIT's answer)."""
    sql = [db.begin]
    changes = 0
    if new:
        sql.append("INSERT INTO shop.orders VALUES " + ",".join(f"({i},'CREATED',{amount(i)},'CNY')" for i in new))
        changes += len(new)
    if paying:
        sql.append(f"UPDATE shop.orders SET status = CASE WHEN id % 100 = {TRANSITION} THEN 'SHIPPED' "
                   f"ELSE 'PAYING' END WHERE id BETWEEN {paying[0]} AND {paying[-1]}")
        changes += len(paying)
    paid = [i for i in paid if i % 100 not in (TRANSITION, STUCK)]
    if paid:
        sql.append(f"UPDATE shop.orders SET status = 'PAID' WHERE id BETWEEN {paid[0]} AND {paid[-1]} "
                   f"AND id % 100 NOT IN ({TRANSITION}, {STUCK})")
    payments = [f"({i},{i},'SUCCESS',{amount(i) + (i % 100 == MISMATCH)},'CNY')" for i in paid]
    payments += [f"({NEGATIVE + i},{i},'FAILED',-{amount(i)},'CNY')" for i in new if i % 100 == CHECK]
    if payments:
        sql.append("INSERT INTO shop.payments VALUES " + ",".join(payments))
    changes += len(paid) + len(payments)
    sql.append("COMMIT")
    db.run(";\n".join(sql))
    return changes, time.time()


class Findings:
    """Reads the findings file as it grows."""

    def __init__(self, path):
        self.path, self.offset, self.rest = path, 0, b""

    def new(self):
        if not os.path.exists(self.path):
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = self.rest + f.read()
        self.offset += len(data) - len(self.rest)
        *lines, self.rest = data.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]


def key_of(finding):
    """The one key value of a finding, as an integer id."""
    values = list(finding["key"].values())
    return int(values[0]) if len(values) == 1 else None


def stats(values):
    values = sorted(values)
    if not values:
        return "—", "—", "—"
    return tuple(ms(v) for v in (percentile(values, 0.5), percentile(values, 0.99), values[-1]))


def ms(v):
    return f"{v:.1f}" if abs(v) < 10 else f"{v:,.0f}"


def scrape(url):
    m = metrics(url)
    late = sum(v for (name, _), v in m.items() if name == "fundguard_rule_late_events_total")
    buckets = {labels: v for (name, labels), v in m.items() if name == "fundguard_detection_latency_seconds_bucket"}
    checkpoints = sum(v for (name, _), v in m.items() if name == "fundguard_checkpoints_total")
    return {"late": late, "buckets": buckets, "checkpoints": checkpoints,
            "checkpoint_s": m.get(("fundguard_checkpoint_seconds", ""), 0.0),
            "checkpoint_write_s": m.get(("fundguard_checkpoint_write_seconds", ""), 0.0)}


def source_events(url):
    with urllib.request.urlopen(f"{url}/v1/sources") as r:
        return sum(s["events"] for s in json.load(r))


def wait_connected(url):
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{url}/v1/sources") as r:
                sources = json.load(r)
            if sources and all(s["state"] in ("connected", "reading") for s in sources):
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"fundguard's source did not connect: {sources}")


def phase(args, db, findings, rate, index):
    base = (index + 1) * PHASE_IDS
    n = args.orders_per_step
    acks = {kind: {} for kind in KINDS}  # kind → order id → wall time of the COMMIT's answer
    before = scrape(args.url)
    cpu0, db0, me0, box0 = cpu_seconds(args.pid), tree_cpu_seconds(args.db_pid), time.process_time(), machine_cpu()
    procs0 = processes()
    t0 = time.time()
    sent, txns, stage = 0, 0, [[], []]  # stage: orders inserted one step ago, two steps ago
    next_id = base
    draining = 0
    while draining < 2:
        if time.time() - t0 < args.seconds:
            new = list(range(next_id, next_id + n))
            next_id += n
        else:
            new, draining = [], draining + 1
        changes, ack = step(db, new, stage[0], stage[1])
        if draining == 1:
            elapsed = ack - t0
        sent += changes
        txns += 1
        for i in new:
            if i % 100 == CHECK:
                acks["check"][NEGATIVE + i] = ack
        for i in stage[0]:
            if i % 100 == TRANSITION:
                acks["transition"][i] = ack
            elif i % 100 == STUCK:
                acks["timeout"][i] = ack
        for i in stage[1]:
            if i % 100 == MISMATCH:
                acks["reconcile"][i] = ack
        stage = [new, stage[0]]
        ahead = sent / rate - (time.time() - t0)
        if ahead > 0:
            time.sleep(ahead)
    last_commit = time.time()
    cpu = (cpu_seconds(args.pid) - cpu0) / (last_commit - t0) * 100
    db_cpu = sum(c - db0.get(pid, 0) for pid, c in tree_cpu_seconds(args.db_pid).items()) / (last_commit - t0) * 100
    me_cpu = (time.process_time() - me0) / (last_commit - t0) * 100
    busy, niced, total = (b - a for a, b in zip(box0, machine_cpu()))
    ours = {args.pid, os.getpid(), *tree_cpu_seconds(args.db_pid)}
    others = [f"{name} (nice {nice}) {cpu / (last_commit - t0):.0%}"
              for name, nice, cpu in busiest(procs0, processes(), ours) if cpu / (last_commit - t0) >= 0.02]
    # Wait for every expected finding (deadlines fall due up to `within` after the last
    # PAYING, and the binlog decides a second later), then a little longer for extras.
    expected = sum(len(a) for a in acks.values())
    got = {kind: {} for kind in KINDS}
    unexpected = {kind: [] for kind in KINDS}
    progress = (None, time.time())
    while True:
        for f in findings.new():
            kind = RULES.get(f["rule"])
            key = key_of(f)
            if kind is None or key is None:
                unexpected.setdefault(f["rule"], []).append(f)
                continue
            order = key - NEGATIVE if kind == "check" else key
            if not base <= order < base + PHASE_IDS:
                continue  # an earlier rate's finding (counted there) or one of another rate
            wanted = kind != "reconcile" or f["message"].startswith("mismatch")
            if wanted and key in acks[kind] and key not in got[kind]:
                got[kind][key] = f
            else:
                unexpected[kind].append(f)
        found = sum(len(g) for g in got.values())
        waited = time.time() - last_commit
        if waited > args.settle:
            if found == expected:
                break
            # Behind: wait while fundguard still takes events in (catching up); once it has
            # taken none for 10 s, what is not found is missing.
            events = source_events(args.url)
            if events != progress[0]:
                progress = (events, time.time())
            elif time.time() - progress[1] > 10:
                break
        time.sleep(0.2)
    caught_up_after = time.time() - last_commit
    after = scrape(args.url)

    if args.dump:
        with open(args.dump, "a") as out:
            for kind in KINDS:
                for k, f in got[kind].items():
                    out.write(json.dumps({"db": args.database, "rate": rate, "kind": kind, "id": k, "ack": acks[kind][k],
                                          "event_time": f["event_time"], "detected_at": f["detected_at"]}) + "\n")
    rows = []  # (kind, measured from, found, expected, extra, latencies in ms)
    for kind in ["check", "transition", "reconcile"]:
        lat = [(micros(f["detected_at"]) / 1e6 - acks[kind][k]) * 1000 for k, f in got[kind].items()]
        rows.append((kind + (" mismatch" if kind == "reconcile" else ""), "commit ack", len(got[kind]), len(acks[kind]),
                     len(unexpected[kind]), lat))
    # Deadlines: from the deadline D (the finding's event_time); with whole-second commit
    # times also from D + 1 s, when the source can first decide. Split by whether that
    # moment came while the load ran (later commits moved event time) or after it stopped
    # (heartbeats or empty slot reads did).
    decide = 1000 if args.whole_seconds else 0
    due = [((micros(f["detected_at"]) - micros(f["event_time"])) / 1000, micros(f["event_time"]) / 1e6 + decide / 1000)
           for f in got["timeout"].values()]
    n_timeout, extra = len(acks["timeout"]), len(unexpected["timeout"])
    for label, subset in [("timeout", due), ("  due under load", [d for d in due if d[1] < last_commit]),
                          ("  due after load", [d for d in due if d[1] >= last_commit])]:
        counted = (len(subset), n_timeout, extra) if label == "timeout" else (len(subset), len(subset), 0)
        rows.append((label, "deadline D", *counted, [d for d, _ in subset]))
        if args.whole_seconds:
            rows.append((label, "D + 1 s", *counted, [d - 1000 for d, _ in subset]))

    print(f"\n-- {args.database}, offered {rate:,} row changes/s for {args.seconds:.0f} s: "
          f"achieved {sent / elapsed:,.0f} changes/s ({txns / elapsed:,.0f} transactions/s of ~{4 * n} changes), "
          f"{sent:,} changes --")
    if caught_up_after > args.settle + 1:
        print(f"fundguard was behind: its findings kept coming until {caught_up_after:.0f} s after the last commit")
    print(f"CPU during the load (100 % = one core): fundguard {cpu:.0f} %, {args.database} {db_cpu:.0f} %, "
          f"this driver {me_cpu:.0f} %; the machine's {os.cpu_count()} cores {busy / total:.0%} busy "
          f"+ {niced / total:.0%} niced work (other jobs); fundguard RSS {rss_mib(args.pid):,.0f} MiB")
    print(f"other processes using CPU during the load: {', '.join(others) or 'none above 2 %'}")
    print(f"{'kind':<20} {'measured from':<13} {'found':>11} {'extra':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'min ms':>7}")
    for kind, origin, found_n, exp_n, extra, lat in rows:
        mn = ms(min(lat)) if lat else "—"
        print(f"{kind:<20} {origin:<13} {found_n:>5}/{exp_n:<5} {extra:>5} " + " ".join(f"{v:>8}" for v in stats(lat))
              + f" {mn:>7}")
    summary = [r for r in rows if not r[0].startswith(" ")]
    print(f"| {args.database} | {rate:,} | {sent / elapsed:,.0f} | " + " | ".join("/".join(stats(r[5])) for r in summary)
          + f" | {cpu:.0f} % / {db_cpu:.0f} % / {me_cpu:.0f} % | {rss_mib(args.pid):,.0f} MiB |")
    for kind in KINDS:
        missing = sorted(set(acks[kind]) - set(got[kind]))
        if missing:
            print(f"MISSING {kind}: {len(missing)} violation(s) without a finding, e.g. order/payment ids {missing[:5]}")
    for kind, extras in unexpected.items():
        if extras:
            sample = {k: extras[0].get(k) for k in ("rule", "key", "event_time", "detected_at", "message")}
            print(f"UNEXPECTED {kind}: {len(extras)} finding(s) matching no injected violation, e.g. {json.dumps(sample)}")
    late = after["late"] - before["late"]
    hist = {le: after["buckets"].get(le, 0) - before["buckets"].get(le, 0) for le in after["buckets"]}
    total = hist.get('le="+Inf"', 0)
    shown = ", ".join(f"≤{le[4:-1]} s {hist[le] / total:.0%}" for le in ('le="0.1"', 'le="0.25"', 'le="1.0"', 'le="2.5"')
                      if le in hist) if total else "no findings"
    print(f"fundguard /metrics this rate: late events {late:.0f}; checkpoints {after['checkpoints'] - before['checkpoints']:.0f} "
          f"(last held the pipeline {after['checkpoint_s'] * 1000:.1f} ms, written in {after['checkpoint_write_s'] * 1000:.0f} ms); detection-latency histogram (event_time → detected_at, "
          f"{total:.0f} findings): {shown}")
    return all(len(got[k]) == len(acks[k]) for k in KINDS)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["setup", "run"])
    parser.add_argument("--database", choices=["mariadb", "postgres"], required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, help="fundguard's process id")
    parser.add_argument("--db-pid", type=int, help="the database server's process id (its CPU is reported)")
    parser.add_argument("--url", help="fundguard's HTTP address (for /metrics and /v1/sources)")
    parser.add_argument("--findings", help="fundguard's jsonl findings file")
    parser.add_argument("--seconds", type=float, default=20, help="load per rate")
    parser.add_argument("--rates", default="2000,5000,20000", help="row changes/s")
    parser.add_argument("--orders-per-step", type=int, default=5, help="orders per stage per transaction (4x changes)")
    parser.add_argument("--dump", help="append every found violation (ack, event_time, detected_at) to this file")
    parser.add_argument("--settle", type=float, default=5, help="seconds to wait after the last commit")
    args = parser.parse_args()
    db = (MariaDb if args.database == "mariadb" else Postgres)(args.port)
    if args.mode == "setup":
        db.setup()
        return
    args.whole_seconds = args.database == "mariadb"
    wait_connected(args.url)
    findings = Findings(args.findings)
    findings.new()
    ok = True
    for index, rate in enumerate(int(r) for r in args.rates.split(",")):
        ok &= phase(args, db, findings, rate, index)
    if not ok:
        print("NOT every injected violation was found (see MISSING above)")


main()
