"""The ``construct_tool_object`` factory and the CommandLineTool subclass for offloaded steps.

Which CommandLineTools run on OSCAR (:func:`offload_target`): ``--offload all`` takes every tool
unless its ``oscar:Offload`` hint says ``offload: false``; ``--offload hinted`` only tools carrying
the hint (on the tool, its step or an enclosing workflow); ``--offload none`` none. Everything else
(local tools, ExpressionTools, Workflows) is built by cwltool's own ``default_make_tool``.

An offloaded tool behaves like a containerised one: its builder sees pod paths (per-job
``/tmp/oscar-cwl/<uuid>/{out,tmp,stage}``) and a tool without ``DockerRequirement`` gets the
default image as a DockerRequirement *hint* (a requirement would change what the document allows).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Generator, Mapping, MutableSequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from cwl_utils.types import CWLDirectoryType, CWLFileType, CWLObjectType
from cwltool.builder import Builder
from cwltool.command_line_tool import CallbackJob, CommandLineTool, PathCheckingMode
from cwltool.context import LoadingContext, RuntimeContext
from cwltool.errors import UnsupportedRequirement, WorkflowException
from cwltool.job import JobBase
from cwltool.pathmapper import PathMapper
from cwltool.process import Process
from cwltool.utils import OutputCallbackType
from cwltool.workflow import default_make_tool
from ruamel.yaml.comments import CommentedMap
from schema_salad.exceptions import ValidationException

from oscar_plugins import OscarError

from .hints import OFFLOAD, HintError, parse_offload_hint
from .job import OffloadTarget, OscarCommandLineJob
from .pathmapper import OscarPathMapper
from .plan import REMOTE_BASE, Layout
from .provenance import OffloadRecords

if TYPE_CHECKING:
    from .session import ClusterSession, Sessions

__all__ = [
    "DEFAULT_IMAGE",
    "OFFLOAD_MODES",
    "OscarCommandLineTool",
    "OscarLoadingContext",
    "OscarRuntimeContext",
    "OscarSettings",
    "make_tool",
    "offload_target",
    "offloaded_tools",
]

#: Image for tools without DockerRequirement (has sh, tar, base64, bash and python3 to fetch inputs).
DEFAULT_IMAGE = "docker.io/library/python:3.12-slim"
OFFLOAD_MODES = ("all", "hinted", "none")
#: cwltool builds the cache key with a builder whose dirs are these; our pod dirs must then be fixed too.
_CACHE_DIRS = ("/out", "/tmp", "/stage")  # noqa: S108 - cwltool's placeholders, not real paths
_CACHE_LAYOUT = Layout.new("cache-key", REMOTE_BASE)


@dataclass
class OscarSettings:
    """The OSCAR options of a run (shared by the loading and runtime contexts)."""

    offload: str = "all"
    cluster: str | None = None
    default_image: str = DEFAULT_IMAGE
    #: ``--oscar-batch``: jobs of one tool per OSCAR job when its hint does not say (1: each its own)
    batch: int = 1
    sessions: Sessions | None = field(default=None, repr=False)
    #: With ``--provenance``: the records of offloaded steps, written into the research object at the end.
    records: OffloadRecords = field(default_factory=OffloadRecords, repr=False)


class OscarLoadingContext(LoadingContext):
    """cwltool's LoadingContext plus :class:`OscarSettings` (``construct_tool_object`` = :func:`make_tool`)."""

    def __init__(self, kwargs: dict[str, Any] | None = None) -> None:
        self.oscar: OscarSettings = OscarSettings()
        super().__init__(kwargs)
        self.construct_tool_object = make_tool


class OscarRuntimeContext(RuntimeContext):
    """cwltool's RuntimeContext plus :class:`OscarSettings`."""

    def __init__(self, kwargs: dict[str, Any] | None = None) -> None:
        self.oscar: OscarSettings = OscarSettings()
        super().__init__(kwargs)


def _lookup(doc: Mapping[str, Any], ctx: LoadingContext, cls: str) -> tuple[Mapping[str, Any] | None, bool]:
    """``Process.get_requirement`` before the Process exists: requirements (own, inherited), then hints."""
    for own, inherited, is_req in (("requirements", ctx.requirements, True), ("hints", ctx.hints, False)):
        for items in (doc.get(own) or [], inherited or []):
            for item in reversed(list(items)):
                if isinstance(item, Mapping) and item.get("class") == cls:
                    return item, is_req
    return None, False


def offload_target(doc: Mapping[str, Any], ctx: LoadingContext, settings: OscarSettings) -> OffloadTarget | None:
    """Where a CommandLineTool document runs: an :class:`OffloadTarget`, or None for the local machine.

    Raises:
        ValidationException: the ``oscar:Offload`` hint is malformed.
    """
    if settings.offload == "none":
        return None
    raw, _ = _lookup(doc, ctx, OFFLOAD)
    try:
        hint = parse_offload_hint(raw)
    except HintError as exc:
        raise ValidationException(f"{doc.get('id', 'tool')}: {exc}") from None
    if hint is None and settings.offload == "hinted":
        return None
    if hint is not None and not hint.offload:
        return None
    if hint is None:
        return OffloadTarget(settings.cluster, settings.default_image, batch=settings.batch)
    return OffloadTarget(hint.cluster or settings.cluster, settings.default_image, hint.cpu, hint.memory, hint.gpu,
                         hint.interlink_node, hint.batch or settings.batch)


def make_tool(toolpath_object: CommentedMap, loadingContext: LoadingContext) -> Process:
    """cwltool's ``construct_tool_object``: offloaded CommandLineTools get :class:`OscarCommandLineTool`."""
    settings = getattr(loadingContext, "oscar", None)
    if settings is not None and toolpath_object.get("class") == "CommandLineTool":
        target = offload_target(toolpath_object, loadingContext, settings)
        if target is not None:
            return OscarCommandLineTool(toolpath_object, loadingContext, target)
    return default_make_tool(toolpath_object, loadingContext)


class OscarCommandLineTool(CommandLineTool):
    """A CommandLineTool whose jobs are :class:`~oscar_plugins.cwl.job.OscarCommandLineJob`."""

    def __init__(self, toolpath_object: CommentedMap, loadingContext: LoadingContext, target: OffloadTarget) -> None:
        super().__init__(toolpath_object, loadingContext)
        self.target = target
        # cwltool's strict file-name check guards local command lines; in the pod every path is a quoted
        # argument of the job script (as in a container run), so names such as 'item #1.txt' are safe.
        self.path_check_mode = PathCheckingMode.RELAXED
        if self.get_requirement("DockerRequirement")[0] is None:
            self.hints.insert(0, {"class": "DockerRequirement", "dockerPull": target.image})

    def job(self, job_order: CWLObjectType, output_callbacks: OutputCallbackType,
            runtimeContext: RuntimeContext) -> Generator[JobBase | CallbackJob, None, None]:
        settings = cast(OscarSettings, getattr(runtimeContext, "oscar", None))
        if settings is None or settings.sessions is None:
            raise WorkflowException("OscarCommandLineTool needs an OscarRuntimeContext with sessions")
        target = dataclasses.replace(self.target, image=self.image(settings.sessions.get(self.target.cluster)))
        ctx = runtimeContext.copy()
        ctx.use_container = True  # the pod is the container, whatever --no-container says for local steps
        for job in super().job(job_order, output_callbacks, ctx):
            if isinstance(job, OscarCommandLineJob):
                job.target = target
                job.sessions = settings.sessions
            yield job

    def image(self, session: ClusterSession | None = None) -> str:
        """The image the job runs in: DockerRequirement's ``dockerPull`` (or ``dockerImageId``); one to
        build, load or import (``dockerFile``, ``dockerLoad``, ``dockerImport``) is made in the engine of
        a local cluster that runs jobs in images.

        Raises:
            UnsupportedRequirement: the image must be built or loaded and the cluster cannot take it: OSCAR
                pulls images from a registry.
            WorkflowException: the engine could not make it.
        """
        req, _ = self.get_requirement("DockerRequirement")
        if req is None:
            return self.target.image
        if req.get("dockerPull"):
            return str(req["dockerPull"])
        local_build = [k for k in ("dockerFile", "dockerLoad", "dockerImport") if req.get(k)]
        if req.get("dockerImageId") and not local_build:
            return str(req["dockerImageId"])
        if local_build and session is not None:
            fields = {k: req[k] for k in (*local_build, "dockerImageId") if req.get(k)}
            digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
            try:
                made = session.local_image(fields, digest)
            except OscarError as exc:
                raise WorkflowException(str(exc)) from exc
            if made is not None:
                return made
        raise UnsupportedRequirement(
            f"DockerRequirement with {', '.join(local_build) or 'no image'} is not supported on OSCAR, which pulls "
            "images from a registry: build and push the image, then give it as dockerPull (a local cluster "
            "started with `oscar-plugins local up --engine podman` builds and loads such images itself)")

    def make_job_runner(self, runtimeContext: RuntimeContext) -> type[JobBase]:
        return OscarCommandLineJob

    def make_path_mapper(self, reffiles: MutableSequence[CWLFileType | CWLDirectoryType], stagedir: str,
                         runtimeContext: RuntimeContext, separateDirs: bool) -> PathMapper:
        return OscarPathMapper(reffiles, runtimeContext.basedir, stagedir, separateDirs)

    def _init_job(self, joborder: CWLObjectType, runtime_context: RuntimeContext) -> Builder:
        ctx = runtime_context.copy()
        is_cache_key = (ctx.outdir, ctx.tmpdir, ctx.stagedir) == _CACHE_DIRS
        layout = _CACHE_LAYOUT if is_cache_key else Layout.new()
        ctx.docker_outdir, ctx.docker_tmpdir, ctx.docker_stagedir = layout.outdir, layout.tmpdir, layout.stagedir
        return super()._init_job(joborder, ctx)

    def evalResources(self, builder: Builder, runtimeContext: RuntimeContext) -> dict[str, int | float]:
        # The cluster's resources, not the local machine's: what the tool asks for (CWL's minimums).
        ctx = runtimeContext.copy()
        ctx.select_resources = None
        return super().evalResources(builder, ctx)

    def static_resources(self) -> tuple[float, float] | None:
        """(cores, RAM MiB) the tool asks for when its ResourceRequirement holds plain numbers (CWL's
        minimums; 1 core and 256 MiB by default), or None when an expression decides at run time."""
        req, _ = self.get_requirement("ResourceRequirement")
        req = req or {}
        values = []
        for name, default in (("cores", 1.0), ("ram", 256.0)):
            low, high = req.get(f"{name}Min"), req.get(f"{name}Max")
            chosen = low if low is not None else high if high is not None else default
            if not isinstance(chosen, (int, float)) or isinstance(chosen, bool):
                return None
            values.append(float(chosen))
        return values[0], values[1]


def offloaded_tools(process: Any) -> list[OscarCommandLineTool]:
    """Every offloaded CommandLineTool of a process (a workflow's steps, nested workflows included)."""
    found: list[OscarCommandLineTool] = []
    stack = [process]
    while stack:
        item = stack.pop()
        if isinstance(item, OscarCommandLineTool):
            found.append(item)
        for step in getattr(item, "steps", None) or []:
            stack.append(getattr(step, "embedded_tool", None))
    return found
