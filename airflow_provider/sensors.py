"""Sensors: wait for an OSCAR job to finish, or for outputs to appear in a service's output path.

Both work in ``poke`` and ``reschedule`` mode (Airflow's ``mode=``) and in deferrable mode
(``deferrable=True``, default ``[operators] default_deferrable``), where the triggerer waits.

Example:
    >>> OscarJobSensor(task_id="wait", service_name="spi", job_name="{{ ti.xcom_pull('submit')[0] }}",
    ...                mode="reschedule", poke_interval=30)                                  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from oscar_plugins import JobState

from ._compat import (
    AirflowException,
    AirflowSensorTimeout,
    BaseSensorOperator,
    PokeReturnValue,
    default_deferrable,
)
from .hook import OscarHook
from .links import OscarJobLink
from .triggers import OscarJobTrigger, OscarOutputTrigger

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

__all__ = ["OscarJobSensor", "OscarOutputSensor"]


class _OscarSensor(BaseSensorOperator):
    oscar_conn_id: str
    deferrable: bool

    @cached_property
    def hook(self) -> OscarHook:
        return OscarHook(self.oscar_conn_id)

    def _end_time(self) -> float:
        return time.time() + float(self.timeout)

    def _defer_timeout(self) -> timedelta:
        return timedelta(seconds=float(self.timeout) + 60 + float(self.poke_interval))


class OscarJobSensor(_OscarSensor):
    """Wait until a job succeeds; a failed (or vanished) job fails the task with its log tail.

    Args:
        service_name: the job's service.
        job_name: the job (e.g. from ``OscarSubmitJobOperator(wait_for_completion=False)``'s XCom).
        deferrable: wait in the triggerer.
        oscar_conn_id: the Airflow connection of type ``oscar``.
    """

    template_fields: Sequence[str] = ("service_name", "job_name")
    operator_extra_links = (OscarJobLink(),)
    ui_color = "#d8ecf3"

    def __init__(self, *, service_name: str, job_name: str, deferrable: bool | None = None,
                 oscar_conn_id: str = OscarHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service_name = service_name
        self.job_name = job_name
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.oscar_conn_id = oscar_conn_id

    def execute(self, context: Context) -> Any:
        OscarJobLink.persist(context, self.hook.dashboard_url(self.service_name, self.job_name))
        if not self.deferrable:
            return super().execute(context)
        if not self.poke(context):
            trigger = OscarJobTrigger(service_name=self.service_name, job_names=[self.job_name],
                                      oscar_conn_id=self.oscar_conn_id, poll_interval=float(self.poke_interval),
                                      end_time=self._end_time(), cancel_on_kill=False)
            self.defer(trigger=trigger, method_name="execute_complete", timeout=self._defer_timeout())
        return None

    def poke(self, context: Context) -> bool:
        state = self.hook.job_states(self.service_name, [self.job_name])[self.job_name]
        self.log.info("OSCAR job %s of %s is %s", self.job_name, self.service_name, state.value)
        if state in (JobState.FAILED, JobState.LOST):
            raise self.hook.job_failure(self.service_name, self.job_name, state)
        return state == JobState.SUCCEEDED

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        status = event.get("status")
        if status == "success":
            self.log.info("OSCAR job %s succeeded", self.job_name)
            return
        if status == "failed":
            state = JobState.parse((event.get("jobs") or {}).get(self.job_name))
            raise self.hook.job_failure(self.service_name, self.job_name, state)
        if status == "timeout":
            raise AirflowSensorTimeout(f"OSCAR job {self.job_name} not finished after {self.timeout} s")
        raise AirflowException(event.get("message") or f"waiting for OSCAR job {self.job_name} ended: {status}")


class OscarOutputSensor(_OscarSensor):
    """Wait until at least ``min_count`` objects exist under a service's output path (+ ``prefix``).

    This is the canonical OSCAR pattern for bucket-triggered services: upload to the input bucket,
    wait for the outputs. XCom: the objects found, as ``bucket/key``.

    Args:
        service_name: the service whose first MinIO output path is watched.
        prefix: a key prefix below that path (e.g. a job name, or a file-name start).
        min_count: objects needed.
        deferrable: wait in the triggerer.
        oscar_conn_id: the Airflow connection of type ``oscar``.
    """

    template_fields: Sequence[str] = ("service_name", "prefix")
    ui_color = "#d8ecf3"

    def __init__(self, *, service_name: str, prefix: str = "", min_count: int = 1, deferrable: bool | None = None,
                 oscar_conn_id: str = OscarHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service_name = service_name
        self.prefix = prefix
        self.min_count = min_count
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.oscar_conn_id = oscar_conn_id

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        found = self.poke(context)
        if found.is_done:
            return found.xcom_value
        self.defer(trigger=OscarOutputTrigger(service_name=self.service_name, prefix=self.prefix,
                                              min_count=self.min_count, oscar_conn_id=self.oscar_conn_id,
                                              poll_interval=float(self.poke_interval), end_time=self._end_time()),
                   method_name="execute_complete", timeout=self._defer_timeout())
        return None

    def poke(self, context: Context) -> PokeReturnValue:
        keys = self.hook.list_outputs(self.service_name, self.prefix)
        self.log.info("%d of %d output(s) of %s present", len(keys), self.min_count, self.service_name)
        return PokeReturnValue(is_done=len(keys) >= self.min_count, xcom_value=keys)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> list[str]:
        if event.get("status") == "success":
            return [str(k) for k in event.get("keys") or []]
        if event.get("status") == "timeout":
            raise AirflowSensorTimeout(event.get("message") or "outputs did not appear in time")
        raise AirflowException(event.get("message") or f"waiting for outputs ended: {event.get('status')}")
