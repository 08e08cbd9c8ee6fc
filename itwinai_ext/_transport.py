"""Moving one step's files to an OSCAR service and back: the only network I/O of the itwinai steps.

``sync`` sends every input inline in one ``POST /run`` (OSCAR ends those after 300 s, and ingresses
often cap request bodies near 1 MiB); ``async`` submits a job, staging large inputs through the
service's bucket, and downloads verified outputs. ``auto`` picks ``sync`` for small, short calls.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oscar_plugins import (
    ConfigError,
    Dispatcher,
    Job,
    JobFailed,
    JobRecord,
    JobSpec,
    JobTimeout,
    JobTracker,
    OscarClient,
    OscarError,
    Service,
    ServiceNotFound,
    file_hashes,
    job_output_prefix,
)

from ._errors import ItwinaiNotInstalled, StepConfigError, StepError, StepFailed

__all__ = ["MODES", "SYNC_MAX_SECONDS", "RemoteRun", "StepTransport", "choose_mode", "sync_body_size"]

log = logging.getLogger("oscar_plugins.itwinai")
MODES = ("auto", "sync", "async")
#: OSCAR stops synchronous runs after 300 s; leave room for start-up.
SYNC_MAX_SECONDS = 290.0
_NO_ITWINAI = 3


def sync_body_size(input_bytes: int, n_inputs: int) -> int:
    """Bytes of a ``/run`` request: base64 of a manifest whose inline data is itself base64."""
    manifest = (input_bytes * 4 + 2) // 3 + 96 * (n_inputs + 1)
    return (manifest * 4 + 2) // 3


def choose_mode(mode: str, *, input_bytes: int, n_inputs: int, timeout: float | None, sync_limit_mb: float,
                step: str) -> str:
    """``sync`` or ``async`` for one call; explains what to do when ``sync`` cannot carry it."""
    body = sync_body_size(input_bytes, n_inputs)
    limit = int(sync_limit_mb * 1024 * 1024)
    if mode == "sync":
        if body > limit:
            raise StepConfigError(step, (
                f"its inputs ({input_bytes / 2**20:.2f} MiB, a {body / 2**20:.2f} MiB request) are too large for "
                f"mode 'sync' (sync_limit_mb={sync_limit_mb:g}): use mode 'async' or 'auto', which stage large "
                "inputs through the service's bucket, or raise sync_limit_mb if your cluster's ingress accepts "
                "larger requests"))
        if timeout is not None and timeout > SYNC_MAX_SECONDS:
            raise StepConfigError(step, f"timeout {timeout:g} s is longer than OSCAR allows a synchronous run "
                                  "(300 s): use mode 'async' or 'auto'")
        return "sync"
    if mode == "async":
        return "async"
    return "sync" if body <= limit and (timeout is None or timeout <= SYNC_MAX_SECONDS) else "async"


@dataclass
class RemoteRun:
    """What one remote call left: its output files by relative name, and how it went."""

    mode: str
    service: str
    outputs: dict[str, Path]
    seconds: float
    job: str | None = None
    single: bool = False  # a sync answer of one unnamed file (``outputs`` then has one entry "")
    marked: bool = False  # the service's script carries the transport's marker
    #: What ran where (``oscar_plugins.JobRecord.as_dict()``), for ``OscarPipeline``'s report.
    record: dict[str, Any] | None = None


@dataclass
class StepTransport:
    """Runs one step's inputs on its service. One per component; connects on demand.

    Args:
        step: the step's name, used in every error.
        cluster: profile name (None: environment > oscar-cli default > the local cluster).
        service: what :func:`~._service.resolve_service` returned: a definition to deploy or a name.
    """

    step: str
    cluster: str | None
    service: Service | str
    timeout: float | None
    marker: str | None = None
    #: Refuse services whose script lacks ``marker`` (e.g. a name-only service not running the runner).
    require_marker: bool = False
    leftovers: list[tuple[str, str]] = field(default_factory=list)  # (service, job) to remove
    #: The records of every run of this step, failed ones too (``OscarPipeline`` reads them).
    records: list[dict[str, Any]] = field(default_factory=list)
    _job: Job | None = field(default=None, repr=False)

    @property
    def service_name(self) -> str:
        return self.service if isinstance(self.service, str) else self.service.name

    def connect(self) -> tuple[OscarClient, Service]:
        """A client of the step's cluster, and the service (deployed or updated when given a definition)."""
        try:
            client = OscarClient.connect(self.cluster)
        except ConfigError as exc:
            raise StepConfigError(self.step, str(exc)) from None
        try:
            if isinstance(self.service, str):
                svc = client.get_service(self.service)
            else:
                svc = client.ensure_service(self.service)
        except ServiceNotFound:
            client.close()
            raise StepConfigError(self.step, f"service {self.service_name!r} does not exist on cluster "
                                  f"{client.profile.name!r}: deploy it, or give the step its definition "
                                  "(service: path/to/fdl.yaml)") from None
        except OscarError as exc:
            client.close()
            raise StepError(self.step, f"cannot deploy or read service {self.service_name!r}: {exc}") from exc
        if self.require_marker and self.marker and self.marker not in svc.script:
            client.close()
            raise StepConfigError(self.step, f"service {svc.name!r} was not deployed for this kind of step (its "
                                  "script lacks the runner): give the step the service's definition instead of "
                                  "its name, so it deploys the right script")
        return client, svc

    def run(self, inputs: Sequence[Path], mode: str, work: Path, env: Mapping[str, str] | None = None,
            extras: Sequence[Path] = (), chosen: bool = False) -> RemoteRun:
        """Send ``inputs`` (the first one is ``$INPUT_FILE_PATH``; all are in ``$OSCAR_INPUTS_DIR``).

        ``extras`` are sent too when the service was deployed by oscar-plugins; a service deployed by
        other means gets one input file only (the OSCAR way), so they are left out for it. A ``sync``
        run ``chosen`` by ``auto`` becomes a job on clusters without synchronous invocations.
        """
        client, svc = self.connect()
        start, started = time.perf_counter(), time.time()
        outputs: dict[str, Path] = {}
        self._job = None
        try:
            if client.is_wrapped(svc.name):
                inputs = [*inputs, *extras]
            mode = self._check_sync(client, mode, chosen)
            if mode == "sync":
                outputs, single = self._sync(client, svc, inputs, env or {}, work)
                job = None
            else:
                outputs, job = self._async(client, svc, inputs, env or {}, work)
                single = False
        except (StepError, StepFailed):
            self._record(client, svc, started, inputs, {}, ok=False)
            raise
        except JobFailed as exc:
            self._record(client, svc, started, inputs, {}, ok=False)
            raise self._failed(exc, svc) from None
        except OscarError as exc:
            self._record(client, svc, started, inputs, {}, ok=False)
            raise StepError(self.step, f"{mode} run on service {svc.name!r} failed: {exc}") from exc
        finally:
            client.close()
        marked = bool(self.marker) and str(self.marker) in svc.script
        record = self._record(client, svc, started, inputs, outputs, ok=True)
        return RemoteRun(mode, svc.name, outputs, time.perf_counter() - start, job, single, marked, record)

    def _record(self, client: OscarClient, svc: Service, started: float, inputs: Sequence[Path],
                outputs: Mapping[str, Path], *, ok: bool) -> dict[str, Any]:
        """The secret-free record of this run (a job's times as the tracker last saw them), kept in ``records``."""
        now = time.time()
        job = self._job
        record = JobRecord.of(job, svc, cluster=client.profile.name, endpoint=client.profile.endpoint,
                              started=None if job else started, finished=None if job else now,
                              collected=now if ok else None, status="succeeded" if ok else "failed",
                              inputs=file_hashes(inputs),
                              outputs=[{**entry, "path": name} for name, path in outputs.items()
                                       for entry in file_hashes([path])]).as_dict()
        self.records.append(record)
        return record

    def _check_sync(self, client: OscarClient, mode: str, chosen: bool) -> str:
        if mode != "sync" or client.info().get("serverless_backend"):
            return mode
        if chosen:
            log.info("step %s: cluster %s has no synchronous invocations; submitting a job", self.step,
                     client.profile.name)
            return "async"
        raise StepConfigError(self.step, f"cluster {client.profile.name!r} has no serverless backend, so no "
                              "synchronous runs (POST /run): use mode 'async' or 'auto'")

    def _sync(self, client: OscarClient, svc: Service, inputs: Sequence[Path], env: Mapping[str, str],
              work: Path) -> tuple[dict[str, Path], bool]:
        dispatcher = Dispatcher(client, inline_limit=2**62)  # everything inline: sync pods may not reach MinIO
        try:
            manifest = base64.b64decode(dispatcher.build_body(svc, JobSpec(list(inputs), env=dict(env))))
        except ConfigError as exc:
            raise StepConfigError(self.step, str(exc)) from None
        target = work / "sync-out"
        result = client.run(svc.name, manifest, output=target, expect="auto", timeout=self.timeout or 310.0)
        if result.kind == "files":
            return {p.relative_to(target).as_posix(): p for p in result.paths}, False
        if result.kind == "file":
            return {"": result.paths[0]}, True
        if result.text.strip() and not client.is_wrapped(svc.name):  # a plain OSCAR service's answer
            text_file = work / "sync-out.txt"
            text_file.write_text(result.text, encoding="utf-8")
            return {"output.txt": text_file}, False
        return {}, False

    def _async(self, client: OscarClient, svc: Service, inputs: Sequence[Path], env: Mapping[str, str],
               work: Path) -> tuple[dict[str, Path], str]:
        # One job per call: polling its service once a second at most costs little and saves seconds.
        dispatcher = Dispatcher(client, tracker=JobTracker(client, max_interval=1.0))
        try:
            job = self._job = dispatcher.submit(svc.name, list(inputs), env=dict(env))
        except ConfigError as exc:
            raise StepConfigError(self.step, str(exc)) from None
        try:
            dispatcher.tracker.wait([job], timeout=self.timeout)
        except JobTimeout:
            dispatcher.cancel([job])
            raise StepFailed(self.step, f"job {job.name} of service {svc.name!r} did not finish within "
                             f"{self.timeout or 0:g} s and was cancelled: raise the step's timeout",
                             service=svc.name, job=job.name) from None
        except BaseException:
            dispatcher.cancel([job])  # interrupted: do not leave work running on the cluster
            raise
        finally:
            dispatcher.tracker.close()
        target = work / "async-out"
        result = dispatcher.collect(job, target, overwrite=True)
        self.leftovers.append((svc.name, job.name))
        return {p.relative_to(target).as_posix(): p for p in result.outputs}, job.name

    def _failed(self, exc: JobFailed, svc: Service) -> StepFailed:
        kind = ItwinaiNotInstalled if exc.exit_code == _NO_ITWINAI and "itwinai" in exc.log_tail else StepFailed
        what = (f"service {svc.name!r} (image {svc.image}) cannot import itwinai, so it cannot run itwinai "
                "components: deploy it with an image that has itwinai (and the component's packages).\n"
                if kind is ItwinaiNotInstalled else "")
        return kind(self.step, f"{what}{exc}", service=exc.service, job=exc.job, exit_code=exc.exit_code,
                    log_tail=exc.log_tail)

    def remove_leftovers(self) -> None:
        """Delete the outputs and records of this step's successful async jobs from the cluster."""
        if not self.leftovers:
            return
        try:
            client = OscarClient.connect(self.cluster)
        except OscarError as exc:
            log.warning("step %s: could not clean up its jobs: %s", self.step, exc)
            return
        with client:
            for service, job in self.leftovers:
                try:
                    svc = client.get_service(service, refresh=False)
                    for out in svc.output:
                        if out.storage_provider.startswith("minio"):
                            client.storage.delete_prefix(out.bucket, job_output_prefix(out, job))
                    client.delete_job(service, job)
                except OscarError as exc:
                    log.warning("step %s: could not remove job %s of %s: %s", self.step, job, service, exc)
        self.leftovers.clear()
