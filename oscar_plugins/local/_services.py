"""Service definitions: validation, defaults and the storage paths they use (pure functions)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote_plus

from oscar_plugins._validation import parse_cpu, parse_memory, service_name_problem
from oscar_plugins.local._execution import matches_filters
from oscar_plugins.local._storage import bucket_name_problem, split_path

__all__ = [
    "LOCAL_PROVIDERS",
    "ServiceError",
    "StoragePath",
    "external_provider",
    "input_paths",
    "local_paths",
    "normalize_service",
    "output_paths",
    "parse_minio_event",
    "public_view",
    "resources",
    "triggered_by",
]

LOCAL_PROVIDERS = ("minio", "minio.default")
DEFAULTS = {"cpu": "0.2", "memory": "256Mi", "log_level": "INFO"}
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


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


def normalize_service(raw: object, token: str | None = None) -> dict[str, Any]:
    """Validate a definition from the API and fill OSCAR's defaults; unknown fields are kept.

    Args:
        raw: the decoded JSON body.
        token: the token to keep (updates); a new 64-hex token is generated when None.

    Raises:
        ServiceError: the definition is invalid.
    """
    if not isinstance(raw, dict):
        raise ServiceError("the body must be a JSON object with the service definition")
    service = dict(raw)
    problem = service_name_problem(service.get("name"))
    if problem:
        raise ServiceError(problem)
    for field in ("image", "script"):
        if not isinstance(service.get(field), str) or not service[field].strip():
            raise ServiceError(f"the service definition needs a non-empty '{field}'")
    for field, default in DEFAULTS.items():
        value = service.get(field)
        if value in (None, ""):
            service[field] = default
        elif not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ServiceError(f"'{field}' must be a string")
        else:
            service[field] = str(value)
    try:
        resources(service)
    except ValueError as exc:
        raise ServiceError(str(exc)) from exc
    if service["log_level"].upper() not in _LOG_LEVELS:
        raise ServiceError(f"log_level must be one of {', '.join(_LOG_LEVELS)}")
    environment = service.get("environment") or {}
    if not isinstance(environment, dict) or not all(
        isinstance(environment.get(s) or {}, dict) for s in ("variables", "secrets")
    ):
        raise ServiceError("environment must be {variables: {NAME: value}, secrets: {NAME: value}}")
    input_paths(service)
    output_paths(service)
    service.setdefault("input", [])
    service.setdefault("output", [])
    service.setdefault("owner", "cluster_admin")
    service["token"] = token or secrets.token_hex(32)
    return service


def public_view(service: Mapping[str, Any], s3_endpoint: str) -> dict[str, Any]:
    """The definition as ``GET /system/services`` returns it: the default MinIO provider with hidden keys."""
    view = dict(service)
    providers = dict(view.get("storage_providers") or {})
    minio = dict(providers.get("minio") or {})
    minio["default"] = {"endpoint": s3_endpoint, "verify": False, "access_key": "hidden",
                        "secret_key": "hidden", "region": "us-east-1"}
    providers["minio"] = minio
    view["storage_providers"] = providers
    return view


def external_provider(service: Mapping[str, Any], provider: str) -> dict[str, Any] | None:
    """Credentials of a non-default ``minio.<id>`` or ``s3.<id>`` provider declared by the service."""
    kind, _, ident = provider.partition(".")
    found = ((service.get("storage_providers") or {}).get(kind) or {}).get(ident)
    return dict(found) if isinstance(found, dict) else None


def triggered_by(service: Mapping[str, Any], bucket: str, key: str) -> bool:
    """Whether an object created at ``bucket/key`` starts a job of ``service`` (an ``input`` path matches)."""
    if key.endswith("/"):
        return False
    try:
        paths = input_paths(service)
    except ServiceError:
        return False
    name = PurePosixPath(key).name
    for path in paths:
        if not path.local or path.bucket != bucket:
            continue
        if path.folder and not key.startswith(path.folder + "/"):
            continue
        if matches_filters(name, path.prefix, path.suffix):
            return True
    return False


def parse_minio_event(body: Mapping[str, Any]) -> tuple[str, str] | None:
    """(bucket, key) of a MinIO notification body (``{"Records": [{"s3": ...}]}``), or None."""
    records = body.get("Records")
    if not isinstance(records, list) or not records or not isinstance(records[0], dict):
        return None
    s3 = records[0].get("s3") or {}
    bucket = (s3.get("bucket") or {}).get("name")
    key = (s3.get("object") or {}).get("key")
    if isinstance(bucket, str) and isinstance(key, str) and bucket and key:
        return bucket, unquote_plus(key)
    return None
