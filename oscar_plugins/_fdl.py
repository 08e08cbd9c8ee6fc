"""The OSCAR service model (FDL) as pydantic v2 models, and the FDL file loader.

Every service field of OSCAR v4.1.2 is modelled; unknown fields are kept and sent on, so newer
servers keep working. The loader fixes three bugs of the official client: it returns ALL services of
a file, merges the file's global ``storage_providers`` and ``clusters`` into each service, and reads
``script:`` relative to the FDL file.

Example:
    >>> svc = Service(name="cowsay", image="ghcr.io/grycap/cowsay", script="cowsay < $INPUT_FILE_PATH")
    >>> svc.api_dict()["cpu"]
    '0.2'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._exceptions import FDLError
from ._validation import parse_cpu, parse_memory, service_name_problem

__all__ = [
    "FDL",
    "SPEC_HASH_ANNOTATION",
    "FDLService",
    "Service",
    "StorageIO",
    "StorageProviders",
    "load_fdl",
    "service_from_dict",
]

SPEC_HASH_ANNOTATION = "oscar-plugins.io/spec-hash"
_SERVER_FIELDS = {"token", "owner", "namespace", "deployment", "volume_status", "bucket_list", "cluster_id"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, validate_assignment=True)


class StorageIO(_Model):
    """One ``input``/``output``/``mount`` entry: a provider and a path whose first segment is the bucket."""

    storage_provider: str = "minio.default"
    path: str
    prefix: list[str] = Field(default_factory=list)
    suffix: list[str] = Field(default_factory=list)

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        v = v.strip("/")
        if not v or ".." in v.split("/"):
            raise ValueError(f"path {v!r} must be '<bucket>[/folder...]' without '..'")
        return v

    @field_validator("storage_provider")
    @classmethod
    def _provider(cls, v: str) -> str:
        kind = v.split(".", 1)[0]
        if kind not in {"minio", "s3", "onedata", "webdav", "rucio"}:
            raise ValueError(f"storage_provider {v!r} must be '<minio|s3|onedata|webdav|rucio>.<id>'")
        return v

    @property
    def bucket(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def folder(self) -> str:
        return self.path.split("/", 1)[1] if "/" in self.path else ""


class MinIOProvider(_Model):
    endpoint: str | None = None
    verify: bool = True
    access_key: str | None = Field(default=None, repr=False)
    secret_key: str | None = Field(default=None, repr=False)
    region: str | None = None


class S3Provider(_Model):
    access_key: str | None = Field(default=None, repr=False)
    secret_key: str | None = Field(default=None, repr=False)
    region: str | None = None


class OnedataProvider(_Model):
    oneprovider_host: str | None = None
    token: str | None = Field(default=None, repr=False)
    space: str | None = None


class WebDavProvider(_Model):
    hostname: str | None = None
    login: str | None = None
    password: str | None = Field(default=None, repr=False)


class RucioProvider(_Model):
    host: str | None = None
    auth_host: str | None = None
    account: str | None = None
    rse: str | None = None
    refresh_token: str | None = Field(default=None, repr=False)
    token_endpoint: str | None = None
    oidc_audience: str | None = None


class StorageProviders(_Model):
    minio: dict[str, MinIOProvider] = Field(default_factory=dict)
    s3: dict[str, S3Provider] = Field(default_factory=dict)
    onedata: dict[str, OnedataProvider] = Field(default_factory=dict)
    webdav: dict[str, WebDavProvider] = Field(default_factory=dict)
    rucio: dict[str, RucioProvider] = Field(default_factory=dict)

    def merged_under(self, base: StorageProviders) -> StorageProviders:
        """Providers of ``base`` overlaid with these (the service's own win)."""
        data = base.model_dump(exclude_none=True)
        for kind, entries in self.model_dump(exclude_none=True).items():
            data.setdefault(kind, {}).update(entries)
        return StorageProviders.model_validate(data)


class Environment(_Model):
    variables: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(default_factory=dict, repr=False)


class Synchronous(_Model):
    min_scale: int = 0
    max_scale: int = 0


class Cluster(_Model):
    endpoint: str
    auth_user: str | None = None
    auth_password: str | None = Field(default=None, repr=False)
    ssl_verify: bool = True


class Service(_Model):
    """An OSCAR service definition (v4.1.2 ``types.Service``); ``script`` holds the script's content."""

    name: str
    image: str
    script: str
    cpu: str = "0.2"
    memory: str = "256Mi"
    log_level: str | None = None
    enable_gpu: bool = False
    image_prefetch: bool = False
    alpine: bool = False
    input: list[StorageIO] = Field(default_factory=list)
    output: list[StorageIO] = Field(default_factory=list)
    mount: StorageIO | None = None
    storage_providers: StorageProviders | None = None
    clusters: dict[str, Cluster] | None = None
    environment: Environment | None = None
    synchronous: Synchronous | None = None
    expose: dict[str, Any] | None = None
    federation: dict[str, Any] | None = None
    replicas: list[dict[str, Any]] | None = None
    kserve: dict[str, Any] | None = None
    volume: dict[str, Any] | None = None
    annotations: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    image_pull_secrets: list[str] | None = None
    file_stage_in: bool | None = None
    vo: str | None = None
    visibility: str | None = None
    allowed_users: list[str] | None = None
    isolation_level: str | None = None
    interlink_node_name: str | None = None
    ephemeral_storage_request: str | None = None
    total_cpu: str | None = None
    total_memory: str | None = None
    token: str | None = Field(default=None, repr=False)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        problem = service_name_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        if not v.strip() or any(c.isspace() for c in v):
            raise ValueError(f"image {v!r} must be a container image reference such as 'ghcr.io/org/img:tag'")
        return v

    @field_validator("script")
    @classmethod
    def _script(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("script is empty: give the shell script the service runs")
        return v

    @field_validator("cpu", "total_cpu", mode="before")
    @classmethod
    def _cpu(cls, v: Any) -> Any:
        if v is None or v == "":
            return v
        parse_cpu(v)
        return str(v)

    @field_validator("memory", "total_memory", mode="before")
    @classmethod
    def _memory(cls, v: Any) -> Any:
        if v is None or v == "":
            return v
        parse_memory(v)
        return str(v)

    @field_validator("visibility")
    @classmethod
    def _visibility(cls, v: str | None) -> str | None:
        if v is not None and v not in {"private", "public", "restricted"}:
            raise ValueError(f"visibility {v!r} must be private, public or restricted")
        return v

    def api_dict(self) -> dict[str, Any]:
        """The JSON body for ``POST``/``PUT /system/services`` (unknown fields included)."""
        data = self.model_dump(mode="json", exclude_none=True, by_alias=True)
        data.pop("token", None)
        return data

    def spec_hash(self) -> str:
        """A content hash of the definition, ignoring server-filled fields and the hash annotation."""
        data = self.api_dict()
        for key in _SERVER_FIELDS:
            data.pop(key, None)
        annotations = dict(data.get("annotations") or {})
        annotations.pop(SPEC_HASH_ANNOTATION, None)
        data["annotations"] = annotations
        blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    def with_spec_hash(self) -> Service:
        """A copy whose annotations carry :meth:`spec_hash`, for idempotent deploys."""
        copy = self.model_copy(deep=True)
        copy.annotations = {**copy.annotations, SPEC_HASH_ANNOTATION: self.spec_hash()}
        return copy


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(service)"


def service_from_dict(data: Mapping[str, Any], *, source: str = "<dict>") -> Service:
    """Validate one service definition.

    Raises:
        FDLError: naming the source, the service and the field, and what is allowed.
    """
    if not isinstance(data, Mapping):
        raise FDLError(f"{source}: a service definition must be a mapping, not {type(data).__name__}",
                       source=source)
    name = data.get("name")
    label = f"service {name!r}" if name else "a service without a name"
    try:
        return Service.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = _field_path(first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        if first["type"] == "missing":
            msg = f"required field '{field}' is missing"
        extra = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
        raise FDLError(f"{source}: {label}: field '{field}': {msg}{extra}", source=source,
                       service=str(name) if name else None, field=field) from None


@dataclass(frozen=True)
class FDLService:
    """A service of an FDL file, with the cluster id it targets."""

    cluster_id: str
    service: Service


@dataclass(frozen=True)
class FDL:
    """A whole FDL file: every service, and the file's global ``clusters``."""

    services: list[FDLService]
    clusters: dict[str, Cluster]
    source: str

    def for_cluster(self, cluster_id: str) -> list[Service]:
        return [s.service for s in self.services if s.cluster_id == cluster_id]


def _script_content(raw: dict[str, Any], base: Path | None, source: str) -> None:
    script = raw.get("script")
    if not isinstance(script, str) or base is None or "\n" in script:
        return
    candidate = (base / script).resolve()
    if candidate.is_file():
        raw["script"] = candidate.read_text(encoding="utf-8")
    elif script.endswith((".sh", ".bash")) or "/" in script:
        raise FDLError(
            f"{source}: service {raw.get('name')!r}: field 'script': file {script!r} not found "
            f"(looked for {candidate}); script paths are relative to the FDL file",
            source=source, service=raw.get("name"), field="script",
        )


def load_fdl(source: str | Path | Mapping[str, Any]) -> FDL:
    """Load an oscar-cli FDL file (or an already parsed dict) with ALL its services.

    Raises:
        FDLError: malformed YAML, wrong structure, or an invalid service (file, service and field named).
    """
    base: Path | None = None
    if isinstance(source, Mapping):
        data: Any = dict(source)
        label = "<dict>"
    else:
        path = Path(source)
        label = str(path)
        if not path.is_file():
            raise FDLError(f"FDL file {label} does not exist: check the path", source=label)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise FDLError(f"{label} is not valid YAML: {exc}", source=label) from None
        base = path.parent
    if not isinstance(data, dict) or not isinstance(data.get("functions"), dict):
        raise FDLError(f"{label}: an FDL file needs 'functions: oscar: [ {{<cluster-id>: <service>}} ]'",
                       source=label)
    items = data["functions"].get("oscar")
    if not isinstance(items, list) or not items:
        raise FDLError(f"{label}: 'functions.oscar' must be a non-empty list of {{<cluster-id>: <service>}}",
                       source=label)
    try:
        global_sp = StorageProviders.model_validate(data.get("storage_providers") or {})
        clusters = {str(k): Cluster.model_validate(v) for k, v in (data.get("clusters") or {}).items()}
    except ValidationError as exc:
        first = exc.errors()[0]
        raise FDLError(f"{label}: global section field '{_field_path(first['loc'])}': {first['msg']}",
                       source=label) from None
    services: list[FDLService] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or len(item) != 1:
            raise FDLError(f"{label}: functions.oscar[{index}] must be one '<cluster-id>: <service>' mapping",
                           source=label)
        ((cluster_id, raw),) = item.items()
        if not isinstance(raw, dict):
            raise FDLError(f"{label}: functions.oscar[{index}].{cluster_id} must be a service mapping",
                           source=label)
        raw = dict(raw)
        _script_content(raw, base, label)
        svc = service_from_dict(raw, source=f"{label} (functions.oscar[{index}].{cluster_id})")
        if data.get("storage_providers"):
            svc.storage_providers = (svc.storage_providers or StorageProviders()).merged_under(global_sp)
        if clusters:
            svc.clusters = {**clusters, **(svc.clusters or {})}
        services.append(FDLService(str(cluster_id), svc))
    return FDL(services=services, clusters=clusters, source=label)
