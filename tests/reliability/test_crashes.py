"""Crashes: a SIGKILLed client reattaches through its journal; a restarted cluster is waited for."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import yaml

from oscar_plugins import Dispatcher, JobFailed, JobSpec, OscarClient, service_from_dict
from oscar_plugins._auth import BasicCredentials
from oscar_plugins._profiles import ClusterProfile
from oscar_plugins.local import down, up
from tests.servers import free_port


def _svc(name: str, script: str):
    return service_from_dict({"name": name, "image": "alpine", "script": script, "cpu": "0.1", "memory": "64Mi",
                              "output": [{"storage_provider": "minio.default", "path": f"{name}/out"}]})


def _wait_for(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_sigkilled_client_reattaches_without_resubmitting(local_cluster, client, tmp_path):
    client.ensure_service(_svc("crash-kill", 'sleep 1; cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/copy"'))
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"oscar": {"t": {"endpoint": local_cluster.endpoint,
                                                   "auth_user": local_cluster.username,
                                                   "auth_password": local_cluster.password,
                                                   "ssl_verify": False}}, "default": "t"}))
    env = {**os.environ, "OSCAR_CONFIG": str(cfg), "OSCAR_PLUGINS_STATE_DIR": str(tmp_path / "state")}
    inputs = []
    for i in range(16):
        f = tmp_path / f"in-{i:02d}.txt"
        f.write_text(f"input {i}")
        inputs.append(str(f))
    cmd = [sys.executable, "-m", "oscar_plugins.cli", "-q", "job", "crash-kill", *inputs, "--wait",
           "-o", str(tmp_path / "out")]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for(lambda: len(client.list_jobs("crash-kill")) >= 8, what="half the jobs submitted")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    submitted = set(client.list_jobs("crash-kill"))
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    jobs = client.list_jobs("crash-kill")
    assert len(jobs) == 16 and submitted <= set(jobs)  # no job ran twice; the first run's jobs were reused
    copies = sorted(p.read_text() for p in (tmp_path / "out").rglob("copy"))
    assert copies == sorted(f"input {i}" for i in range(16))


@pytest.fixture()
def restartable(tmp_path):
    port = free_port()
    data = tmp_path / "cluster"
    info = up(data, port=port)
    yield data, port, info
    down(data)


def test_cluster_restart_mid_batch(restartable, tmp_path):
    data, port, info = restartable
    profile = ClusterProfile("r", info.endpoint, BasicCredentials(info.username, info.password), ssl_verify=False)
    client = OscarClient(profile, retries=3)
    client.ensure_service(_svc("restart", 'sleep 4; echo done > "$TMP_OUTPUT_DIR/out"'))
    d = Dispatcher(client)
    results: dict[str, list] = {}

    def batch(key: str, retries: int) -> None:
        results[key] = d.map("restart", [JobSpec(payload=str(i)) for i in range(3)], tmp_path / key,
                             retries=retries)

    workers = [threading.Thread(target=batch, args=("retry", 1)), threading.Thread(target=batch, args=("once", 0))]
    for w in workers:
        w.start()
    _wait_for(lambda: sum(j.get("status") == "Running" for j in client.list_jobs("restart").values()) >= 2,
              what="jobs running")
    down(data)
    time.sleep(1.0)  # the client keeps polling a dead cluster meanwhile
    up(data, port=port)
    for w in workers:
        w.join(timeout=240)
    assert all(r.ok for r in results["retry"]), [str(r.error) for r in results["retry"]]
    failed = [r for r in results["once"] if not r.ok]
    assert failed, "without retries, jobs killed by the restart are reported failed"
    for r in failed:
        assert isinstance(r.error, JobFailed) and "restart" in r.error.log_tail.lower()
