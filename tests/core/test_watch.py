"""Watching a service's jobs finish: the library iterator and ``oscar-plugins watch``, on the local cluster."""

from __future__ import annotations

import json
import threading
import time

import pytest

from oscar_plugins import Dispatcher, JobEvent, ServiceNotFound, service_from_dict, watch_jobs

from .test_cli import cli, env  # noqa: F401 - env is a fixture


def _deploy(client, name: str) -> None:
    client.ensure_service(service_from_dict({
        "name": name, "image": "alpine", "script": "sleep 0.3",
        "input": [{"storage_provider": "minio.default", "path": f"{name}/in"}],
        "output": [{"storage_provider": "minio.default", "path": f"{name}/out"}]}))


def test_each_job_is_told_once_when_it_finishes(client) -> None:
    _deploy(client, "watched")
    d = Dispatcher(client)
    before = d.submit("watched", payload="old")
    d.tracker.wait([before], timeout=60)
    events: list[JobEvent] = []
    polled = threading.Event()

    def sleep(seconds: float) -> None:
        polled.set()  # the first reading is done: what finishes from now on is news
        time.sleep(seconds)

    def consume() -> None:
        for event in watch_jobs(client, "watched", interval=0.1, timeout=60, sleep=sleep):
            events.append(event)
            if len(events) == 3:
                return

    reader = threading.Thread(target=consume)
    reader.start()
    assert polled.wait(30)
    new = [d.submit("watched", payload=str(i), track=False) for i in range(3)]
    reader.join(90)
    assert not reader.is_alive()
    assert sorted(e.job for e in events) == sorted(j.name for j in new)  # not the job that ended before
    assert all(e.status == "Succeeded" and e.service == "watched" and e.finish_time for e in events)
    assert [e.finish_time for e in events] == sorted(e.finish_time for e in events)

    earlier = list(watch_jobs(client, "watched", existing=True, timeout=0.01))
    assert before.name in {e.job for e in earlier}  # in the order they finished (1 s precision)
    assert [e.finish_time for e in earlier] == sorted(e.finish_time for e in earlier)
    assert len({e.job for e in earlier}) == len(earlier) == 4  # each once
    d.tracker.close()


def test_the_cli_prints_one_line_per_job_and_json_for_scripts(client, env) -> None:  # noqa: F811
    _deploy(client, "watched-cli")
    d = Dispatcher(client)
    job = d.submit("watched-cli", payload="x")
    d.tracker.wait([job], timeout=60)
    d.tracker.close()
    out = cli(env, "watch", "watched-cli", "--existing", "--count", "1", "--json")
    assert out.returncode == 0, out.stderr
    (line,) = out.stdout.splitlines()
    assert json.loads(line)["job"] == job.name and json.loads(line)["status"] == "Succeeded"
    plain = cli(env, "watch", "watched-cli", "--existing", "--timeout", "0.5")
    assert plain.returncode == 0 and job.name in plain.stdout and "Succeeded" in plain.stdout


def test_bad_input_is_named(client, env) -> None:  # noqa: F811
    with pytest.raises(ServiceNotFound, match="deploy it first"):
        next(watch_jobs(client, "no-such-service", timeout=1))
    with pytest.raises(ValueError, match="interval"):
        next(watch_jobs(client, "x", interval=0))
    out = cli(env, "watch", "no-such-service", "--timeout", "1")
    assert out.returncode == 1 and "does not exist" in out.stderr
    usage = cli(env, "watch", "x", "--interval", "0")
    assert usage.returncode == 2 and "not more than 0 seconds" in usage.stderr
