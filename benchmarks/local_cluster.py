"""Benchmark of the local cluster: ``python -m benchmarks.local_cluster [--jobs 50] [--burst 1000]``.

Prints the cold start-up time (to a healthy ``/health``), the latency from ``POST /job`` and from an
upload to the script running (median and p95; measured with a timestamp the script prints first), and
how long a burst of trivial jobs takes to finish while ``/health`` latency is sampled.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import httpx
from botocore.config import Config

from oscar_plugins.local import LocalCluster, LocalClusterInfo, down, up

__all__ = ["main"]

_STAMP_SCRIPT = 'echo "started-at $(date +%s.%N)"\n'


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _summary(label: str, values: list[float]) -> None:
    print(f"{label:<34} median {statistics.median(values) * 1000:7.1f} ms   p95 {_pct(values, 0.95) * 1000:7.1f} ms"
          f"   max {max(values) * 1000:7.1f} ms   (n={len(values)})")


def _started_at(admin: httpx.Client, service: str, job: str, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = admin.get(f"/system/logs/{service}/{job}").text
        for line in text.splitlines():
            if line.startswith("started-at "):
                return float(line.split()[1])
        time.sleep(0.02)
    raise TimeoutError(f"job {job} did not start within {timeout} s")


def _all_done(admin: httpx.Client, service: str) -> tuple[int, int]:
    done = total = 0
    params: dict[str, str] = {}
    while True:
        body = admin.get(f"/system/logs/{service}", params=params).json()
        total += len(body["jobs"])
        done += sum(1 for j in body["jobs"].values() if j["status"] in ("Succeeded", "Failed"))
        if "next_page" not in body:
            return done, total
        params = {"page": body["next_page"]}


def _create(admin: httpx.Client, name: str, script: str, **extra: Any) -> str:
    admin.post("/system/services", json={"name": name, "image": "alpine", "script": script, **extra})
    return str(admin.get(f"/system/services/{name}").json()["token"])


def bench(jobs: int, burst: int) -> None:
    """Run the measurements and print them.

    Cold start is measured in-process (:class:`LocalCluster`); the other figures against a daemon
    (:func:`up`) so that the benchmark's own clients do not share the server's interpreter.
    """
    with tempfile.TemporaryDirectory(prefix="oscar-local-bench-") as data:
        started = time.perf_counter()
        with LocalCluster(data_dir=f"{data}/inproc", port=0) as lc:
            elapsed = time.perf_counter() - started
            print(f"{'cold start to healthy (in-process)':<34} {elapsed:7.2f} s  ({lc.cpus:g} cores)")
        started = time.perf_counter()
        info = up(f"{data}/daemon")
        print(f"{'daemon start to healthy (up)':<34} {time.perf_counter() - started:7.2f} s")
        try:
            _measure(info, jobs, burst)
        finally:
            down(info.data_dir)


def _measure(info: LocalClusterInfo, jobs: int, burst: int) -> None:
    admin = httpx.Client(base_url=info.endpoint, auth=(info.username, info.password), trust_env=False, timeout=60)
    anon = httpx.Client(base_url=info.endpoint, trust_env=False, timeout=60)
    s3 = boto3.client("s3", endpoint_url=info.s3_endpoint, aws_access_key_id=info.s3_access_key,
                      aws_secret_access_key=info.s3_secret_key, region_name="us-east-1", config=Config(proxies={}))
    token = _create(admin, "bench-post", _STAMP_SCRIPT)
    latencies = []
    for i in range(jobs):
        sent = time.time()
        anon.post("/job/bench-post", headers={"Authorization": f"Bearer {token}", "X-Delegated-Job-ID": f"p-{i}"})
        latencies.append(_started_at(admin, "bench-post", f"p-{i}") - sent)
    _summary("POST /job -> script running", latencies)

    _create(admin, "bench-upload", _STAMP_SCRIPT, input=[{"path": "bench-bkt/in"}])
    latencies, seen = [], set[str]()
    for i in range(jobs):
        sent = time.time()
        s3.put_object(Bucket="bench-bkt", Key=f"in/{i}.txt", Body=b"x")
        while not (new := set(admin.get("/system/logs/bench-upload").json()["jobs"]) - seen):
            time.sleep(0.005)
        seen |= new
        latencies.append(_started_at(admin, "bench-upload", new.pop()) - sent)
    _summary("upload -> script running", latencies)
    _burst(info, admin, anon, burst)


def _burst(lc: LocalClusterInfo, admin: httpx.Client, anon: httpx.Client, count: int) -> None:
    token = _create(admin, "bench-burst", "true\n")
    health: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        with httpx.Client(trust_env=False, timeout=60) as client:
            while not stop.is_set():
                t0 = time.perf_counter()
                client.get(f"{lc.endpoint}/health")
                health.append(time.perf_counter() - t0)
                time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {token}"}
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: anon.post("/job/bench-burst", headers=headers), range(count)))
    submitted = time.perf_counter() - started
    while _all_done(admin, "bench-burst")[0] < count:
        time.sleep(0.2)
    total = time.perf_counter() - started
    stop.set()
    sampler.join()
    print(f"{f'{count} jobs: submitted in':<34} {submitted:7.2f} s; all finished after {total:.2f} s "
          f"({count / total:.0f} jobs/s)")
    _summary("/health latency during the burst", health)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.local_cluster")
    parser.add_argument("--jobs", type=int, default=50, help="jobs for the latency measurements")
    parser.add_argument("--burst", type=int, default=1000, help="jobs submitted at once")
    args = parser.parse_args(argv)
    bench(args.jobs, args.burst)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
