"""The one batch engine: slots, retries, failures and cancel-all (jobs completed by hand, no cluster);
``Dispatcher.map`` and ``oscar-cwl`` run on it against the real local cluster in their own tests."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from oscar_plugins._batch import AGAIN, Batch
from oscar_plugins._jobs import Job, JobState


class Cluster:
    """Jobs started by the batch; the test decides when each ends."""

    def __init__(self) -> None:
        self.started: list[Job] = []
        self.cancelled: list[Job] = []
        self.lock = threading.Lock()
        self.event = threading.Event()

    def start(self, name: str) -> Job:
        job = Job("svc", name)
        with self.lock:
            self.started.append(job)
        self.event.set()
        return job

    def end(self, job: Job, state: JobState = JobState.SUCCEEDED) -> None:
        job.state = state
        job.future.set_result(job)

    def wait_started(self, count: int, timeout: float = 10) -> None:
        for _ in range(int(timeout / 0.01)):
            with self.lock:
                if len(self.started) >= count:
                    return
            self.event.wait(0.01)
            self.event.clear()
        raise AssertionError(f"only {len(self.started)} of {count} jobs started")


def test_no_more_than_max_in_flight_are_out_and_every_item_is_reported_once() -> None:
    cluster = Cluster()
    reported: list[tuple[Any, BaseException | None]] = []
    batch = Batch(max_in_flight=2, cancel=cluster.cancelled.extend, workers=4)
    try:
        for i in range(2):
            assert batch.add(lambda i=i: cluster.start(f"j{i}"), lambda job: job.name,
                             lambda r, e: reported.append((r, e)))
        assert not batch.add(lambda: cluster.start("j2"), lambda job: job.name, block=False)  # no slot
        cluster.wait_started(2)
        assert batch.outstanding == 2 and len(batch.in_flight()) == 2
        cluster.end(cluster.started[0])
        assert batch.add(lambda: cluster.start("j2"), lambda job: job.name, lambda r, e: reported.append((r, e)))
        cluster.wait_started(3)
        for job in cluster.started[1:]:
            cluster.end(job)
        assert batch.wait(timeout=10)
    finally:
        batch.close()
    assert sorted(r for r, _ in reported) == ["j0", "j1", "j2"] and all(e is None for _, e in reported)


def test_again_starts_the_item_anew_and_failures_reach_done() -> None:
    cluster = Cluster()
    tries = {"n": 0}
    reported: list[tuple[Any, BaseException | None]] = []

    def finish(job: Job) -> Any:
        if job.state == JobState.FAILED and tries["n"] < 2:
            tries["n"] += 1
            return AGAIN
        return job.state

    def broken() -> Job:
        raise OSError("input gone")

    with Batch(max_in_flight=4, cancel=cluster.cancelled.extend) as batch:
        batch.add(lambda: cluster.start(f"retry{tries['n']}"), finish, lambda r, e: reported.append((r, e)))
        batch.add(broken, finish, lambda r, e: reported.append((r, e)))
        batch.add(lambda: None, finish, lambda r, e: reported.append(("none", e)))  # ended without a job
        for n in range(3):
            cluster.wait_started(n + 1)
            cluster.end(cluster.started[n], JobState.FAILED if n < 2 else JobState.SUCCEEDED)
    assert [j.name for j in cluster.started] == ["retry0", "retry1", "retry2"]
    assert (JobState.SUCCEEDED, None) in reported and ("none", None) in reported
    assert any(isinstance(e, OSError) for _, e in reported) and len(reported) == 3


def test_an_error_in_the_caller_cancels_every_job_in_flight() -> None:
    cluster = Cluster()
    with pytest.raises(KeyboardInterrupt), Batch(max_in_flight=8, cancel=cluster.cancelled.extend) as batch:
        for i in range(3):
            batch.add(lambda i=i: cluster.start(f"j{i}"), lambda job: None)
        cluster.wait_started(3)
        for _ in range(100):  # the jobs are registered once start() returned
            if len(batch.in_flight()) == 3:
                break
            threading.Event().wait(0.01)
        raise KeyboardInterrupt
    assert sorted(j.name for j in cluster.cancelled) == ["j0", "j1", "j2"]
    with pytest.raises(RuntimeError, match="closed"):
        batch.add(lambda: None, lambda job: None)
