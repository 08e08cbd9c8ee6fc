"""Tracking many asynchronous jobs with ONE poller.

The poller lists each service's jobs (one paginated ``GET /system/logs/{svc}``) per interval, whatever
the number of jobs tracked: thousands of jobs cost O(services) requests per poll, never a thread or a
request per job. The interval starts short, backs off while nothing changes, and grows with the number
of pages so the request rate stays bounded. Each tracked job has a ``concurrent.futures.Future`` that
completes when the job reaches a terminal state.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._exceptions import JobTimeout, OscarError
from ._joblist import JobState, listed_state
from ._retry import Backoff, transient

if TYPE_CHECKING:
    from ._client import OscarClient
    from ._joblist import JobInfo

__all__ = ["Job", "JobState", "JobTracker"]  # JobState is _joblist's

log = logging.getLogger("oscar_plugins")


@dataclass
class Job:
    """A submitted job: its service and name, and what the poller last saw of it."""

    service: str
    name: str
    state: JobState = JobState.PENDING
    info: dict[str, Any] = field(default_factory=dict)
    submitted_at: float = field(default_factory=time.time)
    #: The key of the manifest object the job's body points to (a large job's inputs), else None.
    manifest: str | None = None
    #: Why the poller gave up on the job (its service's job list answered an error that repeating cannot
    #: fix, such as refused credentials or a deleted service); its future raises it.
    error: OscarError | None = None
    future: Future[Job] = field(default_factory=Future, repr=False, compare=False)

    @property
    def done(self) -> bool:
        return self.state.terminal


class JobTracker:
    """One poller for all jobs of one client.

    Args:
        client: the cluster's client.
        interval: first and minimum seconds between polls.
        max_interval: cap of the backoff.
        lost_after: seconds a job may be missing from the list before it is declared LOST.

    Example:
        >>> tracker = JobTracker(client)                      # doctest: +SKIP
        >>> for job in tracker.as_completed([job1, job2]):    # doctest: +SKIP
        ...     print(job.name, job.state)
    """

    def __init__(self, client: OscarClient, *, interval: float = 0.25, max_interval: float = 5.0,
                 lost_after: float = 60.0) -> None:
        self.client = client
        self.interval = interval
        self.max_interval = max_interval
        self.lost_after = lost_after
        #: Waits between polls while the cluster cannot be listed (never gives up: the jobs still run).
        self.error_backoff = Backoff(retries=sys.maxsize, first=1.0, cap=max(max_interval * 4, 1.0))
        self.polls = 0
        #: Job-list pages requested so far (the tracking cost).
        self.pages_read = 0
        self._jobs: dict[tuple[str, str], Job] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    # -- registration --------------------------------------------------------------------------------
    def track(self, job: Job) -> Job:
        with self._lock:
            self._jobs[(job.service, job.name)] = job
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._loop, name="oscar-poller", daemon=True)
                self._thread.start()
        self._wake.set()
        return job

    def untrack(self, job: Job) -> None:
        with self._lock:
            self._jobs.pop((job.service, job.name), None)

    def pending(self) -> list[Job]:
        with self._lock:
            return [j for j in self._jobs.values() if not j.done]

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # -- the poller ----------------------------------------------------------------------------------
    def poll_once(self) -> tuple[int, int]:
        """List every service that has unfinished jobs once; returns (changes seen, pages read)."""
        by_service: dict[str, list[Job]] = {}
        for job in self.pending():
            by_service.setdefault(job.service, []).append(job)
        changes = pages = 0
        for service, jobs in by_service.items():
            try:
                walk = self.client.read_job_list(service, wanted={job.name for job in jobs})
            except OscarError as exc:
                if transient(exc):
                    raise  # the cluster is away: the loop backs off and tries again
                self._give_up(jobs, exc)
                changes += len(jobs)
                continue
            pages += walk.pages
            changes += self._apply(jobs, walk.listing)
        self.polls += 1
        self.pages_read += pages
        return changes, pages

    def _apply(self, jobs: list[Job], listing: dict[str, JobInfo]) -> int:
        changes = 0
        now = time.time()
        for job in jobs:
            info = listing.get(job.name)
            state = listed_state(info, missing_for=now - job.submitted_at, lost_after=self.lost_after)
            if state is None:
                continue  # not listed yet
            if state != job.state or (info is not None and info != job.info):
                changes += 1
            if info is not None:
                job.info = dict(info)
            if state.terminal:
                self._finish(job, state, info or {})
            else:
                job.state = state
        return changes

    def _give_up(self, jobs: list[Job], error: OscarError) -> None:
        """Stop tracking ``jobs``: their futures raise ``error`` (the jobs may still run on the cluster)."""
        log.error("cannot follow %d job(s) of service %r any more: %s", len(jobs), jobs[0].service, error)
        for job in jobs:
            job.error = error
            self.untrack(job)
            if not job.future.done():
                job.future.set_exception(error)

    def _finish(self, job: Job, state: JobState, info: dict[str, Any]) -> None:
        job.state = state
        job.info = dict(info)
        self.untrack(job)
        if not job.future.done():
            job.future.set_result(job)

    def _loop(self) -> None:
        delay = self.interval
        failing: Iterator[float] | None = None  # the waits while the cluster cannot be listed
        while not self._stop.is_set():
            if not self.pending():
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                with self._lock:
                    if not self._jobs:
                        self._thread = None
                        return
                continue
            try:
                changes, pages = self.poll_once()
                self._error, failing = None, None
                # Back off while nothing changes; keep the request rate near <= 3 pages/second.
                delay = self.interval if changes else min(delay * 1.5, self.max_interval)
                delay = max(delay, pages * 0.3)
            except OscarError as exc:  # the cluster is away (each listing already retried): keep trying
                self._error = exc
                failing = failing or self.error_backoff.delays()
                delay = next(failing, self.error_backoff.cap)
                log.warning("polling jobs failed (%s); trying again in %.0f s", exc, delay)
            self._wake.wait(timeout=delay)
            self._wake.clear()

    # -- waiting -------------------------------------------------------------------------------------
    def as_completed(self, jobs: Iterable[Job], timeout: float | None = None) -> Iterator[Job]:
        """Yield jobs as they reach a terminal state.

        Raises:
            JobTimeout: ``timeout`` seconds passed first (the jobs keep running).
        """
        todo = {}
        for job in jobs:
            if not job.done:
                self.track(job)
            elif not job.future.done():
                job.future.set_result(job)
            todo[job.future] = job
        deadline = None if timeout is None else time.monotonic() + timeout
        while todo:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            done, _ = futures_wait(list(todo), timeout=left, return_when=FIRST_COMPLETED)
            if not done:
                names = ", ".join(sorted(j.name for j in todo.values())[:5])
                raise JobTimeout(f"{len(todo)} job(s) not finished after {timeout} s ({names}...): they keep "
                                 "running; wait again, or cancel them (oscar-plugins job --cancel)")
            for fut in done:
                yield todo.pop(fut)

    def wait(self, jobs: Iterable[Job], timeout: float | None = None) -> list[Job]:
        """Block until every job is terminal; returns them in the order given."""
        jobs = list(jobs)
        for _ in self.as_completed(jobs, timeout=timeout):
            pass
        return jobs
