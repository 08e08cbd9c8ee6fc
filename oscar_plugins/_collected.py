"""The output folders of ``oscar-plugins job --wait``: named after the inputs, each with a record of what
was collected, so that running the same command again reuses complete outputs instead of submitting the same
work again.

A folder ``<out>/<input stem>/`` (``-2``, ``-3``... when two inputs share a stem, in the order given) holds a
job's outputs and ``.oscar-plugins-job.json``: the cluster, the service, what the job was given (each input's
name, size and sha256, and the sha256 of its payload and variables: no values, which may be secret) and each
output's path, size and sha256. The record is written once the outputs are verified and downloaded; a folder
is reused only when its record matches the job about to be submitted and every output is still there, whole.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._storage import sha256_file

__all__ = ["RECORD", "folder_names", "identity", "reusable", "write_record"]

#: The record of a collected job, in its output folder.
RECORD = ".oscar-plugins-job.json"


def folder_names(inputs: Sequence[Path]) -> list[str]:
    """One output folder name per input: its stem, made unique with ``-2``, ``-3``... in the order given."""
    taken: set[str] = set()
    names = []
    for path in inputs:
        base = path.stem or path.name or "input"
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name)
        names.append(name)
    return names


def _sha256_text(value: Any) -> str:
    data = value if isinstance(value, bytes) else json.dumps(value, sort_keys=True, default=str).encode()
    return hashlib.sha256(data).hexdigest()


def identity(cluster: str, service: str, inputs: Sequence[Path], payload: Any,
             env: Mapping[str, str]) -> dict[str, Any]:
    """What a job is given, as the record keeps it (hashes, never values)."""
    return {"cluster": cluster, "service": service,
            "inputs": [{"name": p.name, "size": p.stat().st_size, "sha256": sha256_file(p)} for p in inputs],
            "payload_sha256": None if payload is None else _sha256_text(payload),
            "env_sha256": _sha256_text(dict(env))}


def write_record(folder: Path, given: Mapping[str, Any], job: str | None, outputs: Sequence[Path]) -> None:
    """Record a collected job in its output folder (atomically)."""
    folder.mkdir(parents=True, exist_ok=True)
    record = {**given, "job": job, "outputs": [
        {"path": p.relative_to(folder).as_posix(), "size": p.stat().st_size, "sha256": sha256_file(p)}
        for p in outputs]}
    tmp = folder / f"{RECORD}.tmp"
    tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, folder / RECORD)


def reusable(folder: Path, given: Mapping[str, Any]) -> list[Path] | None:
    """The outputs of ``folder`` when its record is of this very job and every output is there, whole (size and
    sha256); else None (no record, another job's, or an output missing or changed)."""
    try:
        record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or any(record.get(key) != value for key, value in given.items()):
        return None
    paths = []
    for entry in record.get("outputs") or []:
        path = folder / str(entry.get("path"))
        try:
            if path.stat().st_size != entry.get("size") or sha256_file(path) != entry.get("sha256"):
                return None
        except OSError:
            return None
        paths.append(path)
    return paths
