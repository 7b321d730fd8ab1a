"""Helpers shared by the live benchmark drivers (bench_binlog_driver.py, bench_latency_driver.py):
a process's CPU time and memory, finding timestamps, percentiles, fundguard's /metrics."""
import os
import urllib.request
from datetime import datetime

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU seconds the process has used so far."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def processes():
    """Every process now: {pid: (name, nice, cpu seconds)} (processes that end between two
    readings are not seen: compare with `machine_cpu`)."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                head, tail = open(f"/proc/{entry}/stat").read().rsplit(")", 1)
                fields = tail.split()
                cpu = (int(fields[11]) + int(fields[12])) / TICKS
                out[int(entry)] = (head.split("(", 1)[1], int(fields[16]), cpu)
            except (OSError, IndexError, ValueError):
                pass
    return out


def busiest(before, after, skip, n=3):
    """The n processes that used the most CPU between two `processes()` readings, leaving out
    the pids in `skip`: [(name, nice, seconds)]."""
    used = [(name, nice, cpu - before.get(pid, (None, None, 0))[2])
            for pid, (name, nice, cpu) in after.items() if pid not in skip]
    return sorted(used, key=lambda u: -u[2])[:n]


def tree_cpu_seconds(root):
    """CPU seconds per process of `root` and its descendants alive now ({pid: seconds}): a
    server with a process per connection (PostgreSQL). Subtract two readings per pid."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents[int(entry)] = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, grew = {root}, True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= children
        grew = bool(children)
    out = {}
    for pid in tree:
        try:
            out[pid] = cpu_seconds(pid)
        except OSError:
            pass
    return out


def machine_cpu():
    """The machine's CPU time so far, from /proc/stat: (busy at normal priority, busy niced, total), in ticks."""
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in open("/proc/stat").readline().split()[1:9])
    return user + system + irq + softirq + steal, nice, user + nice + system + idle + iowait + irq + softirq + steal


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def micros(text):
    """An RFC 3339 time (a finding's `detected_at`, `event_time`) in microseconds since the epoch."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1e6


def percentile(sorted_values, p):
    return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))]


def metrics(url):
    """fundguard's /metrics as {(name, labels text): value}, e.g. ("fundguard_rule_late_events", 'rule="x"')."""
    out = {}
    with urllib.request.urlopen(f"{url}/metrics") as r:
        for line in r.read().decode().splitlines():
            if not line or line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            name, _, labels = series.partition("{")
            out[(name, labels.rstrip("}"))] = float(value)
    return out
