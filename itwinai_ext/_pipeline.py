"""``OscarPipeline``: an itwinai ``Pipeline`` whose run people can see (a timeline and a Workflow Run RO-Crate)."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from itwinai.components import BaseComponent, monitor_exec
from itwinai.pipeline import Pipeline

from oscar_plugins import (
    ConfigError,
    OscarError,
    StepRun,
    check_crate_path,
    check_timeline_path,
    run_rows,
    write_run_crate,
    write_timeline,
)

from ._errors import StepConfigError
from ._service import plain

__all__ = ["LOCAL_GROUP", "OscarPipeline"]

log = logging.getLogger("oscar_plugins.itwinai")
#: Where local steps are drawn in the timeline.
LOCAL_GROUP = "itwinai steps (local)"


class OscarPipeline(Pipeline):
    """An itwinai ``Pipeline`` that also writes, when it has run, a timeline and/or a Workflow Run RO-Crate.

    Every step is timed, local ones too; the OSCAR steps (:class:`OscarStep`, :class:`OscarOffload`) add
    where their work ran (cluster endpoint without credentials, service, job, image, resources, times,
    sha256 of what went in and out). The report is written after a failed run too (the failing step
    marked), and a report that cannot be written is logged, never raised over the run's own result.

    Args:
        steps: the steps, as for ``itwinai.pipeline.Pipeline`` (a dict or a list).
        name: the pipeline's name.
        timeline: a ``.png`` (needs matplotlib) or ``.html`` path: one row per OSCAR job (queued / running /
            collecting, grouped by service), one per local step.
        ro_crate: a ``.zip`` path or a folder (needs the ``rocrate`` package): the pipeline's config as the
            workflow, a ``CreateAction`` per step, an ``OscarJob`` per job with its record.
        title: the timeline's title and the crate's name.

    Paths are checked when the pipeline is built, before any step runs (:class:`StepConfigError`).

    Example (YAML: swap ``itwinai.pipeline.Pipeline`` for this class)::

        inference_pipeline:
          _target_: oscar_plugins.itwinai.OscarPipeline
          timeline: run.png
          ro_crate: run.crate.zip
          steps: {getter: ..., predictor: {_target_: oscar_plugins.itwinai.OscarOffload, ...}, saver: ...}
    """

    def __init__(self, steps: Mapping[str, BaseComponent] | Iterable[BaseComponent], name: str | None = None,
                 timeline: str | None = None, ro_crate: str | None = None, title: str | None = None) -> None:
        super().__init__(steps=steps, name=name)
        self.save_parameters(steps=steps, name=name, timeline=timeline, ro_crate=ro_crate, title=title)
        label = name or "OscarPipeline"
        try:
            self.timeline = check_timeline_path(plain(timeline)) if timeline else None
            self.ro_crate = check_crate_path(plain(ro_crate)) if ro_crate else None
        except ConfigError as exc:
            raise StepConfigError(label, str(exc)) from None
        self.title = title
        #: The steps of the last run, as the report drew them.
        self.last_steps: list[StepRun] = []

    @monitor_exec
    def execute(self, *args: Any) -> Any:
        """Run the steps in order (as ``Pipeline.execute``), timing each; then write the report."""
        items = list(self.steps.items()) if isinstance(self.steps, dict) else [(None, s) for s in self.steps]
        runs: list[StepRun] = []
        started = time.time()
        try:
            for key, step in items:
                args = self._pack_args(args)
                self.validate_args(args, step)
                args = self._timed(step, key, args, runs)
        finally:
            self.last_steps = runs
            self._report(runs, started)
        return args

    @staticmethod
    def _timed(step: BaseComponent, key: str | None, args: tuple[Any, ...], runs: list[StepRun]) -> Any:
        transport = getattr(step, "transport", None)
        before = len(transport.records) if transport is not None else 0
        run = StepRun(str(key or step.name), started=time.time(), tool=type(step).__name__, where=LOCAL_GROUP)
        runs.append(run)
        try:
            result = step.execute(*args)
        except BaseException:
            run.status = "failed"
            raise
        finally:
            run.finished = time.time()
            if transport is not None:
                run.jobs = list(transport.records[before:])
        return result

    def _report(self, runs: list[StepRun], started: float) -> None:
        if self.timeline is None and self.ro_crate is None:
            return
        title = self.title or f"itwinai pipeline {self.name}"
        try:
            if self.timeline is not None:
                path = write_timeline(run_rows(runs), self.timeline, title=title)
                log.info("pipeline %s: timeline written to %s", self.name, path)
            if self.ro_crate is not None:
                with tempfile.TemporaryDirectory(prefix="oscar-itwinai-") as tmp:
                    write_run_crate(runs, self.ro_crate, name=title, workflow=self._config_file(Path(tmp)),
                                    workflow_name=f"itwinai pipeline {self.name}",
                                    language=("https://github.com/interTwin-eu/itwinai", "itwinai", _version()),
                                    description=f"A run of the itwinai pipeline {self.name}, with the steps it "
                                                "offloaded to OSCAR", started=started)
                log.info("pipeline %s: Workflow Run RO-Crate written to %s", self.name, self.ro_crate)
        except (OscarError, OSError, ImportError) as exc:
            log.error("pipeline %s: could not write its report: %s", self.name, exc)

    def _config_file(self, folder: Path) -> Path:
        """The pipeline's config (``to_dict()``: what Hydra would build it from), or its steps' classes."""
        try:
            config: Any = self.to_dict()
        except Exception:  # a step with arguments that do not serialise: describe what can be
            items = self.steps.items() if isinstance(self.steps, dict) else enumerate(self.steps)
            config = {"steps": {str(k): {"_target_": f"{type(s).__module__}.{type(s).__qualname__}"}
                                for k, s in items}}
        path = folder / f"{_safe(self.name)}.json"
        path.write_text(json.dumps(config, indent=2, default=str), encoding="utf-8")
        return path


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name) or "pipeline"


def _version() -> str | None:
    try:
        from importlib.metadata import version

        return version("itwinai")
    except Exception:
        return None


OscarPipeline.__module__ = "oscar_plugins.itwinai"  # its public path, also in to_dict()'s _target_
