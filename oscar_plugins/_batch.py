"""One engine for many jobs in flight, used by ``Dispatcher.map`` (the CLI, the library) and ``oscar-cwl``.

A *item* is one remote job: ``start()`` submits it and returns its :class:`~oscar_plugins.Job` (on a pool
of submit threads), the job's future fires when the cluster reports it ended (the client's one poller),
and ``finish(job)`` collects it (on a pool of collect threads). :class:`Batch` keeps at most
``max_in_flight`` items out, starts an item again when ``finish`` returns :data:`AGAIN` (a retry),
reports each item's end to its ``done`` callback, and on an error in the caller (Ctrl-C) or
:meth:`Batch.cancel_all` cancels every job still in flight. A new adapter (Snakemake, Nextflow) gives
it start/finish pairs and needs none of that logic again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any

from ._jobs import Job

__all__ = ["AGAIN", "Batch"]

log = logging.getLogger("oscar_plugins")

#: What ``finish`` returns to have its item started again (the slot stays taken).
AGAIN: Any = object()

Start = Callable[[], "Job | None"]
Finish = Callable[[Job], Any]
Done = Callable[[Any, "BaseException | None"], None]


class Batch:
    """Jobs in flight, one engine.

    Args:
        max_in_flight: items submitted and not yet finished, at most.
        cancel: deletes jobs on the cluster (``Dispatcher.cancel``); called with every job in flight when
            the batch is left on an exception or :meth:`cancel_all` is called.
        workers: threads that submit, and as many that collect.
        name: thread-name prefix.

    Example:
        >>> with Batch(max_in_flight=64, cancel=dispatcher.cancel) as batch:       # doctest: +SKIP
        ...     for spec in specs:
        ...         batch.add(lambda s=spec: dispatcher.submit(svc, s.inputs), collect, done=report)
        ... # leaving the block waits for every item
    """

    def __init__(self, *, max_in_flight: int, cancel: Callable[[list[Job]], None], workers: int = 8,
                 name: str = "oscar") -> None:
        self.max_in_flight = max(1, max_in_flight)
        self._cancel = cancel
        self._slots = threading.Semaphore(self.max_in_flight)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._outstanding = 0
        self._jobs: dict[int, Job] = {}  # id(item) -> its job while the cluster runs it
        self._closed = False
        self._submit = ThreadPoolExecutor(max(1, workers), thread_name_prefix=f"{name}-submit")
        self._collect = ThreadPoolExecutor(max(1, workers), thread_name_prefix=f"{name}-collect")

    # -- adding ------------------------------------------------------------------------------------
    def add(self, start: Start, finish: Finish, done: Done | None = None, *, block: bool = True) -> bool:
        """Queue an item. With ``block`` (the default) wait for a free slot (Ctrl-C still interrupts);
        without, return False at once when ``max_in_flight`` items are out.

        ``start()`` returns the submitted job, or None for an item that ended without one (it reported
        itself). ``finish(job)`` runs once the job ended; its return value (or exception) goes to
        ``done(result, error)``, unless it is :data:`AGAIN`.
        """
        if self._closed:
            raise RuntimeError("the batch is closed")
        if block:
            while not self._slots.acquire(timeout=0.5):
                pass
        elif not self._slots.acquire(blocking=False):
            return False
        with self._lock:
            if self._closed:
                self._slots.release()
                raise RuntimeError("the batch is closed")
            self._outstanding += 1
        item = _Item(start, finish, done)
        self._submit.submit(self._start, item)
        return True

    @property
    def outstanding(self) -> int:
        """Items added and not yet done."""
        with self._lock:
            return self._outstanding

    def in_flight(self) -> list[Job]:
        """The jobs submitted and not yet collected."""
        with self._lock:
            return list(self._jobs.values())

    # -- the item's life ---------------------------------------------------------------------------
    def _start(self, item: _Item) -> None:
        try:
            job = item.start()
        except BaseException as exc:
            self._end(item, None, exc)
            return
        if job is None:
            self._end(item, None, None)
            return
        with self._lock:
            self._jobs[id(item)] = job
        job.future.add_done_callback(lambda _f: self._hand_over(item, job))

    def _hand_over(self, item: _Item, job: Job) -> None:
        try:
            self._collect.submit(self._finish, item, job)
        except RuntimeError:  # the pools are shut down: the batch was left (interrupted)
            self._end(item, None, RuntimeError("the batch was closed before the job was collected"))

    def _finish(self, item: _Item, job: Job) -> None:
        with self._lock:
            self._jobs.pop(id(item), None)
        try:
            result = item.finish(job)
        except BaseException as exc:
            self._end(item, None, exc)
            return
        if result is AGAIN:
            self._submit.submit(self._start, item)  # the slot stays taken
            return
        self._end(item, result, None)

    def _end(self, item: _Item, result: Any, error: BaseException | None) -> None:
        try:
            if item.done is not None:
                item.done(result, error)
            elif error is not None:
                log.error("a batch item failed: %s", error)
        finally:
            with self._lock:
                self._outstanding -= 1
                self._idle.notify_all()
            self._slots.release()

    # -- ending ------------------------------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every item added is done; False if ``timeout`` passed first."""
        with self._lock:
            return self._idle.wait_for(lambda: self._outstanding == 0, timeout=timeout)

    def cancel_all(self) -> None:
        """Cancel every job in flight on the cluster (their items end when the poller sees them go)."""
        jobs = self.in_flight()
        if jobs:
            log.warning("cancelling %d job(s) in flight", len(jobs))
            self._cancel(jobs)

    def close(self) -> None:
        """Stop taking items and release the threads (items not done are abandoned)."""
        with self._lock:
            self._closed = True
        for pool in (self._submit, self._collect):
            pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        try:
            if kind is None:
                while not self.wait(timeout=0.5):  # in slices: Ctrl-C still interrupts
                    pass
            else:
                self.cancel_all()
        except BaseException:
            self.cancel_all()
            raise
        finally:
            self.close()


class _Item:
    __slots__ = ("done", "finish", "start")

    def __init__(self, start: Start, finish: Finish, done: Done | None) -> None:
        self.start, self.finish, self.done = start, finish, done
