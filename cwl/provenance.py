"""What ran where: a record of each offloaded step inside cwltool's CWLProv research object (``--provenance``).

For every CommandLineTool job run on OSCAR, :class:`OffloadRecords` keeps an :class:`OffloadRecord`: the
cluster (profile name and endpoint, never a credential), the runner service, the OSCAR job name, the image,
the resources asked for, four times (submitted, started and finished as the cluster reported them,
collected) and the sha256 of every staged input and every collected output file. When the executor has
run the workflow, before cwltool closes the research object, :meth:`OffloadRecords.write` puts each
record where CWLProv leaves room for it:

* ``metadata/oscar/<job name>.json``: the whole record, as a tag file of the bag (so the BagIt tag
  manifests list it) and an annotation ``about`` the step's activity in ``metadata/manifest.json``;
* the step's activity in ``metadata/provenance/primary.cwlprov.*``: an association with a
  ``prov:SoftwareAgent`` (the OSCAR job) that carries ``cwlprov:image`` as cwltool's own container
  agents do, and the rest as attributes in the ``oscar:`` namespace (the ``oscar:Offload`` hint's).

``oscar_plugins.cwl.crate`` turns such a research object into a Workflow Run RO-Crate.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import threading
import urllib.parse
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oscar_plugins import mask_secrets, sha256_file

from .hints import NAMESPACE
from .pathmapper import S3_SCHEME

if TYPE_CHECKING:
    from collections.abc import Iterable

    from cwltool.cwlprov.provenance_profile import ProvenanceProfile
    from cwltool.cwlprov.ro import ResearchObject

    from .job import Submitted
    from .plan import Source

__all__ = [
    "RECORDS_FOLDER",
    "OffloadRecord",
    "OffloadRecords",
    "activity_label",
    "input_hashes",
    "public_endpoint",
    "tree_hashes",
]

_logger = logging.getLogger("cwltool")

#: Where the records go inside the research object.
RECORDS_FOLDER = "metadata/oscar"


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


def input_hashes(sources: Iterable[Source]) -> list[dict[str, Any]]:
    """What a job's staged inputs held: a file's size and sha256, a directory's files, or (for an object
    already in the cluster's store) its location alone, which this machine never read."""
    found: list[dict[str, Any]] = []
    for src in sources:
        if src.path.startswith(S3_SCHEME):
            found.append({"location": src.path, "sha256": None})
            continue
        path = Path(src.path)
        if src.kind == "tree":
            found.append({"path": str(path), "kind": "Directory", "files": tree_hashes(path)})
        else:
            found.append({"path": str(path), "kind": "File", "size": path.stat().st_size,
                          "sha256": sha256_file(path)})
    return found


@dataclass
class OffloadRecord:
    """One offloaded step: where it ran and what went in and out (see the module's docstring)."""

    #: The CWL job (cwltool's unique name of the step's run, e.g. ``heavy`` or ``heavy_2``).
    step: str
    #: The step's activity in the PROV document, and its label (the action's name in a crate).
    activity: str
    label: str
    cluster: str
    endpoint: str
    service: str
    job: str
    image: str
    cpu: str
    memory: str
    gpu: bool = False
    interlink_node: str | None = None
    submitted: str | None = None
    started: str | None = None
    finished: str | None = None
    collected: str | None = None
    #: The job's last state on the cluster, the command's exit code, and cwltool's verdict.
    state: str | None = None
    exit_code: int | None = None
    status: str | None = None
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, submitted: Submitted, *, step: str, activity: str, label: str, exit_code: int | None, status: str,
           outputs: list[dict[str, Any]], collected: float) -> OffloadRecord:
        """The record of a job that has been collected (or failed to be)."""
        svc, job = submitted.service, submitted.job
        return cls(step=step, activity=activity, label=label, cluster=submitted.session.name,
                   endpoint=public_endpoint(submitted.session.client.profile.endpoint), service=svc.name,
                   job=job.name, image=svc.image, cpu=str(svc.cpu), memory=str(svc.memory), gpu=bool(svc.enable_gpu),
                   interlink_node=svc.interlink_node_name, submitted=iso_time(job.submitted_at),
                   started=_text(job.info.get("start_time")), finished=_text(job.info.get("finish_time")),
                   collected=iso_time(collected), state=job.state.value, exit_code=exit_code, status=status,
                   inputs=list(submitted.inputs or []), outputs=outputs)

    def as_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data, with any secret field masked (none is expected)."""
        data = asdict(self)
        data["endpoint"] = public_endpoint(self.endpoint)
        return {"type": "oscar-plugins offloaded step", "version": 1, **mask_secrets(data)}

    @property
    def file_name(self) -> str:
        # Job names are DNS-1123 labels, safe as file names; the step name keeps them readable.
        return f"{self.job}.json"


class OffloadRecords:
    """The records of one run's offloaded steps; thread-safe (jobs finish on the executor's pools).

    Example:
        >>> records = OffloadRecords()
        >>> records.add(record, prov_obj)       # doctest: +SKIP  (OscarCommandLineJob.finish)
        >>> records.write(research_obj)         # doctest: +SKIP  (the executor, when the workflow is done)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[tuple[OffloadRecord, ProvenanceProfile]] = []

    def add(self, record: OffloadRecord, prov_obj: ProvenanceProfile) -> None:
        with self._lock:
            self._pending.append((record, prov_obj))

    def write(self, research_obj: ResearchObject) -> int:
        """Write the records kept so far into ``research_obj`` (still open); returns how many."""
        with self._lock:
            pending, self._pending = self._pending, []
        folder = Path(research_obj.folder, RECORDS_FOLDER)
        for record, prov_obj in pending:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / record.file_name
            path.write_text(json.dumps(record.as_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
            research_obj.add_tagfile(str(path), datetime.datetime.now())
            research_obj.add_annotation(record.activity, [f"{research_obj.base_uri}{RECORDS_FOLDER}/{path.name}"])
            _annotate_activity(prov_obj, record)
        return len(pending)


def _annotate_activity(prov_obj: ProvenanceProfile, record: OffloadRecord) -> None:
    """Associate the step's activity with the OSCAR job, a software agent described in the ``oscar:`` namespace."""
    from prov.model import PROV

    document = prov_obj.document
    document.add_namespace("oscar", NAMESPACE)
    data = record.as_dict()
    attributes: dict[str, Any] = {
        "prov:type": PROV["SoftwareAgent"],
        "prov:label": f"OSCAR job {record.job} of service {record.service} on {data['endpoint']}",
        "cwlprov:image": record.image,
        "oscar:record": f"{RECORDS_FOLDER}/{record.file_name}",
    }
    for key in ("cluster", "endpoint", "service", "job", "cpu", "memory", "state", "status", "exit_code"):
        if data[key] is not None:
            attributes[f"oscar:{key}"] = data[key]
    for key in ("submitted", "started", "finished", "collected"):
        when = _parse_time(data[key])
        if when is not None:
            attributes[f"oscar:{key}AtTime"] = when
    agent = document.agent(uuid.uuid4().urn, attributes)
    document.wasAssociatedWith(record.activity, agent)


def _text(value: object) -> str | None:
    return str(value) if value else None


def activity_label(prov_obj: ProvenanceProfile, activity: str) -> str:
    """The ``prov:label`` cwltool gave the step's activity (a crate's action carries it as its name)."""
    for record in prov_obj.document.get_record(activity):
        label = record.label
        if label:
            return str(label)
    return ""


def _parse_time(text: str | None) -> datetime.datetime | None:
    """An ISO 8601 time (OSCAR writes ``2024-05-01T10:00:00Z``) as a datetime, or None when it is not one."""
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
