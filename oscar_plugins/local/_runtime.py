"""The local cluster's core: services, jobs, bucket triggers and status, behind the HTTP routes."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from oscar_plugins._events import minio_event
from oscar_plugins._validation import service_name_problem
from oscar_plugins.local._config import Credentials, inside
from oscar_plugins.local._latency import POD_RECORDS, LatencyModel, PodGate
from oscar_plugins.local._store import FAILED, SUCCEEDED, JobRow, Store, rfc3339
from oscar_plugins.local.api._callers import Caller, OidcVerifier
from oscar_plugins.local.api._definitions import (
    DEFAULT_OWNER,
    UNREADABLE,
    HTTPError,
    bind,
    check_values,
    format_uid,
    kubernetes_problem,
    normalize_paths,
    sanitize,
    storage_problem,
    stored,
)
from oscar_plugins.local.api._persona import Persona, persona
from oscar_plugins.local.api._services import (
    ServiceError,
    input_paths,
    local_paths,
    resources,
    triggered_by,
)
from oscar_plugins.local.execution._execution import WorkDirs, default_job_name
from oscar_plugins.local.execution._joblog import JobLog
from oscar_plugins.local.execution._payload import save_body
from oscar_plugins.local.execution._podrun import SupervisorSource
from oscar_plugins.local.execution._runner import Execution, Runner
from oscar_plugins.local.execution._scheduler import Scheduler, Unschedulable
from oscar_plugins.local.storage._storage import REGION, Storage
from oscar_plugins.local.storage._tls import trust_env

__all__ = ["MAX_ARG_STRLEN", "Runtime", "RuntimeConfig", "event_owner"]

logger = logging.getLogger("oscar_plugins.local")
TTL_JOB = 30 * 24 * 3600
RESTART_REASON = "killed by local cluster restart"
SERVICES_NAMESPACE = "oscar-svc"
#: Linux MAX_ARG_STRLEN: the longest single environment string (``EVENT=<body>`` and its NUL).
MAX_ARG_STRLEN = 128 * 1024


@dataclass(frozen=True)
class RuntimeConfig:
    """Settings of one running cluster."""

    data_dir: Path
    creds: Credentials
    s3_endpoint: str
    engine: str
    cpus: float
    memory: int
    run_timeout: float
    hook_secret: str
    events: str  # "webhook" or "poll"
    persona: Persona = field(default_factory=persona)
    s3_verify: bool = False
    #: Seconds a service create, an update adding buckets or a delete pauses for MinIO's restart
    #: (``utils/minio.go`` RestartServer: restart, then 6 s); 0 = no restart.
    minio_restart: float = 0.0
    oidc_issuers: tuple[str, ...] = ()
    #: Seconds a job list's continue token stays usable (Kubernetes compacts its history every 5 minutes).
    continue_ttl: float = 300.0
    #: The CA the cluster's HTTPS certificates come from (``tls``); jobs trust it.
    ca: str | None = None
    #: Run jobs through the real faas-supervisor (``_podrun``); None: by its rules (``_supervisor``).
    supervisor: SupervisorSource | None = None
    #: A real cluster's pod start and capacity, for benchmarks (``_latency``); None: none.
    latency: LatencyModel | None = None


def _event_too_long(service: dict[str, Any], body: bytes) -> bool:
    size = len(body)
    if service.get("interlink_node_name"):
        size = 4 * ((size + 2) // 3)  # EVENT=base64(body) for interLink nodes
    return len(b"EVENT=") + size + 1 > MAX_ARG_STRLEN


def event_owner(body: bytes) -> str | None:
    """``job.go`` decodeEventBytes: for a body with a ``Records`` list (a MinIO event), the
    ``principalId`` of its first record (``""`` when absent: the Go code recovers from the panic); None
    for any other body."""
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(event, dict) or not isinstance(event.get("Records"), list):
        return None
    try:
        return str(event["Records"][0]["requestParameters"]["principalId"])
    except (IndexError, KeyError, TypeError):
        return ""


class Runtime:
    """Services, executions and bucket events of the local cluster (used from the event loop)."""

    def __init__(self, config: RuntimeConfig, store: Store, storage: Storage,
                 s3_restart: Callable[[], None] | None = None) -> None:
        self.config, self.store, self.storage = config, store, storage
        self.s3_restart = s3_restart
        self.oidc = OidcVerifier(list(config.oidc_issuers))
        runner = Runner(store, storage, config.engine, config.run_timeout, persona=config.persona,
                        supervisor=config.supervisor, secret_key=config.creds.s3_secret_key,
                        trust=trust_env(Path(config.ca)) if config.ca else {})
        pods = PodGate(config.latency, config.data_dir / POD_RECORDS) if config.latency is not None else None
        self.scheduler = Scheduler(config.cpus, config.memory, runner, pods)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._poller: asyncio.Task[None] | None = None
        self.started = time.time()

    # lifecycle ----------------------------------------------------------------------------------
    def recover(self) -> None:
        """Fail the jobs a previous run left unfinished, expire old ones, clear stale work dirs."""
        for service, name in self.store.fail_unfinished(RESTART_REASON):
            with contextlib.suppress(OSError, ValueError):
                log = JobLog(self.log_path(service, name))
                log.supervisor(f"Job failed: {RESTART_REASON}", "ERROR")
                log.close()
        expired = self.store.expired_jobs(time.time() - TTL_JOB)
        for service, name in expired:
            self._remove_log(service, name)
        self.store.delete_jobs(n for _, n in expired)
        shutil.rmtree(self.config.data_dir / "work", ignore_errors=True)

    async def startup(self) -> None:
        """Start the scheduler (and the bucket poller when moto could not be hooked)."""
        self.scheduler.start()
        if self.config.events == "poll":
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def shutdown(self) -> None:
        """Stop polling and kill every execution."""
        if self._poller is not None:
            self._poller.cancel()
        await self.scheduler.shutdown()

    # paths --------------------------------------------------------------------------------------
    def log_path(self, service: str, job: str) -> Path:
        """``<data_dir>/logs/<service>/<job>.log`` (names are validated before they get here)."""
        return inside(self.config.data_dir / "logs", service, f"{job}.log")

    def work_dirs(self, service: str, name: str) -> WorkDirs:
        """``<data_dir>/work/<service>/<name>/``."""
        return WorkDirs(inside(self.config.data_dir / "work", service, name))

    def _remove_log(self, service: str, name: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.log_path(service, name).unlink()

    # services -----------------------------------------------------------------------------------
    @property
    def persona(self) -> Persona:
        """The OSCAR release this cluster answers as."""
        return self.config.persona

    def minio_default(self) -> dict[str, Any]:
        """``cfg.MinIOProvider`` without its keys (what checkValues copies into every service)."""
        return {"endpoint": self.config.s3_endpoint, "verify": self.config.s3_verify, "region": REGION}

    def read_service(self, name: str) -> dict[str, Any] | None:
        """A service as OSCAR reads it back (it may carry ``UNREADABLE``), or None."""
        return None if service_name_problem(name) else self.store.get_service(name)

    def list_services(self) -> list[dict[str, Any]]:
        """Every readable service (the job and bucket paths skip unreadable ones, as they fail there)."""
        return [s for s in self.store.list_services() if UNREADABLE not in s]

    def visible(self, service: dict[str, Any], caller: Caller) -> bool:
        """``authorizeRequest`` (``logs.go``): the admin sees all; a user sees public services, their own,
        and restricted ones that list them."""
        if caller.admin:
            return True
        visibility = service.get("visibility")
        return (visibility == "public" or service.get("owner") == caller.uid
                or (visibility == "restricted" and caller.uid in (service.get("allowed_users") or [])))

    def _namespace(self, caller: Caller) -> str:
        if caller.admin:
            return SERVICES_NAMESPACE
        digest = hashlib.sha256(str(caller.uid).encode()).hexdigest()[:8]
        return f"{SERVICES_NAMESPACE}-{re.sub('[^a-z0-9]', '', str(caller.uid).lower())[:8]}-{digest}"

    async def create_service(self, raw: object, caller: Caller) -> None:
        """``POST /system/services`` (``create.go`` MakeCreateHandler).

        Raises:
            HTTPError: with OSCAR's status and body for each refusal.
        """
        p = self.persona
        body_owner = isinstance(raw, dict) and any(str(k).lower() == "owner" for k in raw)
        service = bind(p, raw)
        if caller.admin and not (p.body_owner_on_create and body_owner):
            service["owner"] = DEFAULT_OWNER
        if p.normalizes_paths:
            normalize_paths(service)
        sanitize(service)
        check_values(p, service, self.minio_default())
        if not caller.admin:
            service["owner"] = str(caller.uid)
        service["namespace"] = service.get("namespace") or self._namespace(caller)
        if p.owner_labels:
            service["labels"]["owner_name"] = "oscar" if caller.admin else str(caller.uid)
        name = service["name"]
        if self.store.get_service(name) is not None:
            raise HTTPError(p.duplicate_status, "A service with the provided name already exists")
        problem = kubernetes_problem(service)
        if problem:
            raise HTTPError(500, f"Error creating the service: {problem}")
        refused = storage_problem(service, self.minio_default())
        if refused is not None:
            raise refused
        try:
            local_paths(service)
        except ServiceError as exc:  # MinIO refuses the bucket or the folder marker
            raise HTTPError(500, f"error creating bucket: {exc}") from None
        definition = stored(p, service)
        if not self.store.put_service(name, definition):
            raise HTTPError(409, "A service with the provided name already exists")
        try:
            await self._create_buckets(service, update=False)
        except HTTPError:
            if p.normalizes_paths:
                self.store.delete_service(name)
            raise  # before v4.1 the panic leaves the service behind
        await self.restart_minio()

    async def update_service(self, raw: object, caller: Caller) -> None:
        """``PUT /system/services`` (``update.go`` MakeUpdateHandler).

        Raises:
            HTTPError: 400 invalid, 404 (empty body) unknown, 403 not the owner.
        """
        p = self.persona
        service = bind(p, raw)
        if p.normalizes_paths:
            normalize_paths(service)
        sanitize(service)
        check_values(p, service, self.minio_default())
        old = self.read_service(service["name"])
        if old is None:
            raise HTTPError(404)
        if p.keeps_token_on_update and old.get("token"):
            service["token"] = old["token"]
        service["namespace"] = old.get("namespace") or SERVICES_NAMESPACE
        if not service["environment"]["secrets"]:  # update.go leaves the Secret as it is
            service["environment"]["secrets"] = dict((old.get("environment") or {}).get("secrets") or {})
        if not caller.admin:
            if old.get("owner") != caller.uid:
                raise HTTPError(403, f"User {caller.uid} doesn't have permision to modify this service")
            service["owner"] = old.get("owner", "")
        try:
            new_buckets = {p.bucket for p in local_paths(service)} - {p.bucket for p in local_paths(old)}
        except ServiceError:
            new_buckets = set()  # createBuckets(isUpdate=true) ignores MinIO's refusals
        self.store.replace_service(service["name"], stored(p, service))
        await self._create_buckets(service, update=True)
        if new_buckets:
            await self.restart_minio()

    async def _create_buckets(self, service: dict[str, Any], update: bool) -> None:
        """``createBuckets``: every input and output bucket of the cluster's MinIO, with its folder marker.

        Raises:
            HTTPError: 500 (empty body) for a MinIO path without a folder before v4.1 (a nil index panic).
        """
        try:
            paths = local_paths(service)
        except ServiceError:
            return
        for path in paths:
            if not path.folder and not self.persona.normalizes_paths and not update:
                raise HTTPError(500)
            try:
                await self.storage.call(self.storage.ensure_bucket, path.bucket, path.folder)
            except Exception as exc:
                if not update:
                    raise HTTPError(500, f"error creating bucket {path.bucket}: {exc}") from exc

    async def restart_minio(self) -> None:
        """``utils/minio.go`` RestartServer: MinIO restarts (transfers in flight are cut), then OSCAR waits 6 s."""
        if self.config.minio_restart <= 0:
            return
        started = time.monotonic()
        if self.s3_restart is not None:
            await asyncio.to_thread(self.s3_restart)
        await asyncio.sleep(max(0.0, self.config.minio_restart - (time.monotonic() - started)))

    async def delete_service(self, name: str, caller: Caller) -> None:
        """``DELETE /system/services/{name}``: the service, its jobs and logs, its input and output buckets.

        Raises:
            HTTPError: 404 (empty body) unknown (500 before v3.6.5: a nil dereference), 403 not the owner.
        """
        service = self.read_service(name)
        if service is None:
            raise HTTPError(404 if self.persona.version_tuple >= (3, 6, 5) else 500)
        if not caller.admin and service.get("owner") != caller.uid:
            raise HTTPError(403, f"User {caller.uid} doesn't have permision to delete this service")
        executions = list(self.scheduler.pending.values()) + list(self.scheduler.running.values())
        for ex in executions:
            if ex.service.get("name") == name and not ex.sync:
                self.scheduler.cancel(ex.name)
        self.store.delete_service(name)
        with contextlib.suppress(ValueError):
            shutil.rmtree(inside(self.config.data_dir / "logs", name), ignore_errors=True)
        for bucket in sorted({p.bucket for p in local_paths(service)}):
            try:
                await self.storage.call(self.storage.delete_bucket, bucket)
            except Exception as exc:
                logger.warning("could not delete bucket %r of service %r: %s", bucket, name, exc)
        await self.restart_minio()

    # executions ---------------------------------------------------------------------------------
    async def _execution(self, service: dict[str, Any], name: str, sync: bool) -> Execution:
        cpu, memory = resources(service)
        work = self.work_dirs(service["name"], name)
        await asyncio.to_thread(work.create, str(service.get("script", "")))  # file system work off the loop
        log_path = work.log if sync else self.log_path(service["name"], name)
        return Execution(service=service, name=name, sync=sync, work=work, log_path=log_path, cpu=cpu, memory=memory)

    async def submit_job(self, service: dict[str, Any], name: str | None, body: bytes,
                         owner_label: str | None = None) -> JobRow:
        """Record and queue a job whose body (the pod's ``EVENT``) the runner reads as the supervisor does.

        The body is the pod's ``EVENT`` variable (base64-encoded once more for interLink nodes,
        ``types.SetInterlinkJob``): above Linux's 128 KiB for one environment string the container
        cannot start and the job ends ``Failed``, as on Kubernetes.

        Raises:
            DuplicateJobError: the name is taken.
        """
        row = self.store.add_job(name or default_job_name(service["name"]), service["name"], owner_label)
        if _event_too_long(service, body):
            self._fail_unstarted(service["name"], row.name, "StartError: exec /bin/sh: argument list too long "
                                 f"(the job body, {len(body)} bytes, is the pod's EVENT variable, whose limit "
                                 f"is {MAX_ARG_STRLEN} bytes)")
            return row
        ex = await self._execution(service, row.name, sync=False)
        ex.event = body
        try:
            self.scheduler.submit(ex)
        except Unschedulable as exc:
            ex.work.remove()
            self._fail_unstarted(service["name"], row.name, f"Job cannot be scheduled: {exc}")
        return row

    def _fail_unstarted(self, service: str, name: str, reason: str) -> None:
        log = JobLog(self.log_path(service, name))
        log.supervisor(reason, "ERROR")
        log.close()
        self.store.finish_job(name, FAILED, time.time(), None, reason)

    async def run_sync(self, service: dict[str, Any], body: AsyncIterator[bytes]) -> Execution:
        """Save the body, run the script and return the finished execution (the caller removes its work dir).

        Raises:
            BodyError: the body is neither base64 nor a JSON object.
            Unschedulable: the service can never fit.
        """
        ex = await self._execution(service, f"run-{uuid.uuid4()}", sync=True)
        try:
            ex.input_file = ex.work.input / f"event-file-{uuid.uuid4()}"
            await save_body(body, ex.input_file)
            self.scheduler.submit(ex)
            await ex.done.wait()
        except BaseException:
            if ex.name in self.scheduler.running or ex.name in self.scheduler.pending:
                self.scheduler.cancel(ex.name)
            ex.work.remove()
            raise
        return ex

    def delete_job(self, service: str, name: str) -> bool:
        """Kill (if running) and delete one job with its log; False when unknown."""
        if self.store.get_job(service, name) is None:
            return False
        self.scheduler.cancel(name)
        self.store.delete_jobs([name])
        self._remove_log(service, name)
        return True

    def delete_jobs(self, service: str, everything: bool) -> None:
        """Delete a service's Succeeded jobs (``status.successful!=0``, ``logs.go`` MakeDeleteJobsHandler), or
        with ``everything`` all of them, killing running ones."""
        names = self.store.job_names(service, None if everything else (SUCCEEDED,))
        for name in names:
            self.scheduler.cancel(name)
            self._remove_log(service, name)
        self.store.delete_jobs(names)

    # bucket events ------------------------------------------------------------------------------
    async def object_created(self, bucket: str, key: str, event_id: str | None = None, size: int = 0,
                             etag: str = "", services: list[dict[str, Any]] | None = None) -> int:
        """MinIO's webhook: post the object-created event to ``/job/<service>`` of every service whose input
        path matches (OSCAR registers one ``s3:ObjectCreated:*`` notification per input folder); return how
        many jobs started. The uploader's key is the event's ``principalId`` (the job-owner label).
        ``services``: the services as listed once for a batch of events (default: listed now)."""
        if event_id is not None:
            if event_id in self._seen:
                return 0
            self._seen[event_id] = None
            while len(self._seen) > 10_000:
                self._seen.popitem(last=False)
        started = 0
        body, owner = b"", None  # built for the first service triggered: most objects (outputs) trigger none
        for service in self.list_services() if services is None else services:
            if triggered_by(service, bucket, key):
                if not body:
                    principal = self.config.creds.s3_access_key
                    body = json.dumps(minio_event(bucket, key, principal, size, etag), separators=(",", ":")).encode()
                    owner = format_uid(principal)[:62] if self.persona.job_owner_label else None
                await self.submit_job(service, None, body, owner)
                started += 1
        return started

    async def _poll(self) -> None:
        snapshots: dict[tuple[str, str], dict[str, str]] = {}
        while True:
            await asyncio.sleep(0.5)
            created: set[tuple[str, str]] = set()
            for service in self.list_services():
                for path in (p for p in input_paths(service) if p.local):
                    prefix = f"{path.folder}/" if path.folder else ""
                    current = await self.storage.call(self.storage.list_keys, path.bucket, prefix)
                    previous = snapshots.get((path.bucket, prefix))
                    if previous is not None:
                        created.update((path.bucket, k) for k, e in current.items() if previous.get(k) != e)
                    snapshots[(path.bucket, prefix)] = current
            for bucket, key in sorted(created):
                await self.object_created(bucket, key)

    # information --------------------------------------------------------------------------------
    async def status(self, admin: bool = True) -> dict[str, Any]:
        """``GET /system/status`` in this version's shape (``status.go`` MakeStatusHandler).

        CPU figures are millicores and memory figures bytes (``Quantity.MilliValue()``, ``Value()``); free is
        allocatable minus live usage (metrics-server), schedulable is allocatable minus the requests of
        running pods. Non-admin callers get zeroed OSCAR and MinIO blocks.
        """
        sched, vm = self.scheduler, psutil.virtual_memory()
        usage_m = round(psutil.cpu_percent(None) * (os.cpu_count() or 1) * 10)
        free_m = max(0, sched.capacity_m - usage_m)
        used_mem = int(vm.total - vm.available)
        free_mem = max(0, sched.capacity_mem - used_mem)
        sched_m, sched_mem = sched.capacity_m - sched.used_m, sched.capacity_mem - sched.used_mem
        node_name = platform.node() or "localhost"
        if self.persona.status_shape == "flat":
            return _flat_status(node_name, sched.capacity_m, usage_m, sched.capacity_mem, used_mem, free_m, free_mem)
        try:
            buckets, objects = await self.storage.call(self.storage.counts) if admin else (0, 0)
        except Exception:
            buckets, objects = 0, 0
        v4 = self.persona.status_shape == "v4"
        cpu = {"capacity_cores": sched.capacity_m, "usage_cores": usage_m}
        memory = {"capacity_bytes": sched.capacity_mem, "usage_bytes": used_mem}
        cpu_metrics = {"total_free_cores": free_m, "max_free_on_node_cores": free_m}
        mem_metrics = {"total_free_bytes": free_mem, "max_free_on_node_bytes": free_mem}
        if v4:
            cpu["request_cores"], memory["request_bytes"] = sched.used_m, sched.used_mem
            cpu_metrics.update(total_schedulable_cores=sched_m, total_schedulable_on_node_cores=sched_m)
            mem_metrics.update(total_schedulable_bytes=sched_mem, max_schedulable_on_node_bytes=sched_mem)
        node = {"name": node_name, "cpu": {k: v for k, v in cpu.items() if v},
                "memory": {k: v for k, v in memory.items() if v}, "gpu": 0, "is_interlink": False,
                "status": "Ready", "conditions": [{"type": "Ready", "status": True}]}
        states = {"Pending": len(sched.pending), "Running": len(sched.running), "Succeeded": 0, "Failed": 0,
                  "Unknown": 0}
        counts = self.store.count_by_status()
        return {
            "cluster": {"nodes_count": 1, "metrics": {"cpu": cpu_metrics, "memory": mem_metrics,
                                                      "gpu": {"total_gpu": 0}}, "nodes": [node]},
            "oscar": {
                "deployment_name": "oscar", "ready": True,
                "deployment": {"available_replicas": 1, "ready_replicas": 1, "replicas": 1,
                               "creation_timestamp": rfc3339(self.started), "strategy": "RollingUpdate",
                               "labels": {"app": "oscar"}},
                "jobs_count": sum(counts.values()) if admin else 0,
                "pods": {"total": len(sched.pending) + len(sched.running), "states": states} if admin
                else {"total": 0, "states": {}},
                "oidc": {"enabled": self.oidc.enabled, "issuers": list(self.oidc.issuers), "groups": []},
            },
            "minio": {"buckets_count": buckets, "total_objects": objects},
        }


def _flat_status(node: str, cap_m: int, usage_m: int, cap_mem: int, used_mem: int, free_m: int,
                 free_mem: int) -> dict[str, Any]:
    """The flat camelCase status of v3.6.0-3.6.4 (``status.go`` before v3.6.5): numbers of the node details
    are strings, CPU in millicores."""
    detail = {"nodeName": node, "cpuCapacity": str(cap_m), "cpuUsage": str(usage_m),
              "cpuPercentage": f"{100 * usage_m / max(cap_m, 1):.2f}", "memoryCapacity": str(cap_mem),
              "memoryUsage": str(used_mem), "memoryPercentage": f"{100 * used_mem / max(cap_mem, 1):.2f}",
              "isInterLink": False, "hasGPU": False}
    return {"numberNodes": 1, "cpuFreeTotal": free_m, "cpuMaxFree": free_m, "memoryFreeTotal": free_mem,
            "memoryMaxFree": free_mem, "detail": [detail]}
