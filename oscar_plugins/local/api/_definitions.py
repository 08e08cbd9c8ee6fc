"""Service definitions as OSCAR's create, update and read handlers treat them (pure functions).

Each step cites the Go function it reproduces (grycap/oscar, ``pkg/handlers``):

* :func:`bind`: ``c.ShouldBindJSON(&service)`` plus the ``binding:"required,max=39,min=1"`` tags of
  ``types.Service``: 400 ``The service specification is not valid: ...``.
* :func:`normalize_paths`: ``create.go`` normalizeStoragePaths (v4.1.0+).
* :func:`check_values`: ``create.go`` checkValues: defaults, labels, the hidden ``minio.default``,
  a new token.
* :func:`kubernetes_problem`: what the Kubernetes API refuses when the service is created
  (``CreateService``): 500 ``Error creating the service: ...``.
* :func:`stored` / :func:`view`: the ConfigMap round trip (``k8s.go`` createServiceConfigMap,
  getServiceFromConfigMap) and the JSON a GET returns (``read.go``, ``list.go``).
"""

from __future__ import annotations

import copy
import re
import secrets
from typing import Any

from oscar_plugins._validation import DNS1123_LABEL_RE, parse_cpu, parse_memory
from oscar_plugins.local.api._gotypes import GoDecodeError, UnreadableFDL, decode, dumps, encode, yaml_roundtrip
from oscar_plugins.local.api._persona import Persona

__all__ = [
    "DEFAULT_OWNER",
    "UNREADABLE",
    "HTTPError",
    "bind",
    "check_values",
    "format_uid",
    "kubernetes_problem",
    "normalize_paths",
    "storage_problem",
    "stored",
    "view",
    "view_json",
]

DEFAULT_OWNER = "cluster_admin"  # types.DefaultOwner
UNREADABLE = "__oscar_plugins_unreadable__"
_LOG_LEVELS = ("NOTSET", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_QUANTITY = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_EGI_UID = re.compile(r"[0-9a-z]+@")


class HTTPError(Exception):
    """An answer of the OSCAR server: a status and a plain-text body (empty for ``c.Status(...)``)."""

    def __init__(self, status: int, body: str = "") -> None:
        super().__init__(body or f"HTTP {status}")
        self.status, self.body = status, body


def format_uid(uid: str) -> str:
    """``auth.FormatUID`` (``multitenancy.go``): an EGI ``<hex>@egi.eu`` subject loses its ``@...`` part."""
    match = _EGI_UID.search(uid)
    return uid if match is None else uid[: match.end() - 1]


def _validator(field: str, tag: str) -> str:
    return f"Key: 'Service.{field}' Error:Field validation for '{field}' failed on the '{tag}' tag"


def bind(persona: Persona, raw: Any) -> dict[str, Any]:
    """Decode a create/update body into ``types.Service`` and apply its binding tags.

    Raises:
        HTTPError: 400 with gin's message.
    """
    try:
        service = decode(persona.service, raw)
    except GoDecodeError as exc:
        raise HTTPError(400, f"The service specification is not valid: {exc}") from None
    problems = []
    name = service["name"]
    if not name:
        problems.append(_validator("Name", "required"))
    elif len(name) > 39:
        problems.append(_validator("Name", "max"))
    if not service["image"]:
        problems.append(_validator("Image", "required"))
    if not service["script"]:
        problems.append(_validator("Script", "required"))
    if problems:
        raise HTTPError(400, "The service specification is not valid: " + "\n".join(problems))
    return service


def _provider(raw: str) -> tuple[str, str]:
    kind, _, ident = raw.strip().partition(".")
    return ident or "default", kind.lower()


def normalize_paths(service: dict[str, Any]) -> None:
    """``normalizeStoragePaths`` (v4.1.0+): trim `` /``; a MinIO/S3 path without a folder becomes
    ``<service>/<path>``.

    Raises:
        HTTPError: 400 ``input path cannot be empty`` (or ``output``).
    """
    for section in ("input", "output"):
        for entry in service[section] or []:
            path = entry["path"].strip(" /")
            if not path:
                raise HTTPError(400, f"{section} path cannot be empty")
            _, kind = _provider(entry["storage_provider"])
            if kind in ("minio", "s3") and "/" not in path:
                path = f"{service['name']}/{path}"
            entry["path"] = path


def sanitize(service: dict[str, Any]) -> None:
    """``sanitizeUsers`` and ``NormalizeLineEndings`` (``create.go``, ``update.go``)."""
    service["allowed_users"] = [u.strip() for u in service["allowed_users"] or [] if u.strip()]
    service["script"] = service["script"].replace("\r\n", "\n").replace("\r", "\n")


def check_values(persona: Persona, service: dict[str, Any], minio: dict[str, Any]) -> None:
    """``checkValues``: defaults, OSCAR's labels, empty annotations, hidden ``minio.default``, new token."""
    service["memory"] = service["memory"] or "256Mi"
    service["cpu"] = service["cpu"] or "0.2"
    service["visibility"] = service["visibility"] or "private"
    level = service["log_level"].upper()
    service["log_level"] = level if level in _LOG_LEVELS else "INFO"
    labels = service["labels"] if service["labels"] is not None else {}
    if persona.owner_labels:
        labels["oscar.grycap/user-service"] = "true"
    labels["oscar_service"] = service["name"]
    labels["applicationId"] = service["name"]
    labels["queue"] = f"root.oscar-queue.{service['name']}"
    service["labels"] = labels
    if service["annotations"] is None:
        service["annotations"] = {}
    hidden = {**minio, "access_key": "hidden", "secret_key": "hidden"}
    providers = service["storage_providers"]
    if providers is None:
        service["storage_providers"] = {"s3": None, "minio": {"default": hidden}, "onedata": None, "webdav": None,
                                        "rucio": None}
    else:
        providers["minio"] = {**(providers["minio"] or {}), "default": hidden}
    federation = service.get("federation")
    if federation is not None and not federation["topology"]:
        federation["topology"] = "none"
    service["token"] = secrets.token_hex(32)


def kubernetes_problem(service: dict[str, Any]) -> str | None:
    """What the Kubernetes API refuses when OSCAR creates the service's objects, or None.

    The text follows ``Error creating the service: <Kubernetes message>`` (500).
    """
    name = service["name"]
    if not DNS1123_LABEL_RE.match(name):
        return (f'ConfigMap "{name}" is invalid: metadata.name: Invalid value: "{name}": a lowercase RFC 1123 '
                "subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end "
                "with an alphanumeric character")
    for key, parse in (("cpu", parse_cpu), ("memory", parse_memory)):
        value = service[key]
        try:
            if not re.match(_QUANTITY, value):
                raise ValueError(value)
            parse(value)
        except ValueError:
            return f"quantities must match the regular expression '{_QUANTITY}'"
    return None


def storage_problem(service: dict[str, Any], minio: dict[str, Any]) -> HTTPError | None:
    """What ``createBuckets`` (``create.go``) refuses in the ``input``/``output`` providers, or None.

    Inputs must be MinIO, WebDAV (dCache) or Rucio (400 otherwise); every provider ``<type>.<id>`` must be
    declared in ``storage_providers`` (``minio.default`` always is); a MinIO input other than the cluster's
    own must be the cluster's MinIO (500 otherwise). A missing ``storage_provider`` is ``""``: refused.
    """
    providers = service.get("storage_providers") or {}

    def defined(kind: str, ident: str) -> bool:
        return kind in ("minio", "s3", "onedata", "webdav", "rucio") and ident in (providers.get(kind) or {})

    for entry in service.get("input") or []:
        ident, kind = _provider(entry["storage_provider"])
        if kind not in ("minio", "webdav", "rucio"):
            return HTTPError(400, "unrecognized input (valid inputs are MinIO and dCache)")
        if kind == "minio" and not defined(kind, ident):
            return HTTPError(500, f'the StorageProvider "{kind}.{ident}" is not defined')
        if kind == "minio" and ident != "default":
            own = {**minio, "access_key": "", "secret_key": ""}
            given = providers["minio"][ident] or {}
            if given.get("endpoint") != own.get("endpoint"):
                return HTTPError(500, f'the provided MinIO server "{given.get("endpoint")}" is not the configured '
                                      "in OSCAR")
    for entry in service.get("output") or []:
        ident, kind = _provider(entry["storage_provider"])
        if not defined(kind, ident):
            return HTTPError(500, f'the StorageProvider "{kind}.{ident}" is not defined')
    return None


def stored(persona: Persona, service: dict[str, Any]) -> dict[str, Any]:
    """The service as every later read gives it: written to YAML and read back (script kept apart).

    A value goccy/go-yaml cannot read back makes the result carry :data:`UNREADABLE`: OSCAR stores such
    a service, then fails every read and list with ``the FDL of the service "<name>" cannot be read``.
    """
    script = service["script"]
    body = {**service, "script": ""}
    try:
        result: dict[str, Any] = yaml_roundtrip(persona.service, body)
    except UnreadableFDL as exc:
        return {**copy.deepcopy(service), UNREADABLE: str(exc)}
    result["script"] = script
    if "namespace" in result:  # not in the YAML: read.go sets it from the ConfigMap's namespace
        result["namespace"] = service.get("namespace", "")
    return result


def view(persona: Persona, service: dict[str, Any]) -> Any:
    """``GET /system/services[/{name}]``: secrets blanked, volume status computed (``read.go`` setVolumeStatus).

    Raises:
        HTTPError: 500 for a service whose stored FDL cannot be read.
    """
    if UNREADABLE in service:
        raise HTTPError(500, f'the FDL of the service "{service["name"]}" cannot be read')
    shown = dict(service)
    environment = dict(shown["environment"])
    environment["secrets"] = {k: "" for k in environment.get("secrets") or {}}
    shown["environment"] = environment
    if "volume_status" in shown:
        volume = shown.get("volume")
        shown["volume_status"] = ({"enabled": True, "name": volume.get("name") or shown["name"], "phase": "ready"}
                                  if volume else {"enabled": False})
    return encode(persona.service, shown)


def view_json(persona: Persona, services: list[dict[str, Any]] | dict[str, Any]) -> bytes:
    """The encoding/json bytes of one service view or a list of them."""
    if isinstance(services, list):
        return dumps([view(persona, s) for s in services])
    return dumps(view(persona, services))
