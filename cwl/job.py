"""The job class: one CWL CommandLineTool job run on an OSCAR runner service.

``run()`` is the synchronous path cwltool's own executors use (stage, submit, wait, collect). The
:class:`~oscar_plugins.cwl.executor.OscarExecutor` uses the two halves instead, so that no thread
waits per job: :meth:`OscarCommandLineJob.start` in a small submit pool, and
:meth:`OscarCommandLineJob.finish` when the core's single poller completes the job's future.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import shlex
import shutil
import sys
import threading
import time
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from cwl_utils.types import CWLObjectType, CWLOutputType
from cwltool.context import RuntimeContext
from cwltool.errors import UnsupportedRequirement, WorkflowException
from cwltool.job import JobBase, relink_initialworkdir
from cwltool.utils import bytes2str_in_dicts

from oscar_plugins import JobFailed, JobResult, OscarError

from .pathmapper import S3_SCHEME
from .plan import JobPlan, Layout, Placement, build_placements, render_job_script
from .provenance import OffloadRecord, activity_label, input_hashes, tree_hashes
from .runner import FETCH_UNAVAILABLE, RunnerSpec, format_cpu, format_memory
from .staging import copy_back, fix_symlinks, resolve_sources, unpack_result

if TYPE_CHECKING:
    from oscar_plugins import Job, Service

    from .session import ClusterSession, Sessions

__all__ = ["OffloadTarget", "OscarCommandLineJob", "Prepared", "Submitted", "process_status"]

_logger = logging.getLogger("cwltool")


@dataclass(frozen=True)
class OffloadTarget:
    """Where a tool's jobs run: a cluster (None: the default) and the runner's resources.

    ``cpu``/``memory`` None means "from ResourceRequirement" (CWL's defaults when absent).
    """

    cluster: str | None
    image: str
    cpu: str | None = None
    memory: str | None = None
    gpu: bool = False
    interlink_node: str | None = None
    #: jobs of this tool run in one OSCAR job, at most (1: each its own)
    batch: int = 1


@dataclass(frozen=True)
class Prepared:
    """A job ready to submit: where, its plan and the job script the runner sources."""

    session: ClusterSession
    service: Service
    plan: JobPlan
    script: str
    fetch: bool
    inputs: list[dict[str, Any]] | None


@dataclass
class Submitted:
    """A job on its way: what :meth:`OscarCommandLineJob.finish` needs."""

    session: ClusterSession
    service: Service
    job: Job
    plan: JobPlan
    #: Set when the job did not start in time and was cancelled (see ``--oscar-start-timeout``).
    expired: float | None = None
    #: Whether inputs over the inline limits were left for the pod to download.
    fetch: bool = True
    #: With ``--provenance``: what the staged inputs held (see :func:`~oscar_plugins.cwl.provenance.input_hashes`).
    inputs: list[dict[str, Any]] | None = None


def process_status(rc: int, success: Iterable[int], temporary: Iterable[int], permanent: Iterable[int]) -> str:
    """cwltool's verdict on an exit code (``JobBase._execute``)."""
    if rc in success:
        return "success"
    if rc in temporary:
        return "temporaryFail"
    if rc in permanent:
        return "permanentFail"
    return "success" if rc == 0 else "permanentFail"


class OscarCommandLineJob(JobBase):
    """Runs on OSCAR with container semantics: ``builder.outdir`` etc. are paths in the pod.

    ``self.outdir``/``self.tmpdir``/``self.stagedir`` are local directories (cwltool's container
    convention): the output directory is unpacked into ``self.outdir`` and collected from there.
    The tool sets :attr:`target` and :attr:`sessions` after construction.
    """

    target: OffloadTarget
    sessions: Sessions

    def _required_env(self) -> dict[str, str]:
        return {"HOME": self.builder.outdir, "TMPDIR": self.builder.tmpdir}

    # -- synchronous path ------------------------------------------------------------------------
    def run(self, runtimeContext: RuntimeContext, tmpdir_lock: threading.Lock | None = None) -> None:
        submitted = self.start(runtimeContext, tmpdir_lock)
        while submitted is not None:
            submitted.job.future.result()
            if not self.finish(runtimeContext, submitted):
                return
            submitted = self.start(runtimeContext, tmpdir_lock)

    # -- first half: prepare and submit ----------------------------------------------------------
    def runner_spec(self) -> RunnerSpec:
        """The runner service for this job: the hint's cpu/memory, else the evaluated ResourceRequirement."""
        res = self.builder.resources
        gpu = self.target.gpu or bool(res.get("cudaDeviceCount"))
        return RunnerSpec(self.target.image, self.target.cpu or format_cpu(float(res["cores"])),
                          self.target.memory or format_memory(float(res["ram"])), gpu, self.target.interlink_node)

    def start(self, runtimeContext: RuntimeContext, tmpdir_lock: threading.Lock | None = None) -> Submitted | None:
        """Stage the inputs and submit; on failure the job is reported (permanentFail) and None returned."""
        prepared = self.prepare(runtimeContext, tmpdir_lock)
        if prepared is None:
            return None
        try:
            job = prepared.session.submit(prepared.service, prepared.script)
        except (OscarError, OSError, ValueError) as exc:
            self.not_submitted(runtimeContext, exc)
            return None
        return self.submitted(runtimeContext, prepared, job)

    def prepare(self, runtimeContext: RuntimeContext, tmpdir_lock: threading.Lock | None = None) -> Prepared | None:
        """Everything before the submit: stage the inputs and write the job script. On failure the job is
        reported (permanentFail) and None returned."""
        try:
            if tmpdir_lock:
                with tmpdir_lock:
                    os.makedirs(self.tmpdir, exist_ok=True)
            else:
                os.makedirs(self.tmpdir, exist_ok=True)
            self._prepare(runtimeContext)
            plan = self.plan(runtimeContext)
            session = self.sessions.get(self.target.cluster)
            entrypoint = session.entrypoint(self.target.image)
            if entrypoint:
                _logger.info("[job %s] the image's ENTRYPOINT goes in front of the command: %s", self.name,
                             shlex.join(entrypoint))
                plan = dataclasses.replace(plan, argv=[*entrypoint, *plan.argv])
            service = session.runner(self.runner_spec())
            work = Path(self.tmpdir) / ".oscar-cwl"
            fetch = session.can_fetch(self.target.image)
            refs = resolve_sources(plan.sources, work, lambda path: session.stage(service, path), session.presign,
                                   fetch=fetch)
            script = render_job_script(plan, refs)
            shutil.rmtree(work, ignore_errors=True)
        except UnsupportedRequirement:
            raise
        except (OscarError, WorkflowException, OSError, ValueError) as exc:
            self.not_submitted(runtimeContext, exc)
            return None
        return Prepared(session, service, plan, script, fetch, self._input_hashes(runtimeContext, plan))

    def not_submitted(self, runtimeContext: RuntimeContext, exc: BaseException) -> None:
        """Report a job that could not be prepared or submitted (permanentFail)."""
        _logger.error("[job %s] could not be submitted to OSCAR: %s", self.name, exc, exc_info=runtimeContext.debug)
        self._report({}, "permanentFail", runtimeContext)

    def submitted(self, runtimeContext: RuntimeContext, prepared: Prepared, job: Job, batch: str = "") -> Submitted:
        """Record that the job is on the cluster (alone, or as one command of a batch job)."""
        session, service = prepared.session, prepared.service
        self.sessions.started(session, job)
        if runtimeContext.research_obj is not None and runtimeContext.prov_obj is not None and \
                runtimeContext.process_run_id is not None:
            runtimeContext.prov_obj.used_artefacts(self.joborder, runtimeContext.process_run_id, str(self.name))
        _logger.info("[job %s] submitted to OSCAR cluster %r as %s/%s%s", self.name, session.name, service.name,
                     job.name, batch)
        return Submitted(session, service, job, prepared.plan, fetch=prepared.fetch, inputs=prepared.inputs)

    def _prepare(self, runtimeContext: RuntimeContext) -> None:
        """``JobBase._setup`` without its local GPU check (the GPU is the cluster's)."""
        os.makedirs(self.outdir, exist_ok=True)
        for knownfile in self.pathmapper.files():
            p = self.pathmapper.mapper(knownfile)
            remote = p.resolved.startswith(S3_SCHEME)
            if p.type == "File" and p.staged and not remote and not os.path.isfile(p.resolved):
                raise WorkflowException(f"Input file {knownfile} (at {p.resolved}) not found or is not a regular file.")
        if "listing" in self.generatefiles:
            ctx = runtimeContext.copy()
            ctx.outdir = self.outdir
            self.generatemapper = self.make_path_mapper(self.generatefiles["listing"], self.builder.outdir, ctx, False)
        self.base_path_logs = runtimeContext.set_log_dir(self.outdir, runtimeContext.log_dir, self.name)

    def plan(self, runtimeContext: RuntimeContext) -> JobPlan:
        """The pure job description, with secrets filled in (they travel only in the job body)."""
        if self.mpi_procs:
            raise UnsupportedRequirement("MPIRequirement is not supported on OSCAR")
        mappers = [self.pathmapper.items()]
        if self.generatemapper is not None:
            mappers.append(self.generatemapper.items())
        sources, placements = build_placements(mappers, self.builder.outdir, inplace_update=self.inplace_update)
        commands = [str(x) for x in self.command_line]
        shown = list(commands)  # for the log: secrets stay placeholders there, as in cwltool's own log
        if not commands:
            raise WorkflowException(
                "Cannot run a CommandLineTool that produces an empty command line. Specify a 'baseCommand', "
                "'arguments', and/or an input with an 'inputBinding' so there is a program to execute.")
        env: MutableMapping[str, str] = dict(self.environment)
        store = runtimeContext.secret_store
        if store is not None:
            commands = cast(list[str], store.retrieve(cast(CWLOutputType, commands)))
            env = cast(MutableMapping[str, str], store.retrieve(cast(CWLOutputType, env)))
            placements = [dataclasses.replace(p, text=cast(str, store.retrieve(p.text))) if p.text else p
                          for p in placements]
        stdin = None
        if self.stdin is not None:
            if self.pathmapper.reversemap(self.stdin) is None:
                raise WorkflowException(f"{self.stdin} missing from pathmapper")
            stdin = self.stdin
        outdir = self.builder.outdir
        _logger.info("[job %s] on OSCAR: %s$ %s%s%s%s", self.name, outdir, " \\\n    ".join(
            shlex.quote(a) for a in shown), f" < {stdin}" if stdin else "",
            f" > {outdir}/{self.stdout}" if self.stdout else "", f" 2> {outdir}/{self.stderr}" if self.stderr else "")
        return JobPlan(
            layout=Layout.of(outdir, self.builder.tmpdir, self.builder.stagedir), argv=commands, env=dict(env),
            sources=sources, placements=placements, stdin=stdin,
            stdout=f"{outdir}/{self.stdout}" if self.stdout else None,
            stderr=f"{outdir}/{self.stderr}" if self.stderr else None, timelimit=self.timelimit or 0)

    # -- second half: collect ----------------------------------------------------------------------
    def finish(self, runtimeContext: RuntimeContext, submitted: Submitted) -> bool:
        """Download and unpack the results, collect the CWL outputs, report them. Returns True instead when
        the job must be submitted again: its image could not download its inputs, which now travel inside
        the job."""
        work = Path(runtimeContext.create_tmpdir())
        collected: JobResult | None = None
        again = False
        try:
            try:
                collected = submitted.session.collect(submitted.job, work) if submitted.expired is None else None
                failure: BaseException | None = None
            except (OscarError, OSError, ValueError) as exc:
                failure = exc
            if isinstance(failure, JobFailed) and failure.exit_code == FETCH_UNAVAILABLE and submitted.fetch:
                self.cannot_fetch(submitted)
                again = True
                self.sessions.finished(submitted.session, submitted.job)
            else:
                self.conclude(runtimeContext, submitted, work, failure)
        finally:
            submitted.session.cleanup(submitted.service, submitted.job,
                                      collected.objects if collected is not None else None)
            shutil.rmtree(work, ignore_errors=True)
        return again

    def cannot_fetch(self, submitted: Submitted) -> None:
        submitted.session.cannot_fetch(self.target.image)
        _logger.info("[job %s] image %s has no curl, wget or python3 to download inputs: from now on its "
                     "jobs carry every input inside them; submitting this one again", self.name, self.target.image)

    def conclude(self, runtimeContext: RuntimeContext, submitted: Submitted, work: Path,
                 failure: BaseException | None) -> None:
        """Judge and report the job from its downloaded results in ``work`` (``result.tar``), or from
        ``failure``: why they could not be collected."""
        outputs: CWLObjectType = {}
        status = "permanentFail"
        rc: int | None = None
        collected_files: list[dict[str, Any]] = []
        try:
            if submitted.expired is not None:
                raise JobFailed(f"it did not start within {submitted.expired:g} s and was cancelled: check that its "
                                f"image {self.target.image!r} can be pulled and that the cluster has room for cpu "
                                f"{submitted.service.cpu} / memory {submitted.service.memory}",
                                service=submitted.service.name, job=submitted.job.name)
            if failure is not None:
                raise failure
            self._unpack(work, submitted.plan)
            meta = work / "meta"
            rc = int((meta / "exit-code").read_text().strip())
            self._echo_streams(meta)
            status = process_status(rc, self.successCodes, self.temporaryFailCodes, self.permanentFailCodes)
            if (meta / "timedout").exists():
                _logger.warning("[job %s] exceeded time limit of %s seconds and was terminated", self.name,
                                self.timelimit)
                status = "permanentFail"
            elif status != "success":
                _logger.warning("[job %s] exited with status: %d", self.name, rc)
            self._copy_logs()
            if submitted.inputs is not None:
                collected_files = tree_hashes(Path(self.outdir))
            outputs = bytes2str_in_dicts(self.collect_outputs(self.outdir, rc))  # type: ignore[assignment]
            self._drop_secret_files(runtimeContext)
        except JobFailed as exc:
            _logger.error("[job %s] OSCAR job %s failed: %s", self.name, submitted.job.name, exc)
            status = "permanentFail"
        except WorkflowException as exc:
            _logger.error("[job %s] Job error:\n%s", self.name, exc, exc_info=runtimeContext.debug)
            status = "permanentFail"
        except (OscarError, OSError, ValueError) as exc:
            _logger.error("[job %s] could not collect the results of OSCAR job %s: %s", self.name,
                          submitted.job.name, exc, exc_info=runtimeContext.debug)
            status = "permanentFail"
        finally:
            self.sessions.finished(submitted.session, submitted.job)
        self._record(runtimeContext, submitted, rc, status, collected_files)
        self._report(outputs, status, runtimeContext)  # downstream steps wait for it

    # -- --provenance ------------------------------------------------------------------------------
    def _input_hashes(self, runtimeContext: RuntimeContext, plan: JobPlan) -> list[dict[str, Any]] | None:
        """With ``--provenance``, what the job's staged inputs held; else None (nothing is hashed)."""
        if runtimeContext.research_obj is None or runtimeContext.prov_obj is None:
            return None
        try:
            return input_hashes(plan.sources)
        except OSError as exc:  # the job is on its way: its record says what could not be read
            _logger.warning("[job %s] could not hash its inputs for the provenance record: %s", self.name, exc)
            return [{"error": str(exc)}]

    def _record(self, runtimeContext: RuntimeContext, submitted: Submitted, rc: int | None, status: str,
                outputs: list[dict[str, Any]]) -> None:
        """With ``--provenance``, keep where the job ran and what came back (written into the research object
        when the workflow is done: :meth:`OffloadRecords.write`)."""
        settings = getattr(runtimeContext, "oscar", None)
        prov_obj, activity = runtimeContext.prov_obj, runtimeContext.process_run_id
        if submitted.inputs is None or settings is None or prov_obj is None or activity is None:
            return
        record = OffloadRecord.of(submitted, step=str(self.name), activity=activity,
                                  label=activity_label(prov_obj, activity), exit_code=rc, status=status,
                                  outputs=outputs, collected=time.time())
        settings.records.add(record, prov_obj)

    def _unpack(self, work: Path, plan: JobPlan) -> None:
        outdir = Path(self.outdir)
        unpack_result(work / "result.tar", outdir, work)
        fix_symlinks(outdir, plan.layout, plan.placements)
        if self.inplace_update:
            self._give_back(work, outdir, plan.placements)
        if self.generatemapper is not None:
            relink_initialworkdir(self.generatemapper, self.outdir, self.builder.outdir,
                                  inplace_update=self.inplace_update)

    def _give_back(self, work: Path, outdir: Path, placements: list[Placement]) -> None:
        """InplaceUpdateRequirement: the originals get what the job wrote into their copies."""
        for p in placements:
            if not (p.writable and p.local):
                continue
            if p.back is not None:
                copy_back(work / "back" / str(p.back), Path(p.local))
            elif p.target.startswith(self.builder.outdir + "/"):
                copy_back(outdir / p.target[len(self.builder.outdir) + 1:], Path(p.local))

    def _drop_secret_files(self, runtimeContext: RuntimeContext) -> None:
        """Like cwltool: InitialWorkDir files whose content holds a secret do not stay in the outdir."""
        store = runtimeContext.secret_store
        if self.generatemapper is None or store is None:
            return
        prefix = self.builder.outdir + "/"
        for _, ent in self.generatemapper.items():
            if ent.type == "CreateFile" and ent.target.startswith(prefix) and store.has_secret(ent.resolved):
                Path(self.outdir, ent.target[len(prefix):]).unlink(missing_ok=True)

    def _echo_streams(self, meta: Path) -> None:
        # Like cwltool, a tool's uncaptured stdout and stderr go to our stderr (never our stdout).
        for name in ("stdout.log", "stderr.log"):
            path = meta / name
            if path.is_file():
                sys.stderr.write(path.read_text(encoding="utf-8", errors="replace"))
                sys.stderr.flush()

    def _copy_logs(self) -> None:
        # --log-dir: cwltool writes captured streams there and copies them to the outdir; mirror it.
        if self.base_path_logs == self.outdir:
            return
        for name in (self.stdout, self.stderr):
            if name and os.path.isfile(os.path.join(self.outdir, name)):
                dest = os.path.join(self.base_path_logs, name)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                shutil.copy2(os.path.join(self.outdir, name), dest)

    def _report(self, outputs: CWLObjectType, status: str, runtimeContext: RuntimeContext) -> None:
        if status != "success":
            _logger.warning("[job %s] completed %s", self.name, status)
        else:
            _logger.info("[job %s] completed %s", self.name, status)
        if runtimeContext.research_obj is not None and self.prov_obj is not None and \
                runtimeContext.process_run_id is not None:
            self.prov_obj.record_process_end(str(self.name), runtimeContext.process_run_id, outputs,
                                             datetime.datetime.now())
        if runtimeContext.workflow_eval_lock is None:
            raise WorkflowException("runtimeContext.workflow_eval_lock must not be None")
        if self.output_callback:
            with runtimeContext.workflow_eval_lock:
                self.output_callback(outputs, status)
        if runtimeContext.rm_tmpdir:
            for directory in (self.stagedir, self.tmpdir):
                if directory and os.path.exists(directory):
                    shutil.rmtree(directory, True)
