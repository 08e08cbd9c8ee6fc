"""Asset watchers with the real Airflow triggerer: jobs finishing and objects landing fire asset events.

The triggerer runs as users run it (``airflow triggerer``, its own AIRFLOW_HOME and SQLite database), on
the DAGs of ``event_dags/``, registered by ``airflow dags reserialize``. Events are counted in Airflow's
``asset_event`` table and watermarks read from ``asset_state_store``. The triggerer is stopped (SIGTERM,
as a deployment restarts it) in the middle of a stream of jobs and uploads, and started again.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from oscar_plugins import Watermark, WatermarkMismatch
from oscar_plugins.airflow.watchers import STATE_KEY, OscarJobsFinishedTrigger, OscarNewObjectsTrigger

HERE = Path(__file__).resolve().parent
AIRFLOW = str(Path(sys.executable).parent / "airflow")
SERVICE = "af-watched"
PATH = f"{SERVICE}/in"
WATCHED = {"name": SERVICE, "image": "alpine",
           "script": 'sleep 0.2\necho done > "$TMP_OUTPUT_DIR/out.txt"\n',
           "input": [{"storage_provider": "minio.default", "path": PATH}],
           "output": [{"storage_provider": "minio.default", "path": f"{SERVICE}/out"}]}

MISSING = json.dumps({"EventName": "s3:ObjectCreated:Put", "Key": f"{PATH}/missing.txt", "Records": [
    {"eventSource": "minio:s3", "s3": {"bucket": {"name": SERVICE}, "object": {"key": "in/missing.txt"}}}]})


# -- units: what Airflow stores of a trigger, and bad input --------------------------------------------------
def test_watchers_serialize_and_share_one_stream_per_service() -> None:
    from airflow.sdk._shared.module_loading import import_string
    from airflow.sdk.serde import deserialize, serialize

    a = OscarJobsFinishedTrigger(service_name="svc", statuses=["Succeeded"], poll_interval=2)
    b = OscarJobsFinishedTrigger(service_name="svc", poll_interval=2, existing=True)
    c = OscarJobsFinishedTrigger(service_name="other", poll_interval=2)
    o = OscarNewObjectsTrigger(path="/bucket/in/", suffixes=[".nc"], oscar_conn_id="c")
    for trigger in (a, b, c, o):
        classpath, kwargs = trigger.serialize()
        assert import_string(classpath)(**deserialize(serialize(kwargs))).serialize() == (classpath, kwargs)
    assert a.shared_stream_key() == b.shared_stream_key() != c.shared_stream_key()
    assert a.serialize() != b.serialize()  # two triggers in Airflow's table, one listing in the triggerer
    assert o.source == "bucket:bucket/in/"


@pytest.mark.parametrize(("make", "words"), [
    (lambda: OscarJobsFinishedTrigger(service_name=""), "service_name is empty"),
    (lambda: OscarJobsFinishedTrigger(service_name="s", statuses=["Done"]), "'Succeeded' and/or 'Failed'"),
    (lambda: OscarJobsFinishedTrigger(service_name="s", poll_interval=0), "poll_interval must be > 0"),
    (lambda: OscarNewObjectsTrigger(path=""), "'bucket' or 'bucket/prefix'"),
    (lambda: OscarNewObjectsTrigger(path="s3://bucket/x"), "'bucket' or 'bucket/prefix'"),
])
def test_bad_arguments_are_refused_when_the_dag_is_parsed(make: Any, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        make()


def test_a_watermark_of_another_cluster_or_source_is_refused_with_the_fix() -> None:
    mark = Watermark("https://a.example", "service:x").told([("j1", 100.0)])
    again = Watermark.from_json(json.loads(json.dumps(mark.to_json())), cluster="https://a.example",
                                source="service:x")
    assert again == mark and again.news([("j1", 100.0), ("j2", 101.0)]) == ["j2"]
    with pytest.raises(WatermarkMismatch, match=r"'service:x' on 'https://a.example', not 'service:x' on "
                                                r"'https://b.example'.*clear the stored watermark"):
        Watermark.from_json(mark.to_json(), cluster="https://b.example", source="service:x")
    with pytest.raises(WatermarkMismatch, match="not an oscar-plugins watermark"):
        Watermark.from_json({"cursor": 3}, cluster="https://a.example", source="service:x")


# -- the real triggerer -----------------------------------------------------------------------------------
class Triggerer:
    """An ``airflow triggerer`` with its own home and database, on ``event_dags/``."""

    def __init__(self, home: Path, conn: str) -> None:
        self.home = home
        self.db = home / "airflow.db"
        self.log = home / "triggerer.log"
        self.env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(HERE / "event_dags"),
                    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db}",
                    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False", "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                    "AIRFLOW_CONN_OSCAR_DEFAULT": conn, "OSCAR_WATCH_SERVICE": SERVICE, "OSCAR_WATCH_PATH": PATH,
                    "OSCAR_WATCH_INTERVAL": "0.5"}
        self.proc: subprocess.Popen[bytes] | None = None

    def airflow(self, *args: str) -> None:
        proc = subprocess.run([AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen([AIRFLOW, "triggerer"], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)  # the supervisor stops its runner, as a deployment's restart does
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db, timeout=30) as con:
            return con.execute(sql, args).fetchall()

    def events(self) -> dict[str, list[dict[str, Any]]]:
        rows = self.query("SELECT a.name, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id ORDER BY e.id")
        out: dict[str, list[dict[str, Any]]] = {}
        for name, extra in rows:
            out.setdefault(name, []).append(json.loads(extra)["payload"])
        return out

    def watermarks(self) -> dict[str, dict[str, Any]]:
        rows = self.query("SELECT a.name, s.value FROM asset_state_store s JOIN asset a ON a.id = s.asset_id "
                          "WHERE s.key = ?", STATE_KEY)
        return {name: json.loads(value) for name, value in rows}

    def wait(self, what: str, ok: Any, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not ok():
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"the triggerer exited ({self.proc.returncode}) waiting for {what}:\n"
                                     + self.log.read_text()[-4000:])
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; events {self.counts()}; log:\n"
                                     + self.log.read_text()[-4000:])
            time.sleep(0.5)

    def counts(self) -> dict[str, int]:
        return {name: len(v) for name, v in self.events().items()}


@pytest.fixture(scope="module")
def triggerer(oscar_connections: dict[str, str], oscar_client: Any) -> Any:
    oscar_client.ensure_service(WATCHED, wrap=False)  # a native OSCAR service: a failing script fails the pod
    home = Path(tempfile.mkdtemp(prefix="oscar-triggerer-home-"))
    t = Triggerer(home, oscar_connections["AIRFLOW_CONN_OSCAR_DEFAULT"])
    t.airflow("db", "migrate")
    t.airflow("dags", "reserialize")
    yield t
    if t.proc is not None:
        t.stop()


def test_a_restarted_triggerer_loses_no_event_and_repeats_only_unconfirmed_ones(triggerer: Triggerer,
                                                                               oscar_client: Any) -> None:
    t = triggerer
    triggers = t.query("SELECT classpath FROM trigger")
    assert sorted(c.rsplit(".", 1)[-1] for (c,) in triggers) == [
        "OscarJobsFinishedTrigger", "OscarJobsFinishedTrigger", "OscarNewObjectsTrigger"]
    stamp = int(time.time())
    oscar_client.submit_job(SERVICE, base64.b64encode(b"old"), name=f"{SERVICE}-before-{stamp}")
    oscar_client.storage.put_bytes(SERVICE, f"in/before-{stamp}.txt", b"old")

    def all_ended(least: int) -> bool:
        jobs = oscar_client.list_jobs(SERVICE)
        return len(jobs) >= least and all(i.get("status") in ("Succeeded", "Failed") for i in jobs.values())

    t.wait("the jobs before the watch", lambda: all_ended(2))
    preexisting = set(oscar_client.list_jobs(SERVICE))

    t.start()
    t.wait("the starting watermarks", lambda: len(t.watermarks()) == 3)

    # A stream of work: jobs submitted (some fail) and files uploaded (each starts a job, as OSCAR's bucket
    # trigger does), in bursts of four: before the triggerer stops, while it is down, and after it is back.
    submitted: list[str] = []
    uploaded: list[str] = []

    def burst(first: int) -> None:
        for i in range(first, first + 4):
            if i % 2:  # a MinIO event for a missing object fails the pod (a supervisor-level failure)
                body = MISSING if i % 4 == 1 else base64.b64encode(b"ok")
                submitted.append(oscar_client.submit_job(SERVICE, body, name=f"{SERVICE}-s{i}-{stamp}"))
            else:
                key = f"in/file-{i}-{stamp}.txt"
                oscar_client.storage.put_bytes(SERVICE, key, f"ok {i}".encode())
                uploaded.append(key)
            time.sleep(0.1)

    def ids(events: dict[str, list[dict[str, Any]]], asset: str) -> list[str]:
        key = "job" if asset != "oscar-landed" else None
        return [e[key] if key else f"{e['key']}#{e['etag']}" for e in events.get(asset, [])]

    assets = ("oscar-finished", "oscar-succeeded", "oscar-landed")

    def caught_up() -> bool:
        """Every event Airflow stored is covered by its asset's stored watermark."""
        marks, events = t.watermarks(), t.events()
        return sum(len(ids(events, a)) for a in assets) >= 3 and all(
            i in marks[a]["seen"] for a in assets for i in ids(events, a))

    # 1. A restart at a quiet point (every stored event covered by a stored watermark), while jobs run and
    #    files land: nothing may be lost or told twice.
    burst(0)
    t.wait("events, and the watermarks covering them", caught_up)
    t.stop()
    first_stop = t.counts()
    burst(4)  # lands and finishes while no triggerer runs
    time.sleep(2)
    t.start()
    t.wait("the events of the downtime", lambda: sum(t.counts().values()) >= 18)
    # 2. A restart with events in flight: SIGTERM right after a burst. Airflow confirms a stored event to the
    #    trigger at the runner's next sync (about a second); the supervisor stores the runner's last events
    #    but never confirms them, so those, and only those, may be told again.
    burst(8)
    t.wait("a first event of the burst", lambda: sum(t.counts().values()) > 18, timeout=120)
    t.stop()
    at_second_stop = t.watermarks()
    burst(12)
    time.sleep(2)
    t.start()

    t.wait("every job to finish", lambda: all_ended(len(preexisting) + 16), timeout=180)
    new_jobs = {n: i["status"] for n, i in oscar_client.list_jobs(SERVICE).items() if n not in preexisting}
    assert len(new_jobs) == 16, new_jobs  # 8 submitted, 8 started by uploads
    succeeded = {n for n, s in new_jobs.items() if s == "Succeeded"}
    assert len(succeeded) == 12
    expected = {"oscar-finished": set(new_jobs), "oscar-succeeded": succeeded,
                "oscar-landed": set()}  # objects: their ETags are known once listed

    def settled() -> bool:
        events = t.events()
        return set(ids(events, "oscar-finished")) >= expected["oscar-finished"] and \
            set(ids(events, "oscar-succeeded")) >= expected["oscar-succeeded"] and \
            {i.split("#")[0] for i in ids(events, "oscar-landed")} >= set(uploaded)

    t.wait("every event", settled, timeout=180)
    time.sleep(3)  # a few more polls: nothing more may come
    events = t.events()
    t.stop()

    # None lost, nothing old: exactly the new jobs and uploads, each at least once.
    assert set(ids(events, "oscar-finished")) == expected["oscar-finished"]
    assert set(ids(events, "oscar-succeeded")) == expected["oscar-succeeded"]
    assert {i.split("#")[0] for i in ids(events, "oscar-landed")} == set(uploaded)
    assert 0 < sum(first_stop.values()) < 36  # the first restart really was in the middle of the stream
    # Told twice: only events of the in-flight restart that its stored watermark did not cover; never one of
    # the quiet restart.
    quiet = set(submitted[:4]) | {f"{k}#" for k in uploaded[:4]}
    for asset in assets:
        for event_id, n in Counter(ids(events, asset)).items():
            if n > 1:
                assert n == 2 and event_id not in at_second_stop[asset]["seen"], (asset, event_id, n)
                assert not any(event_id.startswith(q) for q in quiet), (asset, event_id)
    repeats = sum(n - 1 for a in assets for n in Counter(ids(events, a)).values())
    print(f"events told twice after the in-flight restart: {repeats}")

    one = next(e for e in events["oscar-finished"] if e["job"] in submitted and e["status"] == "Succeeded")
    assert one["service"] == SERVICE and one["finish_time"] and one["cluster"].startswith("http")
    assert one["output_keys"] == []  # a native service writes outputs beside each other's, not per job
    obj = events["oscar-landed"][0]
    assert obj["bucket"] == SERVICE and obj["size"] > 0 and obj["md5"] and obj["event_id"].endswith(obj["etag"])
    marks = t.watermarks()
    assert marks["oscar-finished"]["source"] == f"service:{SERVICE}"
    # two job watchers of one service read one listing: one stream per triggerer start (three starts)
    log = t.log.read_text()
    assert log.count(f"one listing of service:{SERVICE} on") == 3, log[-3000:]
    assert log.count(f"one listing of bucket:{PATH}/ on") == 3


def test_a_foreign_watermark_fails_the_watcher_with_the_fix(triggerer: Triggerer) -> None:
    t = triggerer
    foreign = Watermark("https://other.example", f"service:{SERVICE}").to_json()
    t.query("UPDATE asset_state_store SET value = ? WHERE key = ? AND asset_id = "
            "(SELECT id FROM asset WHERE name = 'oscar-finished')", json.dumps(foreign), STATE_KEY)
    before = t.counts()
    start = t.log.stat().st_size
    t.start()
    t.wait("the refusal", lambda: "other.example" in t.log.read_text()[start:], timeout=120)
    t.stop()
    text = t.log.read_text()[start:]
    assert "is for 'service:af-watched' on 'https://other.example'" in text and "clear the state" in text
    assert t.counts().get("oscar-finished") == before.get("oscar-finished")  # nothing told from a foreign mark


# -- without the triggerer's shared streams: the trigger's own loop ------------------------------------------
async def _first(trigger: Any, action: Any = None, timeout: float = 60) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    task = asyncio.ensure_future(first())
    if action is not None:
        await asyncio.sleep(1.5)  # the first listing is the starting point
        await asyncio.to_thread(action)
    return await asyncio.wait_for(task, timeout)


def test_a_wrapped_job_s_event_names_its_outputs(oscar_connections: dict[str, str], oscar_client: Any) -> None:
    from oscar_plugins import Dispatcher

    oscar_client.ensure_service({**WATCHED, "name": "af-wrapped", "input": [{"storage_provider": "minio.default",
                                 "path": "af-wrapped/in"}], "output": [{"storage_provider": "minio.default",
                                                                      "path": "af-wrapped/out"}]})
    d = Dispatcher(oscar_client)
    jobs: list[Any] = []
    payload = asyncio.run(_first(OscarJobsFinishedTrigger(service_name="af-wrapped", poll_interval=0.3),
                                 lambda: jobs.append(d.submit("af-wrapped", payload="x", track=False))))
    d.tracker.close()
    assert payload["job"] == jobs[0].name and payload["status"] == "Succeeded"
    assert payload["output_keys"] == [f"af-wrapped/out/{jobs[0].name}/out.txt"]


def test_an_unknown_service_or_bucket_fails_the_watcher_with_the_fix(oscar_connections: dict[str, str]) -> None:
    from oscar_plugins.airflow._compat import AirflowException

    with pytest.raises(AirflowException, match="has no service 'no-such-svc' to watch: deploy it, or fix"):
        asyncio.run(_first(OscarJobsFinishedTrigger(service_name="no-such-svc", poll_interval=0.2)))
    with pytest.raises(AirflowException, match=r"bucket 'no-such-bucket' does not exist .* fix path="):
        asyncio.run(_first(OscarNewObjectsTrigger(path="no-such-bucket/in", poll_interval=0.2)))
