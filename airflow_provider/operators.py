"""Operators: deploy OSCAR services, run them synchronously, submit jobs and collect their outputs.

Example:
    >>> deploy = OscarDeployServiceOperator(task_id="deploy", fdl="spi.yaml")            # doctest: +SKIP
    >>> spi = OscarSubmitJobOperator(task_id="spi", service_name="drought-spi",          # doctest: +SKIP
    ...                              inputs=["/data/tiles/*.npy"], one_job_per_input=True,
    ...                              output_dir="/shared/spi/{{ ds }}", deferrable=True)
"""

from __future__ import annotations

import glob
import hashlib
import json
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oscar_plugins import JobSpec, JobState, file_hashes

from ._compat import (
    AirflowException,
    AirflowFailException,
    BaseOperator,
    ResumableJobMixin,
    default_deferrable,
)
from ._jobs import ACTIVE, SUCCEEDED, flatten, job_names, states_from_event, summary
from .hook import OscarHook
from .links import OscarJobLink
from .triggers import OscarJobTrigger

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

__all__ = ["JOBS_KEY", "OUTPUTS_KEY", "OscarDeployServiceOperator", "OscarRunServiceOperator", "OscarSubmitJobOperator"]

#: XCom keys of what the OSCAR operators ran, for ``OscarRunReportOperator``: the secret-free records of the
#: task's OSCAR jobs (``oscar_plugins.JobRecord.as_dict()``) and the output files it collected (absolute paths).
JOBS_KEY, OUTPUTS_KEY = "oscar_jobs", "oscar_outputs"
_SUBMIT_KEY = "oscar_submit"

_GLOB = re.compile(r"[*?\[]")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class _OscarMixin:
    """The hook, shared by every operator of the provider."""

    oscar_conn_id: str
    log: Any
    #: Whether the operator pushes :data:`JOBS_KEY` and :data:`OUTPUTS_KEY` (the run report reads them).
    pushes_oscar_records = True

    @cached_property
    def hook(self) -> OscarHook:
        return OscarHook(self.oscar_conn_id)

    def _push_records(self, context: Context, build: Any, outputs: list[str]) -> None:
        """Push what ran where (:data:`JOBS_KEY`, :data:`OUTPUTS_KEY`); never fails the task (a report is extra)."""
        try:
            records = build()
        except Exception as exc:  # the work is done: a missing record must not undo it
            self.log.warning("could not record the OSCAR jobs for a run report: %s", exc)
            return
        context["ti"].xcom_push(key=JOBS_KEY, value=records)
        context["ti"].xcom_push(key=OUTPUTS_KEY, value=outputs)


def _dag_relative(operator: Any, path: str | Path) -> Path:
    """A relative path is looked up next to the DAG file first, then in the working directory."""
    candidate = Path(path)
    if candidate.is_absolute():
        return candidate
    fileloc = getattr(getattr(operator, "dag", None), "fileloc", None)
    if fileloc:
        beside = Path(fileloc).parent / candidate
        if beside.exists():
            return beside
    return candidate


class OscarDeployServiceOperator(_OscarMixin, BaseOperator):
    """Deploy the services of an FDL file or dict, idempotently (unchanged services are not touched).

    Args:
        fdl: an FDL file (relative paths are looked up beside the DAG file), an FDL dict
            (``functions: oscar: [...]``) or one service dict (``name``, ``image``, ``script``...).
        service_names: deploy only these services of the FDL.
        cluster_id: which cluster's services of a multi-cluster FDL (default: the connection's).
        environment: variables merged into every service's ``environment.variables``.
        wrap: embed scripts in the oscar-plugins wrapper (exit codes, per-job outputs, several inputs).
        oscar_conn_id: the Airflow connection of type ``oscar``.

    Returns (XCom): the names of the deployed services.
    """

    template_fields: Sequence[str] = ("fdl", "service_names", "cluster_id", "environment")
    template_fields_renderers = {"fdl": "json", "environment": "json"}
    ui_color = "#d8ecf3"
    pushes_oscar_records = False

    def __init__(self, *, fdl: str | Path | Mapping[str, Any], service_names: Sequence[str] | None = None,
                 cluster_id: str | None = None, environment: Mapping[str, str] | None = None, wrap: bool = True,
                 oscar_conn_id: str = OscarHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fdl = fdl
        self.service_names = service_names
        self.cluster_id = cluster_id
        self.environment = environment
        self.wrap = wrap
        self.oscar_conn_id = oscar_conn_id

    def execute(self, context: Context) -> list[str]:
        fdl = self.fdl if isinstance(self.fdl, Mapping) else _dag_relative(self, self.fdl)
        services = self.hook.load_services(fdl, cluster_id=self.cluster_id, names=self.service_names,
                                           environment=self.environment)
        deployed = self.hook.deploy(services, wrap=self.wrap)
        for svc in deployed:
            self.log.info("OSCAR service %s is deployed (image %s)", svc.name, svc.image)
        return [svc.name for svc in deployed]


class OscarRunServiceOperator(_OscarMixin, BaseOperator):
    """Run a service synchronously (``POST /run``) and return its output.

    Args:
        service_name: the service.
        data: the input as text or a JSON-able dict (or None).
        input_path: a file to send instead of ``data``.
        output_path: where to write the output (a file; a directory when the service returns several).
        expect: ``auto``, ``file``, ``zip`` or ``text`` (how to read the answer).
        timeout: seconds to wait for the answer (OSCAR stops synchronous runs after 300 s).

    Returns (XCom): the output as text, or the written paths when ``output_path`` is set.
    """

    template_fields: Sequence[str] = ("service_name", "data", "input_path", "output_path")
    template_fields_renderers = {"data": "json"}
    ui_color = "#d8ecf3"

    def __init__(self, *, service_name: str, data: str | Mapping[str, Any] | None = None,
                 input_path: str | None = None, output_path: str | None = None, expect: str = "auto",
                 timeout: float | None = None, oscar_conn_id: str = OscarHook.default_conn_name,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if data is not None and input_path is not None:
            raise ValueError("give either data or input_path, not both")
        self.service_name = service_name
        self.data = data
        self.input_path = input_path
        self.output_path = output_path
        self.expect = expect
        self.run_timeout = timeout
        self.oscar_conn_id = oscar_conn_id

    def execute(self, context: Context) -> str | list[str]:
        data: Any = Path(self.input_path) if self.input_path else self.data
        if isinstance(data, Mapping):
            data = dict(data)
        if isinstance(data, Path) and not data.is_file():
            raise AirflowFailException(f"input_path {data} does not exist (or is not a file): fix the path")
        output = Path(self.output_path) if self.output_path else None
        started = time.time()
        try:
            result = self.hook.run_service(self.service_name, data, output=output, expect=self.expect,
                                           timeout=self.run_timeout)
        except AirflowException:
            self._record(context, started, data, [], ok=False)
            raise
        self._record(context, started, data, result.paths, ok=True)
        if result.paths:
            self.log.info("service %s wrote %s", self.service_name, [str(p) for p in result.paths])
            return [str(p) for p in result.paths]
        if result.kind == "text":
            self.log.info("service %s answered:\n%s", self.service_name, result.text)
            return result.text
        try:
            return (result.data or b"").decode("utf-8")
        except UnicodeDecodeError:
            raise AirflowFailException(f"service {self.service_name!r} returned binary output: set output_path to "
                                       "write it to a file") from None

    def _record(self, context: Context, started: float, data: Any, paths: list[Path], *, ok: bool) -> None:
        finished = time.time()

        def build() -> list[dict[str, Any]]:
            if isinstance(data, Path):
                inputs = file_hashes([data])
            else:
                raw = b"" if data is None else (json.dumps(data) if isinstance(data, dict) else str(data)).encode()
                inputs = [{"path": "(data)", "size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}]
            return [self.hook.run_record(self.service_name, started=started, finished=finished, ok=ok,
                                         inputs=inputs, outputs=paths)]

        self._push_records(context, build, [str(p) for p in paths])


class OscarSubmitJobOperator(_OscarMixin, ResumableJobMixin, BaseOperator):
    """Submit asynchronous jobs, wait for them, copy their logs and collect their verified outputs.

    Inputs are staged through the service's bucket when large (content-addressed: never twice).
    Job names are chosen before the submit, so a lost submit response never starts a job twice; on
    Airflow 3.3+ the names are kept in the task state store, so a retry after a worker crash reattaches
    to the running jobs instead of submitting again (``durable=False`` turns this off).

    Args:
        service_name: the service (deployed by oscar-plugins for several inputs or ``environment``).
        inputs: input files (paths or globs); nested lists group files of one job.
        one_job_per_input: one job per element of ``inputs`` (per file of a glob) instead of one job.
        payload: text or JSON-able dict given to every job (file ``payload`` for wrapped services).
        environment: variables set for the jobs.
        output_dir: where outputs go: directly for one job, ``<output_dir>/<job name>/`` for several.
            Default: a per-task folder under the system temp directory (set a shared path when workers
            do not share a disk).
        wait_for_completion: False returns the job names right after submission (see OscarJobSensor).
        deferrable: wait in the triggerer instead of a worker slot (default
            ``[operators] default_deferrable``).
        poll_interval: seconds between job listings.
        timeout: seconds to wait before the jobs are cancelled and the task fails (None: no limit).
        cancel_on_kill: delete the jobs when the task is killed.
        log_lines: last lines of each job's log copied into the task log (None: all, 0: none).

    Returns (XCom): the output files (all jobs). Also pushed: ``job_names`` and ``outputs_by_job``.
    """

    template_fields: Sequence[str] = ("service_name", "inputs", "payload", "environment", "output_dir")
    template_fields_renderers = {"payload": "json", "environment": "json"}
    operator_extra_links = (OscarJobLink(),)
    ui_color = "#d8ecf3"
    external_id_key = "oscar_jobs"

    def __init__(self, *, service_name: str, inputs: str | Sequence[str | Sequence[str]] | None = None,
                 one_job_per_input: bool = False, payload: str | Mapping[str, Any] | None = None,
                 environment: Mapping[str, str] | None = None, output_dir: str | None = None,
                 wait_for_completion: bool = True, deferrable: bool | None = None, poll_interval: float = 5.0,
                 timeout: float | None = None, cancel_on_kill: bool = True, log_lines: int | None = 1000,
                 oscar_conn_id: str = OscarHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service_name = service_name
        self.inputs = inputs
        self.one_job_per_input = one_job_per_input
        self.payload = payload
        self.environment = environment
        self.output_dir = output_dir
        self.wait_for_completion = wait_for_completion
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = poll_interval
        self.wait_timeout = timeout
        self.cancel_on_kill = cancel_on_kill
        self.log_lines = log_lines
        self.oscar_conn_id = oscar_conn_id
        self._inflight: tuple[str, list[str]] | None = None
        self._result: list[str] | None = None
        self._submit_info: dict[str, Any] | None = None

    # -- what to submit ------------------------------------------------------------------------------
    def _expand(self, item: str) -> list[Path]:
        if _GLOB.search(item):
            found = sorted(Path(p) for p in glob.glob(item))
            if not found:
                raise AirflowFailException(f"no input file matches {item!r}: check the pattern")
            return found
        path = Path(item)
        if not path.is_file():
            raise AirflowFailException(f"input file {item} does not exist (or is not a file): fix the path")
        return [path]

    def job_specs(self) -> list[JobSpec]:
        """The jobs this task submits, from the rendered ``inputs``, ``payload`` and ``environment``."""
        raw = self.inputs
        items: list[Any] = [] if raw is None else [raw] if isinstance(raw, (str, Path)) else list(raw)
        groups: list[list[Path]] = []
        for item in items:
            if isinstance(item, (str, Path)):
                paths = self._expand(str(item))
                groups.extend([p] for p in paths) if self.one_job_per_input else groups.append(paths)
            else:
                groups.append([p for sub in item for p in self._expand(str(sub))])
        env = {str(k): str(v) for k, v in dict(self.environment or {}).items()}
        payload = dict(self.payload) if isinstance(self.payload, Mapping) else self.payload
        if not self.one_job_per_input:
            return [JobSpec([p for g in groups for p in g], payload, env)]
        if not groups:
            raise AirflowFailException("one_job_per_input=True but inputs is empty: give input files")
        return [JobSpec(g, payload, env) for g in groups]

    def _output_dir(self, context: Context) -> Path:
        if self.output_dir:
            return Path(self.output_dir)
        ti = context["ti"]
        map_index = ti.map_index if ti.map_index is not None else -1  # None outside a mapped task (Airflow 3)
        parts = [ti.dag_id, ti.run_id, ti.task_id + (f"-{map_index}" if map_index >= 0 else "")]
        return Path(tempfile.gettempdir(), "oscar-airflow", *(_UNSAFE.sub("_", p) for p in parts))

    # -- ResumableJobMixin ---------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        if not self.wait_for_completion:
            return self.submit_job(context)["jobs"]
        return self.execute_resumable(context)

    def submit_job(self, context: Context) -> dict[str, Any]:
        specs = self.job_specs()
        ti = context["ti"]
        names = job_names(self.service_name, dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id,
                          map_index=ti.map_index if ti.map_index is not None else -1, try_number=ti.try_number,
                          count=len(specs))
        started = time.monotonic()
        at = time.time()
        submitted = self.hook.submit_jobs(self.service_name, specs, names)
        self.log.info("submitted %d OSCAR job(s) to %s in %.2f s: %s", len(submitted), self.service_name,
                      time.monotonic() - started, ", ".join(submitted))
        self._submit_info = {"at": at, "inputs": [file_hashes(spec.inputs) for spec in specs]}
        ti.xcom_push(key=_SUBMIT_KEY, value=self._submit_info)
        self._publish(context, self.service_name, submitted)
        return {"service": self.service_name, "jobs": submitted}

    def get_job_status(self, external_id: Any, context: Context) -> str:
        service, names = self._unpack(external_id)
        return summary(self.hook.job_states(service, names))

    def is_job_active(self, status: str) -> bool:
        return status == ACTIVE

    def is_job_succeeded(self, status: str) -> bool:
        return status == SUCCEEDED

    def poll_until_complete(self, external_id: Any, context: Context) -> Any:
        service, names = self._unpack(external_id)
        self._publish(context, service, names)
        if self.deferrable:
            end_time = time.time() + self.wait_timeout if self.wait_timeout else None
            self.log.info("deferring: the triggerer waits for %d job(s), this worker slot is released", len(names))
            self.defer(
                trigger=OscarJobTrigger(service_name=service, job_names=names, oscar_conn_id=self.oscar_conn_id,
                                        poll_interval=self.poll_interval, end_time=end_time,
                                        cancel_on_kill=self.cancel_on_kill),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.wait_timeout + 60 + self.poll_interval) if self.wait_timeout else None,
            )
        self._inflight = (service, names)
        try:
            states = self.hook.wait_jobs(service, names, timeout=self.wait_timeout,
                                         poll_interval=self.poll_interval)
        except AirflowException:
            self._cancel_on_timeout(service, names)
            raise
        self._inflight = None
        self._result = self._finish(context, service, states)
        return self._result

    def get_job_result(self, external_id: Any, context: Context) -> Any:
        if self._result is not None:
            return self._result
        service, names = self._unpack(external_id)
        self._publish(context, service, names)
        return self._finish(context, service, dict.fromkeys(names, JobState.SUCCEEDED))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> list[str]:
        """Resume after the trigger fired: collect outputs, or fail with the jobs' log tails."""
        status = event.get("status")
        service = str(event.get("service") or self.service_name)
        states = states_from_event(event)
        if status == "error":
            raise AirflowException(event.get("message") or "the trigger failed")
        if status == "timeout":
            self._cancel_on_timeout(service, [n for n, s in states.items() if not s.terminal])
            raise AirflowException(f"OSCAR jobs of {service!r} not finished after {self.wait_timeout} s; "
                                   "they were cancelled: raise timeout or check the cluster")
        return self._finish(context, service, states)

    def on_kill(self) -> None:
        if self._inflight and self.cancel_on_kill:
            service, names = self._inflight
            self.hook.cancel_jobs(service, names)

    # -- helpers ---------------------------------------------------------------------------------------
    @staticmethod
    def _unpack(external_id: Any) -> tuple[str, list[str]]:
        data = dict(external_id)
        return str(data["service"]), [str(n) for n in data["jobs"]]

    def _publish(self, context: Context, service: str, names: list[str]) -> None:
        context["ti"].xcom_push(key="job_names", value=names)
        OscarJobLink.persist(context, self.hook.dashboard_url(service, names[0] if names else None))

    @staticmethod
    def _pulled_submit_info(context: Context) -> dict[str, Any]:
        """What this try's submit recorded (after a deferral the operator is a new object); {} after a retry
        that reattached (the cluster's creation times stand in)."""
        ti = context["ti"]
        try:
            value = ti.xcom_pull(task_ids=ti.task_id, key=_SUBMIT_KEY, map_indexes=ti.map_index)
        except Exception:  # an XCom backend that cannot answer: times come from the cluster
            return {}
        return dict(value) if isinstance(value, Mapping) else {}

    def _cancel_on_timeout(self, service: str, names: list[str]) -> None:
        if names:
            self.log.warning("cancelling unfinished OSCAR jobs %s", names)
            self.hook.cancel_jobs(service, names)

    def _trimmed(self, text: str) -> str:
        """The end of a job's log, ``log_lines`` lines at most."""
        text = text.rstrip("\n")
        lines = text.splitlines()
        if self.log_lines is not None and len(lines) > self.log_lines:
            text = f"[... {len(lines) - self.log_lines} earlier lines]\n" + "\n".join(lines[-self.log_lines:])
        return text

    def _finish(self, context: Context, service: str, states: dict[str, JobState]) -> list[str]:
        """Copy each job's log into the task log and collect the outputs (several jobs at once, by the core)."""
        out_dir = self._output_dir(context)
        single = len(states) == 1
        dests = [out_dir if single else out_dir / name for name in states]
        done = [(self._trimmed(text), [str(p) for p in paths], error) for text, paths, error in
                self.hook.collect_all(service, states, dests, logs=self.log_lines != 0)]
        collected = time.time()
        outputs: dict[str, list[str]] = {}
        failures: list[str] = []
        for name, (text, paths, error) in zip(states, done, strict=True):
            if self.log_lines != 0:
                self.log.info("----- log of OSCAR job %s -----\n%s\n----- end of log of %s -----", name, text, name)
            if error:
                failures.append(error)
            else:
                outputs[name] = paths
        context["ti"].xcom_push(key="outputs_by_job", value=outputs)
        submit = self._submit_info or self._pulled_submit_info(context)
        self._push_records(context, lambda: self.hook.job_records(
            service, states, dests, outputs, submitted=submit.get("at"), collected=collected,
            inputs=submit.get("inputs") or ()), flatten(outputs.values()))
        if failures:
            shown = "\n\n".join(failures[:3]) + (f"\n\n... and {len(failures) - 3} more" if len(failures) > 3 else "")
            raise AirflowException(f"{len(failures)} of {len(states)} OSCAR job(s) of {service!r} failed:\n{shown}")
        self.log.info("collected %d output file(s) of %d job(s) into %s", sum(map(len, outputs.values())),
                      len(states), out_dir)
        store = context.get("task_state_store")
        if store is not None:
            # Done: forget the jobs, so that clearing this task later runs them again instead of
            # re-collecting these outputs (Airflow keeps the key after success by default).
            store.delete(self.external_id_key)
        return flatten(outputs.values())
