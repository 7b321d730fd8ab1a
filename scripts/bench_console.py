"""Times the console API's list/filter requests against a running fundguard.

Usage: bench_console.py BASE_URL TOKEN REQUESTS. One client, requests one after another
(what a person clicking through the queue does); p50/p99/max per query shape, in ms.
"""
import json
import sys
import time
import urllib.request

base, token, requests = sys.argv[1], sys.argv[2], int(sys.argv[3])


def get(path):
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    started = time.perf_counter()
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = resp.read()
    return (time.perf_counter() - started) * 1000, json.loads(body)


for attempt in range(300):  # wait for the service
    try:
        get("/api/v1/session")
        break
    except Exception:
        if attempt == 299:
            raise
        time.sleep(0.2)

QUERIES = {
    "queue (newest 50)": "/api/v1/alerts?limit=50",
    "status=open": "/api/v1/alerts?status=open&limit=50",
    "team=refunds": "/api/v1/alerts?team=refunds&limit=50",
    "rule=rule-7": "/api/v1/alerts?rule=rule-7&limit=50",
    "severity=critical": "/api/v1/alerts?severity=critical&limit=50",
    "team+status+severity": "/api/v1/alerts?team=orders&status=open&severity=high&limit=50",
    "page 20 (offset 1000)": "/api/v1/alerts?limit=50&offset=1000",
    "one alert": "/api/v1/alerts/123456",
}
# The figures views aggregate over many alerts: timed too, with fewer requests.
HEAVY = {
    "dashboard": "/api/v1/dashboard?minutes=60",
    "rules": "/api/v1/rules",
    "slo": "/api/v1/slo",
}
print(f"{'query':<24} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  rows")
worst = 0.0
for name, path in list(QUERIES.items()) + list(HEAVY.items()):
    times = []
    rows = 0
    for _ in range(requests if name in QUERIES else max(5, requests // 20)):
        ms, body = get(path)
        times.append(ms)
        rows = len(body["alerts"]) if isinstance(body, dict) and "alerts" in body else (len(body) if isinstance(body, list) else 1)
    times.sort()
    p50, p99 = times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))]
    if name in QUERIES:
        worst = max(worst, p99)
    print(f"{name:<24} {p50:8.1f} {p99:8.1f} {times[-1]:8.1f}  {rows}")
print(f"worst list/filter p99: {worst:.1f} ms (target < 100 ms)")
