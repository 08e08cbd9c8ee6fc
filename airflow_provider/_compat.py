"""Airflow imports that work on 3.0 to 3.3, in one place (tested on 3.3.2).

``airflow.providers.common.compat`` maps most names; the two newest pieces get a cheap local
stand-in when neither Airflow nor common-compat has them:

* ``ResumableJobMixin`` (Airflow 3.3): the stand-in submits on every try, as operators did before.
* ``get_async_connection`` (common-compat): the stand-in runs the sync lookup in a worker thread,
  never on the triggerer's event loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
    AirflowSensorTimeout,
    BaseHook,
    BaseOperator,
    BaseOperatorLink,
    BaseSensorOperator,
    PokeReturnValue,
    XCom,
    conf,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Connection, Context

try:
    from airflow.sdk import ResumableJobMixin
except ImportError:  # Airflow < 3.3
    try:
        from airflow.providers.common.compat.sdk import ResumableJobMixin
    except ImportError:  # common-compat older than the mixin

        class ResumableJobMixin:  # type: ignore[no-redef]
            """Submits on every try: no task state store to resume from before Airflow 3.3."""

            external_id_key: str = "remote_job_id"

            def __init__(self, *, durable: bool = False, **kwargs: Any) -> None:
                super().__init__(**kwargs)
                self.durable = False

            def execute_resumable(self, context: Context) -> Any:
                external_id = self.submit_job(context)  # type: ignore[attr-defined]
                self.poll_until_complete(external_id, context)  # type: ignore[attr-defined]
                return self.get_job_result(external_id, context)  # type: ignore[attr-defined]


async def get_async_connection(conn_id: str, hook: Any = None) -> Connection:
    """The connection, fetched without blocking the event loop (Airflow 3.0+)."""
    try:
        from airflow.providers.common.compat.connection import get_async_connection as _get
    except ImportError:
        from asgiref.sync import sync_to_async

        return await sync_to_async((hook or BaseHook).get_connection)(conn_id=conn_id)  # type: ignore[no-any-return]
    return await _get(conn_id, hook=hook)


async def get_async_extra(conn: Connection) -> dict[str, Any]:
    """The connection's extra as a dict, masked without a sync call on the event loop."""
    try:
        from airflow.providers.common.compat.connection import get_async_extra_dejson
    except ImportError:
        from asgiref.sync import sync_to_async

        return await sync_to_async(lambda: dict(conn.extra_dejson))()
    return await get_async_extra_dejson(conn)


def mask_secret(value: str | None) -> None:
    """Hide ``value`` in every log line from now on (no-op for empty values)."""
    if not value:
        return
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - Airflow 3.0
        from airflow.sdk.execution_time.secrets_masker import mask_secret  # type: ignore[no-redef]
    mask_secret(value)


def task_times(dag_run: Any, task_id: str, map_index: int) -> tuple[Any, Any]:
    """(start, end) of another task instance of ``dag_run``, or (None, None).

    The Task SDK gives a task the run's breadcrumbs (states, durations) but no public call for another task's
    times; the supervisor's ``GetPreviousTI`` (a task's latest instance before a logical date) gives them:
    asked for the instance just after this run's logical date, it is this run's when the run has one. The run
    id is checked, so a wrong instance is never used (None instead: the report leaves the task undrawn).
    """
    from datetime import timedelta

    try:
        from airflow.sdk.execution_time.comms import GetPreviousTI
        from airflow.sdk.execution_time.task_runner import SUPERVISOR_COMMS

        logical = getattr(dag_run, "logical_date", None)
        answer = SUPERVISOR_COMMS.send(GetPreviousTI(
            dag_id=dag_run.dag_id, task_id=task_id, map_index=map_index,
            logical_date=logical + timedelta(microseconds=1) if logical is not None else None))
        found = getattr(answer, "task_instance", None)
    except Exception:  # another Airflow: the report goes on without this task's times
        return None, None
    if found is None or found.run_id != dag_run.run_id:
        return None, None
    return found.start_date, found.end_date


def default_deferrable() -> bool:
    """``[operators] default_deferrable``, as Airflow's own providers read it."""
    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSensorTimeout",
    "BaseHook",
    "BaseOperator",
    "BaseOperatorLink",
    "BaseSensorOperator",
    "PokeReturnValue",
    "ResumableJobMixin",
    "XCom",
    "conf",
    "default_deferrable",
    "get_async_connection",
    "get_async_extra",
    "mask_secret",
    "task_times",
]
