"""Triggers: serialize() round-trips (also through Airflow's serde), and real runs on the local cluster."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from oscar_plugins import JobState
from oscar_plugins.airflow.triggers import OscarJobTrigger, OscarOutputTrigger

SLEEPY = {"name": "af-sleepy", "image": "alpine", "script": 'echo "started"\nsleep "$(cat "$INPUT_FILE_PATH")"\n',
          "output": [{"path": "af-sleepy/out"}]}

TRIGGERS = [
    OscarJobTrigger(service_name="svc", job_names=["svc-1", "svc-2"], oscar_conn_id="c", poll_interval=2,
                    end_time=1_900_000_000.5, lost_after=30, cancel_on_kill=False),
    OscarJobTrigger(service_name="svc", job_names=["svc-1"]),
    OscarOutputTrigger(service_name="svc", prefix="svc-1/", min_count=3, oscar_conn_id="c", poll_interval=1,
                       end_time=None),
]


@pytest.mark.parametrize("trigger", TRIGGERS, ids=lambda t: type(t).__name__)
def test_serialize_round_trips(trigger):
    from airflow.sdk._shared.module_loading import import_string
    from airflow.sdk.serde import deserialize, serialize

    classpath, kwargs = trigger.serialize()
    again = import_string(classpath)(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    # What the triggerer really receives: the kwargs encoded and decoded by Airflow's serde.
    decoded = deserialize(serialize(kwargs))
    assert import_string(classpath)(**decoded).serialize() == (classpath, kwargs)
    assert all(isinstance(v, (str, int, float, bool, list, type(None))) for v in kwargs.values())


async def _first_event(trigger: Any, timeout: float = 60) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    return await asyncio.wait_for(first(), timeout)


@pytest.fixture(scope="module")
def sleepy(oscar_client, oscar_connections):
    oscar_client.ensure_service(SLEEPY)
    return oscar_client


def test_job_trigger_fires_once_when_jobs_finish(sleepy):
    names = [sleepy.submit_job("af-sleepy", b"MQ==", name=f"af-sleepy-ok-{i}-{int(time.time())}") for i in range(2)]
    payload = asyncio.run(_first_event(OscarJobTrigger(service_name="af-sleepy", job_names=names,
                                                       poll_interval=0.3)))
    assert payload["status"] == "success"
    assert payload["jobs"] == dict.fromkeys(names, "Succeeded")


def test_job_trigger_times_out_and_reports_a_missing_service(sleepy, oscar_connections):
    name = sleepy.submit_job("af-sleepy", b"MzA=", name=f"af-sleepy-slow-{int(time.time())}")  # sleeps 30 s
    try:
        payload = asyncio.run(_first_event(OscarJobTrigger(service_name="af-sleepy", job_names=[name],
                                                           poll_interval=0.3, end_time=time.time() + 1)))
        assert payload["status"] == "timeout" and payload["jobs"][name] in ("Pending", "Running")
    finally:
        sleepy.delete_job("af-sleepy", name)
    payload = asyncio.run(_first_event(OscarJobTrigger(service_name="no-such-service", job_names=["x"])))
    assert payload["status"] == "error"
    assert "'oscar_default'" in payload["message"] and "no-such-service" in payload["message"]


def test_on_kill_deletes_the_unfinished_job(sleepy):
    name = sleepy.submit_job("af-sleepy", b"MzA=", name=f"af-sleepy-kill-{int(time.time())}")
    trigger = OscarJobTrigger(service_name="af-sleepy", job_names=[name], poll_interval=0.3)

    async def run_then_kill() -> None:
        task = asyncio.ensure_future(_first_event(trigger))
        deadline = time.monotonic() + 20
        while trigger._states.get(name) != JobState.RUNNING and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        task.cancel()  # the triggerer cancels the trigger, then calls on_kill
        await trigger.on_kill()

    asyncio.run(run_then_kill())
    assert name not in sleepy.list_jobs("af-sleepy")


def test_output_trigger_sees_outputs(sleepy, oscar_client):
    oscar_client.ensure_service({**SLEEPY, "name": "af-writer", "script": "echo hi > $TMP_OUTPUT_DIR/hello.txt",
                                 "output": [{"path": "af-writer/out"}]})
    name = oscar_client.submit_job("af-writer", b"", name=f"af-writer-{int(time.time())}")
    payload = asyncio.run(_first_event(OscarOutputTrigger(service_name="af-writer", prefix=name, poll_interval=0.3)))
    assert payload["status"] == "success"
    assert payload["keys"] == [f"af-writer/out/{name}/hello.txt"]
