"""Data directory, credentials and connection details of the embedded local cluster.

Everything the local cluster keeps lives under one data directory::

    <data_dir>/credentials.json   basic-auth and S3 credentials (mode 0600, created on first start)
    <data_dir>/state.sqlite       services and jobs
    <data_dir>/logs/<svc>/<job>.log
    <data_dir>/s3/<bucket>/<key>  objects of the local S3 server
    <data_dir>/work/<svc>/<job>/  per-job work directories (removed after each job)
    <data_dir>/server.json        pid and endpoints of a running daemon (no secrets)
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import ssl
import string
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ENV_DATA_DIR",
    "Credentials",
    "LocalClusterError",
    "LocalClusterInfo",
    "default_data_dir",
    "http_ok",
    "inside",
    "load_or_create_credentials",
    "prepare_data_dir",
    "write_json_atomic",
]

ENV_DATA_DIR = "OSCAR_PLUGINS_LOCAL_DIR"
USERNAME = "oscar"
_KEY_ALPHABET = string.ascii_uppercase + string.digits


class LocalClusterError(RuntimeError):
    """The embedded local cluster could not start, stop or answer; the message says what to do."""


def default_data_dir() -> Path:
    """Return the data directory used when none is given.

    Precedence: ``$OSCAR_PLUGINS_LOCAL_DIR``, then ``${XDG_DATA_HOME:-~/.local/share}/oscar-plugins/local``.
    The environment is read at call time.
    """
    explicit = os.environ.get(ENV_DATA_DIR)
    if explicit:
        return Path(explicit).expanduser().absolute()
    base = os.environ.get("XDG_DATA_HOME") or "~/.local/share"
    return (Path(base).expanduser() / "oscar-plugins" / "local").absolute()


@dataclass(frozen=True)
class Credentials:
    """Secrets of one data directory. ``repr`` hides the password and the S3 secret key."""

    username: str
    password: str = field(repr=False)
    s3_access_key: str
    s3_secret_key: str = field(repr=False)


@dataclass(frozen=True)
class LocalClusterInfo:
    """How to reach a running local cluster. ``repr`` hides the password and the S3 secret key.

    Example:
        >>> info = ensure_local_cluster()                     # doctest: +SKIP
        >>> httpx.get(f"{info.endpoint}/system/info", auth=(info.username, info.password))  # doctest: +SKIP
    """

    endpoint: str
    username: str
    password: str = field(repr=False)
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str = field(repr=False)
    data_dir: Path
    pid: int | None = None
    #: The CA certificate to trust when the cluster serves HTTPS (``local up --tls``).
    ca: Path | None = None
    #: The OSCAR release it answers as, how it runs jobs (``builtin`` rules or the real ``supervisor``), and
    #: where (``host`` or a container engine).
    oscar_version: str = ""
    execution: str = ""
    engine: str = ""


def inside(base: Path, *parts: str) -> Path:
    """Join ``parts`` below ``base`` and make sure the result stays inside it.

    Raises:
        ValueError: a part is empty, absolute, contains NUL or ``..``, or the path escapes ``base``.
    """
    for part in parts:
        if not part or "\x00" in part or part.startswith("/") or ".." in part.split("/"):
            raise ValueError(f"unsafe path component {part!r}")
    root = Path(os.path.abspath(base))
    candidate = Path(os.path.normpath(root.joinpath(*parts)))
    if candidate != root and root not in candidate.parents:
        raise ValueError(f"path {candidate} escapes {root}")
    return candidate


def http_ok(url: str, timeout: float = 3.0) -> bool:
    """Whether ``GET url`` answers 200; no proxies. HTTPS is not verified: this only asks a server of our
    own on this machine whether it is up."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(host, port or 443, timeout=timeout,
                                                 context=ssl._create_unverified_context())  # noqa: S323 - loopback
    else:
        connection = http.client.HTTPConnection(host, port or 80, timeout=timeout)
    try:
        connection.request("GET", parts.path or "/")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def prepare_data_dir(data_dir: Path) -> Path:
    """Create ``data_dir`` (mode 0700) and check that it is writable.

    Raises:
        LocalClusterError: the directory cannot be created or written, with the fix in the message.
    """
    path = Path(data_dir).expanduser().absolute()
    fix = f"choose a writable directory with --data-dir or ${ENV_DATA_DIR}"
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise LocalClusterError(f"data directory {path} is not writable ({exc.strerror or exc}): {fix}") from exc
    return path


def write_json_atomic(path: Path, data: object, mode: int = 0o644) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _new_credentials() -> Credentials:
    return Credentials(
        username=USERNAME,
        password=secrets.token_urlsafe(24),
        s3_access_key="".join(secrets.choice(_KEY_ALPHABET) for _ in range(20)),
        s3_secret_key=secrets.token_urlsafe(30),
    )


def load_or_create_credentials(data_dir: Path) -> Credentials:
    """Read ``<data_dir>/credentials.json``, creating it (mode 0600) with random secrets if missing."""
    path = data_dir / "credentials.json"
    if not path.exists():
        creds = _new_credentials()
        payload = {
            "username": creds.username,
            "password": creds.password,
            "s3_access_key": creds.s3_access_key,
            "s3_secret_key": creds.s3_secret_key,
        }
        write_json_atomic(path, payload, mode=0o600)
        return creds
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return Credentials(
            username=str(raw["username"]),
            password=str(raw["password"]),
            s3_access_key=str(raw["s3_access_key"]),
            s3_secret_key=str(raw["s3_secret_key"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise LocalClusterError(
            f"{path} is damaged ({type(exc).__name__}): delete it to generate new credentials"
        ) from exc
