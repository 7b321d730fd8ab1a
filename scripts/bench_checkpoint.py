"""Live passes of the checkpoint benchmark (run by scripts/bench-checkpoint.sh).

Each pass starts `fundguard run` on a fresh data directory with one file source, polls
/metrics every 50 ms and takes the moment the event counter last moved as the end of the
input. Usage: bench_checkpoint.py BIN WORK RULES_DIR SCHEMA LOG
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

BIN, WORK, RULES, SCHEMA, LOG = sys.argv[1:6]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        family = re.sub(r"\{.*\}", "", name)
        values[family] = values.get(family, 0.0) + float(value)
    return values


def deployment(name, interval):
    directory = os.path.join(WORK, name)
    os.makedirs(directory)
    port = free_port()
    config = os.path.join(directory, "fundguard.yaml")
    with open(config, "w") as f:
        f.write(
            f"rules: [{RULES}]\nschema: {SCHEMA}\ndata_dir: data\nlisten: 127.0.0.1:{port}\n"
            f"checkpoint_interval: {interval}\nidle_after: 24h\n"
            f"sources:\n  - {{ name: log, type: file, path: {LOG}, format: debezium }}\n"
            f"sinks:\n  - {{ type: jsonl, path: findings.jsonl }}\n"
        )
    return directory, port, config


def start(directory, config):
    stderr = open(os.path.join(directory, "stderr.txt"), "a")
    return subprocess.Popen([BIN, "run", "--config", config], stdout=subprocess.DEVNULL, stderr=stderr)


def read_everything(port, started):
    """Seconds from start until the event counter stopped moving, and the events read."""
    last, moved = 0, started
    while True:
        time.sleep(0.05)
        try:
            n = metrics(port).get("fundguard_events_in_total", 0)
        except OSError:
            continue
        now = time.monotonic()
        if n != last:
            last, moved = n, now
        elif n > 0 and now - moved > 3:
            return moved - started, int(n)


def live_pass(name, interval):
    directory, port, config = deployment(name, interval)
    started = time.monotonic()
    process = start(directory, config)
    secs, events = read_everything(port, started)
    m = metrics(port)
    return directory, port, config, process, secs, events, m


def stop(process):
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=120)
    return time.monotonic() - began


results = {}
for name, interval in [("off (24h)", "24h"), ("default (5s)", "5s"), ("every 1s", "1s")]:
    directory, port, config, process, secs, events, m = live_pass(name.split()[0], interval)
    taken = int(m.get("fundguard_checkpoints_total", 0))
    results[name] = secs
    print(
        f"run, checkpoints {name:13} {secs:8.2f} s  {events / secs:10.0f} events/s  "
        f"{taken:3d} checkpoints, last {m.get('fundguard_checkpoint_bytes', 0) / 2**20:7.1f} MiB "
        f"in {m.get('fundguard_checkpoint_seconds', 0) * 1000:6.0f} ms",
        flush=True,
    )
    if interval != "5s":
        process.kill()
        process.wait()
        continue
    shutdown = stop(process)
    size = os.path.getsize(os.path.join(directory, "data", "checkpoint"))
    state = int(m.get("fundguard_rule_state_bytes", 0))
    print(f"  shutdown with a final checkpoint: {shutdown:.2f} s; checkpoint on disk: {size / 2**20:.1f} MiB "
          f"({size} bytes; the rules estimate their state at {state / 2**20:.1f} MiB in memory)")
    began = time.monotonic()
    process = start(directory, config)
    log = os.path.join(directory, "stderr.txt")
    line = None
    while line is None and time.monotonic() - began < 300:
        time.sleep(0.02)
        with open(log) as f:
            line = next((l for l in f if "resumed from checkpoint" in l), None)
    wall = time.monotonic() - began
    restored = re.search(r"restored in (\d+) ms", line or "")
    print(f"  restart: rule state restored in {restored.group(1) if restored else '?'} ms; "
          f"{wall:.2f} s from start to resumed (process start, rules compiled, checkpoint read and verified)")
    process.kill()
    process.wait()

off = results["off (24h)"]
for name in ["default (5s)", "every 1s"]:
    print(f"throughput lost to checkpoints {name}: {(results[name] - off) / off * 100:.1f}%")
