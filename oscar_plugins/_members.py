"""``Dispatcher.map(..., batch=N)``: up to N specs in ONE OSCAR job, each reported as if it had been its own.

A *group* is one batch item of the engine (:class:`~oscar_plugins._batch.Batch`): the specs one job runs,
each as a *member* of the job (its number in the job's manifest, its folder ``member-<k>/``). The job's
one status file has a section per member, so the client splits it into one :class:`JobResult` a spec.

With a journal each spec is recorded as (job name, member) before the submit: a rerun skips the specs
already collected, reattaches the others to their job when it is still on the cluster and did not fail,
and submits the rest in new groups. ``retries`` resubmits, as a new (smaller) group, only the members
whose failure was not their script's (the job lost or Failed, no status for it); members collected or
failed by their script are done.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ._batch import AGAIN, Batch
from ._client import OscarClient, new_job_name
from ._exceptions import JobFailed, OscarError
from ._jobs import Job, JobState, JobTracker
from ._journal import Journal
from ._results import JobResult, JobSpec
from ._wrapper import member_folder

__all__ = ["MapOptions", "check_batch", "map_members"]

log = logging.getLogger("oscar_plugins")


def check_batch(batch: object) -> int:
    """``batch`` as given to ``map``: a whole number of specs a job, 1 or more.

    Raises:
        ValueError: anything else, with the fix.
    """
    if isinstance(batch, bool) or not isinstance(batch, int):
        raise ValueError(f"batch={batch!r} is not a whole number: pass how many specs one job runs, e.g. batch=8 "
                         "(batch=1, the default, runs one job per spec)")
    if batch < 1:
        raise ValueError(f"batch={batch} is too small: pass 1 (one job per spec) or more (specs per job)")
    return batch


class Dispatching(Protocol):
    """What a batched ``map`` uses of its ``Dispatcher`` (which imports this module, not the other way)."""

    client: OscarClient
    tracker: JobTracker
    workers: int

    def submit_batch(self, service: str, specs: Sequence[JobSpec], *, name: str | None = None) -> Job: ...

    def collect(self, job: Job, dest: Path, *, overwrite: bool = False) -> JobResult: ...

    def collect_members(self, job: Job, dests: dict[int, Path], *, overwrite: bool = False
                        ) -> dict[int, JobResult]: ...

    def cancel(self, jobs: Sequence[Job]) -> None: ...

    def _batch_key(self, service: str, specs: Sequence[JobSpec]) -> str: ...


@dataclass
class _Group:
    #: (member number in the job, spec index); member None: a job of its own (a journal from before batches).
    members: list[tuple[int | None, int]]
    #: A job already on the cluster to reattach to (a rerun), else None: submit a new one.
    name: str | None = None
    attempt: int = 0
    reported: set[int] = field(default_factory=set)


@dataclass
class MapOptions:
    """``Dispatcher.map``'s options a batched run uses."""

    size: int
    max_in_flight: int
    journal: Journal | None
    batch_key: str | None
    retries: int
    overwrite: bool
    progress: Callable[[int, int], None] | None
    folders: Sequence[str] | None
    on_result: Callable[[JobResult], None] | None


def map_members(d: Dispatching, service: str, specs: list[JobSpec], out_dir: Path,
                options: MapOptions) -> list[JobResult]:
    """The body of ``Dispatcher.map`` for ``batch=size`` > 1 (the service runs batches: checked)."""
    return _BatchedMap(d, service, specs, out_dir, options).run()


class _BatchedMap:
    """One batched ``map``: its groups on the batch engine, each member's result reported once."""

    def __init__(self, d: Dispatching, service: str, specs: list[JobSpec], out_dir: Path,
                 options: MapOptions) -> None:
        self.d, self.service, self.specs, self.out_dir, self.o = d, service, specs, out_dir, options
        self.entry = options.journal.batch(options.batch_key or d._batch_key(service, specs),
                                           d.client.profile.endpoint, service) if options.journal else None
        self.results: list[JobResult | None] = [None] * len(specs)
        for idx, outputs in (self.entry.collected() if self.entry else {}).items():
            if idx < len(specs):
                self.results[idx] = JobResult(idx, None, outputs=[Path(p) for p in outputs], exit_code=0)
        self.lock = threading.Lock()
        self.finished = sum(r is not None for r in self.results)

    def run(self) -> list[JobResult]:
        recorded = self.entry.members() if self.entry else {}
        on_cluster = self.d.client.list_jobs(self.service) if recorded else {}
        groups = _plan(self.results, recorded, on_cluster, self.o.size)
        for earlier in self.results:  # collected by an earlier run of this batch (the journal)
            if earlier is not None and self.o.on_result:
                self.o.on_result(earlier)
        if self.o.progress:
            self.o.progress(self.finished, len(self.specs))
        with Batch(max_in_flight=self.o.max_in_flight, cancel=self.d.cancel, workers=self.d.workers) as engine:
            for group in groups:
                engine.add(*self._item(group))
        final = [r for r in self.results if r is not None]
        if self.entry and all(r.ok for r in final):
            self.entry.complete()
        return final

    def _item(self, group: _Group) -> tuple[Callable[[], Job], Callable[[Job], Any], Callable[[Any, Any], None]]:
        return (lambda: self._start(group)), (lambda job: self._finish(group, job)), \
            (lambda r, e: self._done(group, r, e))

    def _report(self, group: _Group, result: JobResult) -> None:
        with self.lock:
            if result.index in group.reported:
                return
            group.reported.add(result.index)
            self.results[result.index] = result
            self.finished += 1
            finished = self.finished
        if self.o.on_result:
            self.o.on_result(result)
        if self.o.progress:
            self.o.progress(finished, len(self.specs))

    def _start(self, group: _Group) -> Job:
        if group.name is not None:
            return self.d.tracker.track(Job(self.service, group.name))  # reattach: it runs, or ran well
        name = new_job_name(self.service)
        self._record(group, name)  # write-ahead: a crash from here on finds the job by this name
        job = self.d.submit_batch(self.service, [self.specs[idx] for _, idx in group.members], name=name)
        if job.name != name:  # before v4.1 the server names the job itself
            self._record(group, job.name)
        return job

    def _record(self, group: _Group, name: str) -> None:
        for k, idx in group.members:
            if self.entry:
                self.entry.record(idx, name, k)

    def _collected(self, job: Job, group: _Group) -> dict[int | None, JobResult]:
        folders, out_dir = self.o.folders, self.out_dir
        if group.members[0][0] is None:  # a job of its own, submitted before batches
            idx = group.members[0][1]
            try:
                return {None: self.d.collect(job, out_dir / (folders[idx] if folders else job.name),
                                             overwrite=self.o.overwrite)}
            except JobFailed as exc:
                return {None: JobResult(idx, job, error=exc, exit_code=exc.exit_code)}
            except OscarError as exc:
                return {None: JobResult(idx, job, error=exc)}
        dests = {k: out_dir / (folders[idx] if folders else f"{job.name}/{member_folder(k)}")
                 for k, idx in group.members if k is not None}
        return {k: r for k, r in self.d.collect_members(job, dests, overwrite=self.o.overwrite).items()}

    def _finish(self, group: _Group, job: Job) -> Any:
        again = []
        got = self._collected(job, group)
        for k, idx in group.members:
            result = got[k]
            result.index = idx
            if result.error is None:
                if self.entry:
                    self.entry.mark_collected(idx, [str(p) for p in result.outputs])
                self._report(group, result)
            elif isinstance(result.error, JobFailed) and result.exit_code is None and group.attempt < self.o.retries:
                again.append(idx)
            else:
                if self.entry and isinstance(result.error, JobFailed):
                    self.entry.forget(idx)  # it failed for good: a rerun submits it again
                self._report(group, result)  # (any other error: not collected, the cluster away? a rerun reattaches)
        if not again:
            return None
        group.attempt += 1
        log.warning("job %s: %d batch member(s) failed without their script failing; submitting them again "
                    "(attempt %d)", job.name, len(again), group.attempt + 1)
        group.members, group.name = list(enumerate(again)), None
        return AGAIN

    def _done(self, group: _Group, result: Any, error: BaseException | None) -> None:
        if error is None:
            return
        for _, idx in group.members:  # the submit (or the collect) broke: each member not reported, so
            if idx not in group.reported:
                why = error if isinstance(error, OscarError) else OscarError(
                    f"spec {idx} failed unexpectedly: {error!r}")
                self._report(group, JobResult(idx, None, error=why))


def _plan(results: Sequence[JobResult | None], recorded: dict[int, tuple[str, int | None]],
          on_cluster: dict[str, dict[str, Any]], size: int) -> list[_Group]:
    """The groups to run: the specs not collected yet whose job is still on the cluster (and did not fail)
    reattach to it, one group a job; the others go in new groups of up to ``size``, in order."""
    by_job: dict[str, list[tuple[int | None, int]]] = {}
    fresh: list[int] = []
    for idx, result in enumerate(results):
        if result is not None:
            continue
        name, member = recorded.get(idx, ("", None))
        if name in on_cluster and JobState.parse(on_cluster[name].get("status")) != JobState.FAILED:
            by_job.setdefault(name, []).append((member, idx))
        else:
            if name:
                log.info("spec %d: its job %s of an earlier run failed or is gone: submitting it again", idx, name)
            fresh.append(idx)
    groups = []
    for name, members in by_job.items():
        if any(k is None for k, _ in members):  # jobs of their own (before batches): one group each
            groups += [_Group([m], name) for m in members]
        else:
            groups.append(_Group(members, name))
    groups += [_Group(list(enumerate(fresh[i:i + size]))) for i in range(0, len(fresh), size)]
    return groups
