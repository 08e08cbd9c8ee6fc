"""The OSCAR service model (FDL) as pydantic v2 models, and the FDL file loader.

Every service field of OSCAR v4.1.2 is modelled; unknown fields are kept and sent on, so newer
servers keep working. The loader fixes three bugs of the official client: it returns ALL services of
a file, merges the file's global ``storage_providers`` and ``clusters`` into each service, and reads
``script:`` relative to the FDL file (else the working directory, as oscar-cli before 1.12 did). The raw
file is read as oscar-cli and OSCAR read it by :mod:`._fdl_read`.

Example:
    >>> svc = Service(name="cowsay", image="ghcr.io/grycap/cowsay", script="cowsay < $INPUT_FILE_PATH")
    >>> svc.api_dict()["cpu"]
    '0.2'
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ._exceptions import ConfigError, FDLError, OscarError
from ._fdl_read import (
    as_oscar_reads,
    blank,
    check_providers_used,
    empty_providers,
    keys_are,
    provider_refs,
    read_fdl_text,
    script_content,
    warn_once,
    without,
)
from ._validation import parse_cpu, parse_memory, service_name_problem

__all__ = [
    "FDL",
    "HIDDEN",
    "SERVER_FIELDS",
    "SPEC_HASH_ANNOTATION",
    "FDLService",
    "Service",
    "StorageIO",
    "StorageProviders",
    "load_fdl",
    "service_from_api",
    "service_from_dict",
]

SPEC_HASH_ANNOTATION = "oscar-plugins.io/spec-hash"
#: Fields the server fills or owns (``create.go`` checkValues, ``read.go``): never sent as the user's.
SERVER_FIELDS = frozenset({"token", "owner", "namespace", "deployment", "volume_status", "bucket_list"})
#: The value OSCAR shows instead of the default MinIO provider's keys (``create.go`` checkValues).
HIDDEN = "hidden"
#: Labels OSCAR sets on every service (``create.go`` checkValues, MakeCreateHandler).
SERVER_LABELS = frozenset({"oscar.grycap/user-service", "oscar_service", "applicationId", "queue", "owner_name",
                           "uid", "vo", "kueue.x-k8s.io/queue-name"})
_LENIENT = "lenient"


def _lenient(info: ValidationInfo) -> bool:
    """Whether a model is being read from a server's answer (tolerant) rather than from a user (strict)."""
    return bool(info.context and info.context.get(_LENIENT))


def _drop_nulls(data: Any) -> Any:
    """A server's ``null`` (Go's nil map, slice or pointer) means "not set": let the field's default apply."""
    if isinstance(data, dict):
        return {k: _drop_nulls(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [_drop_nulls(v) for v in data if v is not None]
    return data


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
    def _path(cls, v: str, info: ValidationInfo) -> str:
        v = v.strip(" /")  # create.go normalizeStoragePaths trims spaces and slashes
        if _lenient(info):
            return v
        if not v or ".." in v.split("/"):
            raise ValueError(f"path {v!r} must be '<bucket>[/folder...]' without '..'")
        return v

    @field_validator("storage_provider")
    @classmethod
    def _provider(cls, v: str, info: ValidationInfo) -> str:
        kind = v.split(".", 1)[0]
        if not _lenient(info) and kind not in {"minio", "s3", "onedata", "webdav", "rucio"}:
            raise ValueError(f"storage_provider {v!r} must be '<minio|s3|onedata|webdav|rucio>.<id>'")
        return v

    @property
    def kind(self) -> str:
        """The provider type (``minio``, ``s3``, ...), lowercased as OSCAR compares it."""
        return self.storage_provider.split(".", 1)[0].lower()

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
    """An OSCAR service definition (v4.1.2 ``types.Service``); ``script`` holds the script's content.

    Two ways in, two jobs: :func:`service_from_dict` and :func:`load_fdl` validate what a user writes,
    strictly; :func:`service_from_api` reads what a server answers, tolerantly (Go's zero values and
    ``null`` values, ``"hidden"`` keys, blanked secrets, server-owned fields). :meth:`api_dict` is the one
    way out: it never sends a server-owned or hidden value back as if it were the user's.
    """

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
    owner: str | None = None
    #: Read from a server: keys of ``environment.secrets`` it shows blank (their values live in a Secret).
    _hidden_secrets: frozenset[str] = PrivateAttr(default=frozenset())
    _from_server: bool = PrivateAttr(default=False)

    @model_validator(mode="before")
    @classmethod
    def _server_zero_values(cls, data: Any, info: ValidationInfo) -> Any:
        """Go's zero values that mean "not set" (``mount: {"storage_provider": "", "path": ""}``, empty
        strings of optional fields) become absent when reading a server's answer."""
        if not _lenient(info) or not isinstance(data, dict):
            return data
        data = _drop_nulls(data)
        mount = data.get("mount")
        if isinstance(mount, dict) and not str(mount.get("path") or "").strip(" /"):
            data.pop("mount")
        for key in ("log_level", "vo", "visibility", "isolation_level", "interlink_node_name", "total_cpu",
                    "total_memory", "ephemeral_storage_request", "token", "owner"):
            if data.get(key) == "":
                data.pop(key)
        for key in ("cpu", "memory"):
            if data.get(key) == "":
                data.pop(key)
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, v: str, info: ValidationInfo) -> str:
        problem = service_name_problem(v)
        if problem and not _lenient(info):
            raise ValueError(problem)
        return v

    @field_validator("image")
    @classmethod
    def _image(cls, v: str, info: ValidationInfo) -> str:
        if not _lenient(info) and (not v.strip() or any(c.isspace() for c in v)):
            raise ValueError(f"image {v!r} must be a container image reference such as 'ghcr.io/org/img:tag'")
        return v

    @field_validator("script")
    @classmethod
    def _script(cls, v: str, info: ValidationInfo) -> str:
        if not _lenient(info) and not v.strip():
            raise ValueError("script is empty: give the shell script the service runs")
        return v

    @field_validator("cpu", "total_cpu", mode="before")
    @classmethod
    def _cpu(cls, v: Any, info: ValidationInfo) -> Any:
        if v is None or v == "":
            return v
        if not _lenient(info):
            parse_cpu(v)
        return str(v)

    @field_validator("memory", "total_memory", mode="before")
    @classmethod
    def _memory(cls, v: Any, info: ValidationInfo) -> Any:
        if v is None or v == "":
            return v
        if not _lenient(info):
            parse_memory(v)
        return str(v)

    @field_validator("visibility")
    @classmethod
    def _visibility(cls, v: str | None, info: ValidationInfo) -> str | None:
        if not _lenient(info) and v is not None and v not in {"private", "public", "restricted"}:
            raise ValueError(f"visibility {v!r} must be private, public or restricted")
        return v

    @model_validator(mode="after")
    def _as_oscar_stores_it(self, info: ValidationInfo) -> Service:
        """Strictly, for a user's definition: a MinIO/S3 path without a folder becomes ``<service>/<path>``
        (what v4.1 stores; older servers crash on it), and values OSCAR would store differently are refused."""
        if _lenient(info):
            return self
        for entry in [*self.input, *self.output]:
            if entry.kind in ("minio", "s3") and "/" not in entry.path:
                entry.path = f"{self.name}/{entry.path}"
        env = self.environment
        maps = {"annotations": self.annotations, "labels": self.labels}
        if env is not None:
            maps.update({"environment.variables": env.variables, "environment.secrets": env.secrets})
        for where, values in maps.items():
            for key, value in values.items():
                problem = _stored_value_problem(value)
                if problem:
                    raise ValueError(f"{where}.{key}: {problem}")
        return self

    @property
    def hidden_secrets(self) -> frozenset[str]:
        """Keys of ``environment.secrets`` whose values the server did not show (read from a server)."""
        return self._hidden_secrets

    def federation_members(self) -> list[str]:
        """Where OSCAR may delegate this service's jobs (v4.1 ``federation.members``, older ``replicas``)."""
        members = list((self.federation or {}).get("members") or []) + list(self.replicas or [])
        found = []
        for member in members:
            if isinstance(member, dict):
                where = member.get("url") or member.get("cluster_id") or "?"
                found.append(f"{member.get('service_name') or self.name} on {where}")
        return found

    def api_dict(self, version: tuple[int, int, int] | None = None) -> dict[str, Any]:
        """The JSON body for ``POST``/``PUT /system/services``: the user's definition only.

        Left out: the token and the other server-owned fields (:data:`SERVER_FIELDS`), OSCAR's own labels,
        MinIO keys shown as ``"hidden"``, and secrets the server showed blank. With the server's
        ``version``, ``expose.api_port``/``nodePort`` take its shape (a list from v4.1, a number before).

        Raises:
            ConfigError: a service read from a server has secrets it did not show, beside new ones: sending
                them would replace the hidden values (OSCAR replaces the whole Secret on update).
        """
        data = self.model_dump(mode="json", exclude_none=True, by_alias=True)
        for key in SERVER_FIELDS:
            data.pop(key, None)
        if self._from_server:
            data["labels"] = {k: v for k, v in data.get("labels", {}).items() if k not in SERVER_LABELS}
        _drop_hidden_keys(data)
        env = data.get("environment") or {}
        secrets = env.get("secrets") or {}
        hidden = [k for k in secrets if k in self._hidden_secrets and secrets[k] == ""]
        if hidden and len(hidden) < len(secrets):
            raise ConfigError(
                f"service {self.name!r}: environment.secrets {sorted(hidden)} came back blank from the server "
                "(OSCAR keeps their values in a Kubernetes Secret and replaces it whole on update): give their "
                "values too, or update from the FDL file that has them")
        if hidden:
            env.pop("secrets")
        if version is not None and isinstance(data.get("expose"), dict):
            data["expose"] = _expose_for(data["expose"], version)
        if version is not None:
            _federation_for(data, version)
        return data

    def spec_hash(self) -> str:
        """A content hash of the definition, ignoring server-filled fields and the hash annotation."""
        data = self.api_dict()
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


def _stored_value_problem(value: str) -> str | None:
    """Why OSCAR would store ``value`` otherwise than given (goccy/go-yaml v1.9.8 writes the service's
    ConfigMap): a value ``-`` or ``- x`` is written so it cannot be read back, which breaks reading the
    service and listing every service of the cluster; spaces around a one-line value are dropped."""
    if "\n" in value:
        return None
    stripped = value.strip(" ")
    if stripped == "-" or stripped.startswith("- "):
        return (f"the value {value!r} cannot be stored by OSCAR (its YAML writer leaves it unquoted and cannot read "
                "it back; the cluster's service list then fails for everyone): quote it differently or change it")
    if stripped != value:
        return (f"the value {value!r} has spaces at its ends, which OSCAR drops when it stores the service: remove "
                "them, or wrap the value in other characters")
    return None


def _drop_hidden_keys(data: dict[str, Any]) -> None:
    """Remove storage providers whose keys are shown as ``"hidden"`` (OSCAR re-creates ``minio.default``)."""
    providers = data.get("storage_providers")
    if not isinstance(providers, dict):
        return
    for kind in list(providers):
        entries = providers[kind]
        if isinstance(entries, dict):
            for ident in [i for i, e in entries.items() if isinstance(e, dict) and HIDDEN in
                          (e.get("access_key"), e.get("secret_key"))]:
                entries.pop(ident)
            if not entries:
                providers.pop(kind)
    if not providers:
        data.pop("storage_providers")


def _federation_for(data: dict[str, Any], version: tuple[int, int, int]) -> None:
    """Federation members are ``federation.members`` from v4.1 and top-level ``replicas`` (with ``delegation``
    and ``rescheduler_threshold``) before (``types.Service``); the other shape is dropped by the server."""
    federation = data.get("federation")
    if version < (4, 1, 0) and isinstance(federation, dict):
        data.pop("federation")
        data.setdefault("replicas", federation.get("members") or [])
        for key in ("delegation", "rescheduler_threshold"):
            if key in federation:
                data.setdefault(key, federation[key])
    elif version >= (4, 1, 0) and data.get("replicas") and not federation:
        data["federation"] = {"members": data.pop("replicas"),
                              **{k: data.pop(k) for k in ("delegation", "rescheduler_threshold") if k in data}}


def _expose_for(expose: dict[str, Any], version: tuple[int, int, int]) -> dict[str, Any]:
    """``expose.api_port`` and ``nodePort`` are numbers up to v4.0 and lists from v4.1 (``types.Expose``)."""
    out = dict(expose)
    for key in ("api_port", "nodePort"):
        if key not in out:
            continue
        value = out[key]
        if version >= (4, 1, 0) and not isinstance(value, list):
            out[key] = [] if value in (0, None) else [value]
        elif version < (4, 1, 0) and isinstance(value, list):
            out[key] = value[0] if value else 0
    return out


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
        problems = []
        for error in exc.errors():
            field = _field_path(error["loc"])
            msg = error["msg"].removeprefix("Value error, ")
            if error["type"] == "missing":
                problems.append(f"required field '{field}' is missing")
            else:
                problems.append(f"field '{field}': {msg}" if error["loc"] else msg)
        first = _field_path(exc.errors()[0]["loc"])
        text = problems[0] if len(problems) == 1 else (
            f"{len(problems)} problems: " + "; ".join(f"({i}) {p}" for i, p in enumerate(problems, 1)))
        raise FDLError(f"{source}: {label}: {text}", source=source,
                       service=str(name) if name else None, field=first) from None


def service_from_api(data: Any, *, source: str) -> Service:
    """Read a service as a server answered it: tolerant of Go's zero values and ``null`` values, unknown fields
    kept, server-owned values marked so :meth:`Service.api_dict` never sends them back.

    Raises:
        OscarError: the answer has no usable service (not an object, no name, or a field of the wrong type),
            naming the call and the field.
    """
    if not isinstance(data, Mapping):
        raise OscarError(f"{source} answered {type(data).__name__}, not a service object: the endpoint may not be "
                         "an OSCAR server, or a proxy answered instead")
    try:
        svc = Service.model_validate(dict(data), context={_LENIENT: True})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = _field_path(first["loc"])
        what = "is missing" if first["type"] == "missing" else f"is not usable ({first['msg']})"
        raise OscarError(f"{source}: the service {data.get('name')!r} it returned has a field '{field}' that {what}; "
                         "this server answers in a shape oscar-plugins does not know: report it with the server's "
                         "version (oscar-plugins cluster show)") from None
    secrets = (svc.environment.secrets if svc.environment else {}) or {}
    svc._hidden_secrets = frozenset(k for k, v in secrets.items() if v == "")
    svc._from_server = True
    return svc


@dataclass(frozen=True)
class FDLService:
    """A service of an FDL file, with the cluster id it targets."""

    cluster_id: str
    service: Service


@dataclass(frozen=True)
class FDL:
    """A whole FDL file: every service, and the file's global ``clusters``.

    ``incomplete_clusters`` are ``clusters:`` entries whose endpoint or credentials were left empty (template
    placeholders, as in OSCAR's fish-detector-replicas example): not in ``clusters``, and an error only for a
    service that is deployed there (:meth:`cluster_for`).
    """

    services: list[FDLService]
    clusters: dict[str, Cluster]
    source: str
    incomplete_clusters: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def for_cluster(self, cluster_id: str) -> list[Service]:
        return [s.service for s in self.services if s.cluster_id == cluster_id]

    def cluster_for(self, cluster_id: str, service: str | None = None) -> Cluster | None:
        """The file's own ``clusters.<cluster_id>`` (endpoint and credentials), or None if it has none.

        Raises:
            FDLError: that entry was left with empty values, naming them and the service deployed there.
        """
        empty = self.incomplete_clusters.get(cluster_id)
        if empty:
            raise FDLError(
                f"{self.source}: service {service!r} goes to cluster {cluster_id!r}, whose clusters.{cluster_id} "
                f"{keys_are(empty)} empty (template placeholders): fill them in, or delete clusters.{cluster_id} "
                f"to use your profile {cluster_id!r}, or choose a cluster with -c NAME",
                source=self.source, service=service, field=f"clusters.{cluster_id}.{empty[0]}")
        return self.clusters.get(cluster_id)


#: Service fields OSCAR reads as strings (``types.Service``): a number or boolean there keeps its text.
_STRING_FIELDS = frozenset(n for n, f in Service.model_fields.items() if f.annotation in (str, str | None))
#: ``clusters.<id>`` keys that, left empty, are template placeholders.
_CLUSTER_KEYS = ("endpoint", "auth_user", "auth_password")


def _clusters(section: Any, label: str) -> tuple[dict[str, Cluster], dict[str, tuple[str, ...]]]:
    """The file's ``clusters``: the complete entries, and the ids of those left with empty values."""
    if section is None:
        return {}, {}
    if not isinstance(section, dict):
        raise FDLError(f"{label}: 'clusters' must map cluster ids to {{endpoint, auth_user, auth_password}}",
                       source=label)
    complete: dict[str, Cluster] = {}
    incomplete: dict[str, tuple[str, ...]] = {}
    for ident, entry in section.items():
        if isinstance(entry, dict):
            empty = tuple(k for k in _CLUSTER_KEYS if (k == "endpoint" or k in entry) and blank(entry.get(k)))
            if empty:
                incomplete[str(ident)] = empty
                continue
        try:
            complete[str(ident)] = Cluster.model_validate(entry)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise FDLError(f"{label}: clusters.{ident}: field '{_field_path(first['loc'])}': {first['msg']}",
                           source=label, field=f"clusters.{ident}") from None
    return complete, incomplete


def _service(raw: dict[str, Any], *, label: str, where: str, base: Path | None, written: Mapping[int, Any],
             empty: Mapping[str, tuple[str, ...]]) -> tuple[Service, list[str]]:
    """One service of a file, and its own storage providers left out as templates."""
    raw = as_oscar_reads(raw, written, _STRING_FIELDS, label, where)
    own = raw.get("storage_providers")
    own_empty = empty_providers(own)
    overridden = provider_refs(own)  # the service's own entry wins over the file's
    check_providers_used(raw, {**{r: k for r, k in empty.items() if r not in overridden}, **own_empty}, label, where)
    if own_empty and isinstance(own, dict):
        raw["storage_providers"] = without(own, own_empty)
    script_content(raw, base, label, where)
    return service_from_dict(raw, source=where), [f"{where}: storage_providers.{r}" for r in own_empty]


def _functions(data: Any, label: str) -> list[Any]:
    if not isinstance(data, dict) or not isinstance(data.get("functions"), dict):
        raise FDLError(f"{label}: an FDL file needs 'functions: oscar: [ {{<cluster-id>: <service>}} ]'",
                       source=label)
    items = data["functions"].get("oscar")
    if not isinstance(items, list) or not items:
        raise FDLError(f"{label}: 'functions.oscar' must be a non-empty list of {{<cluster-id>: <service>}}",
                       source=label)
    if not isinstance(data.get("storage_providers") or {}, dict):
        raise FDLError(f"{label}: 'storage_providers' must map provider types (minio, s3, ...) to providers",
                       source=label)
    return items


def load_fdl(source: str | Path | Mapping[str, Any]) -> FDL:
    """Load an oscar-cli FDL file (or an already parsed dict) with ALL its services.

    A file is read as oscar-cli and OSCAR read it (:mod:`._fdl_read`): CRLF line ends, tabs after a value,
    ``Variables:``, numbers and booleans where strings are expected, ``script:`` beside the file or in the
    working directory. Storage providers and ``clusters`` entries left with empty values (templates) are
    left out with a warning; only a service that uses one is an error.

    Raises:
        FDLError: malformed YAML (line, column and what to change), wrong structure, a template placeholder
            left, a missing script, or an invalid service; file, service and field named.
    """
    base: Path | None = None
    written: dict[int, dict[Any, str]] = {}
    if isinstance(source, Mapping):
        data: Any = dict(source)
        label = "<dict>"
    else:
        label = str(source)
        data, written = read_fdl_text(Path(source))
        base = Path(source).parent
    items = _functions(data, label)
    providers = data.get("storage_providers") or {}
    empty = empty_providers(providers)
    try:
        global_sp = StorageProviders.model_validate(without(providers, empty))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise FDLError(f"{label}: global section field 'storage_providers.{_field_path(first['loc'])}': "
                       f"{first['msg']}", source=label) from None
    clusters, incomplete = _clusters(data.get("clusters"), label)
    targets = {str(cid) for item in items if isinstance(item, dict) for cid in item}
    left_out = [f"storage_providers.{ref}" for ref in empty]  # a cluster a service goes to: cluster_for says it
    left_out += [f"clusters.{ident}" for ident in incomplete if ident not in targets]
    services: list[FDLService] = []
    problems: list[FDLError] = []  # every service's problems, reported together
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not item:
            raise FDLError(f"{label}: functions.oscar[{index}] must be a '<cluster-id>: <service>' mapping",
                           source=label)
        for cluster_id, raw in item.items():  # oscar-cli takes several cluster ids in one item, too
            where = f"{label} (functions.oscar[{index}].{cluster_id})"
            if not isinstance(raw, dict):
                raise FDLError(f"{where} must be a service mapping", source=label)
            try:
                svc, own_left_out = _service(raw, label=label, where=where, base=base, written=written,
                                             empty=empty)
            except FDLError as exc:
                problems.append(exc)
                continue
            left_out += own_left_out
            if providers:
                svc.storage_providers = (svc.storage_providers or StorageProviders()).merged_under(global_sp)
            if clusters:
                svc.clusters = {**clusters, **(svc.clusters or {})}
            services.append(FDLService(str(cluster_id), svc))
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise FDLError(f"{label}: {len(problems)} services have problems:\n" + "\n".join(
            f"  - {str(p).removeprefix(label + ': ')}" for p in problems), source=label,
            service=problems[0].service, field=problems[0].field)
    if left_out:
        warn_once(label, "left out", f"{label}: {', '.join(left_out)} {'has' if len(left_out) == 1 else 'have'} "
                  "empty values (template placeholders): left out; fill them in to use them")
    return FDL(services=services, clusters=clusters, source=label, incomplete_clusters=incomplete)
