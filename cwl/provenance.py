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
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oscar_plugins import JobRecord, iso_time, public_endpoint, sha256_file, tree_hashes

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
    "iso_time",
    "public_endpoint",
    "tree_hashes",
]

_logger = logging.getLogger("cwltool")

#: Where the records go inside the research object.
RECORDS_FOLDER = "metadata/oscar"


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


@dataclass(kw_only=True)
class OffloadRecord(JobRecord):
    """One offloaded step: the core's job record (where it ran, what went in and out; see the module's
    docstring) plus the CWL step it ran and its activity in the PROV document."""

    KIND = "oscar-plugins offloaded step"

    #: The CWL job (cwltool's unique name of the step's run, e.g. ``heavy`` or ``heavy_2``).
    step: str
    #: The step's activity in the PROV document, and its label (the action's name in a crate).
    activity: str
    label: str

    @classmethod
    def of(cls, submitted: Submitted, *, step: str, activity: str,  # type: ignore[override]  # a CWL job's own
           label: str, exit_code: int | None, status: str, outputs: list[dict[str, Any]],
           collected: float) -> OffloadRecord:
        """The record of a job that has been collected (or failed to be)."""
        record: OffloadRecord = super().of(
            submitted.job, submitted.service, cluster=submitted.session.name,
            endpoint=submitted.session.client.profile.endpoint, collected=collected, exit_code=exit_code,
            status=status, inputs=list(submitted.inputs or []), outputs=outputs, step=step, activity=activity,
            label=label)
        return record

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
