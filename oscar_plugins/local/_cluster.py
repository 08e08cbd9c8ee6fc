"""Starting and stopping one local cluster: the API server (uvicorn), the S3 child and the runtime."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil
import uvicorn

from oscar_plugins.local._config import (
    LocalClusterError,
    LocalClusterInfo,
    default_data_dir,
    http_ok,
    load_or_create_credentials,
    prepare_data_dir,
    write_json_atomic,
)
from oscar_plugins.local._latency import LatencyModel, resolve_latency_model
from oscar_plugins.local._runtime import Runtime, RuntimeConfig
from oscar_plugins.local._store import Store
from oscar_plugins.local.api._app import create_app
from oscar_plugins.local.api._latency import RoundTrip
from oscar_plugins.local.api._persona import persona
from oscar_plugins.local.execution._execution import detect_engine
from oscar_plugins.local.execution._podrun import find_supervisor
from oscar_plugins.local.storage._storage import S3Process, Storage, warm_session
from oscar_plugins.local.storage._tls import TlsFiles, ensure_tls
from oscar_plugins.local.storage._wanlink import WanLink

__all__ = ["ENV_ENGINE", "ENV_EXECUTION", "ENV_VERSION", "LocalCluster"]

logger = logging.getLogger("oscar_plugins.local")
ENV_ENGINE = "OSCAR_PLUGINS_LOCAL_ENGINE"
ENV_VERSION = "OSCAR_PLUGINS_LOCAL_VERSION"
ENV_EXECUTION = "OSCAR_PLUGINS_LOCAL_EXECUTION"


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):  # noqa: S104 - a URL for the wildcard address
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _bind(host: str, port: int, fallback: int | None) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for candidate in ([fallback] if fallback and not port else []) + [port]:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, candidate))
            sock.listen(2048)
            sock.setblocking(False)
            return sock
        except OSError as exc:
            sock.close()
            if candidate == port:
                if exc.errno == errno.EADDRINUSE:
                    raise LocalClusterError(
                        f"port {port} on {host} is in use: choose another with --port (0 picks a free one) "
                        "or stop the program using it"
                    ) from exc
                raise LocalClusterError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    raise AssertionError("unreachable")


def _ignore_signal(signum: int, frame: object) -> None:
    """Handler for signals that arrive while the server is already stopping."""


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


class LocalCluster:
    """An OSCAR-compatible cluster on this machine: OSCAR's REST API, a local S3 and a job scheduler.

    Example:
        >>> with LocalCluster(data_dir=tmp_path, port=0) as lc:          # doctest: +SKIP
        ...     httpx.get(f"{lc.endpoint}/system/info", auth=(lc.username, lc.password))

    Args:
        data_dir: where state, logs and objects live (default: :func:`default_data_dir`).
        port: API port; 0 reuses the previous one of this data directory when free, else any free port.
        host: interface to listen on (loopback unless given explicitly).
        cpus: cores the scheduler hands out (default: ``os.cpu_count()``).
        memory: bytes the scheduler hands out (default: 80 % of this machine's RAM).
        engine: ``host`` (the default), ``docker``, ``podman``, ``apptainer``, ``singularity``, or ``auto``
            (the first that answers); default: ``OSCAR_PLUGINS_LOCAL_ENGINE``, else host. An engine pulls
            each service's image at its first job: a choice, not something installed software decides.
        s3_port: port of the S3 server (0 as for ``port``).
        run_timeout: seconds a synchronous ``/run`` may take (OSCAR: 300).
        s3_events: ``webhook`` (moto hooked, like MinIO notifications) or ``poll`` (list every 0.5 s).
        oscar_version: the OSCAR release to answer as (``4.1.2``, ``4.0.0``, ``3.7.1``, ``3.6.3`` or their
            ``major.minor``); default ``OSCAR_PLUGINS_LOCAL_VERSION``, else 4.1.2. See docs/FIDELITY.md.
        minio_restart: seconds a service create or delete pauses while the S3 server restarts, as OSCAR
            restarts MinIO and waits 6 s (``utils/minio.go`` RestartServer); 0 (default) skips it.
        oidc_issuers: OIDC issuers whose access tokens the cluster accepts (discovery + userinfo).
        execution: ``builtin`` runs jobs by faas-supervisor's rules (the default); ``supervisor`` runs each
            job through the real faas-supervisor as a pod does; default ``OSCAR_PLUGINS_LOCAL_EXECUTION``.
        supervisor: faas-supervisor's source folder for ``supervisor`` (default ``OSCAR_PLUGINS_LOCAL_SUPERVISOR``).
        continue_ttl: seconds a job list's continue token stays usable (Kubernetes: about 5 minutes).
        tls: serve HTTPS (API and S3) with a certificate of a CA generated in the data directory; clients
            trust ``info().ca`` (``SSL_CERT_FILE``, ``REQUESTS_CA_BUNDLE``, ``AWS_CA_BUNDLE``).
        latency: for benchmarks, behave as a remote cluster (pod start, capacity, API and S3 round trips, S3
            bandwidth): a preset (``cloud``, ``lan``), a YAML/JSON file, a mapping or a ``LatencyModel``;
            default ``OSCAR_PLUGINS_LOCAL_LATENCY``, else none. See ``oscar_plugins.local._latency``.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        cpus: float | None = None,
        memory: int | None = None,
        engine: str | None = None,
        s3_port: int = 0,
        run_timeout: float = 300.0,
        s3_events: str = "webhook",
        oscar_version: str | None = None,
        minio_restart: float = 0.0,
        oidc_issuers: Sequence[str] = (),
        execution: str | None = None,
        supervisor: str | os.PathLike[str] | None = None,
        continue_ttl: float = 300.0,
        tls: bool = False,
        latency: str | os.PathLike[str] | Mapping[str, Any] | LatencyModel | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().absolute() if data_dir is not None else default_data_dir()
        self.port, self.host, self.s3_port = port, host, s3_port
        self.cpus = float(cpus) if cpus is not None else float(os.cpu_count() or 1)
        self.memory = int(memory) if memory is not None else int(psutil.virtual_memory().total * 0.8)
        self._engine_choice, self.run_timeout, self.s3_events = engine, run_timeout, s3_events
        self.persona = persona(oscar_version or os.environ.get(ENV_VERSION) or None)
        self.minio_restart, self.oidc_issuers = float(minio_restart), tuple(oidc_issuers)
        self.continue_ttl, self.tls = float(continue_ttl), bool(tls)
        self._tls: TlsFiles | None = None
        self.execution = execution or os.environ.get(ENV_EXECUTION) or "builtin"
        if self.execution not in ("builtin", "supervisor"):
            raise LocalClusterError(f"execution {self.execution!r} is not one of builtin, supervisor")
        try:
            self._supervisor = find_supervisor(supervisor) if self.execution == "supervisor" else None
        except ValueError as exc:
            raise LocalClusterError(str(exc)) from None
        try:
            self.latency = resolve_latency_model(latency)
        except ValueError as exc:
            raise LocalClusterError(str(exc)) from None
        self._link: WanLink | None = None
        self.engine = "host"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._s3: S3Process | None = None
        self._storage: Storage | None = None
        self._store: Store | None = None
        self._lock_file: Any = None
        self._creds: Any = None

    def __repr__(self) -> str:
        state = self.endpoint if self._server is not None else "stopped"
        return f"LocalCluster(data_dir={str(self.data_dir)!r}, {state})"

    # connection details -------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """``http://host:port`` of the OSCAR API."""
        port = self._sock.getsockname()[1] if self._sock is not None else self.port
        return f"{'https' if self.tls else 'http'}://{_url_host(self.host)}:{port}"

    @property
    def s3_endpoint(self) -> str:
        """``http://host:port`` of the S3 server (of the link in front of it, under a latency model)."""
        if self._link is not None and self._s3 is not None:
            return self._link.endpoint(self._s3.scheme)
        return self._s3.endpoint if self._s3 is not None else ""

    @property
    def username(self) -> str:
        """Basic-auth user."""
        return str(self._require_creds().username)

    @property
    def password(self) -> str:
        """Basic-auth password."""
        return str(self._require_creds().password)

    @property
    def s3_access_key(self) -> str:
        """S3 access key."""
        return str(self._require_creds().s3_access_key)

    @property
    def s3_secret_key(self) -> str:
        """S3 secret key."""
        return str(self._require_creds().s3_secret_key)

    def _require_creds(self) -> Any:
        if self._creds is None:
            raise LocalClusterError("the local cluster is not started: call start() or use it in a with block")
        return self._creds

    def info(self) -> LocalClusterInfo:
        """Connection details of the running cluster."""
        return LocalClusterInfo(self.endpoint, self.username, self.password, self.s3_endpoint,
                                self.s3_access_key, self.s3_secret_key, self.data_dir, os.getpid(),
                                self._tls.ca if self._tls is not None else None, self.persona.version,
                                self.execution, self.engine)

    # lifecycle ----------------------------------------------------------------------------------
    def _lock_data_dir(self) -> None:
        handle = open(self.data_dir / ".server.lock", "a+")  # held while running
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            raise LocalClusterError(
                f"data directory {self.data_dir} is in use by another running local cluster: stop it "
                f"(oscar-plugins local down --data-dir {self.data_dir}) or choose another --data-dir"
            ) from exc
        self._lock_file = handle

    def _prepare(self) -> None:
        prepare_data_dir(self.data_dir)
        self._lock_data_dir()
        try:
            self._prepare_locked()
        except BaseException:
            self._cleanup()
            raise

    def _prepare_locked(self) -> None:
        self._creds = load_or_create_credentials(self.data_dir)
        previous: dict[str, int] = {}
        with contextlib.suppress(OSError, ValueError):
            previous = json.loads((self.data_dir / "ports.json").read_text())
        self._sock = _bind(self.host, self.port, previous.get("api"))
        try:
            self.engine = detect_engine(self._engine_choice or os.environ.get(ENV_ENGINE) or None)
        except ValueError as exc:
            raise LocalClusterError(str(exc)) from None
        logger.info("jobs run %s", "on the host" if self.engine == "host" else f"in their images ({self.engine})")
        self._store = Store(self.data_dir / "state.sqlite")
        hook_secret = secrets.token_urlsafe(32)
        s3_port = self.s3_port or previous.get("s3") or 0
        if not self.s3_port and s3_port and not _port_free(self.host, s3_port):
            s3_port = 0
        hook = f"{self.endpoint}/internal/s3-events"
        self._tls = ensure_tls(self.data_dir, self.host) if self.tls else None
        self._s3 = S3Process(self.data_dir, self.host, s3_port, self._creds, hook, hook_secret,
                             poll=self.s3_events == "poll", tls=self._tls)
        self._s3.launch()
        session = warm_session()  # loads boto3's S3 model while the S3 child starts
        self._s3.wait_ready()
        endpoint = f"{self._s3.scheme}://{_url_host(self.host)}:{self._s3.port}"
        ca = str(self._tls.ca) if self._tls is not None else None
        public = endpoint  # what users are told; jobs' own storage calls stay in-cluster
        if self.latency is not None:
            logger.info("latency model %s", self.latency.describe())
            if self.latency.s3_link:
                self._link = WanLink(self.host, (self.host, self._s3.port), self.latency.s3_rtt,
                                     self.latency.s3_bandwidth).start()
                public = self.s3_endpoint
        self._storage = Storage(endpoint, self._creds.s3_access_key, self._creds.s3_secret_key, session=session, ca=ca)
        config = RuntimeConfig(self.data_dir, self._creds, public, self.engine, self.cpus, self.memory,
                               self.run_timeout, hook_secret, self._s3.events, persona=self.persona,
                               minio_restart=self.minio_restart, oidc_issuers=self.oidc_issuers,
                               supervisor=self._supervisor, continue_ttl=self.continue_ttl,
                               s3_verify=self._tls is not None, ca=ca, latency=self.latency)
        runtime = Runtime(config, self._store, self._storage, s3_restart=self._s3.restart)
        runtime.recover()
        # Idle keep-alive connections stay open 75 s (nginx's default; Go's server has no limit): with
        # uvicorn's 5 s, a client reusing a connection just as the server closes it gets a reset.
        app: Any = create_app(runtime)
        if self.latency is not None and self.latency.api_rtt > 0:
            app = RoundTrip(app, self.latency.api_rtt)
        uv_config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                   ssl_certfile=str(self._tls.cert) if self._tls else None,
                                   ssl_keyfile=str(self._tls.key) if self._tls else None,
                                   timeout_graceful_shutdown=5, timeout_keep_alive=75)
        self._server = uvicorn.Server(uv_config)
        write_json_atomic(self.data_dir / "ports.json", {"api": self._sock.getsockname()[1], "s3": self._s3.port})

    def start(self, timeout: float = 60.0) -> LocalCluster:
        """Start everything in background threads and wait until ``/health`` answers.

        Raises:
            LocalClusterError: the data directory is unusable, the port is taken, or start-up failed.
        """
        if self._server is not None:
            return self
        self._prepare()
        server, sock = self._server, self._sock
        assert server is not None and sock is not None
        self._thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])),
                                        name="oscar-local-api", daemon=True)
        self._thread.start()
        try:
            self._wait_healthy(timeout, lambda: self._thread is not None and self._thread.is_alive())
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self, timeout: float, alive: Callable[[], bool]) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not alive():
                raise LocalClusterError("the local cluster's API server stopped during start-up")
            if self._server is not None and self._server.started and http_ok(f"{self.endpoint}/health"):
                return
            time.sleep(0.02)
        raise LocalClusterError(f"the local cluster did not become healthy within {timeout:.0f} s")

    def serve_forever(self, on_ready: Callable[[LocalCluster], None] | None = None) -> None:
        """Run in the foreground until SIGTERM or SIGINT (the daemon's main loop).

        Args:
            on_ready: called (from a helper thread) once ``/health`` answers.
        """
        self._prepare()
        server, sock = self._server, self._sock
        assert server is not None and sock is not None
        main = threading.main_thread()

        def announce() -> None:
            with contextlib.suppress(LocalClusterError):
                self._wait_healthy(120, main.is_alive)
                if on_ready is not None:
                    on_ready(self)

        threading.Thread(target=announce, name="oscar-local-ready", daemon=True).start()
        # uvicorn turns SIGTERM/SIGINT into a graceful exit, then re-raises the signal with the handler
        # it found: make that one a no-op so the clean-up below still runs.
        previous = {sig: signal.signal(sig, _ignore_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            asyncio.run(server.serve(sockets=[sock]))
        finally:
            self._server = None
            self._cleanup()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def stop(self) -> None:
        """Kill running jobs, stop the API server and the S3 child, release the data directory."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(60)
            self._thread = None
        self._server = None
        self._cleanup()

    def _cleanup(self) -> None:
        if self._link is not None:
            self._link.stop()
            self._link = None
        if self._s3 is not None:
            self._s3.stop()
        if self._storage is not None:
            self._storage.close()
        if self._store is not None:
            self._store.close()
        if self._sock is not None:
            self._sock.close()
        if self._lock_file is not None:
            self._lock_file.close()
        self._s3 = self._storage = self._store = self._sock = self._lock_file = None

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
