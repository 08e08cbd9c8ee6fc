"""The executor: local jobs as cwltool runs them, offloaded jobs up to an in-flight limit, no thread each.

Local jobs (ExpressionTools, workflow steps' bookkeeping, CommandLineTools kept local) go through
cwltool's ``MultithreadedJobExecutor`` machinery: one at a time by default (like cwltool's default
single-threaded executor), in parallel with local cores/RAM accounting under ``--parallel``.

Offloaded jobs never count against the local machine's cores and RAM. They run on the core's batch
engine (``oscar_plugins.Batch``, as ``Dispatcher.map`` does): up to ``max_in_flight`` of them on the
cluster at once, each staged and submitted by a small pool, then waiting without a thread (the core's
single poller completes its future) until a small pool collects its results.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import shutil
import threading
import time
from collections import deque
from concurrent.futures import InvalidStateError, ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

from cwl_utils.types import CWLObjectType
from cwltool.context import RuntimeContext
from cwltool.errors import WorkflowException
from cwltool.executors import TMPDIR_LOCK, MultithreadedJobExecutor
from cwltool.job import JobBase
from cwltool.process import Process
from cwltool.task_queue import TaskQueue
from cwltool.utils import JobsType
from cwltool.workflow import Workflow

from oscar_plugins import AGAIN, Batch, Job, JobFailed, JobResult, JobState, OscarError

from .job import OscarCommandLineJob, Prepared, Submitted
from .plan import BATCH_MEMBER, render_batch_script
from .runner import FETCH_UNAVAILABLE, RunnerSpec, format_cpu, format_memory
from .staging import unpack_batch
from .timeline import StepTimeline
from .tool import offloaded_tools

__all__ = ["OscarExecutor"]

_logger = logging.getLogger("cwltool")
_NOT_STARTED = (JobState.PENDING, JobState.SUSPENDED, JobState.UNKNOWN)


def member_failure(folder: Path, job: Job, index: int) -> JobFailed | None:
    """Why command ``index`` of a batch job left no results: its runner's exit code and message, or None
    when it did leave them."""
    if (folder / "result.tar").is_file():
        return None
    code_file, log_file = folder / "runner-exit", folder / "runner.log"
    code = int(code_file.read_text().strip()) if code_file.is_file() else None
    message = log_file.read_text(errors="replace").strip()[-2000:] if log_file.is_file() else ""
    return JobFailed(f"command {index + 1} of batch job {job.name} could not run"
                     + (f" (runner exit code {code})" if code is not None else "")
                     + (f": {message}" if message else ": it left no results"),
                     service=job.service, job=job.name, exit_code=code)


class OscarExecutor(MultithreadedJobExecutor):
    """Runs offloaded jobs on OSCAR and the rest locally.

    Args:
        max_in_flight: offloaded jobs submitted and not yet collected, at most (an I/O knob).
        parallel: run local jobs in parallel (cwltool's ``--parallel``).
        parallel_max: cwltool's ``--parallel-max`` (local jobs only).
        io_workers: threads that stage/submit, and threads that collect (each pool).
        start_timeout: seconds an offloaded job may stay Pending before it is cancelled and failed
            (0: wait for ever; a job whose image cannot be pulled stays Pending on OSCAR).
    """

    def __init__(self, max_in_flight: int = 64, *, parallel: bool = False, parallel_max: int = 0,
                 io_workers: int = 8, start_timeout: float = 0) -> None:
        super().__init__(max_parallel=parallel_max)
        self.max_in_flight = max(1, max_in_flight)
        self.parallel = parallel
        self.io_workers = max(1, io_workers)
        self._waiting: deque[tuple[OscarCommandLineJob, RuntimeContext]] = deque()
        self._remote = 0
        self.start_timeout = start_timeout
        self._active: dict[int, Submitted] = {}
        self._batch: Batch | None = None
        #: ``--timeline``: the run's steps, drawn when the run ends.
        self.timeline: StepTimeline | None = None

    # -- the loop ----------------------------------------------------------------------------------
    def run_jobs(self, process: Process, job_order_object: CWLObjectType, logger: logging.Logger,
                 runtime_context: RuntimeContext) -> None:
        local_threads = math.ceil(self.max_cores) if self.parallel else 1
        self.taskqueue = TaskQueue(threading.Lock(), local_threads)
        self._batch = Batch(max_in_flight=self.max_in_flight, cancel=self._cancel, workers=self.io_workers,
                            name="oscar-cwl")
        lock = runtime_context.workflow_eval_lock
        if lock is None:
            raise WorkflowException("runtimeContext.workflow_eval_lock must not be None")
        try:
            self._init_provenance(process, runtime_context)
            self._deploy_runners(process, runtime_context)
            jobiter = process.job(job_order_object, self.output_callback, runtime_context)
            with lock:
                for job in jobiter:
                    if job is not None:
                        ctx = self._provenance(process, job, job_order_object, runtime_context)
                        if runtime_context.validate_only:
                            self._print_valid(job, runtime_context)
                            return
                        self._dispatch(job, ctx)
                        self._launch(flush=False)  # batches fill while the workflow yields runnable jobs
                        continue
                    self._launch()
                    if self._busy():
                        self.wait_for_next_completion(runtime_context)
                        self._expire_pending()
                        if self.parallel:
                            self.run_job(None, runtime_context)
                    else:
                        logger.error("Workflow cannot make any more progress.")
                        break
                    self._launch()
                self._launch()
                while self._busy():
                    self.wait_for_next_completion(runtime_context)
                    self._expire_pending()
                    self._launch()
                    if self.parallel:
                        self.run_job(None, runtime_context)
        finally:
            self._batch.close()
            self.taskqueue.drain()
            self.taskqueue.join()
            if self.timeline is not None:
                self.timeline.write()
            self._write_records(runtime_context)

    def _deploy_runners(self, process: Process, runtime_context: RuntimeContext) -> None:
        """Deploy the runner services the workflow's tools need before its first job.

        Creating an OSCAR service restarts the cluster's MinIO (``create.go`` registerMinIOWebhook ->
        ``utils/minio.go`` RestartServer, then a 6 s wait), cutting every transfer in flight: done up front, it
        never interrupts a running scatter. Tools whose resources come from expressions get theirs when
        their first job is known.
        """
        settings = getattr(runtime_context, "oscar", None)
        if settings is None or settings.sessions is None or runtime_context.validate_only:
            return
        specs: dict[str, tuple[str | None, RunnerSpec]] = {}
        for tool in offloaded_tools(process):
            resources = tool.static_resources()
            if resources is None:
                continue
            try:
                image = tool.image()
            except WorkflowException:
                continue
            target = tool.target
            cpu, memory = target.cpu or format_cpu(resources[0]), target.memory or format_memory(resources[1])
            spec = RunnerSpec(image, cpu, memory, target.gpu, target.interlink_node)
            specs[f"{target.cluster}/{spec.name}"] = (target.cluster, spec)
        if not specs:
            return
        with ThreadPoolExecutor(min(8, len(specs)), thread_name_prefix="oscar-cwl-deploy") as pool:
            futures = [pool.submit(lambda c, s: settings.sessions.get(c).runner(s), cluster, spec)
                       for cluster, spec in specs.values()]
            ready = 0
            for future in futures:
                try:
                    future.result()
                    ready += 1
                except Exception as exc:  # the first job of that tool reports it, as a failed submission
                    _logger.debug("deploying a runner service ahead failed: %s", exc)
        _logger.info("%d runner service(s) ready before the first job", ready)

    def _busy(self) -> bool:
        return bool(self.taskqueue.in_flight > 0 or self._remote > 0 or self._waiting or self.pending_jobs)

    def _dispatch(self, job: JobsType, ctx: RuntimeContext) -> None:
        if isinstance(job, JobBase):
            job.builder = ctx.builder or job.builder
            if job.outdir:
                self.output_dirs.add(job.outdir)
        if isinstance(job, OscarCommandLineJob):
            self._waiting.append((job, ctx))
        elif self.parallel:
            self.run_job(job, ctx)  # cwltool's greedy local resource accounting
        else:
            if isinstance(job, JobBase):  # keep _runner's release of resources balanced
                self.allocated_ram += job.builder.resources["ram"]
                self.allocated_cores += job.builder.resources["cores"]
            self.taskqueue.add(functools.partial(self._runner, job, ctx, TMPDIR_LOCK), ctx.workflow_eval_lock)

    # -- offloaded jobs ----------------------------------------------------------------------------
    def _launch(self, flush: bool = True) -> None:
        """Hand waiting offloaded jobs to the core's batch engine while it has room (lock held).

        Jobs of tools with ``batch`` > 1 go in groups of up to ``batch`` with the same runner service, one
        OSCAR job per group. With ``flush`` False (the workflow is still yielding runnable jobs) only full
        groups go; with ``flush`` True, whatever is waiting.
        """
        assert self._batch is not None  # set in run_jobs
        while self._waiting:
            job, ctx = self._waiting[0]
            size = job.target.batch
            if size <= 1:
                if not self._batch.add(*self._item(job, ctx), block=False):
                    return  # max_in_flight jobs are out: the next one goes when one ends
                self._waiting.popleft()
                self._remote += 1
                continue
            key = self._group_key(job)
            group = [(j, c) for j, c in self._waiting if j.target.batch == size and self._group_key(j) == key][:size]
            if len(group) < size and not flush:
                # not full yet: let single jobs and other groups behind it go, keep this group waiting
                rest = [item for item in self._waiting if item[0].target.batch <= 1]
                if not rest:
                    return
                job, ctx = rest[0]
                if not self._batch.add(*self._item(job, ctx), block=False):
                    return
                self._waiting.remove(rest[0])
                self._remote += 1
                continue
            if not self._batch.add(*self._group_item(group), block=False):
                return
            for member in group:
                self._waiting.remove(member)
            self._remote += len(group)

    @staticmethod
    def _group_key(job: OscarCommandLineJob) -> tuple[Any, ...]:
        """Jobs that may share an OSCAR job: same cluster and runner service (image and resources)."""
        try:
            spec = job.runner_spec()
        except (KeyError, TypeError, ValueError):
            return (id(job),)  # resources not known: alone
        return (job.target.cluster, spec)

    def _group_item(self, group: list[tuple[OscarCommandLineJob, RuntimeContext]]) -> tuple[Any, Any, Any]:
        """Several offloaded jobs as ONE batch item (one OSCAR job running their commands one after the other):
        start prepares each and submits one job, finish collects once and judges each command from its own
        results, done tells the workflow loop once per job."""
        lock = cast(threading.Condition, group[0][1].workflow_eval_lock)
        members: list[tuple[OscarCommandLineJob, RuntimeContext, Submitted]] = []
        owed = [len(group)]  # jobs the workflow loop has not been told about yet

        def told(n: int = 1) -> None:
            for _ in range(n):
                owed[0] -= 1
                self._done(group[0][1])

        def start() -> Job | None:
            members.clear()
            ready: list[tuple[OscarCommandLineJob, RuntimeContext, Prepared]] = []
            for job, ctx in group:
                prepared = job.prepare(ctx, TMPDIR_LOCK)
                if prepared is None:
                    told()  # it reported itself
                else:
                    ready.append((job, ctx, prepared))
            if not ready:
                return None
            first = ready[0][2]
            try:
                batch_job = first.session.submit(first.service, render_batch_script([p.script for _, _, p in ready]))
            except (OscarError, OSError, ValueError) as exc:
                for job, ctx, _ in ready:
                    job.not_submitted(ctx, exc)
                told(len(ready))
                return None
            for i, (job, ctx, prepared) in enumerate(ready):
                note = f" (command {i + 1} of {len(ready)} in one job)"
                members.append((job, ctx, job.submitted(ctx, prepared, batch_job, note)))
            with lock:
                self._active[id(members[0][2])] = members[0][2]
            return batch_job

        def finish(batch_job: Job) -> Any:
            lead = members[0][2]
            with lock:
                self._active.pop(id(lead), None)
            expired = lead.expired
            work = Path(group[0][1].create_tmpdir())
            collected: JobResult | None = None
            try:
                failure: BaseException | None = None
                try:
                    collected = lead.session.collect(batch_job, work) if expired is None else None
                    unpack_batch(work)
                except (OscarError, OSError, ValueError) as exc:
                    failure = exc
                if isinstance(failure, JobFailed) and failure.exit_code == FETCH_UNAVAILABLE and lead.fetch:
                    members[0][0].cannot_fetch(lead)
                    for job, _, submitted in members:
                        job.sessions.finished(submitted.session, batch_job)
                    return AGAIN  # every command again, each with its inputs inside
                for i, (job, ctx, submitted) in enumerate(members):
                    submitted.expired = expired
                    folder = work / BATCH_MEMBER.format(i)
                    job.conclude(ctx, submitted, folder, failure or member_failure(folder, batch_job, i))
                    if self.timeline is not None:
                        self.timeline.offloaded(str(job.name), submitted, job.outdir)
                    told()
            finally:
                lead.session.cleanup(lead.service, batch_job, collected.objects if collected is not None else None)
                shutil.rmtree(work, ignore_errors=True)
            return None

        def done(_result: Any, error: BaseException | None) -> None:
            if owed[0] <= 0:
                return
            if error is not None:
                with lock:
                    self.exceptions.append(error if isinstance(error, WorkflowException)
                                           else WorkflowException(str(error)))
            told(owed[0])

        return start, finish, done

    def _item(self, job: OscarCommandLineJob, ctx: RuntimeContext) -> tuple[Any, Any, Any]:
        """One offloaded job as a batch item: start stages and submits it, finish collects it (or asks for
        it to be submitted again), done tells the workflow loop."""
        lock = cast(threading.Condition, ctx.workflow_eval_lock)
        current: list[Submitted] = []

        def start() -> Job | None:
            submitted = job.start(ctx, TMPDIR_LOCK)
            if submitted is None:
                return None  # it failed before submitting, and reported itself
            current[:] = [submitted]
            with lock:
                self._active[id(submitted)] = submitted
            return submitted.job

        def finish(_job: Job) -> Any:
            submitted = current[0]
            with lock:
                self._active.pop(id(submitted), None)
            again = job.finish(ctx, submitted)
            if self.timeline is not None:
                self.timeline.offloaded(str(job.name), submitted, job.outdir)
            return AGAIN if again else None  # AGAIN: see OscarCommandLineJob.finish

        def done(_result: Any, error: BaseException | None) -> None:
            if error is not None:
                self._failed(error, ctx)
            else:
                self._done(ctx)

        return start, finish, done

    def _runner(self, job: JobsType, runtime_context: RuntimeContext, tmpdir_lock: threading.Lock) -> None:
        """cwltool's local run of a job, timed for ``--timeline``."""
        began = time.time()
        try:
            super()._runner(job, runtime_context, tmpdir_lock)
        finally:
            if self.timeline is not None:
                self.timeline.local(job, began, time.time())

    def _cancel(self, jobs: list[Job]) -> None:
        """Cancel jobs of the batch on their clusters (the batch engine's cancel-all)."""
        wanted = {id(j) for j in jobs}
        for submitted in list(self._active.values()):
            if id(submitted.job) in wanted:
                submitted.session.cancel([submitted.job])

    def _expire_pending(self) -> None:
        """Cancel offloaded jobs that have not started within ``start_timeout`` (lock held)."""
        if self.start_timeout <= 0:
            return
        now = time.time()
        for submitted in list(self._active.values()):
            job = submitted.job
            if job.state in _NOT_STARTED and now - job.submitted_at > self.start_timeout and not job.future.done():
                submitted.expired = self.start_timeout
                self._active.pop(id(submitted), None)
                submitted.session.cancel([job])
                with contextlib.suppress(InvalidStateError):  # the poller may have just finished it
                    job.future.set_result(job)  # hands it to _finish, which reports the failure

    def _failed(self, exc: BaseException, ctx: RuntimeContext) -> None:
        _logger.error("Got workflow error: %s", exc, exc_info=ctx.debug)
        err = exc if isinstance(exc, WorkflowException) else WorkflowException(str(exc))
        with cast(threading.Condition, ctx.workflow_eval_lock):
            self.exceptions.append(err)
        self._done(ctx)

    def _done(self, ctx: RuntimeContext) -> None:
        with cast(threading.Condition, ctx.workflow_eval_lock):
            self._remote -= 1
            cast(threading.Condition, ctx.workflow_eval_lock).notify_all()

    @staticmethod
    def _write_records(runtime_context: RuntimeContext) -> None:
        """``--provenance``: the offloaded steps' records go into the research object, still open here (cwltool
        finalizes the PROV document and closes the research object after ``run_jobs``)."""
        settings = getattr(runtime_context, "oscar", None)
        if settings is None or runtime_context.research_obj is None:
            return
        try:
            count = settings.records.write(runtime_context.research_obj)
        except (OSError, ValueError) as exc:  # a record lost must not hide the run's own outcome
            _logger.error("could not write the OSCAR records into the provenance research object: %s", exc)
            return
        if count:
            _logger.info("[provenance] recorded where %d offloaded step(s) ran (metadata/oscar/)", count)

    # -- what SingleJobExecutor does per job and MultithreadedJobExecutor does not ----------------
    def _init_provenance(self, process: Process, runtime_context: RuntimeContext) -> None:
        if isinstance(process, Workflow) or runtime_context.research_obj is None:
            return
        process.provenance_object = runtime_context.research_obj.initialize_provenance(
            full_name=runtime_context.cwl_full_name, host_provenance=runtime_context.prov_host,
            user_provenance=runtime_context.prov_user, orcid=runtime_context.orcid,
            run_uuid=runtime_context.research_obj.ro_uuid, fsaccess=runtime_context.make_fs_access(""))
        process.parent_wf = process.provenance_object

    def _provenance(self, process: Process, job: JobsType, job_order_object: CWLObjectType,
                    runtime_context: RuntimeContext) -> RuntimeContext:
        if runtime_context.research_obj is None:
            return runtime_context
        prov_obj = process.provenance_object if not isinstance(process, Workflow) else getattr(job, "prov_obj", None)
        if not prov_obj:
            return runtime_context
        ctx = runtime_context.copy()
        ctx.prov_obj = prov_obj
        prov_obj.fsaccess = runtime_context.make_fs_access("")
        prov_obj.evaluate(process, job, job_order_object, runtime_context.research_obj)
        ctx.process_run_id = prov_obj.record_process_start(process, job)
        return ctx

    @staticmethod
    def _print_valid(job: JobsType, runtime_context: RuntimeContext) -> None:
        from cwltool.workflow_job import WorkflowJob

        name = job.tool.lc.filename if isinstance(job, WorkflowJob) else getattr(job, "name", str(job))
        print(f"{name} is valid CWL. No errors detected in the inputs.", file=runtime_context.validate_stdout)
