"""``oscar-cwl --timeline PATH``: one row per step, offloaded (queued, running, collecting) or local.

The executor tells :class:`StepTimeline` when each offloaded job was collected and when each local job
ran; the offloaded jobs' own times come from the cluster's job listing (the core's ``job_row``). At the end
of the run it is drawn with the core's ``write_timeline``, with the CPU-hours each cluster's
``/system/metrics`` gives where it serves them.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oscar_plugins import (
    JobState,
    OscarError,
    TimelineRow,
    job_row,
    server_cpu_hours,
    timeline_totals,
    write_timeline,
)

if TYPE_CHECKING:
    from .job import Submitted
    from .session import ClusterSession

__all__ = ["LOCAL_GROUP", "StepTimeline"]

_logger = logging.getLogger("cwltool")
#: The group of steps cwltool ran on this machine.
LOCAL_GROUP = "local (this machine)"


def _tree_size(path: str | None) -> int:
    total = 0
    for root, _, files in os.walk(path or "", followlinks=False):
        for name in files:
            full = os.path.join(root, name)
            if not os.path.islink(full):
                total += os.path.getsize(full)
    return total


def _step_name(job: Any) -> str:
    """A local job's name; an ExpressionTool's job has none: its workflow step's, from the callback cwltool
    gave it."""
    name = getattr(job, "name", None)
    if name:
        return str(name)
    callback = getattr(job, "output_callback", None)
    # WorkflowStep.job wraps it as partial(step.receive_output, ...); WorkflowJob as partial(receive_output, step, ...)
    for owner in (getattr(getattr(callback, "func", None), "__self__", None), *getattr(callback, "args", ())):
        step_id = getattr(owner, "id", None)
        if isinstance(step_id, str) and "#" in step_id:
            return step_id.rsplit("#", 1)[-1].rsplit("/", 1)[-1]
    return "expression"


class StepTimeline:
    """The rows of one run (thread-safe: offloaded jobs are collected on a pool)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[TimelineRow] = []
        self._clusters: dict[int, tuple[ClusterSession, list[TimelineRow]]] = {}
        self._lock = threading.Lock()

    def offloaded(self, name: str, submitted: Submitted, outdir: str | None) -> None:
        """An offloaded step's job was just collected (its outputs unpacked into ``outdir``)."""
        job = submitted.job
        failed = submitted.expired is not None or job.state in (JobState.FAILED, JobState.LOST)
        staged = sum(os.path.getsize(s.path) if s.kind == "file" else _tree_size(s.path)
                     for s in submitted.plan.sources if os.path.exists(s.path))
        row = job_row(job, name, collected=time.time(), status="failed" if failed else "succeeded",
                      cpu=submitted.service.cpu,
                      bytes_in=staged, bytes_out=_tree_size(outdir))
        with self._lock:
            self.rows.append(row)
            self._clusters.setdefault(id(submitted.session), (submitted.session, []))[1].append(row)

    def local(self, job: Any, began: float, ended: float) -> None:
        """A job cwltool ran here (a CommandLineTool kept local, an ExpressionTool); a workflow's own
        bookkeeping (its WorkflowJob, callbacks) is not a step and is left out."""
        from cwltool.command_line_tool import ExpressionJob
        from cwltool.job import JobBase

        if not isinstance(job, (JobBase, ExpressionJob)):
            return
        resources = getattr(getattr(job, "builder", None), "resources", None) or {}
        cores = resources.get("cores")
        row = TimelineRow(LOCAL_GROUP, _step_name(job), "local", started=began, finished=ended,
                          status="ran", cpu=float(cores) if isinstance(cores, (int, float)) else None)
        with self._lock:
            self.rows.append(row)

    def write(self) -> None:
        """Draw the run (called once, at its end, while the clusters' sessions are open); never raises."""
        server: dict[str, float] = {}
        for session, rows in self._clusters.values():
            try:
                server.update(server_cpu_hours(session.client, rows))
            except OscarError as exc:
                _logger.debug("no CPU-hours from the cluster: %s", exc)
        try:
            totals = timeline_totals(self.rows, server)
            write_timeline(self.rows, self.path, title=f"oscar-cwl: {len(self.rows)} step(s)", totals=totals)
        except (OSError, ImportError, ValueError, OscarError) as exc:
            _logger.error("the timeline could not be written to %s (%s); the run's results are not affected",
                          self.path, exc)
            return
        _logger.info("[timeline] %s: %s", self.path, totals.summary())
