"""Asynchronous dispatch: stage inputs, submit jobs, track them, collect verified outputs.

Example:
    >>> d = Dispatcher(OscarClient.connect())                             # doctest: +SKIP
    >>> results = d.map("spi", [[Path("tile1.nc")], [Path("tile2.nc")]], Path("out"))  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from pathlib import Path
from typing import Any

from ._batch import AGAIN, Batch
from ._client import OscarClient, new_job_name
from ._events import minio_event
from ._exceptions import ConfigError, InputNotFound, JobFailed, OscarError
from ._fdl import Service, StorageIO
from ._jobs import Job, JobState, JobTracker
from ._journal import Journal
from ._results import JobResult, JobSpec
from ._wrapper import (
    BATCH_WRAPPER_VERSION,
    LOG_FILE,
    PREPARE_FAILED,
    PREPARE_FAILED_LINE,
    STATUS_FILE,
    BatchManifest,
    JobStatusFile,
    Manifest,
    check_input_name,
    explain_job_log,
    is_wrapped,
    member_folder,
    parse_status,
    wrapper_version,
)

__all__ = ["Dispatcher", "JobResult", "JobSpec"]

log = logging.getLogger("oscar_plugins")
#: Inline inputs up to this many bytes in the job body (the rest is staged through the object store).
INLINE_LIMIT = 48 * 1024
#: The largest ``/job`` body sent. OSCAR puts the body in the pod's ``EVENT`` variable (``job.go``), which
#: Linux caps at 128 KiB (MAX_ARG_STRLEN, with ``EVENT=``), and interLink base64-encodes it once more
#: (``types.SetInterlinkJob``): 90 KiB leaves 120 KiB after that, and a margin.
MAX_BODY = 90 * 1024
#: Inline inputs up to this many bytes in a manifest the supervisor downloads itself (a job whose body would
#: not fit :data:`MAX_BODY`): the wrapper decodes them with the shell (about 1 s per MiB), and the image
#: needs no download tool for them. Larger inputs are staged once, content-addressed, and fetched by URL.
EVENT_INLINE_LIMIT = 1 << 20
#: Where such manifests go, in the service's staging bucket (one object per job, deleted with its outputs).
MANIFEST_PREFIX = "oscar-plugins/manifests/"


def _minio(entries: Sequence[StorageIO]) -> list[StorageIO]:
    return [e for e in entries if e.storage_provider.split(".", 1)[0] == "minio"]


def staging_bucket(svc: Service) -> str:
    """A bucket of the service where staged objects do not trigger jobs."""
    for entry in _minio(svc.input):
        if entry.folder:
            return entry.bucket
    outputs = _minio(svc.output)
    if outputs:
        return outputs[0].bucket
    raise ConfigError(f"service {svc.name!r} has no MinIO input folder or output path to stage data through: "
                      "add 'output: [{storage_provider: minio.default, path: <bucket>/out}]' to its FDL")


def output_location(svc: Service) -> StorageIO | None:
    """The service's first MinIO output path (where wrapped jobs write), or None."""
    outputs = _minio(svc.output)
    return outputs[0] if outputs else None


def job_output_prefix(out: StorageIO, job: str) -> str:
    """The key prefix of one job's outputs under an output path: the wrapper's per-job folder
    (``<folder>/<job name>/``, or ``<job name>/`` at the bucket's top)."""
    return f"{out.folder}/{job}/" if out.folder else f"{job}/"


def _payload_bytes(payload: bytes | str | Mapping[str, Any]) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return json.dumps(payload).encode("utf-8")


def _member_error(exc: JobFailed, member: int) -> JobFailed:
    """A batch job's failure as one of its members': the same, naming the member."""
    return JobFailed(f"batch member {member}: {exc}", service=exc.service, job=exc.job, exit_code=exc.exit_code,
                     log_tail=exc.log_tail)


def _staged_count(sizes: Sequence[int], limit: int) -> int:
    """How many of these inputs (files, then the payload) a manifest with ``limit`` inline bytes stages:
    the rule of :meth:`Dispatcher._manifest`."""
    inline = staged = 0
    for size in sizes:
        if inline + size <= limit:
            inline += size
        else:
            staged += 1
    return staged


class Dispatcher:
    """Submits and collects jobs on one cluster, tracked by one :class:`JobTracker`."""

    def __init__(self, client: OscarClient, *, tracker: JobTracker | None = None,
                 inline_limit: int = INLINE_LIMIT, workers: int = 8) -> None:
        self.client = client
        self.tracker = tracker or JobTracker(client)
        self.inline_limit = inline_limit
        self.workers = workers

    # -- one job -------------------------------------------------------------------------------------
    def build_body(self, svc: Service, spec: JobSpec) -> bytes:
        """The job body (see :meth:`prepare`)."""
        return self.prepare(svc, spec)[0]

    def prepare(self, svc: Service, spec: JobSpec) -> tuple[bytes, str | None]:
        """The ``/job`` body, and the key of the manifest object it points to (None when it has none).

        For a wrapped service the body is the base64 manifest, inputs up to ``inline_limit`` inline. When
        some would then be fetched by URL that :data:`EVENT_INLINE_LIMIT` lets inline, or the manifest does
        not fit a pod's ``EVENT`` (:data:`MAX_BODY`), the manifest becomes an object of the service's
        staging bucket with inputs up to :data:`EVENT_INLINE_LIMIT` inline, and the body a MinIO event for
        it: faas-supervisor downloads it before the script runs (``download_input``), so the image needs no
        download tool for them; larger inputs are staged once (content-addressed) and fetched by URL. Its
        ``principalId`` is the service's owner: OSCAR's ``job.go`` then mounts the MinIO credentials it
        mounts for a plain body.
        An unwrapped service gets the raw payload or file, base64.

        Raises:
            InputNotFound: an input file is missing.
            ConfigError: the input of an unwrapped service would not fit a pod's ``EVENT``, or the service is
                not wrapped and the job needs what only the wrapper provides.
        """
        paths = [Path(p) for p in spec.inputs]
        for path in paths:
            if not path.is_file():
                raise InputNotFound(f"input file {path} does not exist (or is not a file): check the path")
        if not is_wrapped(svc.script):
            if spec.env or len(paths) > 1 or (paths and spec.payload is not None):
                raise ConfigError(f"service {svc.name!r} was not deployed by oscar-plugins, so a job gets one "
                                  "input only: redeploy it with ensure_service (wrap=True) for several inputs")
            raw = paths[0].read_bytes() if paths else _payload_bytes(spec.payload or b"")
            body = base64.b64encode(raw)
            if len(body) > MAX_BODY:
                raise ConfigError(f"input of {len(raw)} bytes is too large for a /job body on unwrapped service "
                                  f"{svc.name!r} (OSCAR passes the body to the pod in one environment variable, "
                                  f"{MAX_BODY} bytes here): upload it to the service's input bucket instead")
            return body, None
        sizes = [p.stat().st_size for p in paths]
        if spec.payload is not None:
            sizes.append(len(_payload_bytes(spec.payload)))
        staged = _staged_count(sizes, self.inline_limit)
        if staged == 0 or staged == _staged_count(sizes, max(self.inline_limit, EVENT_INLINE_LIMIT)):
            body = base64.b64encode(self._manifest(svc, spec, paths, self.inline_limit).render())
            if len(body) <= MAX_BODY:
                return body, None
        manifest = self._manifest(svc, spec, paths, max(self.inline_limit, EVENT_INLINE_LIMIT)).render()
        bucket = staging_bucket(svc)
        key = f"{MANIFEST_PREFIX}{uuid.uuid4().hex}"
        self.client.storage.put_bytes(bucket, key, manifest)
        principal = svc.owner or self.client.storage.access_key
        event = minio_event(bucket, key, principal, size=len(manifest))
        return json.dumps(event, separators=(",", ":")).encode("utf-8"), key

    def _manifest(self, svc: Service, spec: JobSpec, paths: list[Path], inline_limit: int, *,
                  upload: bool = True) -> Manifest:
        manifest = Manifest()
        out = output_location(svc)
        if out is not None and upload:
            policy = self.client.storage.presign_post(out.bucket, f"{out.folder}/" if out.folder else "")
            manifest.add_upload(policy.url, policy.prefix, policy.fields)
        names = [check_input_name(p.name) for p in paths]
        if len(set(names)) != len(names):
            raise ConfigError(f"two inputs share a file name ({names}): inputs of one job need distinct names")
        inline = 0
        bucket = None
        for path in paths:
            size = path.stat().st_size
            if inline + size <= inline_limit:
                manifest.add_data(path.name, path.read_bytes())
                inline += size
            else:
                bucket = bucket or staging_bucket(svc)
                key = self.client.storage.stage(bucket, path)
                manifest.add_url(path.name, self.client.storage.presign_get(bucket, key))
        if spec.payload is not None:
            raw = _payload_bytes(spec.payload)
            if inline + len(raw) <= inline_limit and not paths:
                manifest.add_payload(raw)  # the job's only input: its $INPUT_FILE_PATH
            elif inline + len(raw) <= inline_limit:
                manifest.add_data("payload", raw)
            else:
                bucket = bucket or staging_bucket(svc)
                url = self.client.storage.presign_get(bucket, self.client.storage.stage_bytes(bucket, raw))
                if paths:
                    manifest.add_url("payload", url)
                else:
                    manifest.add_payload_url(url)
        for k, v in spec.env.items():
            manifest.add_env(k, v)
        if ((out is not None and upload) or bucket is not None) and not self.client.storage.verify:
            manifest.add_insecure()
        return manifest

    # -- a batch: several specs in one job -----------------------------------------------------------
    def batch_problem(self, svc: Service) -> str | None:
        """Why ``svc`` cannot run several specs in one job (``map(..., batch=N)``), or None when it can."""
        version = wrapper_version(svc.script)
        if version is None:
            return f"service {svc.name!r} was not deployed by oscar-plugins (its script has no wrapper)"
        if version < BATCH_WRAPPER_VERSION:
            return (f"service {svc.name!r} was deployed with oscar-plugins wrapper v{version}, which runs one input "
                    f"a job: redeploy it (ensure_service, or 'oscar-plugins service apply') for batches")
        if output_location(svc) is None:
            return f"service {svc.name!r} has no MinIO output path, where a batch's members leave their results"
        return None

    def prepare_batch(self, svc: Service, specs: Sequence[JobSpec]) -> tuple[bytes, str | None]:
        """The ``/job`` body of one job running ``specs`` one after the other (member ``i`` is ``specs[i]``),
        and the key of the manifest object it points to (None when it has none); as :meth:`prepare`, with
        the inline budget of an event manifest shared by the members. Needs :meth:`batch_problem` None."""
        paths = [[Path(p) for p in spec.inputs] for spec in specs]
        for path in (p for group in paths for p in group):
            if not path.is_file():
                raise InputNotFound(f"input file {path} does not exist (or is not a file): check the path")
        out = output_location(svc)
        if out is None:
            raise ConfigError(self.batch_problem(svc) or f"service {svc.name!r} cannot run batches")

        def render(limit: int) -> bytes:
            manifest = BatchManifest()
            policy = self.client.storage.presign_post(out.bucket, f"{out.folder}/" if out.folder else "")
            manifest.shared.add_upload(policy.url, policy.prefix, policy.fields)
            if not self.client.storage.verify:
                manifest.shared.add_insecure()
            manifest.members = [self._manifest(svc, spec, group, limit, upload=False)
                                for spec, group in zip(specs, paths, strict=True)]
            return manifest.render()

        body = base64.b64encode(render(self.inline_limit))
        if len(body) <= MAX_BODY:
            return body, None
        manifest = render(max(self.inline_limit, EVENT_INLINE_LIMIT // len(specs)))
        bucket = staging_bucket(svc)
        key = f"{MANIFEST_PREFIX}{uuid.uuid4().hex}"
        self.client.storage.put_bytes(bucket, key, manifest)
        event = minio_event(bucket, key, svc.owner or self.client.storage.access_key, size=len(manifest))
        return json.dumps(event, separators=(",", ":")).encode("utf-8"), key

    def submit_batch(self, service: str, specs: Sequence[JobSpec], *, name: str | None = None) -> Job:
        """Stage ``specs`` and submit them as ONE job (member ``i`` runs ``specs[i]``); returns it, tracked."""
        svc = self.client.get_service(service, refresh=False)
        body, manifest = self.prepare_batch(svc, specs)
        job_name = self.client.submit_job(service, body, name=name)
        return self.tracker.track(Job(service, job_name, manifest=manifest))

    def collect_members(self, job: Job, dests: Mapping[int, Path], *, overwrite: bool = False
                        ) -> dict[int, JobResult]:
        """Collect members of batch job ``job`` (member number -> its folder), each as if it had been its own
        job: its outputs, its exit code, or its error (naming the member, with its own log's end); never
        raises. A failure of the whole job (lost, no status) is each member's error."""
        results: dict[int, JobResult] = {}
        try:
            svc, out, prefix, status = self._finished_status(job)
        except OscarError as exc:
            for k in dests:
                error = _member_error(exc, k) if isinstance(exc, JobFailed) else exc
                results[k] = JobResult(0, job, error=error, member=k,
                                       exit_code=error.exit_code if isinstance(error, JobFailed) else None)
            return results
        shared = self._job_keys(job, svc, out, prefix)
        for k, dest in dests.items():
            mine = status.members.get(k)
            try:
                if mine is None:
                    raise self.failure(job, f"batch member {k}: the job's status has no section for it (the wrapper "
                                            "did not run it: was the service redeployed meanwhile?)")
                if mine.exit_code != 0:
                    raise self.failure(job, f"batch member {k}: {self._exit_reason(svc, mine)}", mine.exit_code, mine)
                result = self._download(job, out, prefix + member_folder(k) + "/", mine, dest, overwrite)
            except JobFailed as exc:
                results[k] = JobResult(0, job, error=exc, exit_code=exc.exit_code, member=k)
            except OscarError as exc:
                results[k] = JobResult(0, job, error=exc, member=k)
            else:
                result.member, result.objects = k, [*result.objects, *shared]
                results[k] = result
        return results

    def submit(self, service: str, inputs: Sequence[Path] = (), *, payload: Any = None,
               env: Mapping[str, str] | None = None, name: str | None = None, track: bool = True) -> Job:
        """Stage inputs and submit one job; returns the tracked :class:`Job`."""
        svc = self.client.get_service(service, refresh=False)
        body, manifest = self.prepare(svc, JobSpec(list(inputs), payload, dict(env or {})))
        job_name = self.client.submit_job(service, body, name=name)
        job = Job(service, job_name, manifest=manifest)
        return self.tracker.track(job) if track else job

    def submit_all(self, service: str, specs: Sequence[JobSpec], names: Sequence[str] | None = None, *,
                   track: bool = True) -> list[Job]:
        """Stage and submit one job per spec, several at once, under ``names`` when given (each submit is
        idempotent per name). If one submit fails, the jobs already submitted are cancelled and the error
        is raised: all or nothing (for callers that wait elsewhere, such as an Airflow trigger)."""
        chosen: list[str | None] = list(names) if names is not None else [None] * len(specs)
        if len(chosen) != len(specs):
            raise ValueError(f"{len(chosen)} name(s) for {len(specs)} job(s): give one name per job")
        if len(specs) == 1:
            return [self.submit(service, specs[0].inputs, payload=specs[0].payload, env=specs[0].env,
                                name=chosen[0], track=track)]
        with ThreadPoolExecutor(min(self.workers, max(1, len(specs))), thread_name_prefix="oscar-submit") as pool:
            futures = [pool.submit(self.submit, service, spec.inputs, payload=spec.payload, env=spec.env, name=name,
                                   track=track) for spec, name in zip(specs, chosen, strict=True)]
            try:
                return [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()  # not started yet: never will
                wait_futures(futures)  # the ones being submitted now: let them land, then cancel them too
                self.cancel([f.result() for f in futures if not f.cancelled() and f.exception() is None])
                raise

    def collect_all(self, jobs: Sequence[Job], dests: Sequence[Path], *, overwrite: bool = False,
                    logs: bool = False) -> list[JobResult]:
        """Collect finished jobs into their ``dests``, several at once; a job's failure is its result's
        ``error``, never raised. With ``logs``, each result also carries the job's log."""
        if len(dests) != len(jobs):
            raise ValueError(f"{len(dests)} destination(s) for {len(jobs)} job(s): give one per job")

        def one(i: int) -> JobResult:
            text = None
            if logs:
                try:
                    text = self.client.job_log(jobs[i].service, jobs[i].name)
                except OscarError as exc:
                    log.warning("could not read the log of job %s: %s", jobs[i].name, exc)
                    text = ""
            try:
                res = self.collect(jobs[i], dests[i], overwrite=overwrite)
            except JobFailed as exc:
                return JobResult(i, jobs[i], error=exc, exit_code=exc.exit_code, log=text)
            except OscarError as exc:
                return JobResult(i, jobs[i], error=exc, log=text)
            res.index, res.log = i, text
            return res

        with ThreadPoolExecutor(min(self.workers, max(1, len(jobs))), thread_name_prefix="oscar-collect") as pool:
            return list(pool.map(one, range(len(jobs))))

    def failure(self, job: Job, reason: str, exit_code: int | None = None,
                status: JobStatusFile | None = None) -> JobFailed:
        """A :class:`JobFailed` that shows why: the cause found in the job's log (out of memory, body too large,
        the supervisor's error) and the script's own last lines (from its status or log file), never the
        base64 the supervisor prints after a job."""
        try:
            text = self.client.job_log(job.service, job.name)
        except OscarError:
            text = ""
        cause, job_tail = explain_job_log(text)
        script_tail = status.log_tail if status is not None else self.script_output(job)
        script_tail = "\n".join(script_tail.rstrip().splitlines()[-20:])
        message = f"job {job.name} of service {job.service!r} failed: {reason}"
        if cause and cause not in reason:
            message += f"; the job's log says: {cause}"
        if script_tail:
            message += f".\nScript output (last lines):\n{script_tail}"
        if job_tail and (cause or not script_tail):
            message += f"\nJob log (last lines):\n{job_tail}"
        return JobFailed(message, service=job.service, job=job.name, exit_code=exit_code,
                         log_tail=script_tail or job_tail)

    def script_output(self, job: Job, limit: int = 16384) -> str:
        """The end (``limit`` bytes) of the script's output the wrapper saved (``.oscar-plugins-log``), or ``""``."""
        try:
            svc = self.client.get_service(job.service, refresh=False)
            out = output_location(svc)
            if out is None or not is_wrapped(svc.script):
                return ""
            key = f"{out.folder}/{job.name}/{LOG_FILE}" if out.folder else f"{job.name}/{LOG_FILE}"
            return self.client.storage.get_bytes(out.bucket, key)[-limit:].decode("utf-8", "replace")
        except OscarError:
            return ""

    def collect(self, job: Job, dest: Path, *, overwrite: bool = False) -> JobResult:
        """Download a finished job's outputs into ``dest`` (verified), or raise :class:`JobFailed`."""
        self._check_succeeded(job)
        svc = self.client.get_service(job.service, refresh=False)
        if output_location(svc) is None or not is_wrapped(svc.script):
            return JobResult(0, job)
        svc, out, prefix, status = self._finished_status(job)
        if status.exit_code != 0:
            raise self.failure(job, self._exit_reason(svc, status), status.exit_code, status)
        result = self._download(job, out, prefix, status, dest, overwrite)
        status_key, *manifest = self._job_keys(job, svc, out, prefix)
        result.objects = [status_key, *result.objects, *manifest]
        return result

    def _check_succeeded(self, job: Job) -> None:
        """Raise why ``job`` cannot be collected: the poller gave up on it, it failed or was lost, or it has
        not finished."""
        if job.error is not None:  # the poller gave up on it (refused credentials, a deleted service)
            raise job.error
        if job.state == JobState.FAILED:
            raise self.failure(job, "the cluster reports it Failed")
        if job.state == JobState.LOST:
            raise self.failure(job, self._lost_reason(job))
        if job.state != JobState.SUCCEEDED:
            raise OscarError(f"job {job.name} is {job.state.value}, not finished: wait for it first")

    @staticmethod
    def _job_keys(job: Job, svc: Service, out: StorageIO, prefix: str) -> list[str]:
        """The keys a wrapped job leaves besides its outputs and log: its status file, then its manifest when
        that went to the output bucket."""
        return [prefix + STATUS_FILE, *([job.manifest] if job.manifest and staging_bucket(svc) == out.bucket
                                        else [])]

    def _finished_status(self, job: Job) -> tuple[Service, StorageIO, str, JobStatusFile]:
        """A wrapped job's service, output path, key prefix and status file, once it succeeded."""
        self._check_succeeded(job)
        svc = self.client.get_service(job.service, refresh=False)
        out = output_location(svc)
        if out is None:
            raise ConfigError(f"service {svc.name!r} has no MinIO output path to collect job {job.name} from")
        prefix = job_output_prefix(out, job.name)
        try:
            text = self.client.storage.get_bytes(out.bucket, prefix + STATUS_FILE).decode("utf-8", "replace")
        except OscarError as exc:
            raise self.failure(job, f"it left no status file ({exc}): the wrapper did not finish") from None
        return svc, out, prefix, parse_status(text)

    @staticmethod
    def _exit_reason(svc: Service, status: JobStatusFile) -> str:
        reason = f"the script exited with code {status.exit_code}"
        if status.exit_code == PREPARE_FAILED and PREPARE_FAILED_LINE in status.log_tail:
            reason = "the wrapper could not prepare the job's inputs, so the script did not run"
        elif status.exit_code == 137:  # SIGKILL: in a container, the kernel's out-of-memory killer
            reason += (f" (killed: most likely it used more than the service's memory, {svc.memory}; raise it "
                       "in the FDL)")
        return reason

    def _download(self, job: Job, out: StorageIO, prefix: str, status: JobStatusFile, dest: Path,
                  overwrite: bool) -> JobResult:
        """Download (verified) the outputs a status lists under ``prefix`` into ``dest``."""
        paths = []
        for rec in status.outputs:
            target = dest / rec.path
            self.client.storage.download(out.bucket, prefix + rec.path, target, size=rec.size, sha256=rec.sha256,
                                         overwrite=overwrite, inline=rec.inline)
            paths.append(target)
        objects = [prefix + LOG_FILE, *(prefix + rec.path for rec in status.outputs)]
        return JobResult(0, job, outputs=paths, exit_code=status.exit_code, objects=objects)

    def _lost_reason(self, job: Job) -> str:
        members = []
        try:
            members = self.client.get_service(job.service, refresh=False).federation_members()
        except OscarError:
            pass
        if members:
            return ("it never appeared on this cluster: OSCAR delegated it to a federation member (it answers 201 and "
                    "creates no local job when this cluster has no room), one of: " + "; ".join(members)
                    + f". Look for job {job.name} there")
        return "it disappeared from the cluster (deleted, or the cluster lost it)"

    # -- many jobs -------------------------------------------------------------------------------------
    def map(self, service: str, specs: Sequence[JobSpec | Sequence[Path]], out_dir: Path, *,
            max_in_flight: int = 256, journal: Journal | None = None, batch_key: str | None = None,
            retries: int = 0, overwrite: bool = False,
            progress: Callable[[int, int], None] | None = None,
            folders: Sequence[str] | None = None,
            on_result: Callable[[JobResult], None] | None = None, batch: int = 1) -> list[JobResult]:
        """Run one job per spec; outputs of job ``i`` go to ``out_dir/<job name>/``, or to
        ``out_dir/<folders[i]>/`` when ``folders`` names one folder per spec.

        With a ``journal`` (and ``batch_key``), a rerun after a crash reattaches to jobs already
        submitted and skips outputs already collected. Ctrl-C cancels the jobs in flight.
        ``on_result`` is called with each job's result as soon as it is known (from a worker thread).

        With ``batch`` = N > 1, up to N specs run in ONE job (one pod start, one staging round): the
        wrapper runs the script once per spec, one after the other, each with its own inputs, variables,
        output folder, exit code and log; each spec still gets its own :class:`JobResult` (its ``member``
        set), its outputs in ``out_dir/<folders[i]>/`` or ``out_dir/<job name>/member-<k>/``, a failing
        spec failing alone. It pays when a spec runs much shorter than a pod start; a long one gains nothing
        (a job's specs run one after the other). ``max_in_flight`` then counts jobs, ``progress`` and
        ``on_result`` specs; ``retries`` resubmits only the specs whose failure was not their script's.
        A service deployed with a wrapper older than v3 (or without a MinIO output) cannot run batches: it
        runs one job per spec, with a warning saying to redeploy it.

        Raises:
            ValueError: ``batch`` is not a whole number >= 1, or ``folders`` does not name one folder per spec.
        """
        from ._members import check_batch

        size = check_batch(batch)
        jobs = [s if isinstance(s, JobSpec) else JobSpec(list(s)) for s in specs]
        if folders is not None and len(folders) != len(jobs):
            raise ValueError(f"folders names {len(folders)} folder(s) for {len(jobs)} job(s): give one per job")
        if folders is not None and len(set(folders)) != len(folders):
            raise ValueError("folders must be unique: two jobs would write into the same folder")
        if size > 1 and len(jobs) > 1:
            problem = self.batch_problem(self.client.get_service(service))
            if problem is None:
                from ._members import MapOptions, map_members

                return map_members(self, service, jobs, out_dir, MapOptions(
                    size, max_in_flight, journal, batch_key, retries, overwrite, progress, folders, on_result))
            log.warning("running one job per spec, not batches of %d: %s", size, problem)
        return self._map(service, jobs, out_dir, max_in_flight=max_in_flight, journal=journal,
                         batch_key=batch_key, retries=retries, overwrite=overwrite, progress=progress,
                         folders=folders, on_result=on_result)

    def _map(self, service: str, specs: list[JobSpec], out_dir: Path, *, max_in_flight: int,
             journal: Journal | None, batch_key: str | None, retries: int, overwrite: bool,
             progress: Callable[[int, int], None] | None, folders: Sequence[str] | None = None,
             on_result: Callable[[JobResult], None] | None = None) -> list[JobResult]:
        self.client.get_service(service)  # fail early (ServiceNotFound) and cache the definition
        batch = journal.batch(batch_key or self._batch_key(service, specs), self.client.profile.endpoint,
                              service) if journal else None
        known = batch.names() if batch else {}
        done = batch.collected() if batch else {}
        on_cluster = self.client.list_jobs(service) if known else {}
        results: list[JobResult | None] = [None] * len(specs)
        for idx, outputs in done.items():
            if idx < len(specs):
                results[idx] = JobResult(idx, None, outputs=[Path(p) for p in outputs], exit_code=0)
        lock = threading.Lock()
        finished = [sum(r is not None for r in results)]

        def report(result: JobResult) -> None:
            with lock:
                results[result.index] = result
                finished[0] += 1
            if on_result:
                on_result(result)
            if progress:
                progress(finished[0], len(specs))

        def item(idx: int) -> tuple[Callable[[], Job | None], Callable[[Job], Any], Callable[[Any, Any], None]]:
            attempt = [0]

            def start() -> Job:
                name = known.get(idx) if attempt[0] == 0 else None
                if name and name in on_cluster:
                    if JobState.parse(on_cluster[name].get("status")) != JobState.FAILED:
                        return self.tracker.track(Job(service, name))  # reattach: it runs, or ran well
                    log.info("job %s of an earlier run failed: submitting it again", name)
                    name = None
                name = name or new_job_name(service)
                if batch:
                    batch.record(idx, name)
                job = self.submit(service, specs[idx].inputs, payload=specs[idx].payload, env=specs[idx].env,
                                  name=name)
                if batch and job.name != name:  # before v4.1 the server names the job itself
                    batch.record(idx, job.name)
                return job

            def finish(job: Job) -> Any:
                try:
                    res = self.collect(job, out_dir / (folders[idx] if folders else job.name), overwrite=overwrite)
                except JobFailed as exc:
                    if attempt[0] < retries and exc.exit_code is None:
                        attempt[0] += 1
                        log.warning("job %s failed (%s); resubmitting (attempt %d)", job.name, exc, attempt[0] + 1)
                        return AGAIN
                    if batch:
                        batch.forget(idx)  # it failed for good: a rerun submits it again
                    return JobResult(idx, job, error=exc, exit_code=exc.exit_code)
                except OscarError as exc:
                    return JobResult(idx, job, error=exc)  # not collected (the cluster away?): a rerun reattaches
                res.index = idx
                if batch:
                    batch.mark_collected(idx, [str(p) for p in res.outputs])
                return res

            def done(result: Any, error: BaseException | None) -> None:
                if error is None:
                    report(result)
                elif isinstance(error, OscarError):  # the submit failed
                    report(JobResult(idx, None, error=error))
                else:
                    report(JobResult(idx, None, error=OscarError(f"job {idx} failed unexpectedly: {error!r}")))

            return start, finish, done

        todo = [i for i in range(len(specs)) if results[i] is None]
        for earlier in results:  # collected by an earlier run of this batch (the journal)
            if earlier is not None and on_result:
                on_result(earlier)
        if progress:
            progress(finished[0], len(specs))
        with Batch(max_in_flight=max_in_flight, cancel=self.cancel, workers=self.workers) as engine:
            for idx in todo:
                engine.add(*item(idx))
        final = [r for r in results if r is not None]
        if batch and all(r.ok for r in final):
            batch.complete()
        return final

    def cancel(self, jobs: Sequence[Job]) -> None:
        """Delete (cancel) jobs on the cluster; already gone ones are fine."""
        for job in jobs:
            self.tracker.untrack(job)
            try:
                self.client.delete_job(job.service, job.name)
            except OscarError as exc:
                log.warning("could not cancel job %s: %s", job.name, exc)

    def _batch_key(self, service: str, specs: Sequence[JobSpec]) -> str:
        digest = hashlib.sha256(f"{self.client.profile.endpoint}\0{service}".encode())
        for spec in specs:
            for path in spec.inputs:
                st = Path(path).stat()
                digest.update(f"{Path(path).resolve()}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
            digest.update(repr((spec.payload, sorted(spec.env.items()))).encode())
        return digest.hexdigest()
