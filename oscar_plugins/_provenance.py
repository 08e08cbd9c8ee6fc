"""What ran where: secret-free records of offloaded jobs, and the steps of a workflow run they belong to.

Data in, data out. An adapter builds one :class:`JobRecord` per job it offloaded (from the core's
:class:`~oscar_plugins.Job` and :class:`~oscar_plugins.Service`) and one :class:`StepRun` per step of the
run (an Airflow task instance, an itwinai pipeline step; local steps have no jobs); :func:`run_rows` makes
the timeline's rows and :func:`oscar_plugins.write_run_crate` the Workflow Run RO-Crate::

    from oscar_plugins import JobRecord, StepRun, file_hashes, run_rows, write_timeline

    record = JobRecord.of(job, svc, cluster="prod", endpoint=client.profile.endpoint, collected=time.time(),
                          outputs=file_hashes(result.outputs, root=dest))
    steps = [StepRun("prepare", started=t0, finished=t1),
             StepRun("simulate", started=t1, finished=t2, jobs=[record.as_dict()], outputs=result.outputs)]
    write_timeline(run_rows(steps), "run.png")

A record never holds a credential: the endpoint loses its user, password, query and fragment
(:func:`public_endpoint`), and :meth:`JobRecord.as_dict` masks every field :data:`SECRET_FIELDS` names.
"""

from __future__ import annotations

import datetime
import os
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ._auth import mask_secrets
from ._storage import sha256_file
from ._timeline import LOCAL, OFFLOADED, TimelineRow, parse_time
from ._validation import parse_cpu

if TYPE_CHECKING:
    from ._fdl import Service
    from ._jobs import Job

__all__ = ["NAMESPACE", "JobRecord", "StepRun", "file_hashes", "iso_time", "public_endpoint", "run_rows",
           "tree_hashes"]

_R = TypeVar("_R", bound="JobRecord")

#: The namespace of oscar-plugins' terms (records, crates, the CWL hint): stable, so crates stay comparable.
NAMESPACE = "https://oscar-plugins.readthedocs.io/cwl#"


def public_endpoint(endpoint: str) -> str:
    """``endpoint`` without what may hold a credential: user and password, query string and fragment.

    >>> public_endpoint("https://oscar:s3cret@oscar.example.org:8443/api/?token=abc#x")
    'https://oscar.example.org:8443/api/'
    """
    parts = urllib.parse.urlsplit(endpoint)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address goes back inside its brackets
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def iso_time(epoch: float | None) -> str | None:
    """A POSIX time as ISO 8601 in UTC (None stays None)."""
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat()


def tree_hashes(root: Path) -> list[dict[str, Any]]:
    """Every regular file under ``root``: its path relative to ``root``, size and sha256, in path order.

    Symbolic links are not followed (a link's target is a file of its own, or outside the tree)."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder, name)
            if path.is_symlink() or not path.is_file():
                continue
            found.append({"path": path.relative_to(root).as_posix(), "size": path.stat().st_size,
                          "sha256": sha256_file(path)})
    return found


def file_hashes(paths: Iterable[str | os.PathLike[str]], *, root: str | os.PathLike[str] | None = None
                ) -> list[dict[str, Any]]:
    """Each file's path (relative to ``root`` when under it), size and sha256; folders give their files.
    A path that is no longer there is listed with ``sha256`` None."""
    found: list[dict[str, Any]] = []
    base = Path(root) if root is not None else None
    for item in paths:
        path = Path(item)
        shown = path.relative_to(base).as_posix() if base is not None and path.is_relative_to(base) else str(path)
        if path.is_dir():
            found += [{**entry, "path": f"{shown}/{entry['path']}"} for entry in tree_hashes(path)]
        elif path.is_file():
            found.append({"path": shown, "size": path.stat().st_size, "sha256": sha256_file(path)})
        else:
            found.append({"path": shown, "size": None, "sha256": None})
    return found


@dataclass
class JobRecord:
    """One piece of offloaded work: where it ran (cluster, endpoint without credentials, service, image,
    resources), when (submitted, started and finished as the cluster reported them, collected; ISO 8601)
    and what went in and out (``{"path", "size", "sha256"}`` entries). ``job`` is None for a synchronous
    run (``POST /run`` has no job). Build it with :meth:`of`; keep it as :meth:`as_dict`."""

    #: What :meth:`as_dict` calls the record (subclasses say what they record).
    KIND: ClassVar[str] = "oscar-plugins offloaded job"

    cluster: str
    endpoint: str
    service: str
    job: str | None = None
    image: str = ""
    cpu: str = ""
    memory: str = ""
    gpu: bool = False
    interlink_node: str | None = None
    submitted: str | None = None
    started: str | None = None
    finished: str | None = None
    collected: str | None = None
    #: The job's last state on the cluster, the command's exit code, and the runner's verdict.
    state: str | None = None
    exit_code: int | None = None
    status: str | None = None
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls: type[_R], job: Job | None, service: Service, *, cluster: str, endpoint: str,
           submitted: float | None = None, started: float | None = None, finished: float | None = None,
           collected: float | None = None,
           exit_code: int | None = None, status: str | None = None, inputs: Sequence[Mapping[str, Any]] = (),
           outputs: Sequence[Mapping[str, Any]] = (), **extra: Any) -> _R:
        """The record of ``job`` of ``service`` (None: a synchronous run, timed by ``started``/``finished``).

        A job's times come from what the cluster's listing last showed (``job.info``) and the client's
        submit time, unless given. ``extra`` fills a subclass's own fields."""
        info = job.info if job is not None else {}
        return cls(cluster=cluster, endpoint=public_endpoint(endpoint), service=service.name,
                   job=job.name if job is not None else None, image=service.image, cpu=str(service.cpu),
                   memory=str(service.memory), gpu=bool(service.enable_gpu),
                   interlink_node=service.interlink_node_name,
                   submitted=iso_time(submitted if submitted is not None else job.submitted_at if job else None),
                   started=iso_time(started) or _text(info.get("start_time")),
                   finished=iso_time(finished) or _text(info.get("finish_time")), collected=iso_time(collected),
                   state=job.state.value if job is not None else None, exit_code=exit_code, status=status,
                   inputs=[dict(i) for i in inputs], outputs=[dict(o) for o in outputs], **extra)

    def as_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data, with any secret field masked (none is expected)."""
        data = asdict(self)
        data["endpoint"] = public_endpoint(self.endpoint)
        return {"type": self.KIND, "version": 1, **mask_secrets(data)}

    @classmethod
    def from_dict(cls: type[_R], data: Mapping[str, Any]) -> _R:
        """A record from :meth:`as_dict`'s data (unknown keys are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class StepRun:
    """One step of a workflow run: an Airflow task instance, an itwinai pipeline step, a CWL step.

    Times are UNIX seconds (None when unknown); ``status`` is ``succeeded``, ``failed`` or another word
    (``skipped``, ``upstream_failed``); ``tool`` what ran it (an operator or component class); ``where``
    the group a local step is drawn in; ``jobs`` the :meth:`JobRecord.as_dict` of its offloaded work (none:
    the step ran locally); ``outputs`` files it produced, described (with sha256) in a crate.
    """

    name: str
    started: float | None = None
    finished: float | None = None
    status: str = "succeeded"
    tool: str = ""
    where: str = "local"
    jobs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)

    @property
    def offloaded(self) -> bool:
        return bool(self.jobs)


def run_rows(steps: Iterable[StepRun]) -> list[TimelineRow]:
    """The timeline of a run: one row per offloaded job (grouped by service; named after its step, with
    ``#i`` when a step ran several) and one per local step (grouped by ``where``)."""
    rows = []
    for step in steps:
        if not step.jobs:
            rows.append(TimelineRow(step.where, step.name, LOCAL, started=step.started, finished=step.finished,
                                    status=_row_status(step.status)))
            continue
        for i, record in enumerate(step.jobs):
            name = step.name if len(step.jobs) == 1 else f"{step.name} #{i}"
            rows.append(_job_row(record, name, step))
    return rows


def _job_row(record: Mapping[str, Any], name: str, step: StepRun) -> TimelineRow:
    try:
        cpu: float | None = parse_cpu(record.get("cpu") or "")
    except ValueError:
        cpu = None
    status = record.get("status") or step.status
    return TimelineRow(str(record.get("service") or "?"), name, OFFLOADED,
                       submitted=parse_time(record.get("submitted")), started=parse_time(record.get("started")),
                       finished=parse_time(record.get("finished")),
                       collected=parse_time(record.get("collected")), status=_row_status(str(status)),
                       job=record.get("job"), cpu=cpu, bytes_in=_bytes(record.get("inputs")),
                       bytes_out=_bytes(record.get("outputs")))


def _row_status(status: str) -> str:
    return "failed" if status.lower() in ("failed", "upstream_failed", "error", "permanentfail") else status.lower()


def _bytes(entries: Any) -> int:
    total = 0
    for entry in entries or []:
        if isinstance(entry, Mapping):
            total += int(entry.get("size") or 0) + _bytes(entry.get("files"))
    return total


def _text(value: object) -> str | None:
    return str(value) if value else None
