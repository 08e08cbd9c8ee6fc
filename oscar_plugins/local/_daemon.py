"""The local cluster as a background daemon: ``up``, ``status``, ``down`` and ``ensure_local_cluster``.

A daemon is ``python -m oscar_plugins.local serve`` started in its own session, with its output in
``<data_dir>/server.log``. Once healthy it writes ``<data_dir>/server.json`` (pid and endpoints, no
secrets); the secrets stay in ``credentials.json``. ``<data_dir>/.lock`` serialises processes that race
to start the same daemon, and ``<data_dir>/.server.lock`` is held by the running server itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from oscar_plugins.local._config import (
    LocalClusterError,
    LocalClusterInfo,
    default_data_dir,
    http_ok,
    load_or_create_credentials,
    prepare_data_dir,
)

__all__ = ["down", "ensure_local_cluster", "server_running", "status", "up"]

_announced: set[Path] = set()


def _resolve(data_dir: str | os.PathLike[str] | None) -> Path:
    return Path(data_dir).expanduser().absolute() if data_dir is not None else default_data_dir()


@contextlib.contextmanager
def _start_lock(data_dir: Path) -> Iterator[None]:
    with open(data_dir / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def server_running(data_dir: Path) -> bool:
    """Whether a server holds the data directory's server lock."""
    path = data_dir / ".server.lock"
    if not path.exists():
        return False
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def status(data_dir: str | os.PathLike[str] | None = None) -> LocalClusterInfo | None:
    """Connection details of the daemon running for ``data_dir``, or None (stale files are removed)."""
    path = _resolve(data_dir)
    meta_path = path / "server.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not server_running(path):
        with contextlib.suppress(OSError):
            meta_path.unlink()
        return None
    if not http_ok(f"{meta['endpoint']}/health"):
        return None
    creds = load_or_create_credentials(path)
    ca = Path(meta["ca"]) if meta.get("ca") else None
    return LocalClusterInfo(str(meta["endpoint"]), creds.username, creds.password, str(meta["s3_endpoint"]),
                            creds.s3_access_key, creds.s3_secret_key, path, int(meta["pid"]), ca,
                            str(meta.get("oscar_version", "")), str(meta.get("execution", "")),
                            str(meta.get("engine", "")))


def _tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    return "(no server.log)"


def up(
    data_dir: str | os.PathLike[str] | None = None,
    port: int = 0,
    *,
    cpus: float | None = None,
    memory: int | None = None,
    host: str = "127.0.0.1",
    timeout: float = 90.0,
    serve_args: Sequence[str] = (),
) -> LocalClusterInfo:
    """Start the daemon for ``data_dir`` (detached) unless it runs already; return its details.

    ``serve_args`` are more options of ``local serve`` (``--oscar-version``, ``--tls``, ...).

    Raises:
        LocalClusterError: it did not become healthy; the message quotes the end of server.log.
    """
    path = prepare_data_dir(_resolve(data_dir))
    with _start_lock(path):
        running = status(path)
        if running is not None:
            return running
        if server_running(path):
            deadline = time.monotonic() + timeout  # starting or busy: give it time
            while time.monotonic() < deadline and server_running(path):
                running = status(path)
                if running is not None:
                    return running
                time.sleep(0.2)
        return _spawn(path, port, cpus, memory, host, timeout, serve_args)


def _spawn(
    path: Path, port: int, cpus: float | None, memory: int | None, host: str, timeout: float,
    serve_args: Sequence[str] = (),
) -> LocalClusterInfo:
    cmd = [sys.executable, "-m", "oscar_plugins.local", "serve", "--data-dir", str(path), "--port", str(port),
           "--host", host, *serve_args]
    if cpus is not None:
        cmd += ["--cpus", str(cpus)]
    if memory is not None:
        cmd += ["--memory", str(memory)]
    log_path = path / "server.log"
    with contextlib.suppress(OSError):
        (path / "server.json").unlink()
    with open(log_path, "ab") as log:
        log.write(f"--- starting at {datetime.now(timezone.utc).isoformat()} ---\n".encode())
        log.flush()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            raise LocalClusterError(
                f"the local cluster exited with code {code} during start-up. End of {log_path}:\n{_tail(log_path)}"
            )
        info = status(path)
        if info is not None:
            return info
        time.sleep(0.1)
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGTERM)
    raise LocalClusterError(
        f"the local cluster did not become healthy within {timeout:.0f} s. End of {log_path}:\n{_tail(log_path)}"
    )


def down(data_dir: str | os.PathLike[str] | None = None, timeout: float = 30.0) -> bool:
    """Stop the daemon of ``data_dir`` (SIGTERM, then SIGKILL); return whether one was running."""
    path = _resolve(data_dir)
    meta_path = path / "server.json"
    try:
        pid = int(json.loads(meta_path.read_text(encoding="utf-8"))["pid"])
    except (OSError, ValueError, KeyError):
        return False
    if not server_running(path):
        with contextlib.suppress(OSError):
            meta_path.unlink()
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server_running(path):
        time.sleep(0.1)
    if server_running(path):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        time.sleep(0.5)
    with contextlib.suppress(OSError):
        meta_path.unlink()
    return True


def ensure_local_cluster(data_dir: str | os.PathLike[str] | None = None, *, quiet: bool = False) -> LocalClusterInfo:
    """Reuse the local daemon of ``data_dir`` or start it, telling the user once on stderr.

    Args:
        data_dir: the data directory (default: :func:`default_data_dir`, read at call time).
        quiet: do not print the notice.
    """
    info = up(data_dir)
    if not quiet and info.data_dir not in _announced:
        _announced.add(info.data_dir)
        sys.stderr.write(
            "oscar-plugins: no cluster configured; using the embedded local cluster at "
            f"{info.endpoint} (data: {info.data_dir})\n"
        )
    return info


if TYPE_CHECKING:
    from oscar_plugins._profiles import ClusterProfile


def fallback_profile(data_dir: Path | None = None, *, quiet: bool = False) -> ClusterProfile:
    """The profile of the embedded cluster, started on demand (or reused): the core's fallback when no
    cluster is configured (registered as the ``oscar_plugins.fallback_cluster`` entry point)."""
    from oscar_plugins._auth import BasicCredentials
    from oscar_plugins._profiles import LOCAL_PROFILE, ClusterProfile

    info = ensure_local_cluster(data_dir, quiet=quiet)
    return ClusterProfile(name=LOCAL_PROFILE, endpoint=info.endpoint,
                          credentials=BasicCredentials(info.username, info.password), ssl_verify=False,
                          source="local", local_data_dir=str(info.data_dir))
