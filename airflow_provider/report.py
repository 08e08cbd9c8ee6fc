"""``OscarRunReportOperator``: a DAG run as people can see it, a timeline and a Workflow Run RO-Crate.

Put it at the end of a DAG (it waits for every other task, whatever their outcome)::

    report = OscarRunReportOperator(task_id="report", timeline="/shared/runs/{{ run_id }}.png",
                                    ro_crate="/shared/runs/{{ run_id }}.crate.zip")
    [deploy, spi, warning_map] >> report

It reads the run's task instances (their states and times, through the Task SDK, as a task may) and what
the OSCAR operators pushed (:data:`~.operators.JOBS_KEY`: secret-free records of their jobs;
:data:`~.operators.OUTPUTS_KEY`: the files they collected), and writes:

* ``timeline`` (``.png`` or ``.html``): one row per OSCAR job (queued / running / collecting, grouped by
  service) and one per local task, with CPU-hours (the cluster's ``/system/metrics`` where it has them);
* ``ro_crate`` (``.zip``, else a folder): the DAG file as the workflow, a ``CreateAction`` per task run,
  an ``OscarJob`` per OSCAR job, the collected outputs with their sha256 (the core's
  :func:`oscar_plugins.write_run_crate`).

Suffixes and packages are checked when the DAG is parsed (an import error names the argument); the paths
themselves as the task starts, before any work (a bad one fails this task only: fix it and clear the task,
the run's work is not redone).
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oscar_plugins import (
    ConfigError,
    OscarError,
    StepRun,
    check_crate_path,
    check_timeline_path,
    run_rows,
    server_cpu_hours,
    timeline_totals,
    write_run_crate,
    write_timeline,
)

from ._compat import AirflowFailException, BaseOperator, task_times
from .hook import OscarHook
from .operators import JOBS_KEY, OUTPUTS_KEY

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

__all__ = ["LOCAL_GROUP", "OscarRunReportOperator", "TaskRun", "steps_of"]

#: Where local tasks are drawn in the timeline.
LOCAL_GROUP = "Airflow tasks (local)"
_TEMPLATE = re.compile(r"{{|{%")
_STATES = {"success": "succeeded", "failed": "failed", "upstream_failed": "upstream_failed", "skipped": "skipped"}


class TaskRun:
    """One finished task instance as the report sees it: the Task SDK's breadcrumb plus its times."""

    def __init__(self, task_id: str, map_index: int, state: str, operator: str, start: datetime | None,
                 end: datetime | None) -> None:
        self.task_id, self.map_index, self.state, self.operator = task_id, map_index, state, operator
        self.start, self.end = start, end

    @property
    def name(self) -> str:
        return self.task_id if self.map_index < 0 else f"{self.task_id}[{self.map_index}]"


def steps_of(tasks: Iterable[TaskRun], jobs: Mapping[tuple[str, int], Sequence[Mapping[str, Any]]],
             outputs: Mapping[tuple[str, int], Sequence[str]]) -> list[StepRun]:
    """The run's steps (pure): one per task instance, with the OSCAR records its operator pushed."""
    steps = []
    for task in sorted(tasks, key=lambda t: (t.start.timestamp() if t.start else math.inf, t.name)):
        key = (task.task_id, task.map_index)
        steps.append(StepRun(task.name, started=task.start.timestamp() if task.start else None,
                             finished=task.end.timestamp() if task.end else None,
                             status=_STATES.get(task.state, task.state), tool=task.operator, where=LOCAL_GROUP,
                             jobs=[dict(r) for r in jobs.get(key, [])],
                             outputs=[Path(p) for p in outputs.get(key, [])]))
    return steps


class OscarRunReportOperator(BaseOperator):
    """Write the DAG run's timeline and/or Workflow Run RO-Crate (see the module's docstring).

    Args:
        timeline: a ``.png`` (needs matplotlib) or ``.html`` path (templated).
        ro_crate: a ``.zip`` path or a folder (templated; needs the ``rocrate`` package).
        title: the timeline's title and the crate's name (default ``<dag_id> run <run_id>``).
        metrics: ask the cluster for CPU-hours (``/system/metrics``) instead of deriving them from the jobs.
        oscar_conn_id: the connection asked for metrics.
        trigger_rule: default ``all_done``: the report of a failed run is the one people need most.

    Returns (XCom): ``{"timeline": path, "ro_crate": path}`` (those written).
    """

    template_fields: Sequence[str] = ("timeline", "ro_crate", "title")
    ui_color = "#eef3d8"

    def __init__(self, *, timeline: str | None = None, ro_crate: str | None = None, title: str | None = None,
                 metrics: bool = True, oscar_conn_id: str = OscarHook.default_conn_name,
                 trigger_rule: str = "all_done", **kwargs: Any) -> None:
        super().__init__(trigger_rule=trigger_rule, **kwargs)
        if not timeline and not ro_crate:
            raise ValueError("OscarRunReportOperator needs timeline= (a .png or .html path), ro_crate= (a .zip "
                             "path or a folder), or both")
        _check_statically(timeline, ro_crate)
        self.timeline = timeline
        self.ro_crate = ro_crate
        self.title = title
        self.metrics = metrics
        self.oscar_conn_id = oscar_conn_id

    def execute(self, context: Context) -> dict[str, str]:
        try:
            timeline = check_timeline_path(self.timeline) if self.timeline else None
            crate = check_crate_path(self.ro_crate) if self.ro_crate else None
        except ConfigError as exc:
            raise AirflowFailException(f"{exc} (then clear this task: the run's work is kept)") from None
        ti, dag_run = context["ti"], context["dag_run"]
        tasks = [t for t in self._task_runs(ti, dag_run) if t.task_id != self.task_id]
        keys = [(t.task_id, t.map_index) for t in tasks if self._records_jobs(t.task_id)]
        steps = steps_of(tasks, self._pull(ti, keys, JOBS_KEY), self._pull(ti, keys, OUTPUTS_KEY))
        title = self.title or f"{dag_run.dag_id} run {dag_run.run_id}"
        written = {}
        if timeline is not None:
            rows = run_rows([s for s in steps if s.started is not None or s.jobs])
            totals = timeline_totals(rows, self._server_hours(rows))
            written["timeline"] = str(write_timeline(rows, timeline, title=title, totals=totals))
            self.log.info("timeline of %d row(s) written to %s: %s", len(rows), timeline, totals.summary())
        if crate is not None:
            written["ro_crate"] = str(self._crate(steps, crate, title, dag_run))
            self.log.info("Workflow Run RO-Crate of %d task run(s) written to %s", len(steps), crate)
        return written

    # -- reading the run -------------------------------------------------------------------------------
    def _task_runs(self, ti: Any, dag_run: Any) -> list[TaskRun]:
        runs = []
        for crumb in ti.get_task_breadcrumbs(dag_run.dag_id, dag_run.run_id):
            task_id, map_index = str(crumb["task_id"]), int(crumb.get("map_index", -1))
            start, end = task_times(dag_run, task_id, map_index)
            runs.append(TaskRun(task_id, map_index, str(crumb.get("state")), str(crumb.get("operator") or ""),
                                start, end))
        return runs

    def _records_jobs(self, task_id: str) -> bool:
        """Whether the task's operator pushes OSCAR records (asking the others would log a missing XCom)."""
        task = self.dag.task_dict.get(task_id) if self.dag else None
        kind = getattr(task, "operator_class", None) or type(task)  # a mapped task names its class
        return bool(getattr(kind, "pushes_oscar_records", True)) if task is not None else True

    @staticmethod
    def _pull(ti: Any, keys: Sequence[tuple[str, int]], key: str) -> dict[tuple[str, int], Any]:
        found = {}
        for task_id, map_index in keys:
            value = ti.xcom_pull(task_ids=task_id, key=key, map_indexes=map_index)
            if value:
                found[(task_id, map_index)] = value
        return found

    def _server_hours(self, rows: Sequence[Any]) -> dict[str, float]:
        if not self.metrics or not any(r.kind == "offloaded" for r in rows):
            return {}
        try:
            return server_cpu_hours(OscarHook(self.oscar_conn_id).client, rows)
        except (OscarError, Exception) as exc:  # the report stands without the server's figures
            self.log.warning("no CPU-hours from the cluster (derived from the jobs instead): %s", exc)
            return {}

    def _crate(self, steps: list[StepRun], dest: Path, title: str, dag_run: Any) -> Path:
        import airflow

        dag = self.dag
        fileloc = Path(getattr(dag, "fileloc", "") or "")
        with tempfile.TemporaryDirectory(prefix="oscar-report-") as tmp:
            workflow = fileloc if fileloc.is_file() else _dag_description(dag, Path(tmp))
            return write_run_crate(
                steps, dest, name=title, workflow=workflow, workflow_name=f"Airflow DAG {dag.dag_id}",
                language=("https://airflow.apache.org/", "Apache Airflow", airflow.__version__),
                description=f"Run {dag_run.run_id} of the Airflow DAG {dag.dag_id}, with the steps it offloaded "
                            "to OSCAR",
                started=dag_run.start_date.timestamp() if getattr(dag_run, "start_date", None) else None)


def _dag_description(dag: Any, folder: Path) -> Path:
    """The DAG's tasks and their upstream tasks as JSON, when its file is not on this worker."""
    path = folder / f"{dag.dag_id}.json"
    tasks = {t.task_id: {"operator": type(t).__name__, "upstream": sorted(t.upstream_task_ids)} for t in dag.tasks}
    path.write_text(json.dumps({"dag_id": dag.dag_id, "tasks": tasks}, indent=2), encoding="utf-8")
    return path


def _check_statically(timeline: str | None, ro_crate: str | None) -> None:
    """What parsing the DAG can tell: a suffix the timeline cannot have, a missing package."""
    problems = []
    suffix = Path(timeline).suffix.lower() if timeline else ""
    if timeline and not _TEMPLATE.search(suffix):
        if suffix not in (".png", ".html", ".htm"):
            problems.append(f"timeline {timeline!r}: end the name in .png (a picture) or .html (a page a browser "
                            "opens offline)")
        elif suffix == ".png" and importlib.util.find_spec("matplotlib") is None:
            problems.append(f"timeline {timeline!r}: a PNG needs matplotlib, which is not installed: pip install "
                            "matplotlib, or ask for .html")
    if ro_crate and importlib.util.find_spec("rocrate") is None:
        problems.append(f"ro_crate {ro_crate!r}: the rocrate package is not installed: pip install rocrate")
    if problems:
        raise ValueError("; ".join(problems))
