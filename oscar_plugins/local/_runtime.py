"""The local cluster's core: services, jobs, bucket triggers and status, behind the HTTP routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import shutil
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from oscar_plugins.local._config import Credentials, inside
from oscar_plugins.local._execution import WorkDirs, default_job_name
from oscar_plugins.local._joblog import JobLog
from oscar_plugins.local._payload import save_body
from oscar_plugins.local._runner import Execution, Runner
from oscar_plugins.local._scheduler import Scheduler, Unschedulable
from oscar_plugins.local._services import (
    input_paths,
    local_paths,
    normalize_service,
    parse_minio_event,
    resources,
    triggered_by,
)
from oscar_plugins.local._storage import Storage
from oscar_plugins.local._store import FAILED, FINISHED, JobRow, Store

__all__ = ["Conflict", "Runtime", "RuntimeConfig"]

logger = logging.getLogger("oscar_plugins.local")
TTL_JOB = 30 * 24 * 3600
RESTART_REASON = "killed by local cluster restart"


class Conflict(Exception):
    """The resource exists already."""


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


class Runtime:
    """Services, executions and bucket events of the local cluster (used from the event loop)."""

    def __init__(self, config: RuntimeConfig, store: Store, storage: Storage) -> None:
        self.config, self.store, self.storage = config, store, storage
        self.scheduler = Scheduler(config.cpus, config.memory, Runner(store, storage, config.engine,
                                                                          config.run_timeout))
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
    async def create_service(self, raw: object) -> None:
        """Create a service and its buckets.

        Raises:
            ServiceError: invalid definition.
            Conflict: the name is taken.
        """
        service = normalize_service(raw)
        if self.store.get_service(service["name"]) is not None:
            raise Conflict("A service with the provided name already exists")
        await self._create_buckets(service)
        if not self.store.put_service(service["name"], service):
            raise Conflict("A service with the provided name already exists")

    async def update_service(self, raw: object) -> bool:
        """Replace a service's definition, keeping its token; False when it does not exist."""
        name = raw.get("name") if isinstance(raw, dict) else None
        current = self.store.get_service(name) if isinstance(name, str) else None
        if current is None:
            normalize_service(raw)  # report an invalid body as such
            return False
        service = normalize_service(raw, token=current.get("token"))
        await self._create_buckets(service)
        return self.store.replace_service(service["name"], service)

    async def _create_buckets(self, service: dict[str, Any]) -> None:
        for path in local_paths(service):
            await self.storage.call(self.storage.ensure_bucket, path.bucket, path.folder)

    async def delete_service(self, name: str) -> bool:
        """Delete a service, its jobs and logs, and its input and output buckets with their objects."""
        service = self.store.get_service(name)
        if service is None:
            return False
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
        return True

    # executions ---------------------------------------------------------------------------------
    async def _execution(self, service: dict[str, Any], name: str, sync: bool) -> Execution:
        cpu, memory = resources(service)
        work = self.work_dirs(service["name"], name)
        await asyncio.to_thread(work.create, str(service.get("script", "")))  # file system work off the loop
        log_path = work.log if sync else self.log_path(service["name"], name)
        return Execution(service=service, name=name, sync=sync, work=work, log_path=log_path, cpu=cpu, memory=memory)

    async def submit_job(
        self, service: dict[str, Any], name: str | None, body: AsyncIterator[bytes] | None = None,
        s3_input: tuple[str, str] | None = None,
    ) -> JobRow:
        """Record and queue a job (input from a request body or from an object).

        Raises:
            DuplicateJobError: the name is taken.
            BodyError: the body is neither base64 nor a JSON object.
        """
        row = self.store.add_job(name or default_job_name(service["name"]), service["name"])
        ex = await self._execution(service, row.name, sync=False)
        ex.s3_input = s3_input
        if body is not None:
            try:
                ex.input_file = ex.work.input / f"event-file-{uuid.uuid4()}"
                event = await save_body(body, ex.input_file)
            except Exception:
                ex.work.remove()
                self.store.delete_jobs([row.name])
                raise
            if event is not None and parse_minio_event(event) is not None:
                ex.s3_input, ex.input_file = parse_minio_event(event), None
        try:
            self.scheduler.submit(ex)
        except Unschedulable as exc:
            log = JobLog(ex.log_path)
            log.supervisor(f"Job cannot be scheduled: {exc}", "ERROR")
            log.close()
            ex.work.remove()
            self.store.finish_job(row.name, FAILED, time.time(), None, str(exc))
        return row

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
        """Delete a service's finished jobs, or all of them (killing running ones)."""
        names = self.store.job_names(service, None if everything else FINISHED)
        for name in names:
            self.scheduler.cancel(name)
            self._remove_log(service, name)
        self.store.delete_jobs(names)

    # bucket events ------------------------------------------------------------------------------
    async def object_created(self, bucket: str, key: str, event_id: str | None = None) -> int:
        """Start one job per service whose input path matches; return how many started."""
        if event_id is not None:
            if event_id in self._seen:
                return 0
            self._seen[event_id] = None
            while len(self._seen) > 10_000:
                self._seen.popitem(last=False)
        started = 0
        for service in self.store.list_services():
            if triggered_by(service, bucket, key):
                await self.submit_job(service, None, s3_input=(bucket, key))
                started += 1
        return started

    async def _poll(self) -> None:
        snapshots: dict[tuple[str, str], dict[str, str]] = {}
        while True:
            await asyncio.sleep(0.5)
            created: set[tuple[str, str]] = set()
            for service in self.store.list_services():
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
    async def status(self) -> dict[str, Any]:
        """``GET /system/status`` (the v3.6.5+ nested form) with this machine's real free resources."""
        sched, vm = self.scheduler, psutil.virtual_memory()
        cap_cores, free_cores = sched.capacity_m / 1000, max(0.0, (sched.capacity_m - sched.used_m) / 1000)
        free_mem = max(0, min(int(vm.available), sched.capacity_mem - sched.used_mem))
        try:
            buckets, objects = await self.storage.call(self.storage.counts)
        except Exception:
            buckets, objects = 0, 0
        counts = self.store.count_by_status()
        node = {
            "name": platform.node() or "localhost", "status": "Ready", "gpu": 0, "is_interlink": False,
            "conditions": [{"type": "Ready", "status": True}],
            "cpu": {"capacity_cores": int(cap_cores), "request_cores": int(sched.used_cpus),
                    "usage_cores": round(psutil.cpu_percent(None) * (os.cpu_count() or 1) / 100)},
            "memory": {"capacity_bytes": sched.capacity_mem, "request_bytes": sched.used_mem,
                       "usage_bytes": int(vm.total - vm.available)},
        }
        return {
            "cluster": {
                "nodes_count": 1,
                "metrics": {
                    "cpu": {"total_free_cores": int(free_cores), "max_free_on_node_cores": int(free_cores),
                            "total_schedulable_cores": int(cap_cores),
                            "total_schedulable_on_node_cores": int(cap_cores)},
                    "memory": {"total_free_bytes": free_mem, "max_free_on_node_bytes": free_mem,
                               "total_schedulable_bytes": sched.capacity_mem,
                               "max_schedulable_on_node_bytes": sched.capacity_mem},
                    "gpu": {"total_gpu": 0},
                },
                "nodes": [node],
            },
            "oscar": {
                "ready": True, "deployment_name": "oscar", "jobs_count": sum(counts.values()),
                "pods": {"total": len(sched.running), "states": {"Running": len(sched.running),
                                                                 "Pending": len(sched.pending)}},
                "oidc": {"enabled": False, "issuers": [], "groups": []},
            },
            "minio": {"buckets_count": buckets, "total_objects": objects},
        }
