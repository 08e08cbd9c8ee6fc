"""Service definitions: validation, defaults and the storage paths they use (pure functions)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from oscar_plugins._validation import parse_cpu, parse_memory
from oscar_plugins.local.storage._storage import bucket_name_problem, split_path

__all__ = [
    "LOCAL_PROVIDERS",
    "ServiceError",
    "StoragePath",
    "external_provider",
    "input_paths",
    "local_paths",
    "output_paths",
    "resources",
    "triggered_by",
]

LOCAL_PROVIDERS = ("minio", "minio.default")
DEFAULTS = {"cpu": "0.2", "memory": "256Mi"}


class ServiceError(ValueError):
    """A service definition is invalid; the message says what to fix."""


@dataclass(frozen=True)
class StoragePath:
    """One ``input`` or ``output`` entry of a service."""

    provider: str
    bucket: str
    folder: str
    prefix: tuple[str, ...]
    suffix: tuple[str, ...]

    @property
    def local(self) -> bool:
        """Whether it points at the cluster's own (MinIO-like) storage."""
        return self.provider in LOCAL_PROVIDERS


def _str_list(entry: Mapping[str, Any], field: str, where: str) -> tuple[str, ...]:
    value = entry.get(field) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ServiceError(f"{where}.{field} must be a list of strings")
    return tuple(value)


def _paths(service: Mapping[str, Any], field: str) -> list[StoragePath]:
    entries = service.get(field) or []
    if not isinstance(entries, list):
        raise ServiceError(f"{field} must be a list of {{storage_provider, path}} objects")
    out = []
    for index, entry in enumerate(entries):
        where = f"{field}[{index}]"
        if not isinstance(entry, dict):
            raise ServiceError(f"{where} must be an object with storage_provider and path")
        provider = entry.get("storage_provider") or "minio.default"
        path = entry.get("path")
        if not isinstance(provider, str) or not isinstance(path, str) or not path.strip("/ "):
            raise ServiceError(f"{where} needs a path '<bucket>/<folder>' and a storage_provider string")
        bucket, folder = split_path(path)
        if provider in LOCAL_PROVIDERS or provider.partition(".")[0] in ("minio", "s3"):
            problem = bucket_name_problem(bucket)
            if problem:
                raise ServiceError(f"{where}.path: {problem}")
        if "\x00" in folder or ".." in folder.split("/"):
            raise ServiceError(f"{where}.path {path!r} must not contain '..' or NUL")
        out.append(StoragePath(provider, bucket, folder, _str_list(entry, "prefix", where),
                               _str_list(entry, "suffix", where)))
    return out


def input_paths(service: Mapping[str, Any]) -> list[StoragePath]:
    """The service's ``input`` entries."""
    return _paths(service, "input")


def output_paths(service: Mapping[str, Any]) -> list[StoragePath]:
    """The service's ``output`` entries."""
    return _paths(service, "output")


def local_paths(service: Mapping[str, Any]) -> list[StoragePath]:
    """Input and output entries on the cluster's own storage (their buckets belong to the service)."""
    return [p for p in input_paths(service) + output_paths(service) if p.local]


def resources(service: Mapping[str, Any]) -> tuple[float, int]:
    """(cores, bytes) the service's executions reserve."""
    return parse_cpu(service.get("cpu") or DEFAULTS["cpu"]), parse_memory(service.get("memory") or DEFAULTS["memory"])


def external_provider(service: Mapping[str, Any], provider: str) -> dict[str, Any] | None:
    """Credentials of a non-default ``minio.<id>`` or ``s3.<id>`` provider declared by the service."""
    kind, _, ident = provider.partition(".")
    found = ((service.get("storage_providers") or {}).get(kind) or {}).get(ident)
    return dict(found) if isinstance(found, dict) else None


def triggered_by(service: Mapping[str, Any], bucket: str, key: str) -> bool:
    """Whether an object created at ``bucket/key`` starts a job of ``service``.

    OSCAR registers one ``s3:ObjectCreated:*`` notification per input with a single key-prefix filter,
    ``<folder>/`` (``utils/minio.go`` enableInputNotification): the input's own ``prefix``/``suffix``
    lists do not filter triggers. The folder marker itself is written before the notification exists.
    """
    try:
        paths = input_paths(service)
    except ServiceError:
        return False
    for path in paths:
        if not path.local or path.bucket != bucket:
            continue
        marker = f"{path.folder}/" if path.folder else ""
        if key.startswith(marker) and key != marker:
            return True
    return False
