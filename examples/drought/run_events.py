"""The event-driven drought workflow end to end: ``python examples/drought/run_events.py``.

New months of climate data land in the input bucket one after the other; for each, OSCAR's bucket
trigger runs a ``drought-monthly`` job, its job-finished event (an Airflow asset watcher in the
triggerer) starts the DAG ``drought_warning_on_new_month``, and that DAG draws the month's warning map.
Nothing here starts a job or a DAG run: the uploads do.

It runs on the embedded local cluster, with the Airflow components a deployment has: API server,
scheduler (LocalExecutor), DAG processor and triggerer, in a temporary AIRFLOW_HOME (SQLite). It prints
one line per stage, the maps' paths and the time from each upload to its map. Exit code 0 when every
month's map was drawn and its checks passed.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STEPS = HERE / "steps"
SERVICE = "drought-monthly"
DAG_ID = "drought_warning_on_new_month"


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def month_tar(end_month: int, args: argparse.Namespace, work: Path) -> bytes:
    """The month's upload: every tile's record up to ``end_month``, region.json and the steps' code."""
    sys.path.insert(0, str(STEPS))
    import climate  # steps/climate.py

    folder = work / f"climate-{end_month:02d}"
    climate.main(["--tiles", str(args.tiles), "--tile-size", str(args.tile_size), "--years", str(args.years),
                  "--end-month", str(end_month), "--seed", "7", "--out-dir", str(folder)])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
        for name in ("indices.py", "forecast.py"):
            tar.add(STEPS / name, arcname=name)
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Airflow:
    """Airflow's components, as a deployment runs them, in one temporary home."""

    COMPONENTS = (("api-server", "--port"), ("scheduler",), ("dag-processor",), ("triggerer",))

    def __init__(self, home: Path, conn: str, data_dir: Path, interval: float) -> None:
        self.home = home
        self.port = free_port()
        dags = home / "dags"
        dags.mkdir(parents=True)
        (dags / "drought_events_dag.py").symlink_to(HERE / "drought_events_dag.py")
        self.env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
                    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
                    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
                    "AIRFLOW__API__PORT": str(self.port), "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
                    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5", "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                    "AIRFLOW_CONN_OSCAR_DEFAULT": conn, "DROUGHT_DATA_DIR": str(data_dir),
                    "DROUGHT_WATCH_INTERVAL": str(interval),
                    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.bin = str(Path(sys.executable).parent / "airflow")

    def start(self) -> None:
        proc = subprocess.run([self.bin, "db", "migrate"], env=self.env, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"airflow db migrate failed:\n{proc.stderr[-2000:]}")
        for name, *port in self.COMPONENTS:
            log = (self.home / f"{name}.log").open("wb")
            cmd = [self.bin, name, *([port[0], str(self.port)] if port else [])]
            self.procs.append(subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True))

    def check_alive(self) -> None:
        for (name, *_), proc in zip(self.COMPONENTS, self.procs, strict=False):
            if proc.poll() is not None:
                tail = (self.home / f"{name}.log").read_text(errors="replace")[-3000:]
                raise SystemExit(f"airflow {name} exited ({proc.returncode}):\n{tail}")

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.home / "airflow.db", timeout=30) as con:
            return con.execute(sql, params).fetchall()

    def wait(self, what: str, ok: Any, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                value = ok()
            except sqlite3.OperationalError:  # a table not created yet
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}; logs in {self.home}")
            time.sleep(1)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, nargs="+", default=[7, 8],
                        help="the months (of the last year) that land, in order (default: 7 8)")
    parser.add_argument("--tiles", type=int, default=4)
    parser.add_argument("--tile-size", type=int, default=12)
    parser.add_argument("--years", type=int, default=35, help="of record from January 1991 (default: 35)")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "oscar-drought-events",
                        help="where the maps go (default: %(default)s)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between job listings (default: 2)")
    parser.add_argument("--keep-airflow", action="store_true", help="keep Airflow's home (logs, database)")
    args = parser.parse_args(argv)

    from oscar_plugins import OscarClient, load_fdl

    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="oscar-drought-events-"))
    say("connecting to OSCAR (with nothing configured: the embedded local cluster)")
    client = OscarClient.connect()
    say(f"deploying {SERVICE} (drought_monthly.yaml) on {client.profile.endpoint}")
    for item in load_fdl(HERE / "drought_monthly.yaml").services:
        client.ensure_service(item.service)  # inside the oscar-plugins wrapper: outputs under out/<job>/
    conn = json.dumps({"conn_type": "oscar", "extra": {"local": True}}) if client.profile.is_local else \
        os.environ.get("AIRFLOW_CONN_OSCAR_DEFAULT", "")
    if not conn:
        raise SystemExit("set AIRFLOW_CONN_OSCAR_DEFAULT to the Airflow connection of your cluster")

    airflow = Airflow(work / "airflow", conn, args.out, args.interval)
    say(f"starting Airflow (api-server, scheduler, dag-processor, triggerer) in {airflow.home}")
    airflow.start()
    code = 1
    try:
        airflow.wait("the DAG and its asset watcher to be registered", lambda: airflow.query(
            "SELECT 1 FROM trigger WHERE classpath LIKE '%OscarJobsFinishedTrigger'"), timeout=300)
        airflow.wait("the watcher's starting point", lambda: airflow.query(
            "SELECT 1 FROM asset_state_store s JOIN asset a ON a.id = s.asset_id "
            "WHERE a.name = 'drought-monthly-indices'"), timeout=300)
        say("the watcher runs in the triggerer")
        timings = []
        for n, month in enumerate(args.months, 1):
            data = month_tar(month, args, work)
            key = f"in/climate_{month:02d}.tar"
            uploaded = time.monotonic()
            client.storage.put_bytes(SERVICE, key, data)
            say(f"uploaded {SERVICE}/{key} ({len(data) / 1e6:.1f} MB): OSCAR's bucket trigger starts a job")
            event = airflow.wait("the job-finished event", lambda n=n: airflow.query(
                "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
                "WHERE a.name = 'drought-monthly-indices' ORDER BY e.id")[n - 1:], timeout=600)[0]
            payload = json.loads(event[0])["payload"]
            say(f"job {payload['job']} {payload['status']} at {payload['finish_time']}: its event starts {DAG_ID}")
            run = airflow.wait(f"DAG run {n} of {DAG_ID}", lambda n=n: [r for r in airflow.query(
                "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id", DAG_ID)[n - 1:]
                if r[1] in ("success", "failed")], timeout=600)[0]
            took = time.monotonic() - uploaded
            timings.append(took)
            say(f"DAG run {run[0]}: {run[1]} ({took:.0f} s after the upload)")
            if run[1] != "success":
                say(f"see the task log under {airflow.home}/logs")
                return 1
        maps = sorted(args.out.glob(f"*-{SERVICE}-*/drought_warning.png"), key=lambda p: p.stat().st_mtime)
        for path in maps[-len(args.months):]:
            say(f"warning map: {path}")
        say(f"done: {len(args.months)} months, {len(args.months)} maps, upload to map {min(timings):.0f}-"
            f"{max(timings):.0f} s; {time.monotonic() - started:.0f} s in all")
        code = 0
    finally:
        airflow.stop()
        if code == 0 and not args.keep_airflow:
            shutil.rmtree(work, ignore_errors=True)
        client.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
