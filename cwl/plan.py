"""Pure builder of an offloaded job: where things go in the pod, and the job script that puts them there.

A job runs on a generic *runner service* (see :mod:`oscar_plugins.cwl.runner`). Its only input is a
small shell script, the *job script*, that calls the runner's functions: fetch the staged inputs,
place them where cwltool's path mapper said (``$(inputs.x.path)``), create ``InitialWorkDir``
entries, run the command with the CWL environment, stdin/stdout/stderr and time limit, then pack
the output directory. Nothing here does I/O: the caller gives local paths, gets back a
:class:`JobPlan`, decides for each :class:`Source` whether it is inlined or staged, and renders.

Remote layout of one job (unique per job, so jobs sharing a host never collide)::

    /tmp/oscar-cwl/<uuid>/out      $(runtime.outdir), the working directory, HOME
    /tmp/oscar-cwl/<uuid>/tmp      $(runtime.tmpdir), TMPDIR
    /tmp/oscar-cwl/<uuid>/stage    inputs (stg<uuid>/<basename>)
"""

from __future__ import annotations

import base64
import posixpath
import re
import shlex
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from cwltool.pathmapper import MapperEnt

__all__ = [
    "BATCH_MEMBER",
    "REMOTE_BASE",
    "Inline",
    "JobPlan",
    "Layout",
    "Placement",
    "Source",
    "Url",
    "build_placements",
    "render_batch_script",
    "render_job_script",
]

#: Where per-job directories live in the pod.
REMOTE_BASE = "/tmp/oscar-cwl"  # noqa: S108 - a path in the pod, made unique per job
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Layout:
    """The directories of one job in the pod."""

    root: str
    outdir: str
    tmpdir: str
    stagedir: str

    @classmethod
    def new(cls, token: str | None = None, base: str = REMOTE_BASE) -> Layout:
        """A fresh layout under ``base`` (``token`` defaults to a random uuid)."""
        root = posixpath.join(base, token or uuid.uuid4().hex)
        return cls(root, f"{root}/out", f"{root}/tmp", f"{root}/stage")  # noqa: S108

    def with_outdir(self, outdir: str) -> Layout:
        return Layout(self.root, outdir, self.tmpdir, self.stagedir)

    @classmethod
    def of(cls, outdir: str, tmpdir: str, stagedir: str) -> Layout:
        """The layout a builder was given (its root is the parent of the tmpdir)."""
        return cls(posixpath.dirname(tmpdir), outdir, tmpdir, stagedir)


@dataclass(frozen=True)
class Source:
    """Local content shipped to the job: a file, or a directory packed as a tar."""

    name: str
    path: str
    kind: Literal["file", "tree"]


@dataclass(frozen=True)
class Placement:
    """One thing the job script creates before running the command.

    ``op``: ``file``/``tree`` place a :class:`Source`; ``dir`` creates a directory; ``text`` writes
    literal content. ``drop``: a read-only input inside the output directory, removed before packing
    (cwltool relinks it to the original locally, as with a container bind mount). ``back``: an index
    when the content must come back after the run (``InplaceUpdateRequirement`` outside the outdir).
    """

    op: Literal["file", "tree", "dir", "text"]
    target: str
    source: str | None = None
    text: str | None = None
    writable: bool = False
    drop: bool = False
    back: int | None = None
    local: str | None = None  # the local path this target stands for (input files and directories)


@dataclass(frozen=True)
class Inline:
    """A source sent inside the job script."""

    data: bytes


@dataclass(frozen=True)
class Url:
    """A source the job fetches (a presigned URL of a content-addressed object)."""

    url: str


@dataclass
class JobPlan:
    """Everything the job script needs (all paths are paths in the pod)."""

    layout: Layout
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    sources: list[Source] = field(default_factory=list)
    placements: list[Placement] = field(default_factory=list)
    stdin: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    timelimit: int = 0


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def build_placements(
    mappers: Iterable[Iterable[tuple[str, MapperEnt]]], outdir: str, *, inplace_update: bool = False,
) -> tuple[list[Source], list[Placement]]:
    """Translate cwltool path-mapper entries into sources and placements, with container semantics.

    The rules are those of cwltool's ``ContainerCommandLineJob.add_volumes``: only staged entries;
    ``File``/``Directory`` are read-only mounts; ``Writable*`` are copies (or the original itself
    with ``InplaceUpdateRequirement``); ``Create*`` entries are literal contents; a ``_:`` directory
    is created empty and filled by its own staged children.
    """
    sources: dict[tuple[str, str], Source] = {}
    placements: list[Placement] = []
    backs = 0

    def source(path: str, kind: Literal["file", "tree"]) -> str:
        key = (kind, path)
        if key not in sources:
            sources[key] = Source(f"s{len(sources)}", path, kind)
        return sources[key].name

    for mapper in mappers:
        for _key, ent in mapper:
            if not ent.staged:
                continue
            in_out = _inside(ent.target, outdir)
            kind = ent.type or ""
            if kind in ("CreateFile", "CreateWritableFile"):
                placements.append(Placement("text", ent.target, text=ent.resolved,
                                            writable=kind == "CreateWritableFile"))
            elif ent.resolved.startswith("_:"):
                placements.append(Placement("dir", ent.target, writable=kind == "WritableDirectory"))
            elif kind in ("File", "Directory"):
                op: Literal["file", "tree"] = "file" if kind == "File" else "tree"
                placements.append(Placement(op, ent.target, source(ent.resolved, op), drop=in_out,
                                            local=ent.resolved))
            elif kind in ("WritableFile", "WritableDirectory"):
                op = "file" if kind == "WritableFile" else "tree"
                back = None
                if inplace_update and not in_out:
                    back, backs = backs, backs + 1
                placements.append(Placement(op, ent.target, source(ent.resolved, op), writable=True, back=back,
                                            local=ent.resolved))
            else:
                raise ValueError(f"unknown path mapper entry type {ent.type!r} for {ent.target}")
    return list(sources.values()), placements


def _q(text: str) -> str:
    return shlex.quote(text)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def render_job_script(plan: JobPlan, refs: Mapping[str, Inline | Url]) -> str:
    """The job script for ``plan``; ``refs`` says how each source travels.

    Raises:
        ValueError: a source has no ref, or an environment variable name cannot be exported.
    """
    lay = plan.layout
    lines = ["# oscar-cwl job script: run by the runner service, which defines the oc_* functions",
             f"oc_begin {_q(lay.root)} {_q(lay.outdir)} {_q(lay.tmpdir)}"]
    for src in plan.sources:
        ref = refs.get(src.name)
        if ref is None:
            raise ValueError(f"source {src.name} ({src.path}) has no inline data or URL")
        if isinstance(ref, Url):
            lines.append(f"oc_get {src.name} {_q(ref.url)}")
        else:
            lines.append(f"oc_put {src.name} {_q(_b64(ref.data))}")
    for p in plan.placements:
        mode = "rw" if p.writable else "ro"
        if p.op == "text":
            lines.append(f"oc_text {_q(p.target)} {_q(_b64((p.text or '').encode('utf-8')))} {mode}")
        elif p.op == "dir":
            lines.append(f"oc_dir {_q(p.target)}")
        else:
            lines.append(f"oc_{p.op} {p.source} {_q(p.target)} {mode}")
        if p.drop:
            lines.append(f"oc_drop {_q(p.target)}")
        if p.back is not None:
            lines.append(f"oc_back {p.back} {_q(p.target)}")
    for name, path in (("stdout", plan.stdout), ("stderr", plan.stderr)):
        if path:
            lines.append(f"oc_parent {_q(path)}")
            lines.append(f"oc_{name}={_q(path)}")
    if plan.stdin:
        lines.append(f"oc_stdin={_q(plan.stdin)}")
    lines.append(f"oc_timelimit={int(plan.timelimit)}")
    lines.append("oc_setenv() {")
    for key, value in plan.env.items():
        if not _ENV_NAME.match(key):
            raise ValueError(f"environment variable name {key!r} cannot be set in a POSIX shell")
        lines.append(f"  export {key}={_q(value)}")
    lines.append("  :")
    lines.append("}")
    lines.append("oc_run " + " ".join(_q(str(a)) for a in plan.argv))
    lines.append("oc_pack")
    return "\n".join(lines) + "\n"


#: Inside a batch job, command ``i`` writes its ``result.tar`` (or, when it could not be prepared,
#: ``runner.log`` and ``runner-exit``) into this sub-folder of the batch's one ``result.tar``.
BATCH_MEMBER = "b{}"


def render_batch_script(scripts: Sequence[str]) -> str:
    """One job script running several job scripts one after the other (short steps batched: one pod start,
    one upload and one download for all of them).

    Each runs in a subshell with its own result folder (:data:`BATCH_MEMBER`) and leaves no directory behind
    for the next, so a command that fails, or one that could not be prepared (its runner exit code and
    message are kept in ``runner-exit`` and ``runner.log``), does not stop the others. The folders travel
    as ONE ``result.tar`` (one upload, one download and one object to delete per batch, not one per
    command; :func:`~oscar_plugins.cwl.staging.unpack_batch` opens it). The batch exits 69 (the runner's
    "cannot fetch") when a member did, so that the whole batch is sent again with its inputs inside.
    """
    if not scripts:
        raise ValueError("a batch needs at least one job script")
    members = ['"$oc_top/' + BATCH_MEMBER.format(i) + '"' for i in range(len(scripts))]
    # Few processes a command (a pod may run hundreds of them): one mkdir for every result folder, no rm of an
    # already removed job directory, and one rm at the end for the empty logs.
    lines = [f"# oscar-cwl batch of {len(scripts)} job scripts, run one after the other",
             f'oc_top={REMOTE_BASE}/batch-$$', "oc_fetchless=0", "set --",
             f"mkdir -p {' '.join(members)} || oc_fail 'cannot create the result folders of the batch'"]
    for script, member in zip(scripts, members, strict=True):
        lines += [f'( oc_result={member}; trap \'[ -d "${{oc_root:-}}" ] && rm -rf "$oc_root"\' EXIT',
                  script.rstrip("\n"), f") 2> {member}/runner.log",
                  "oc_x=$?",
                  f'if [ "$oc_x" -ne 0 ]; then echo "$oc_x" > {member}/runner-exit; fi',
                  '[ "$oc_x" -eq 69 ] && oc_fetchless=1',
                  f'[ -s {member}/runner.log ] || set -- "$@" {member}/runner.log']
    lines += ['if [ "$#" -gt 0 ]; then rm -f "$@"; fi',
              'tar -C "$oc_top" -cf "$oc_result/result.tar" . || oc_fail "cannot pack the results of the batch"',
              'rm -rf "$oc_top"',
              'if [ "$oc_fetchless" -eq 1 ]; then exit 69; fi']
    return "\n".join(lines) + "\n"
