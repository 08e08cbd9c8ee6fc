"""Local side of staging: pack directory inputs, choose inline or staged, unpack results.

Small inputs travel inside the job script (no object-store round trip); larger ones are uploaded
once, content-addressed, and fetched by the pod through presigned URLs. Directory inputs are packed
as reproducible tars (sorted, owner-free) so an unchanged directory is not uploaded twice.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import tarfile
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from .pathmapper import S3_SCHEME
from .plan import Inline, Layout, Placement, Source, Url

__all__ = [
    "INLINE_FILE_LIMIT",
    "INLINE_TOTAL_LIMIT",
    "NO_FETCH_INLINE_LIMIT",
    "copy_back",
    "fix_symlinks",
    "pack_tree",
    "resolve_sources",
    "unpack",
    "unpack_batch",
    "unpack_result",
]

#: A file up to this size may travel inside the job script ...
INLINE_FILE_LIMIT = 64 * 1024
#: ... as long as all inlined files of the job stay under this. A job script over the core's body budget
#: reaches the pod through the supervisor (a MinIO event for its manifest), so inlined inputs need no
#: download tool in the image (``debian:stable-slim`` has none); larger ones are staged once and fetched.
INLINE_TOTAL_LIMIT = 256 * 1024
#: For an image that cannot download (no curl, wget or python3), every input travels inside the job, up
#: to this much in all; the job reaches the pod as an object the supervisor downloads.
NO_FETCH_INLINE_LIMIT = 16 * 1024 * 1024


def _reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def pack_tree(directory: Path, dest_dir: Path) -> Path:
    """Pack ``directory``'s contents into a reproducible tar in ``dest_dir`` (named by its sha256)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = dest_dir / f".tree-{uuid.uuid4().hex}.tar"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT, dereference=True) as tar:
        for root, dirs, files in os.walk(directory, followlinks=True):
            dirs.sort()
            rel_root = os.path.relpath(root, directory)
            for name in sorted(dirs) + sorted(files):
                full = os.path.join(root, name)
                arc = name if rel_root == "." else f"{rel_root}/{name}"
                tar.add(full, arcname=arc, recursive=False, filter=_reset)
    digest = hashlib.sha256()
    with tmp.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    final = dest_dir / f"tree-{digest.hexdigest()[:32]}.tar"
    os.replace(tmp, final)
    return final


def resolve_sources(sources: Iterable[Source], work: Path, stage: Callable[[Path], str],
                    presign: Callable[[str], str], *, fetch: bool = True) -> dict[str, Inline | Url]:
    """Decide how each source travels: inline when small, else ``stage(path)`` (a presigned URL).

    ``s3://`` sources are already in the object store: ``presign(location)`` gives their URL. With
    ``fetch=False`` (the image cannot download) every input travels inline, up to
    :data:`NO_FETCH_INLINE_LIMIT` in all.

    Raises:
        FileNotFoundError: a source vanished since cwltool checked it.
        ValueError: with ``fetch=False``, the inputs are too large to travel inside the job.
    """
    refs: dict[str, Inline | Url] = {}
    inline_total = 0
    file_limit, total_limit = (INLINE_FILE_LIMIT, INLINE_TOTAL_LIMIT) if fetch else (NO_FETCH_INLINE_LIMIT,) * 2
    for src in sources:
        if src.path.startswith(S3_SCHEME):
            if not fetch:
                raise ValueError(f"input {src.path} must be downloaded in the pod, and the image has no curl, wget or "
                                 "python3: add one of them to the image")
            refs[src.name] = Url(presign(src.path))
            continue
        path = Path(src.path)
        if src.kind == "tree":
            if not path.is_dir():
                raise FileNotFoundError(f"input directory {path} does not exist")
            path = pack_tree(path, work)
        size = path.stat().st_size
        if size <= file_limit and inline_total + size <= total_limit:
            refs[src.name] = Inline(path.read_bytes())
            inline_total += size
        elif not fetch:
            raise ValueError(f"the inputs are over {NO_FETCH_INLINE_LIMIT >> 20} MiB, too much to travel inside the "
                             "job, and the image has no curl, wget or python3 to download them: add one to the image")
        else:
            refs[src.name] = Url(stage(path))
    return refs


def _owner_free(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    # The 'tar' filter refuses paths escaping dest but keeps absolute symlinks (fixed afterwards);
    # ownership is the local user's, whatever uid the pod ran as.
    checked = tarfile.tar_filter(member, dest)
    return checked.replace(uid=os.getuid(), gid=os.getgid(), uname="", gname="", deep=False)


def unpack(archive: Path, dest: Path) -> None:
    """Extract a tar written by the runner into ``dest`` (created if missing)."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter=_owner_free)  # noqa: S202 - the filter refuses escaping paths


def unpack_batch(work: Path) -> None:
    """A batch job's one ``result.tar`` in ``work`` opened there: each command's result folder (``b<i>/``)."""
    archive = work / "result.tar"
    if archive.is_file():
        unpack(archive, work)
        archive.unlink()


def _under(member: tarfile.TarInfo, prefix: str) -> tarfile.TarInfo | None:
    name = member.name.removeprefix("./")
    if not name.startswith(prefix + "/"):
        return None
    link = member.linkname.removeprefix("./").removeprefix(prefix + "/") if member.islnk() else member.linkname
    return member.replace(name=name[len(prefix) + 1:], linkname=link, deep=False)


def unpack_result(archive: Path, outdir: Path, work: Path) -> None:
    """Extract the runner's ``result.tar``: ``out/`` into ``outdir``, ``meta/`` and ``back/`` into ``work``."""
    outdir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        out = [m for m in (_under(m, "out") for m in members) if m is not None]
        rest = [m for m in members if m.name.removeprefix("./").startswith(("meta/", "back/"))]
        tar.extractall(outdir, members=out, filter=_owner_free)  # noqa: S202 - the filter refuses escaping paths
        tar.extractall(work, members=rest, filter=_owner_free)  # noqa: S202


def fix_symlinks(outdir: Path, layout: Layout, placements: Iterable[Placement]) -> None:
    """Give symlinks written in the pod their meaning here, as a container bind mount would.

    A link into the pod's output directory points at the same file locally; a link to a staged input
    (``/tmp/oscar-cwl/<id>/stage/...``) at the original input. A link to anything else in the pod
    (``/tmp/x``, ``/etc/...``) has no counterpart on this machine and is removed: with a container it
    would dangle, and it must never pick up a local file that happens to have the same path.
    """
    targets: Mapping[str, str] = {p.target: p.local for p in placements if p.local}
    local_root = str(outdir)
    for root, dirs, files in os.walk(outdir):
        for name in dirs + files:
            link = os.path.join(root, name)
            if not os.path.islink(link):
                continue
            dest = os.readlink(link)
            pod_dir = layout.outdir + root[len(local_root):]
            pod_target = posixpath.normpath(posixpath.join(pod_dir, dest))
            local = _local_for(pod_target, layout, targets, outdir)
            if local is None:
                os.unlink(link)
            elif os.path.isabs(dest):
                os.unlink(link)
                os.symlink(local, link)


def _local_for(dest: str, layout: Layout, targets: Mapping[str, str], outdir: Path) -> str | None:
    if dest == layout.outdir or dest.startswith(layout.outdir + "/"):
        return str(outdir) + dest[len(layout.outdir):]
    for target, local in targets.items():
        if dest == target or dest.startswith(target + "/"):
            return local + dest[len(target):]
    return None


def copy_back(src: Path, original: Path) -> None:
    """InplaceUpdateRequirement: make ``original`` hold what the job left at ``src``."""
    if src.is_dir() and not src.is_symlink():
        if original.exists():
            shutil.rmtree(original)
        shutil.copytree(src, original, symlinks=True)
    elif src.exists():
        shutil.copyfile(src, original)
