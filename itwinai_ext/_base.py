"""What both OSCAR components share: argument checks, serialisation check, temporary data, clean-up."""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from itwinai.components import BaseComponent
from itwinai.serialization import SerializationError

from ._errors import StepConfigError
from ._transport import MODES, RemoteRun, StepTransport

__all__ = ["OscarComponentBase"]

log = logging.getLogger("oscar_plugins.itwinai")


class OscarComponentBase(BaseComponent):
    """Base of :class:`OscarStep` and :class:`OscarOffload` (not a step by itself)."""

    transport: StepTransport
    #: How the last ``execute`` went: mode, service, job name, seconds (None before the first).
    last_run: RemoteRun | None = None

    def _setup(self, *, cluster: str | None, mode: str, timeout: float | None, sync_limit_mb: float,
               output_dir: str | None, env: Mapping[str, Any] | None) -> None:
        step = self.name
        if mode not in MODES:
            raise StepConfigError(step, f"mode {mode!r} must be one of {', '.join(MODES)}")
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
            raise StepConfigError(step, f"timeout {timeout!r} must be a positive number of seconds, or null")
        if not isinstance(sync_limit_mb, (int, float)) or sync_limit_mb < 0:
            raise StepConfigError(step, f"sync_limit_mb {sync_limit_mb!r} must be a number >= 0")
        if cluster is not None and not isinstance(cluster, str):
            raise StepConfigError(step, f"cluster must be a profile name, not {type(cluster).__name__}")
        if env is not None and not (isinstance(env, Mapping) and all(isinstance(k, str) for k in env)):
            raise StepConfigError(step, "env must map variable names to values")
        self.cluster = cluster
        self.mode = mode
        self.timeout = None if timeout is None else float(timeout)
        self.sync_limit_mb = float(sync_limit_mb)
        self.output_dir = output_dir
        self.env = {k: str(v) for k, v in (env or {}).items()}
        self._workdirs: list[Path] = []

    def _check_serialisable(self) -> None:
        """Fail at construction, naming the step, when ``to_dict()`` (and so YAML) would fail later."""
        try:
            self.to_dict()
        except SerializationError as exc:
            raise StepConfigError(self.name, f"{exc} Give plain values (str, numbers, lists, dicts) so the "
                                  "step round-trips through YAML and can be rebuilt elsewhere.") from None

    def _new_workdir(self) -> Path:
        path = Path(tempfile.mkdtemp(prefix="oscar-itwinai-"))
        self._workdirs.append(path)
        return path

    def _keep_dir(self) -> Path:
        """Where output files the next step receives as paths are kept (not removed by ``cleanup``)."""
        if self.output_dir:
            return Path(self.output_dir)
        return Path.cwd() / "oscar-outputs" / (re.sub(r"[^A-Za-z0-9._-]+", "_", self.name).strip("_") or "step")

    def cleanup(self) -> None:
        """Remove this step's temporary files, and its finished jobs' outputs and records on the cluster."""
        for path in getattr(self, "_workdirs", []):
            shutil.rmtree(path, ignore_errors=True)
        self._workdirs = []
        transport = getattr(self, "transport", None)
        if transport is not None:
            transport.remove_leftovers()

    def _log_run(self, run: RemoteRun, extra: str = "") -> None:
        job = f" job {run.job}" if run.job else ""
        log.info("step %s: ran on service %s (%s%s) in %.2f s%s", self.name, run.service, run.mode, job,
                 run.seconds, extra)
