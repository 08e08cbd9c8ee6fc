"""Capacity, restarts, start-up errors and the polling fallback: each test runs its own cluster."""

from __future__ import annotations

import base64
import socket
import time
from pathlib import Path

import pytest

from oscar_plugins.local import LocalCluster, LocalClusterError
from tests.local.local_helpers import Api, wait_for


def test_jobs_wait_pending_while_capacity_is_full(tmp_path: Path) -> None:
    with LocalCluster(data_dir=tmp_path, port=0, cpus=0.4, memory=2 << 30, run_timeout=2) as lc:
        api = Api(lc)
        service = api.create("sleep 1\n", cpu="0.2")
        for i in range(5):
            assert api.job(service, b"", name=f"cap-{i}").status_code == 201
        most_running, saw_pending = 0, False
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            states = [j["status"] for j in api.jobs(service["name"]).values()]
            most_running = max(most_running, states.count("Running"))
            saw_pending = saw_pending or "Pending" in states
            if states.count("Succeeded") == 5:
                break
            time.sleep(0.05)
        assert states.count("Succeeded") == 5 and saw_pending and 1 <= most_running <= 2
        pending = api.jobs(service["name"])["cap-4"]
        assert pending["start_time"] is not None and pending["finish_time"] >= pending["start_time"]

        too_big = api.create("true", cpu="1")
        api.job(too_big, b"", name="never-fits")
        assert api.wait_finished(too_big["name"], "never-fits") == "Failed"
        assert "cannot be scheduled" in api.log(too_big["name"], "never-fits")

        slow = api.create("sleep 10\n")
        response = api.run(slow, base64.b64encode(b"x"))
        assert response.status_code == 504 and "did not finish within 2 s" in response.text
        api.close()


def test_state_survives_restart_and_running_jobs_fail(tmp_path: Path) -> None:
    with LocalCluster(data_dir=tmp_path, port=0) as lc:
        api = Api(lc)
        service = api.create("echo done\n", input=[{"path": "keep-bkt/in"}])
        api.job(service, b"", name="finished-1")
        api.wait_finished(service["name"], "finished-1")
        api.s3.put_object(Bucket="keep-bkt", Key="in/kept.txt", Body=b"kept", ContentType="text/plain")
        wait_for(lambda: len(api.jobs(service["name"])) == 2)
        sleeper = api.create("echo started; sleep 60\n", log_level="DEBUG")  # output logged at DEBUG
        api.job(sleeper, b"", name="interrupted")
        wait_for(lambda: "started" in api.log(sleeper["name"], "interrupted"))
        token, endpoint = service["token"], lc.endpoint
        api.close()
    with LocalCluster(data_dir=tmp_path, port=0) as lc:
        api = Api(lc)
        assert lc.endpoint == endpoint  # the previous port is reused when free
        stored = api.admin.get(f"/system/services/{service['name']}").json()
        assert stored["token"] == token
        assert api.status_of(service["name"], "finished-1") == "Succeeded"
        assert "done" in api.log(service["name"], "finished-1")
        assert api.status_of(sleeper["name"], "interrupted") == "Failed"
        assert "killed by local cluster restart" in api.log(sleeper["name"], "interrupted")
        obj = api.s3.get_object(Bucket="keep-bkt", Key="in/kept.txt")
        assert obj["Body"].read() == b"kept" and obj["ContentType"] == "text/plain"
        assert [o["Key"] for o in api.s3.list_objects_v2(Bucket="keep-bkt")["Contents"]] == ["in/", "in/kept.txt"]
        time.sleep(0.5)
        assert len(api.jobs(service["name"])) == 2  # reloading objects does not re-trigger jobs
        api.close()
    assert (tmp_path / "credentials.json").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "s3" / "keep-bkt" / "in" / "kept.txt").read_bytes() == b"kept"


def test_polling_fallback_triggers_jobs(tmp_path: Path) -> None:
    with LocalCluster(data_dir=tmp_path, port=0, s3_events="poll") as lc:
        api = Api(lc)
        service = api.create("echo polled\n", input=[{"path": "poll-bkt/in"}])
        time.sleep(0.8)  # let the poller take its first snapshot
        api.s3.put_object(Bucket="poll-bkt", Key="in/a.txt", Body=b"a")
        jobs = wait_for(lambda: api.jobs(service["name"]), timeout=5)
        assert len(jobs) == 1
        api.close()


def test_startup_errors_name_the_problem(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(LocalClusterError, match="not writable"):
        LocalCluster(data_dir=blocker / "sub", port=0).start()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LocalClusterError, match=f"port {port} on 127.0.0.1 is in use"):
            LocalCluster(data_dir=tmp_path / "d1", port=port).start()
    with LocalCluster(data_dir=tmp_path / "d2", port=0), pytest.raises(LocalClusterError, match="in use by another"):
        LocalCluster(data_dir=tmp_path / "d2", port=0).start()
