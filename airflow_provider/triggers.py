"""Triggers: wait for OSCAR jobs (or outputs) in the triggerer, holding no worker slot.

A trigger keeps only primitives and the connection id (``serialize()`` round-trips into ``__init__``),
so it can be restarted on another triggerer. It polls through the core's asyncio client with ONE job
listing per poll for all of its jobs, and fires exactly one event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from oscar_plugins import JobState, OscarError

from ._compat import AirflowException
from ._jobs import SUCCEEDED, event, summary
from .hook import OscarHook

__all__ = ["OscarJobTrigger", "OscarOutputTrigger"]


class OscarJobTrigger(BaseTrigger):
    """Fires when every job is terminal (``success``/``failed``), at ``end_time`` (``timeout``), or on
    a cluster or connection error (``error``).

    Args:
        service_name: the service the jobs belong to.
        job_names: the jobs to wait for.
        oscar_conn_id: the Airflow connection.
        poll_interval: seconds between listings.
        end_time: a Unix time after which the trigger gives up (None: never).
        lost_after: seconds a job may be missing from the listing before it counts as lost.
        cancel_on_kill: delete unfinished jobs when a user kills (marks/clears) the deferred task.
    """

    def __init__(self, *, service_name: str, job_names: list[str], oscar_conn_id: str = OscarHook.default_conn_name,
                 poll_interval: float = 5.0, end_time: float | None = None, lost_after: float = 60.0,
                 cancel_on_kill: bool = True) -> None:
        super().__init__()
        self.service_name = service_name
        self.job_names = list(job_names)
        self.oscar_conn_id = oscar_conn_id
        self.poll_interval = float(poll_interval)
        self.end_time = None if end_time is None else float(end_time)
        self.lost_after = float(lost_after)
        self.cancel_on_kill = bool(cancel_on_kill)
        self._states: dict[str, JobState] = {}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "service_name": self.service_name,
            "job_names": list(self.job_names),
            "oscar_conn_id": self.oscar_conn_id,
            "poll_interval": self.poll_interval,
            "end_time": self.end_time,
            "lost_after": self.lost_after,
            "cancel_on_kill": self.cancel_on_kill,
        })

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = OscarHook(self.oscar_conn_id)
        started = time.monotonic()
        states = self._states = {n: JobState.PENDING for n in self.job_names}
        try:
            async with hook.async_client() as client:
                while True:
                    pending = [n for n, s in states.items() if not s.terminal]
                    seen = await hook.ajob_states(client, self.service_name, pending,
                                                  missing_for=time.monotonic() - started, lost_after=self.lost_after)
                    for name, state in seen.items():
                        if state is None:
                            continue  # not listed yet (or the listing lags): give it time
                        if state != states[name]:
                            self.log.info("OSCAR job %s is %s", name, state.value)
                        states[name] = state
                    if all(s.terminal for s in states.values()):
                        status = "success" if summary(states) == SUCCEEDED else "failed"
                        yield TriggerEvent(event(status, self.service_name, states))
                        return
                    if self.end_time is not None and time.time() >= self.end_time:
                        yield TriggerEvent(event("timeout", self.service_name, states,
                                                 f"jobs still running at the trigger's end time: {pending}"))
                        return
                    await asyncio.sleep(self.poll_interval)
        except (OscarError, AirflowException) as exc:
            message = hook.describe(exc, "waiting for jobs") if isinstance(exc, OscarError) else str(exc)
            yield TriggerEvent(event("error", self.service_name, states, message))

    async def on_kill(self) -> None:
        """A user killed the deferred task: delete the jobs that are not finished (Airflow 3.3+)."""
        if not self.cancel_on_kill:
            return
        unfinished = [n for n in self.job_names if not self._states.get(n, JobState.PENDING).terminal]
        if not unfinished:
            return
        hook = OscarHook(self.oscar_conn_id)
        async with hook.async_client() as client:
            for name in unfinished:
                try:
                    await asyncio.wait_for(client.delete_job(self.service_name, name), timeout=30)
                    self.log.info("cancelled OSCAR job %s", name)
                except (OscarError, asyncio.TimeoutError) as exc:
                    self.log.warning("could not cancel OSCAR job %s: %s", name, exc)


class OscarOutputTrigger(BaseTrigger):
    """Fires when at least ``min_count`` objects exist under the service's output path + ``prefix``.

    Args:
        service_name: the service whose (first MinIO) output path is watched.
        prefix: a key prefix below that path, e.g. a job name or a file-name start.
        min_count: how many objects make the wait end.
        oscar_conn_id: the Airflow connection.
        poll_interval: seconds between listings.
        end_time: a Unix time after which the trigger gives up (None: never).
    """

    def __init__(self, *, service_name: str, prefix: str = "", min_count: int = 1,
                 oscar_conn_id: str = OscarHook.default_conn_name, poll_interval: float = 5.0,
                 end_time: float | None = None) -> None:
        super().__init__()
        self.service_name = service_name
        self.prefix = prefix
        self.min_count = int(min_count)
        self.oscar_conn_id = oscar_conn_id
        self.poll_interval = float(poll_interval)
        self.end_time = None if end_time is None else float(end_time)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "service_name": self.service_name,
            "prefix": self.prefix,
            "min_count": self.min_count,
            "oscar_conn_id": self.oscar_conn_id,
            "poll_interval": self.poll_interval,
            "end_time": self.end_time,
        })

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = OscarHook(self.oscar_conn_id)
        worker: OscarHook | None = None
        try:
            worker = await hook.athread_hook()
            while True:
                keys = await asyncio.to_thread(worker.list_outputs, self.service_name, self.prefix)
                if len(keys) >= self.min_count:
                    yield TriggerEvent({"status": "success", "service": self.service_name, "keys": keys})
                    return
                if self.end_time is not None and time.time() >= self.end_time:
                    yield TriggerEvent({"status": "timeout", "service": self.service_name, "keys": keys,
                                        "message": f"{len(keys)} of {self.min_count} outputs at the end time"})
                    return
                await asyncio.sleep(self.poll_interval)
        except (OscarError, AirflowException) as exc:
            message = hook.describe(exc, "watching outputs") if isinstance(exc, OscarError) else str(exc)
            yield TriggerEvent({"status": "error", "service": self.service_name, "keys": [], "message": message})
        finally:
            if worker is not None:
                worker.close()
