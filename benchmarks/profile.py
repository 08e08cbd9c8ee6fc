"""``make profile``: where the CPU goes when oscar-plugins dispatches many short jobs.

The benchmark's ratios say how fast; this says what bounds them. It runs one scenario against a fresh
local cluster daemon and measures, per job, the CPU of every party sharing the machine: the client, the
cluster's API server (and its supervisor-like runner), its S3 server, and the job scripts themselves
(reaped children of the daemon). With ``--py-spy`` it also samples the client, the API server and the S3
server with py-spy and prints each one's heaviest frames (inclusive share of samples).

    python -m benchmarks.profile [--scenario dispatch|cwl] [--jobs 300] [--py-spy] [--write]
    python -m benchmarks.profile --against REV [--pairs 20] [--batch 50]

``--write`` puts the tables into docs/PERFORMANCE.md (between the ``<!-- profile -->`` markers).

``--against REV`` compares this tree with a git revision on a shared machine, where whole runs differ by
more than a cut: both codes' clusters are up at once and take alternating batches of trivial jobs (the
order swapped each pair, a first pair to warm up), and each party's CPU a job is compared pair by pair.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
#: Frames that say nothing about where the time goes (thread and event-loop plumbing).
_PLUMBING = ("threading.py", "concurrent/futures/thread.py", "asyncio/", "runpy", "<module>", "selectors.py",
             "socketserver.py", "contextvars", "anyio/", "starlette/middleware", "uvicorn/", "starlette/routing",
             "starlette/applications", "werkzeug/serving.py", "http/server.py", "_run_code", "Thread.run")

DISPATCH = r'''
import os, sys, pathlib
from oscar_plugins import Dispatcher, JobSpec, OscarClient
n, out = int(sys.argv[1]), pathlib.Path(sys.argv[2])
c = OscarClient.connect()
res = Dispatcher(c).map("prof", [JobSpec(payload=f"job {i}\n") for i in range(n)], out, max_in_flight=n)
bad = [r for r in res if not r.ok]
sys.exit(f"{len(bad)} jobs failed: {bad[0].error}" if bad else 0)
'''


#: Runs a command and writes the CPU seconds it (and what it waited for) used: the client's own CPU.
MEASURE = r'''
import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write(str(ru.ru_utime + ru.ru_stime))
sys.exit(rc)
'''


def _cpu(proc: psutil.Process, children: bool = False) -> float:
    t = proc.cpu_times()
    own = t.user + t.system
    return own + (t.children_user + t.children_system if children else 0.0)


def _package(where: str) -> str:
    """``site-packages/botocore/client.py`` -> ``botocore``; the standard library by module."""
    parts = where.replace("\\", "/").split("/")
    if "oscar_plugins" in parts:
        i = parts.index("oscar_plugins")
        return "/".join(parts[i:i + 2]).removesuffix(".py") if parts[i + 1:i + 2] == ["local"] else "oscar_plugins"
    first = parts[0].removesuffix(".py")
    return {"httpcore": "httpx", "h11": "httpx", "s3transfer": "boto3", "werkzeug": "flask/werkzeug",
            "flask": "flask/werkzeug", "botocore": "boto3"}.get(first, first)


def top_frames(raw: Path, limit: int = 8) -> tuple[list[tuple[float, str]], list[tuple[float, str]]]:
    """From a py-spy raw profile: (share of samples by package of the innermost frame, heaviest
    oscar-plugins functions inclusive); thread and event-loop plumbing left out."""
    by_package: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        total += count
        frames = stack.split(";")[1:]
        if frames:
            by_package[_package(frames[-1].partition(" (")[2].split(":")[0])] += count
        seen = set()
        for frame in frames:
            name, _, where = frame.partition(" (")
            if "oscar_plugins" in where and not any(p in frame for p in _PLUMBING):
                key = f"{name} ({where.split(':')[0].split('oscar_plugins/')[-1]})"
                if key not in seen:
                    ours[key] += count
                    seen.add(key)
    if not total:
        return [], []
    return ([(n / total, k) for k, n in by_package.most_common(limit)],
            [(n / total, k) for k, n in ours.most_common(limit)])


def run(scenario: str, jobs: int, spy: bool, work: Path) -> str:
    from oscar_plugins import BasicCredentials, ClusterProfile, OscarClient, service_from_dict
    from oscar_plugins.local import down, up

    info = up(work / "cluster")
    try:
        assert info.pid is not None
        api = psutil.Process(info.pid)
        s3 = next(p for p in api.children() if "oscar_plugins.local.storage._s3" in " ".join(p.cmdline()))
        env = {**os.environ, "OSCAR_ENDPOINT": info.endpoint, "OSCAR_USER": info.username,
               "OSCAR_PASSWORD": info.password, "OSCAR_SSL_VERIFY": "false", "OSCAR_CLUSTER": "",
               "OSCAR_PLUGINS_CACHE_DIR": str(work / "cache")}
        prof = ClusterProfile("p", info.endpoint, BasicCredentials(info.username, info.password), ssl_verify=False)
        with OscarClient(prof) as client:
            client.ensure_service(service_from_dict({
                "name": "prof", "image": "alpine", "cpu": "0.1", "memory": "64Mi",
                "script": 'cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/out"',
                "output": [{"storage_provider": "minio.default", "path": "prof/out"}]}))
        if scenario == "dispatch":
            cmd = [sys.executable, "-c", DISPATCH, str(jobs), str(work / "out")]
        else:
            import json
            job = work / "job.json"
            job.write_text(json.dumps({"items": [f"word{i:04d}" for i in range(jobs)]}))
            cmd = [str(Path(sys.executable).parent / "oscar-cwl"), "--quiet", "--outdir", str(work / "out"),
                   str(ROOT / "tests" / "cwl" / "data" / "scatter-wf.cwl"), str(job)]
        cpu_file = work / "client-cpu"
        cmd = [sys.executable, "-c", MEASURE, str(cpu_file), *cmd]
        spies: list[subprocess.Popen[bytes]] = []
        pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if spy:  # --gil: only samples that hold the GIL, i.e. Python running on a CPU
            record = [pyspy, "record", "--nonblocking", "--gil", "-r", "100", "-f", "raw", "-o"]
            for name, pid in (("api", api.pid), ("s3", s3.pid)):
                spies.append(subprocess.Popen([*record, str(work / f"{name}.txt"), "-p", str(pid)],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            cmd = [*record, str(work / "client.txt"), "--subprocesses", "--", *cmd]
            time.sleep(1.0)
        before = {"api": _cpu(api, children=True), "s3": _cpu(s3)}
        scripts_before = api.cpu_times().children_user + api.cpu_times().children_system
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"the {scenario} run failed:\n{proc.stderr[-3000:]}")
        client_cpu = float(cpu_file.read_text())
        t = api.cpu_times()
        scripts = t.children_user + t.children_system - scripts_before
        api_cpu = _cpu(api, children=True) - before["api"] - scripts
        s3_cpu = _cpu(s3) - before["s3"]
        for p in spies:
            p.send_signal(2)
        for p in spies:
            p.wait(30)
    finally:
        down(work / "cluster")
    rows = [f"Scenario `{scenario}`, {jobs} jobs: wall {wall:.1f} s ({1000 * wall / jobs:.1f} ms a job) on "
            f"{os.cpu_count()} cores.", "", "| party | CPU s | CPU ms a job | share |", "|---|---|---|---|"]
    parts = [("client" + (" (under py-spy)" if spy else ""), client_cpu), ("cluster API server + runner", api_cpu),
             ("cluster S3 server (moto)", s3_cpu), ("job scripts (/bin/sh, wrapper, coreutils)", scripts)]
    total = sum(c for _, c in parts)
    rows += [f"| {name} | {c:.1f} | {1000 * c / jobs:.1f} | {100 * c / total:.0f}% |" for name, c in parts]
    busy = 100 * total / wall / (os.cpu_count() or 1)
    rows.append(f"| **all** | {total:.1f} | {1000 * total / jobs:.1f} | machine busy {busy:.0f}% |")
    if spy:
        for name in ("client", "api", "s3"):
            path = work / f"{name}.txt"
            if path.exists():
                packages, functions = top_frames(path)
                rows += ["", f"py-spy, {name}: where the samples are (innermost frame's package) and the heaviest "
                         "oscar-plugins functions (inclusive)", "", "| share | package | share | function |",
                         "|---|---|---|---|"]
                for i in range(max(len(packages), len(functions))):
                    a = packages[i] if i < len(packages) else (0.0, "")
                    b = functions[i] if i < len(functions) else (0.0, "")
                    rows.append(f"| {100 * a[0]:.0f}% | {a[1]} | {100 * b[0]:.0f}% | `{b[1]}` |")
    return "\n".join(rows) + "\n"


#: Runs one local cluster of the code on its PYTHONPATH; on each "run N" line dispatches N trivial jobs
#: and prints a JSON line with the CPU seconds of the API server, the S3 server and the job scripts.
PAIR_DRIVER = r"""
import json, sys, time
from pathlib import Path
import psutil
from oscar_plugins import BasicCredentials, ClusterProfile, Dispatcher, JobSpec, OscarClient, service_from_dict
from oscar_plugins.local import down, up
work = Path(sys.argv[1])
info = up(work / "cluster")
try:
    api = psutil.Process(info.pid)
    s3 = next(p for p in api.children() if "oscar_plugins.local.storage._s3" in " ".join(p.cmdline()))
    prof = ClusterProfile("p", info.endpoint, BasicCredentials(info.username, info.password), ssl_verify=False)
    with OscarClient(prof) as client:
        client.ensure_service(service_from_dict({
            "name": "prof", "image": "alpine", "cpu": "0.1", "memory": "64Mi",
            "script": 'cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/out"',
            "output": [{"storage_provider": "minio.default", "path": "prof/out"}]}))
        print("{}", flush=True)
        for k, line in enumerate(sys.stdin):
            n = int(line.split()[1])
            t, s = api.cpu_times(), s3.cpu_times()
            before = (t.user + t.system, t.children_user + t.children_system, s.user + s.system)
            res = Dispatcher(client).map("prof", [JobSpec(payload=f"job {i}\n") for i in range(n)],
                                         work / f"out{k}", max_in_flight=n)
            time.sleep(0.3)  # the last bucket events and job ends
            t, s = api.cpu_times(), s3.cpu_times()
            after = (t.user + t.system, t.children_user + t.children_system, s.user + s.system)
            cpu = dict(zip(("api", "scripts", "s3"), (b - a for a, b in zip(before, after))))
            print(json.dumps({**cpu, "ok": sum(r.ok for r in res), "n": n}), flush=True)
finally:
    down(work / "cluster")
"""
PARTS = {"api": "cluster API server + runner", "s3": "cluster S3 server (moto)",
         "scripts": "job scripts (/bin/sh, wrapper, coreutils)"}


def paired(rev: str, pairs: int, batch: int, work: Path) -> str:
    """This tree against ``rev`` (see the module's docstring): a table of each party's CPU a job."""
    old = work / "rev"
    old.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    drivers: dict[str, subprocess.Popen[str]] = {}
    for name, tree in (("rev", old), ("tree", ROOT)):
        env = {**os.environ, "PYTHONPATH": str(tree), "OSCAR_PLUGINS_CACHE_DIR": str(work / name / "cache")}
        drivers[name] = subprocess.Popen([sys.executable, "-c", PAIR_DRIVER, str(work / name)], cwd=tree, env=env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    records: dict[str, list[dict[str, float]]] = {"rev": [], "tree": []}
    loads = []
    try:
        for driver in drivers.values():
            assert driver.stdout is not None and driver.stdout.readline(), "a cluster did not start"
        for i in range(pairs + 1):
            loads.append(os.getloadavg()[0])
            for name in ("rev", "tree") if i % 2 == 0 else ("tree", "rev"):
                driver = drivers[name]
                assert driver.stdin is not None and driver.stdout is not None
                driver.stdin.write(f"run {batch}\n")
                driver.stdin.flush()
                record = json.loads(driver.stdout.readline())
                if record["ok"] != batch:
                    raise SystemExit(f"{batch - record['ok']} jobs failed at {name}")
                if i:  # the first pair warms both clusters up
                    records[name].append({k: 1000 * record[k] / batch for k in PARTS})
    finally:
        for driver in drivers.values():
            if driver.stdin is not None:
                driver.stdin.close()
            driver.wait(120)
    for name in records:
        for r in records[name]:
            r["all"] = sum(r[k] for k in PARTS)
    rows = [f"This tree against `{rev}`: {pairs} pairs of {batch}-job batches, 1-minute load {min(loads):.1f}-"
            f"{max(loads):.1f}. CPU ms a job, median of the batches; this / {rev} pair by pair: median (quartiles).",
            "", f"| party | {rev} | this tree | this / {rev} |", "|---|---|---|---|"]
    for key, label in (*PARTS.items(), ("all", "**all parties**")):
        ratios = sorted(b[key] / a[key] for a, b in zip(records["rev"], records["tree"], strict=True))
        q1, q3 = ratios[len(ratios) // 4], ratios[3 * len(ratios) // 4]
        rows.append(f"| {label} | {statistics.median(r[key] for r in records['rev']):.1f} | "
                    f"{statistics.median(r[key] for r in records['tree']):.1f} | "
                    f"{statistics.median(ratios):.2f} ({q1:.2f}-{q3:.2f}) |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Where the CPU goes when dispatching many short jobs.")
    parser.add_argument("--scenario", choices=["dispatch", "cwl"], default="dispatch")
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--py-spy", action="store_true", help="also sample each process with py-spy")
    parser.add_argument("--write", action="store_true", help="put the tables into docs/PERFORMANCE.md")
    parser.add_argument("--against", metavar="REV", help="compare with this git revision (trivial jobs, paired)")
    parser.add_argument("--pairs", type=int, default=20, help="with --against: pairs of batches")
    parser.add_argument("--batch", type=int, default=50, help="with --against: jobs a batch")
    args = parser.parse_args(argv)
    if args.against:
        with tempfile.TemporaryDirectory(prefix="oscar-paired-") as tmp:
            print(paired(args.against, args.pairs, args.batch, Path(tmp)))
        return 0
    with tempfile.TemporaryDirectory(prefix="oscar-profile-") as tmp:
        text = run(args.scenario, args.jobs, args.py_spy, Path(tmp))
    print(text)
    if args.write:
        doc = ROOT / "docs" / "PERFORMANCE.md"
        marker = f"<!-- profile {args.scenario} -->"
        content = doc.read_text()
        if marker not in content:
            content += f"\n{marker}\n<!-- /profile {args.scenario} -->\n"
        head, _, rest = content.partition(marker)
        _, _, tail = rest.partition(f"<!-- /profile {args.scenario} -->")
        doc.write_text(f"{head}{marker}\n{text}<!-- /profile {args.scenario} -->{tail}")
        print(f"written to {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
