"""Run one execution (a job, or a synchronous ``/run`` call) the way faas-supervisor does.

Steps for a job (the rules are in ``_supervisor``): read the event as ``echo $EVENT`` gives it, save it
or download the object it names, run ``/bin/sh <script>`` with the service's environment (its output
logged at DEBUG), upload the files of ``$TMP_OUTPUT_DIR`` to the service's ``output`` paths, then print
the response. Like OSCAR, the script's exit code does not decide the job's status:
only supervisor-level failures (download, upload, kill, memory limit, timeout) make it ``Failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oscar_plugins.local._store import FAILED, RUNNING, SUCCEEDED, Store
from oscar_plugins.local.api._persona import Persona
from oscar_plugins.local.api._persona import persona as default_persona
from oscar_plugins.local.api._services import external_provider
from oscar_plugins.local.execution._execution import (
    WorkDirs,
    build_env,
    container_command,
    container_env,
    host_command,
    input_file_name,
    output_files,
)
from oscar_plugins.local.execution._joblog import JobLog
from oscar_plugins.local.execution._payload import b64_file_chunks, zip_files
from oscar_plugins.local.execution._podrun import SupervisorSource, function_config, pod_command, pod_env
from oscar_plugins.local.execution._process import kill_group, pump_output, spawn, wait_exit
from oscar_plugins.local.execution._supervisor import (
    Event,
    EventError,
    echo_event,
    file_key,
    parse_event,
    passes_filters,
    response_memory,
    save_unknown,
)
from oscar_plugins.local.storage._storage import Storage, upload_file

__all__ = ["Execution", "Runner", "SupervisorError", "file_chunks"]

logger = logging.getLogger("oscar_plugins.local")
_ENGINE_ENV = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT", "CONTAINER_HOST", "XDG_RUNTIME_DIR",
               "CONTAINERS_CONF", "CONTAINERS_REGISTRIES_CONF", "CONTAINERS_STORAGE_CONF", "REGISTRY_AUTH_FILE",
               "APPTAINER_CACHEDIR", "SINGULARITY_CACHEDIR")
KILL_REASONS = {
    "OOMKilled": "OOMKilled: the script used more memory than the service's limit ({mib:g} MiB, {memory} bytes); "
                 "raise the service's memory in its FDL",
    "timeout": "the script did not finish within {timeout:g} s and was killed",
    "deleted": "the job was deleted and its processes killed",
    "shutdown": "killed by local cluster shutdown",
}


#: Files up to this size are written or read on the event loop: a hop to a worker thread costs more CPU
#: (about 0.1 ms) than such a local write, and a short job made several.
SMALL = 64 << 10


def file_chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    """The bytes of a file in chunks (nothing when it does not exist)."""
    with contextlib.suppress(FileNotFoundError), open(path, "rb") as handle:
        while chunk := handle.read(size):
            yield chunk


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
    #: A job's body: the pod's ``EVENT``, piped to the supervisor through ``echo $EVENT``.
    event: bytes | None = None
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
    """Executes :class:`Execution` objects; the scheduler decides when.

    Jobs follow faas-supervisor's rules (``_supervisor``), or, with ``supervisor`` given, run through the
    real faas-supervisor as a pod does (``_podrun``). Synchronous calls always use the rules.
    """

    def __init__(self, store: Store, storage: Storage, engine: str, run_timeout: float, *,
                 persona: Persona | None = None, supervisor: SupervisorSource | None = None,
                 secret_key: str = "", trust: dict[str, str] | None = None) -> None:
        self.store, self.storage, self.engine, self.run_timeout = store, storage, engine, run_timeout
        self.persona = persona or default_persona()
        self.supervisor, self._secret_key = supervisor, secret_key
        #: Variables that make a job's HTTPS clients trust the cluster's CA (``tls``), as a pod trusts its cluster's.
        self.trust = dict(trust or {})

    async def execute(self, ex: Execution) -> None:
        """Run an execution to its end and record the outcome."""
        capture = ex.work.captured
        log = await asyncio.to_thread(JobLog, ex.log_path, str(ex.service.get("log_level") or "INFO"), capture)
        ex.status = RUNNING
        began = time.time()
        if not ex.sync:
            self.store.set_running(ex.name, began)
        try:
            if ex.sync:
                await self._sync_steps(ex, log)
            elif self.supervisor is not None:
                await self._pod_steps(ex, log)
            else:
                await self._job_steps(ex, log, capture)
            ex.status = SUCCEEDED
        except SupervisorError as exc:
            ex.status, ex.reason = FAILED, str(exc)
            log.supervisor(str(exc), "ERROR")
            log.failed(str(exc))
        except Exception as exc:
            logger.exception("execution %s of service %s failed", ex.name, ex.service.get("name"))
            ex.status, ex.reason = FAILED, f"internal error of the local cluster ({type(exc).__name__}: {exc})"
            log.supervisor(ex.reason, "ERROR")
        finally:
            ex.supervisor_lines = log.supervisor_lines
            log.close()
            # What /system/metrics counts (a usage source standing in for Prometheus): cores held x time.
            self.store.record_usage(str(ex.service.get("name") or ""), began, time.time(), ex.cpu, 0)
            if not ex.sync:
                if ex.finalize:
                    self.store.finish_job(ex.name, ex.status, time.time(), ex.exit_code, ex.reason)
                await asyncio.to_thread(ex.work.remove)

    async def _sync_steps(self, ex: Execution, log: JobLog) -> None:
        """A ``/run`` call: the body is the supervisor's stdin (fwatchdog), already saved as the input file."""
        log.supervisor("SUPERVISOR: Initializing Binary supervisor")
        log.supervisor(f"INPUT_FILE_PATH variable set to '{ex.input_file}'")
        ex.exit_code = await self._run_script(ex, log, None)
        self._check_killed(ex)
        log.supervisor("Creating response")

    def _check_killed(self, ex: Execution) -> None:
        if ex.killed:
            template = KILL_REASONS.get(ex.killed, "killed: {reason}")
            raise SupervisorError(template.format(memory=ex.memory, mib=ex.memory / (1 << 20),
                                                  timeout=self.run_timeout, reason=ex.killed))

    async def _job_steps(self, ex: Execution, log: JobLog, capture: Path) -> None:
        """A job, as ``echo $EVENT | supervisor`` runs it (see ``_supervisor``): parse, input, script,
        uploads, response."""
        stdin = echo_event((ex.event or b"").decode("utf-8", "surrogateescape"), ex.work.root)
        log.supervisor(f"EVENT received: {stdin}", "DEBUG")
        try:
            event = parse_event(stdin)
        except EventError as exc:
            raise SupervisorError(f"the supervisor crashed reading the event ({exc})") from None
        for line in event.lines:
            log.supervisor(line)
        log.supervisor("Reading storage configuration")
        log.supervisor(f"Using MinIO credentials for user: '{self.storage.access_key}'")
        log.supervisor("SUPERVISOR: Initializing Binary supervisor")
        object_key = await self._input(ex, log, event)
        log.supervisor(f"INPUT_FILE_PATH variable set to '{ex.input_file}'")
        log.supervisor(f"Script file found in '{ex.work.script}'")
        log.supervisor("CONTAINER OUTPUT:\n ", "DEBUG")  # logged before any output, so always empty
        ex.exit_code = await self._run_script(ex, log, object_key)
        self._check_killed(ex)
        files = await asyncio.to_thread(lambda: list(output_files(ex.work.output)))
        await self._upload_outputs(ex, log, files)
        log.supervisor("Creating response")
        await self._respond(ex, log, event, files, capture)

    async def _pod_steps(self, ex: Execution, log: JobLog) -> None:
        """The job as a pod runs it: ``echo $EVENT | supervisor`` with the real faas-supervisor."""
        assert self.supervisor is not None
        base = {"PATH": build_env(ex.service, ex.work, input_file=None, job_name=None, object_key=None)["PATH"],
                "HOME": str(ex.work.root), "LANG": "C.UTF-8", **self.trust}
        env = pod_env(ex.service, self.persona, event=ex.event or b"", job=ex.name, work=ex.work.root, base=base)
        config = function_config(self.persona, ex.service)
        cmd = await asyncio.to_thread(pod_command, self.supervisor, ex.work.root, config,
                                      str(ex.service.get("script", "")), self.storage.access_key,
                                      self._secret_key, env)
        code = await self._watch(ex, cmd, env, log.raw)
        log.flush_raw()
        self._check_killed(ex)
        if code != 0:
            raise SupervisorError(f"the supervisor exited with code {code}: the pod failed (see the lines above)")

    async def _input(self, ex: Execution, log: JobLog, event: Event) -> str | None:
        if event.kind == "UNKNOWN":
            log.supervisor("Found 'LOCAL' input provider")
            try:
                data = save_unknown(event)
            except EventError as exc:
                raise SupervisorError(f"the supervisor crashed saving the event ({exc})") from None
            ex.input_file = ex.work.input / f"event-file-{uuid.uuid4()}"
            if len(data) <= SMALL:
                ex.input_file.write_bytes(data)
            else:
                await asyncio.to_thread(ex.input_file.write_bytes, data)
            return None
        log.supervisor(f"Found '{event.kind}' input provider")
        log.supervisor(f"Downloading item from bucket '{event.bucket}' with key '{event.key}'")
        dest = ex.work.input / input_file_name(event.key)
        try:
            await self.storage.call(self.storage.download, event.bucket, event.key, dest)
        except Exception as exc:
            raise SupervisorError(f"input download failed: s3://{event.bucket}/{event.key}: {exc}") from exc
        log.supervisor(f"Successful download of file '{event.key}' from bucket '{event.bucket}' in path '{dest}'")
        ex.input_file = dest
        return event.key

    async def _respond(self, ex: Execution, log: JobLog, event: Event, files: list[tuple[Path, str]],
                       capture: Path) -> None:
        """``create_response``: an unknown event's outputs as base64 (one file, or a zip of several) built in
        memory, which can exceed the pod's memory after a successful upload; else the script's output."""
        if event.kind != "UNKNOWN" or not files:
            try:
                small = capture.stat().st_size <= SMALL
            except OSError:
                small = True  # nothing captured: nothing to print
            if small:
                log.printed(file_chunks(capture))
            else:
                await asyncio.to_thread(log.printed, file_chunks(capture))
            return
        sizes = [path.stat().st_size for path, _ in files]
        needed = response_memory(sizes, ex.memory)
        if needed > ex.memory:
            raise SupervisorError(
                f"OOMKilled: the supervisor holds its response in memory: the base64 of the {len(files)} output "
                f"file(s), {sum(sizes)} bytes, needs about {needed} bytes, over the memory limit ({ex.memory} bytes); "
                "raise the service's memory, or write smaller outputs")
        if len(files) == 1:
            source = files[0][0]
        else:
            source = ex.work.root / "response.zip"
            await asyncio.to_thread(zip_files, files, source, zipfile.ZIP_STORED)
        await asyncio.to_thread(log.printed, b64_file_chunks(source))

    def _command(self, ex: Execution, env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        if self.engine == "host":
            return host_command(ex.work.script, address_space_limit(ex.memory)), env
        ex.container = f"oscar-{ex.name}"[:120]
        names = [k for k in env if k != "PATH"]
        cmd = container_command(self.engine, str(ex.service.get("image")), ex.work.root, ex.work.script, names,
                                cpus=ex.cpu, memory=ex.memory, name=ex.container,
                                gpu=bool(ex.service.get("enable_gpu")))
        base = {k: os.environ[k] for k in _ENGINE_ENV if k in os.environ}
        return cmd, container_env(self.engine, {k: env[k] for k in names}, base)

    async def _run_script(self, ex: Execution, log: JobLog, object_key: str | None) -> int:
        env = {**self.trust, **build_env(ex.service, ex.work, input_file=ex.input_file,
                                         job_name=None if ex.sync else ex.name, object_key=object_key)}
        cmd, proc_env = self._command(ex, env)
        if self.engine in ("docker", "podman"):
            await self._pull(ex, log, proc_env)
        code: int | None = None
        try:
            code = await self._watch(ex, cmd, proc_env, log.output)
        finally:
            if ex.container and self.engine in ("docker", "podman"):
                await self._container_end(ex, proc_env, code, log)
        log.flush_output()
        return code

    async def _engine(self, args: list[str], env: dict[str, str], sink: Callable[[str], None] | None = None) -> int:
        """Run one engine command; its output lines go to ``sink``."""
        proc = await asyncio.create_subprocess_exec(self.engine, *args, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT, env=env)
        assert proc.stdout is not None
        async for raw in proc.stdout:
            if sink is not None:
                sink(raw.decode("utf-8", "replace").rstrip())
        return await proc.wait()

    async def _pull(self, ex: Execution, log: JobLog, env: dict[str, str]) -> None:
        """Pull the service's image when the engine does not have it, its progress in the job's log whatever
        the log level (a kubelet pulls before the pod starts, and says so in the pod's events); a refusal
        fails the job with the engine's own words."""
        image = str(ex.service.get("image"))
        if await self._engine(["image", "inspect", image], env) == 0:
            return
        log.cluster_note(f"pulling image '{image}' ({self.engine})")
        said: list[str] = []

        def progress(line: str) -> None:
            if line.strip():
                said.append(line)
                log.cluster_note(line)

        if await self._engine(["pull", image], env, progress) != 0:
            words = said[-1] if said else "no answer"
            raise SupervisorError(
                f"ErrImagePull: {self.engine} could not pull the image '{image}': {words}. Push it to a registry "
                f"this machine reaches, or build or import it here ({self.engine} build / {self.engine} import), "
                "or run the local cluster on the host (oscar-plugins local up --engine host)")
        log.cluster_note(f"pulled image '{image}'")

    async def _container_end(self, ex: Execution, env: dict[str, str], code: int | None, log: JobLog) -> None:
        """How the container ended, then remove it. Out of memory when the engine says so, or when its main
        process died of SIGKILL (137) that the cluster did not send: with runc on cgroups v1 podman never
        sets ``OOMKilled``, and nothing else kills a job's container here."""
        assert ex.container is not None
        said: list[str] = []
        if not ex.killed:
            if await self._engine(["inspect", "--format", "{{.State.OOMKilled}}", ex.container], env,
                                  said.append) == 0 and said[:1] == ["true"]:
                ex.killed = "OOMKilled"
            elif code == 137:
                log.cluster_note(f"the container ended with SIGKILL (exit code 137), which only the out-of-memory "
                                 f"killer sends to a job's container here: its limit is {ex.memory} bytes")
                ex.killed = "OOMKilled"
        await self._engine(["rm", "-f", ex.container], env)

    async def _watch(self, ex: Execution, cmd: list[str], env: dict[str, str], sink: Callable[[bytes], None]) -> int:
        """Run ``cmd`` in its own process group, feed its output to ``sink``, and return its exit code;
        the group dies with it (like a container's end), and on a sync call's timeout."""
        try:
            proc = await spawn(cmd, env, ex.work.root)
        except OSError as exc:
            raise SupervisorError(f"cannot start the script: {exc}") from exc
        ex.process = proc
        if ex.killed:
            kill_group(proc)
        pump = asyncio.create_task(pump_output(proc, sink))
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
        return code

    async def _upload_outputs(self, ex: Execution, log: JobLog, files: list[tuple[Path, str]]) -> None:
        """``upload_output``: each file whose path relative to ``$TMP_OUTPUT_DIR`` passes an output's prefix
        and suffix lists goes to that output (``get_file_key``); a provider without credentials (an unknown
        type or id) is the supervisor's silent ``Local`` provider: nothing is uploaded."""
        log.supervisor(f"Searching for files to upload in folder '{ex.work.output}'")
        for entry in ex.service.get("output") or []:
            provider, path = str(entry.get("storage_provider") or ""), str(entry.get("path") or "")
            log.supervisor(f"Checking files for uploading to '{provider}' on path: '{path}'")
            client = self._client(ex, provider)
            for file_path, rel in files:
                name = rel.strip().lstrip("/")
                if not passes_filters(name, entry.get("prefix"), entry.get("suffix")) or client is None:
                    continue
                bucket, key = file_key(path, name)
                log.supervisor(f"Uploading file '{key}' to bucket '{bucket}'")
                try:
                    if client is self.storage.client:
                        await self.storage.call(self.storage.put_file, str(file_path), bucket, key)
                    else:
                        await self.storage.call(upload_file, client, str(file_path), bucket, key)
                except Exception as exc:
                    log.printed([f"There was an exception in _parse_output\n{exc}".encode()])
                    raise SupervisorError(f"output upload failed: {rel} -> {bucket}/{key}: {exc}") from exc

    def _client(self, ex: Execution, provider: str) -> Any:
        kind, _, ident = provider.partition(".")
        if kind.lower() == "minio" and ident in ("", "default"):
            return self.storage.client
        if kind.lower() not in ("minio", "s3"):
            return None
        creds = external_provider(ex.service, f"{kind.lower()}.{ident or 'default'}")
        return None if creds is None else self.storage.client_for(creds)
