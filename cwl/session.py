"""The clusters a run talks to, and the jobs it has in flight (the only module doing OSCAR I/O).

One :class:`ClusterSession` per cluster: a core :class:`~oscar_plugins.OscarClient`, a
:class:`~oscar_plugins.Dispatcher` (whose :class:`~oscar_plugins.JobTracker` is the single poller of
every job of the run on that cluster), and the runner services this run already ensured. The
:class:`Sessions` registry knows every job in flight, so that Ctrl-C / SIGTERM can delete them all.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from oscar_plugins import APIError, InputNotFound, OscarError, job_output_prefix

from .pathmapper import split_s3
from .runner import RunnerSpec

if TYPE_CHECKING:  # the client stack (httpx, pydantic, boto3) loads on first use, not at start-up
    from oscar_plugins import ImageInspector, Job, JobResult, OscarClient, Service

__all__ = ["ClusterSession", "Sessions"]

log = logging.getLogger("cwltool")  # the runner's messages go where cwltool's go (--quiet, --debug)


class ClusterSession:
    """One cluster of a run.

    Args:
        client: the cluster's client.
        keep_jobs: keep finished jobs (and their logs) on the cluster instead of deleting them.
    """

    def __init__(self, client: OscarClient, *, keep_jobs: bool = False) -> None:
        from oscar_plugins import Dispatcher

        self.client = client
        self.dispatcher = Dispatcher(client)
        self.keep_jobs = keep_jobs
        self._services: dict[str, Service] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._trash: queue.SimpleQueue[tuple[Service, Job, list[str] | None] | None] = queue.SimpleQueue()
        self._janitor: threading.Thread | None = None
        self._images: ImageInspector | None = None
        self._engine: str | None = None  # "" once known to be none
        self._host_mode = False
        self._no_fetch: set[str] = set()
        self._made: set[str] = set()  # images this run found or made in the local engine

    def can_fetch(self, image: str) -> bool:
        """Whether jobs in ``image`` can download their inputs (until one of them found it cannot)."""
        with self._lock:
            return image not in self._no_fetch

    def cannot_fetch(self, image: str) -> None:
        """``image`` has no curl, wget or python3: its jobs get every input inside the job, for the rest of
        the run."""
        with self._lock:
            self._no_fetch.add(image)

    def local_engine(self) -> str | None:
        """The container engine that runs this cluster's jobs on this machine (an embedded local cluster
        on loopback started with ``--engine podman|docker``), or None (a remote cluster, or host mode)."""
        with self._lock:
            if self._engine is None:
                engine = str(self.client.info().get("local_execution") or "")
                host = urlsplit(self.client.profile.endpoint).hostname or ""
                on_this_machine = host in ("localhost", "127.0.0.1", "::1")
                self._engine = engine if engine in ("podman", "docker") and on_this_machine else ""
                self._host_mode = engine == "host"
            return self._engine or None

    def entrypoint(self, image: str) -> list[str]:
        """The image's ``ENTRYPOINT`` (``docker run`` puts it in front of the command; an OSCAR pod never runs
        it), read once per run: from the local cluster's engine, else from the image's registry."""
        from oscar_plugins import ImageInspector

        engine = self.local_engine()
        if self._host_mode:  # the embedded cluster runs scripts on the host: images play no part
            return []
        with self._lock:
            if self._images is None:
                self._images = ImageInspector(engine)
        return self._images.entrypoint(image) or []

    def local_image(self, requirement: dict[str, Any], digest: str) -> str | None:
        """The image of a ``DockerRequirement`` to build (``dockerFile``), load (``dockerLoad``) or import
        (``dockerImport``), made in the local cluster's engine (once per name); None when this cluster
        cannot take such an image (OSCAR pulls images from registries).

        Raises:
            OscarError: the engine could not make the image (its own words).
        """
        from oscar_plugins import ImageBuilder

        engine = self.local_engine()
        if engine is None:
            return None
        tag = str(requirement.get("dockerImageId") or f"localhost/oscar-cwl-{digest}:latest")
        with self._lock:
            lock = self._locks.setdefault(f"image:{tag}", threading.Lock())
        with lock:
            if tag in self._made:
                return tag
            builder = ImageBuilder(engine)
            if builder.exists(tag):
                self._made.add(tag)
                return tag
            if requirement.get("dockerFile"):
                log.info("building image %s with %s (dockerFile)", tag, engine)
                made = builder.build(str(requirement["dockerFile"]), tag)
            elif requirement.get("dockerLoad"):
                log.info("loading image %s into %s (dockerLoad)", requirement["dockerLoad"], engine)
                made = builder.load(str(requirement["dockerLoad"]), tag)
            else:
                log.info("importing %s into %s as %s (dockerImport)", requirement["dockerImport"], engine, tag)
                made = builder.import_(str(requirement["dockerImport"]), tag)
            self._made.add(made)
            return made

    @property
    def name(self) -> str:
        return self.client.profile.name

    def runner(self, spec: RunnerSpec) -> Service:
        """The runner service for ``spec``, deployed (idempotently) once per run."""
        with self._lock:
            if spec.name in self._services:
                return self._services[spec.name]
            lock = self._locks.setdefault(spec.name, threading.Lock())
        with lock:
            if spec.name not in self._services:
                try:
                    svc = self.client.ensure_service(spec.service())
                except APIError as exc:
                    if exc.status not in (400, 409):
                        raise
                    # Another run created the same runner service at the same moment: use that one.
                    time.sleep(1.0)
                    svc = self.client.ensure_service(spec.service())
                log.info("runner service %s (%s, cpu %s, memory %s) ready on %s", svc.name, spec.image, spec.cpu,
                         spec.memory, self.name)
                with self._lock:
                    self._services[spec.name] = svc
            return self._services[spec.name]

    @staticmethod
    def bucket(service: Service) -> str:
        return service.output[0].bucket

    def stage(self, service: Service, path: Path) -> str:
        """Upload ``path`` content-addressed (once) to the service's bucket; a presigned GET URL."""
        bucket = self.bucket(service)
        key = self.client.storage.stage(bucket, path)
        return self.client.storage.presign_get(bucket, key)

    def presign(self, location: str) -> str:
        """A presigned GET URL for an ``s3://<bucket>/<key>`` object of this cluster's object store."""
        bucket, key = split_s3(location)
        if self.client.storage.exists(bucket, key) is None:
            raise InputNotFound(f"input {location} does not exist in the object store of cluster {self.name!r}: "
                                "check the bucket and key, or upload the object first")
        return self.client.storage.presign_get(bucket, key)

    def submit(self, service: Service, job_script: str) -> Job:
        """Submit one job whose input is ``job_script``; tracked by the dispatcher's single poller."""
        return self.dispatcher.submit(service.name, payload=job_script.encode("utf-8"))

    def collect(self, job: Job, dest: Path) -> JobResult:
        """Download a finished job's verified outputs into ``dest`` (raises ``JobFailed``)."""
        return self.dispatcher.collect(job, dest, overwrite=True)

    def cleanup(self, service: Service, job: Job, keys: list[str] | None = None) -> None:
        """Delete the job's output objects (``keys`` when known, else a listing of its folder) and, unless
        ``keep_jobs``, the job, in the background.

        One janitor thread per cluster does it, off the path from a job's end to the next step, and
        deletes the known objects of many jobs with one request.
        """
        with self._lock:
            self._trash.put((service, job, keys))
            if self._janitor is None:
                self._janitor = threading.Thread(target=self._sweep, name="oscar-cwl-janitor", daemon=True)
                self._janitor.start()

    def _sweep(self) -> None:
        stop = False
        while not stop:
            item = self._trash.get()
            batch = []
            while item is not None:
                batch.append(item)
                if len(batch) >= 500:
                    break
                try:
                    item = self._trash.get_nowait()
                except queue.Empty:
                    break
            stop = item is None
            self._clean(batch)

    def _clean(self, batch: list[tuple[Service, Job, list[str] | None]]) -> None:
        known: dict[str, list[str]] = {}
        for service, job, keys in batch:
            out = service.output[0]
            try:
                if keys is None:
                    self.client.storage.delete_prefix(out.bucket, job_output_prefix(out, job.name))
                else:
                    known.setdefault(out.bucket, []).extend(keys)
                if not self.keep_jobs:
                    self.client.delete_job(service.name, job.name)
            except OscarError as exc:
                log.warning("could not clean up job %s on %s: %s", job.name, self.name, exc)
        for bucket, keys in known.items():
            try:
                self.client.storage.delete_keys(bucket, keys)
            except OscarError as exc:
                log.warning("could not delete %d output objects of finished jobs on %s: %s", len(keys), self.name,
                            exc)

    def cancel(self, jobs: list[Job]) -> None:
        self.dispatcher.cancel(jobs)

    def close(self, timeout: float = 120) -> None:
        """Finish the cleanups in progress, stop the poller, close the connections."""
        if self._janitor is not None:
            self._trash.put(None)
            self._janitor.join(timeout)
        self.dispatcher.tracker.close()
        self.client.close()


class Sessions:
    """Every cluster of a run, by profile name, and every job in flight.

    Args:
        default_cluster: the profile used when a step names none (None: the core's precedence,
            argument > environment > ``~/.oscar-cli`` default > the embedded local cluster).
        keep_jobs: see :class:`ClusterSession`.
        connect: how to make a client (tests may inject one).
    """

    def __init__(self, default_cluster: str | None = None, *, keep_jobs: bool = False,
                 connect: Callable[[str | None], OscarClient] | None = None) -> None:
        self.default_cluster = default_cluster
        self.keep_jobs = keep_jobs
        self._connect = connect
        self._sessions: dict[str | None, ClusterSession] = {}
        self._inflight: dict[tuple[int, str], tuple[ClusterSession, Job]] = {}
        self._lock = threading.Lock()
        self._connect_lock = threading.Lock()
        self.closed = False

    def get(self, cluster: str | None = None) -> ClusterSession:
        """The session of ``cluster`` (None: the default), connecting on first use."""
        key = cluster or self.default_cluster
        with self._connect_lock:
            if key not in self._sessions:
                if self._connect is None:
                    from oscar_plugins import OscarClient

                    self._connect = OscarClient.connect
                self._sessions[key] = ClusterSession(self._connect(key), keep_jobs=self.keep_jobs)
            return self._sessions[key]

    def started(self, session: ClusterSession, job: Job) -> None:
        """Record a submitted job; cancels it at once when the run is already being stopped."""
        with self._lock:
            if not self.closed:
                self._inflight[(id(session), job.name)] = (session, job)
                return
        session.cancel([job])

    def finished(self, session: ClusterSession, job: Job) -> None:
        with self._lock:
            self._inflight.pop((id(session), job.name), None)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._inflight)

    def cancel_all(self) -> int:
        """Stop accepting jobs and delete every job in flight; returns how many."""
        with self._lock:
            self.closed = True
            items = list(self._inflight.values())
            self._inflight.clear()
        by_session: dict[int, tuple[ClusterSession, list[Job]]] = {}
        for session, job in items:
            by_session.setdefault(id(session), (session, []))[1].append(job)
        for session, jobs in by_session.values():
            session.cancel(jobs)
        return len(items)

    def close(self) -> None:
        with self._connect_lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for session in sessions:
            session.close()
