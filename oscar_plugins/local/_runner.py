"""Run one execution (a job, or a synchronous ``/run`` call) the way faas-supervisor does.

Steps: download the triggering object (bucket-triggered jobs), run ``/bin/sh <script>`` with the
service's environment, log its output line by line, then upload the files of ``$TMP_OUTPUT_DIR`` to
the service's ``output`` paths. Like OSCAR, the script's exit code does not decide the job's status:
only supervisor-level failures (download, upload, kill, memory limit, timeout) make it ``Failed``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oscar_plugins.local._execution import (
    WorkDirs,
    build_env,
    container_command,
    container_env,
    host_command,
    input_file_name,
    matches_filters,
    output_files,
)
from oscar_plugins.local._joblog import JobLog
from oscar_plugins.local._process import kill_group, pump_output, spawn, wait_exit
from oscar_plugins.local._services import external_provider, output_paths
from oscar_plugins.local._storage import Storage, upload_file
from oscar_plugins.local._store import FAILED, RUNNING, SUCCEEDED, Store

__all__ = ["Execution", "Runner", "SupervisorError"]

logger = logging.getLogger("oscar_plugins.local")
_ENGINE_ENV = ("PATH", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT", "CONTAINER_HOST", "XDG_RUNTIME_DIR",
               "APPTAINER_CACHEDIR", "SINGULARITY_CACHEDIR")
KILL_REASONS = {
    "OOMKilled": "OOMKilled: the script used more memory than the service's limit ({memory} bytes)",
    "timeout": "the script did not finish within {timeout:g} s and was killed",
    "deleted": "the job was deleted and its processes killed",
    "shutdown": "killed by local cluster shutdown",
}


class SupervisorError(Exception):
    """A supervisor-level failure: the execution ends ``Failed`` with this message."""


@dataclass(eq=False)
class Execution:
    """One job or synchronous call, from submission to its end."""

    service: dict[str, Any]
    name: str
    sync: bool
    work: WorkDirs
    log_path: Path
    cpu: float
    memory: int
    input_file: Path | None = None
    s3_input: tuple[str, str] | None = None
    status: str = "Pending"
    reason: str | None = None
    exit_code: int | None = None
    killed: str | None = None
    finalize: bool = True
    process: subprocess.Popen[bytes] | None = None
    container: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    supervisor_lines: list[str] = field(default_factory=list)


def address_space_limit(memory: int) -> int:
    """The ``ulimit -v`` backstop: generous, since the real limit is enforced on resident memory."""
    return max(4 * memory, memory + (2 << 30))


class Runner:
    """Executes :class:`Execution` objects; the scheduler decides when."""

    def __init__(self, store: Store, storage: Storage, engine: str, run_timeout: float) -> None:
        self.store, self.storage, self.engine, self.run_timeout = store, storage, engine, run_timeout

    async def execute(self, ex: Execution) -> None:
        """Run an execution to its end and record the outcome."""
        log = await asyncio.to_thread(JobLog, ex.log_path, str(ex.service.get("log_level") or "INFO"))
        ex.status = RUNNING
        if not ex.sync:
            self.store.set_running(ex.name, time.time())
        try:
            await self._steps(ex, log)
            ex.status = SUCCEEDED
        except SupervisorError as exc:
            ex.status, ex.reason = FAILED, str(exc)
            log.supervisor(str(exc), "ERROR")
        except Exception as exc:
            logger.exception("execution %s of service %s failed", ex.name, ex.service.get("name"))
            ex.status, ex.reason = FAILED, f"internal error of the local cluster ({type(exc).__name__}: {exc})"
            log.supervisor(ex.reason, "ERROR")
        finally:
            ex.supervisor_lines = log.supervisor_lines
            log.close()
            if not ex.sync:
                if ex.finalize:
                    self.store.finish_job(ex.name, ex.status, time.time(), ex.exit_code, ex.reason)
                await asyncio.to_thread(ex.work.remove)

    async def _steps(self, ex: Execution, log: JobLog) -> None:
        log.supervisor("SUPERVISOR: Initializing local supervisor (oscar-plugins embedded cluster)")
        object_key = None
        if ex.s3_input is not None:
            bucket, key = ex.s3_input
            object_key = f"{bucket}/{key}"
            dest = ex.work.input / input_file_name(key)
            log.supervisor(f"Downloading item from bucket '{bucket}' with key '{key}'")
            try:
                await self.storage.call(self.storage.download, bucket, key, dest)
            except Exception as exc:
                raise SupervisorError(f"input download failed: s3://{bucket}/{key}: {exc}") from exc
            log.supervisor(f"Successful download of file '{key}' from bucket '{bucket}' in path '{dest}'")
            ex.input_file = dest
        elif ex.input_file is not None:
            log.supervisor(f"Received event: input saved to '{ex.input_file}'")
        log.supervisor(f"Running the service script (execution mode: {self.engine})")
        ex.exit_code = await self._run_script(ex, log, object_key)
        if ex.killed:
            template = KILL_REASONS.get(ex.killed, "killed: {reason}")
            raise SupervisorError(template.format(memory=ex.memory, timeout=self.run_timeout, reason=ex.killed))
        log.supervisor(f"Script exited with code {ex.exit_code}")
        if not ex.sync:
            await self._upload_outputs(ex, log)
        log.supervisor("Creating response" if ex.sync else "Job finished")

    def _command(self, ex: Execution, env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        if self.engine == "host":
            return host_command(ex.work.script, address_space_limit(ex.memory)), env
        ex.container = f"oscar-{ex.name}"[:120]
        names = [k for k in env if k != "PATH"]
        cmd = container_command(self.engine, str(ex.service.get("image")), ex.work.root, ex.work.script, names,
                                cpus=ex.cpu, memory=ex.memory, name=ex.container)
        base = {k: os.environ[k] for k in _ENGINE_ENV if k in os.environ}
        return cmd, container_env(self.engine, {k: env[k] for k in names}, base)

    async def _run_script(self, ex: Execution, log: JobLog, object_key: str | None) -> int:
        env = build_env(ex.service, ex.work, input_file=ex.input_file, job_name=None if ex.sync else ex.name,
                        object_key=object_key)
        cmd, proc_env = self._command(ex, env)
        try:
            proc = await spawn(cmd, proc_env, ex.work.root)
        except OSError as exc:
            raise SupervisorError(f"cannot start the script: {exc}") from exc
        ex.process = proc
        if ex.killed:
            kill_group(proc)
        pump = asyncio.create_task(pump_output(proc, log.output))
        try:
            code = await wait_exit(proc, self.run_timeout if ex.sync else None)
        except TimeoutError:
            ex.killed = "timeout"
            kill_group(proc)
            code = await wait_exit(proc)
        kill_group(proc)  # like a container's end: background processes die with the script
        try:
            await asyncio.wait_for(pump, 10)
        except asyncio.TimeoutError:
            pump.cancel()
        log.flush_output()
        return code

    async def _upload_outputs(self, ex: Execution, log: JobLog) -> None:
        try:
            paths = output_paths(ex.service)
        except ValueError as exc:
            raise SupervisorError(f"output upload failed: {exc}") from exc
        files = list(output_files(ex.work.output))
        if paths and not files:
            log.supervisor("No output files found in TMP_OUTPUT_DIR")
        for path in paths:
            client = self._client(ex, path.provider)
            for file_path, rel in files:
                if not matches_filters(file_path.name, path.prefix, path.suffix):
                    continue
                key = f"{path.folder}/{rel}" if path.folder else rel
                log.supervisor(f"Uploading file '{rel}' to bucket '{path.bucket}' with key '{key}'")
                try:
                    if client is self.storage.client:
                        await self.storage.call(self.storage.put_file, str(file_path), path.bucket, key)
                    else:
                        await self.storage.call(upload_file, client, str(file_path), path.bucket, key)
                except Exception as exc:
                    raise SupervisorError(f"output upload failed: {rel} -> {path.bucket}/{key}: {exc}") from exc

    def _client(self, ex: Execution, provider: str) -> Any:
        kind = provider.partition(".")[0]
        if provider in ("minio", "minio.default"):
            return self.storage.client
        if kind not in ("minio", "s3"):
            raise SupervisorError(f"output upload failed: storage provider type '{kind}' is not supported by "
                                  "the local cluster (use minio or s3)")
        creds = external_provider(ex.service, provider)
        if creds is None:
            raise SupervisorError(f"output upload failed: storage provider '{provider}' is not defined in the "
                                  "service's storage_providers")
        return self.storage.client_for(creds)
