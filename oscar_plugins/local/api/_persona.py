"""Version personas: what a client meets on OSCAR v4.1.2, v4.0.0, v3.7.1 and v3.6.3.

Each persona names the Go type of a service at that tag (``pkg/types/service.go``, ``storage.go``,
``federation.go``, ``replica.go``, ``cluster.go``) and the observable handler behaviours that changed
between tags. The sources are cited per flag; docs/FIDELITY.md has the whole table.

Example:
    >>> persona("4.1").version
    '4.1.2'
    >>> persona("3.6").paged_job_list
    False
"""

from __future__ import annotations

from dataclasses import dataclass

from oscar_plugins.local.api._gotypes import Bool, Field, Int, Int32, ListOf, MapOf, Ptr, Str, Struct, Uint

__all__ = ["ALIASES", "DEFAULT_VERSION", "PERSONAS", "Persona", "persona"]

F = Field

CLUSTER = Struct("Cluster", (F("endpoint", Str), F("auth_user", Str), F("auth_password", Str),
                             F("ssl_verify", Bool)))
REPLICA = Struct("Replica", (F("type", Str), F("cluster_id", Str), F("service_name", Str), F("url", Str),
                             F("ssl_verify", Bool), F("priority", Uint), F("headers", MapOf(Str))))
S3 = Struct("S3Provider", (F("access_key", Str), F("secret_key", Str), F("region", Str)))
MINIO = Struct("MinIOProvider", (F("endpoint", Str), F("verify", Bool), F("access_key", Str),
                                 F("secret_key", Str), F("region", Str)))
ONEDATA = Struct("OnedataProvider", (F("oneprovider_host", Str), F("token", Str), F("space", Str)))
WEBDAV = Struct("WebDavProvider", (F("hostname", Str), F("login", Str), F("password", Str)))
RUCIO = Struct("Rucio", (F("host", Str), F("account", Str), F("rse", Str), F("refresh_token", Str),
                         F("auth_host", Str), F("oidc_audience", Str), F("token_endpoint", Str)))
PROVIDERS = Struct("StorageProviders", (
    F("s3", MapOf(Ptr(S3)), omitempty=True), F("minio", MapOf(Ptr(MINIO)), omitempty=True),
    F("onedata", MapOf(Ptr(ONEDATA)), omitempty=True), F("webdav", MapOf(Ptr(WEBDAV)), omitempty=True),
    F("rucio", MapOf(Ptr(RUCIO)), omitempty=True)))
_SYNC = Struct("Service", (F("min_scale", Int), F("max_scale", Int)))
_ENV = Struct("Service", (F("variables", MapOf(Str)), F("secrets", MapOf(Str))))


def _storage_io(options: bool) -> Struct:
    extra = (F("options", Str, omitempty=True),) if options else ()
    return Struct("StorageIOConfig", (F("storage_provider", Str), F("path", Str),
                                      F("suffix", ListOf(Str), omitempty=True),
                                      F("prefix", ListOf(Str), omitempty=True), *extra))


def _expose(version: tuple[int, int, int]) -> Struct:
    v41 = version >= (4, 1, 0)
    fields = [F("min_scale", Int32), F("max_scale", Int32),
              F("api_port", ListOf(Int) if v41 else Int, omitempty=True), F("cpu_threshold", Int32),
              F("rewrite_target", Bool),
              F("nodePort", ListOf(Int32), omitempty=True) if v41 else F("nodePort", Int32),
              F("default_command", Bool), F("set_auth", Bool)]
    if v41:
        fields.append(F("auth_type", Str, omitempty=True))
    if version >= (3, 6, 5):
        fields.append(F("health_path", Str))
    if version >= (4, 0, 0):
        fields.append(F("probe_mode", Str, omitempty=True))
    return Struct("Expose", tuple(fields))


VOLUME = Struct("ServiceVolumeConfig", (F("name", Str, omitempty=True), F("size", Str), F("mount_path", Str),
                                        F("lifecycle_policy", Str, omitempty=True)))
VOLUME_STATUS = Struct("ServiceVolumeStatus", (F("enabled", Bool), F("name", Str, omitempty=True),
                                               F("phase", Str, omitempty=True), F("error", Str, omitempty=True)))
DEPLOYMENT = Struct("ServiceDeploymentSummary", (
    F("state", Str), F("reason", Str, omitempty=True), F("last_transition_time", Str, omitempty=True),
    F("active_instances", Int), F("affected_instances", Int), F("resource_kind", Str, omitempty=True)))
FEDERATION = Struct("Federation", (F("group_id", Str), F("topology", Str), F("delegation", Str, omitempty=True),
                                   F("rescheduler_threshold", Int, omitempty=True),
                                   F("members", ListOf(REPLICA), omitempty=True)))
KSERVE = Struct("Kserve", (
    F("type", Str, omitempty=True),
    F("inference", Ptr(Struct("KserveInference", (F("model_format", Str, omitempty=True),
                                                  F("runtime", Str, omitempty=True)))), omitempty=True),
    F("llm_inference", Ptr(Struct("KserveLLMInference", (F("runtime_image", Str, omitempty=True),))),
      omitempty=True),
    F("storage_uri", Str), F("api_version", Str, omitempty=True), F("min_scale", Int32, omitempty=True),
    F("max_scale", Int32, omitempty=True), F("cpu", Str), F("memory", Str), F("args", ListOf(Str), omitempty=True),
    F("env", MapOf(Str), omitempty=True), F("enable_gpu", Bool, omitempty=True), F("set_auth", Bool, omitempty=True)))


def service_type(version: tuple[int, int, int]) -> Struct:
    """``types.Service`` as declared at ``version`` (fields in declaration order)."""
    v41, v40 = version >= (4, 1, 0), version >= (4, 0, 0)
    io = _storage_io(options=v41)
    fields = [F("name", Str), F("cluster_id", Str), F("memory", Str), F("cpu", Str), F("total_memory", Str),
              F("total_cpu", Str)]
    if v41:
        fields.append(F("ephemeral_storage_request", Str))
    fields += [F("enable_gpu", Bool), F("enable_sgx", Bool), F("image_prefetch", Bool), F("synchronous", _SYNC)]
    if v41:
        fields.append(F("federation", Ptr(FEDERATION), omitempty=True))
    else:
        fields += [F("replicas", ListOf(REPLICA), omitempty=True), F("delegation", Str),
                   F("rescheduler_threshold", Int)]
    fields += [F("log_level", Str), F("image", Str), F("alpine", Bool), F("token", Str), F("file_stage_in", Bool),
               F("input", ListOf(io)), F("output", ListOf(io)), F("script", Str, omitempty=True),
               F("image_pull_secrets", ListOf(Str), omitempty=True), F("expose", _expose(version)),
               F("environment", _ENV), F("annotations", MapOf(Str)), F("vo", Str), F("labels", MapOf(Str)),
               F("storage_providers", Ptr(PROVIDERS), omitempty=True),
               F("clusters", MapOf(CLUSTER), omitempty=True), F("owner", Str)]
    if version >= (3, 6, 5):
        fields.append(F("namespace", Str, omitempty=True, yaml_skip=True))
    fields += [F("interlink_node_name", Str), F("visibility", Str), F("allowed_users", ListOf(Str)),
               F("isolation_level", Str), F("bucket_list", ListOf(Str)), F("mount", io)]
    if v40:
        fields += [F("volume", Ptr(VOLUME), omitempty=True),
                   F("volume_status", VOLUME_STATUS, omitempty=True, yaml_skip=True),
                   F("deployment", Ptr(DEPLOYMENT), omitempty=True, yaml_skip=True)]
    if v41:
        fields.append(F("kserve", Ptr(KSERVE), omitempty=True))
    return Struct("Service", tuple(fields))


@dataclass(frozen=True)
class Persona:
    """The observable behaviour of one OSCAR release (each flag cites where it comes from)."""

    version: str
    #: ``types.Service`` at that tag.
    service: Struct
    #: Duplicate service name: 400 from v4.1.0 (``create.go`` serviceWithSameNameExists), 409 before
    #: (Kubernetes AlreadyExists, ``create.go`` MakeCreateHandler).
    duplicate_status: int
    #: ``create.go`` normalizeStoragePaths (v4.1.0+): ``in`` -> ``<service>/in``; before, a MinIO path
    #: without a folder panics in CreateS3PathWithWebhook (500, empty body, the service left behind).
    normalizes_paths: bool
    #: ``job.go`` MakeJobHandler reads ``X-Delegated-Job-ID`` from v4.1.0.
    delegated_job_id: bool
    #: ``update.go`` MakeUpdateHandler keeps the stored token from v4.0.0; before, every PUT makes a new one.
    keeps_token_on_update: bool
    #: v3.6.x ``create.go`` sets ``Owner`` before ShouldBindJSON, so a body ``owner`` wins on create.
    body_owner_on_create: bool
    #: ``logs.go`` MakeJobsInfoHandler: ``{"jobs": ..., "next_page"}`` from v3.6.4, a bare map before.
    paged_job_list: bool
    #: ``oscar.grycap/job-owner`` label on jobs (``job.go``) and the OIDC listing filter (``logs.go``), v3.6.5+.
    job_owner_label: bool
    #: ``status.go`` MakeStatusHandler shape: ``v4`` (nested, schedulable figures), ``v3`` (nested, v3.6.5-3.7.1),
    #: ``flat`` (camelCase, string numbers, before v3.6.5).
    status_shape: str
    #: ``types.Config`` keys ``/system/config`` shows at that tag (``config.go`` MakeConfigHandler).
    config_keys: tuple[str, ...]
    #: ``/system/config`` has ``allowed_image_repositories`` (v4.0.0+).
    allowed_image_repositories: bool
    #: Labels ``checkValues`` adds (``create.go``): v4.0.0+ adds ``oscar.grycap/user-service`` and ``owner_name``.
    owner_labels: bool
    #: An OIDC user who may not see a service: ``empty200`` (v4.0.0+: nothing written), ``403`` (v3.6.5-3.7.1),
    #: ``403json`` (before v3.6.5: 403 text followed by the JSON) for job listings (``logs.go``).
    oidc_unauthorised_listing: str
    #: ``GET /system/metrics/{serviceName}`` (``main.go``, ``handlers/metrics.go`` MakeMetricValueHandler), v4.0.0+.
    metrics: bool = False

    @property
    def version_tuple(self) -> tuple[int, int, int]:
        a, b, c = (int(p) for p in self.version.split("."))
        return a, b, c


_CONFIG_BASE = ("name", "namespace", "services_namespace", "gpu_available", "interLink_available",
                "serverless_backend", "yunikorn_enable", "oidc_groups")


def _make(version: str) -> Persona:
    v = tuple(int(p) for p in version.split("."))
    assert len(v) == 3
    tag = (v[0], v[1], v[2])
    keys = list(_CONFIG_BASE)
    if tag >= (3, 6, 5):
        keys.insert(3, "controller_service_account")
    if tag >= (3, 7, 0):
        keys.append("kueue_enable")
    if tag >= (4, 0, 0):
        keys.append("volume_enable")
    if tag >= (4, 1, 0):
        keys.append("minio_quota_enabled")
    return Persona(
        version=version,
        service=service_type(tag),
        duplicate_status=400 if tag >= (4, 1, 0) else 409,
        normalizes_paths=tag >= (4, 1, 0),
        delegated_job_id=tag >= (4, 1, 0),
        keeps_token_on_update=tag >= (4, 0, 0),
        body_owner_on_create=tag < (3, 7, 0),
        paged_job_list=tag >= (3, 6, 4),
        job_owner_label=tag >= (3, 6, 5),
        status_shape="v4" if tag >= (4, 0, 0) else "v3" if tag >= (3, 6, 5) else "flat",
        config_keys=tuple(keys),
        allowed_image_repositories=tag >= (4, 0, 0),
        owner_labels=tag >= (4, 0, 0),
        oidc_unauthorised_listing="empty200" if tag >= (4, 0, 0) else "403" if tag >= (3, 6, 5) else "403json",
        metrics=tag >= (4, 0, 0),
    )


PERSONAS = {v: _make(v) for v in ("4.1.2", "4.0.0", "3.7.1", "3.6.3")}
ALIASES = {"4.1": "4.1.2", "4.0": "4.0.0", "3.7": "3.7.1", "3.6": "3.6.3"}
DEFAULT_VERSION = "4.1.2"


def persona(version: str | None = None) -> Persona:
    """The persona for ``4.1.2|4.0.0|3.7.1|3.6.3`` (or ``4.1|4.0|3.7|3.6``, with or without a ``v``).

    Raises:
        ValueError: another version; the message lists the ones reproduced.
    """
    key = (version or DEFAULT_VERSION).strip().lstrip("vV")
    key = ALIASES.get(key, key)
    if key not in PERSONAS:
        choices = ", ".join([*PERSONAS, *ALIASES])
        raise ValueError(f"OSCAR version {version!r} is not reproduced by the local cluster: use one of {choices}")
    return PERSONAS[key]
