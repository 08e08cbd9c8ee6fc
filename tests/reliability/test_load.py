"""The local cluster under load: 50 concurrent clients x 100 requests, no errors (figures printed)."""

from __future__ import annotations

import os
import statistics
import threading
import time

import httpx

from oscar_plugins import service_from_dict

CLIENTS = int(os.environ.get("OSCAR_LOAD_CLIENTS", "50"))
REQUESTS = int(os.environ.get("OSCAR_LOAD_REQUESTS", "100"))


def test_fifty_clients_hundred_requests_each(local_cluster, client):
    client.ensure_service(service_from_dict({"name": "load", "image": "alpine", "script": "true"}))
    auth = (local_cluster.username, local_cluster.password)
    paths = ["/health", "/system/info", "/system/services", "/system/logs/load", "/system/services/load"]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        mine, bad = [], []
        with httpx.Client(base_url=local_cluster.endpoint, auth=auth, timeout=60) as http:
            for i in range(REQUESTS):
                path = paths[(k + i) % len(paths)]
                t0 = time.perf_counter()
                try:
                    r = http.get(path)
                    if r.status_code != 200:
                        bad.append(f"{path}: {r.status_code}")
                except httpx.HTTPError as exc:
                    bad.append(f"{path}: {exc!r}")
                mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)
            errors.extend(bad)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    assert not errors, errors[:5]
    assert len(latencies) == CLIENTS * REQUESTS
    q = statistics.quantiles(latencies, n=100)
    print(f"\nload: {CLIENTS}x{REQUESTS} requests in {wall:.1f} s ({len(latencies) / wall:.0f}/s); latency "
          f"p50 {q[49] * 1000:.1f} ms, p95 {q[94] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms, "
          f"max {max(latencies) * 1000:.0f} ms")
