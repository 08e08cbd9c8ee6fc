"""Container images built offline, for the tests, the benchmarks and the conformance run with containers.

No registry is reachable on the machines the project is built on (docs/CONTAINERS.md), so every
image a test runs is made here from what the machine has: ``podman import`` of a root-filesystem tarball.

- ``busybox`` (:data:`BUSYBOX`): a few MB, ``/bin/busybox`` (Debian's ``busybox-static``) with a link per
  applet: ``sh``, ``wget``, ``dd``, ``tar``... Built in about a second. Like ``alpine``: busybox's tools.
- ``python`` (:data:`PYTHON`): ``debootstrap --variant=minbase`` of the Debian release the machine runs,
  with ``python3`` (a minute from the Debian mirror the machine uses). Like ``python:3-slim``.
- ``debian`` (:data:`DEBIAN`): the same tree without Python. Like ``debian:stable-slim``: no curl, no wget,
  no python3, so a job's inputs cannot be downloaded from inside it.
- ``scipy`` (:data:`SCIPY`): Debian with python3, numpy and scipy (Debian's packages), for
  the examples' steps (their own image, ``quay.io/jupyter/scipy-notebook``, is several GB).
- ``bash`` (:data:`BASH`): the Debian tree with ``ENTRYPOINT ["docker-entrypoint.sh"]`` that hands
  options to bash, as the official ``bash`` image does.

With ``aliases=True`` they are also tagged as the images the CWL v1.2 conformance suite names
(:data:`CONFORMANCE_ALIASES`), which shadows those names in the engine's local storage: for test machines.

:func:`registry` runs a real registry (Debian's ``docker-registry``) on loopback, for pulls with progress
and for reading an image's configuration over the registry API.

An engine that answers ``podman info`` may still be unable to run a container (crun on hybrid cgroups,
see CONTAINERS.md), so readiness is a real ``run`` of the built image. :func:`reason` returns why an image
cannot run instead of raising, for ``pytest.skip`` and for the benchmark's table.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: Bump the tag when what an image holds changes (an image already built is reused).
BUSYBOX = "localhost/oscar-plugins-busybox:1"
DEBIAN = "localhost/oscar-plugins-debian:2"
PYTHON = "localhost/oscar-plugins-python:2"
BASH = "localhost/oscar-plugins-bash:2"
SCIPY = "localhost/oscar-plugins-scipy:1"
IMAGES = {"busybox": BUSYBOX, "debian": DEBIAN, "python": PYTHON, "bash": BASH, "scipy": SCIPY}
#: What a file in each image says (a job proves it ran in the image by reading it).
MARKER = "/etc/oscar-plugins-image"
#: The names the CWL v1.2 conformance suite pulls, and the image of ours that stands in for each.
CONFORMANCE_ALIASES = {
    "docker.io/library/debian:stable-slim": "debian",
    "docker.io/library/python:3-slim": "python",
    "docker.io/library/bash:4.4": "bash",
    "docker.io/library/alpine:latest": "busybox",
}
ENTRYPOINT = b"""#!/bin/sh
# As the official bash image's: options go to bash, anything else runs as it is.
if [ "${1#-}" != "$1" ] || [ -z "$(command -v "$1" 2>/dev/null)" ]; then set -- bash "$@"; fi
exec "$@"
"""


class EngineUnavailable(Exception):
    """No container can run here; the message says why and what would fix it."""


def _run(cmd: list[str], timeout: float, **kw: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, capture_output=True, timeout=timeout, check=False, **kw)  # type: ignore[call-overload,no-any-return]


def _said(done: subprocess.CompletedProcess[bytes]) -> str:
    text = (done.stderr or done.stdout or b"").decode("utf-8", "replace").strip()
    return text.splitlines()[-1] if text else f"exit code {done.returncode}"


def has_image(engine: str, image: str) -> bool:
    return shutil.which(engine) is not None and _run([engine, "image", "inspect", image], 30).returncode == 0


def _import(engine: str, files: dict[str, bytes], links: dict[str, str], dirs: list[str], image: str) -> None:
    """``engine import`` of a tarball made in memory (no root-owned tree left on disk)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755 if name.startswith("bin/") else 0o644
            tar.addfile(info, io.BytesIO(data))
        for name, target in links.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    done = _run([engine, "import", "-", image], 300, input=buf.getvalue())
    if done.returncode != 0:
        raise EngineUnavailable(f"{engine} import failed: {_said(done)}")


def _busybox_binary() -> Path:
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        path = Path(candidate)
        if path.is_file():
            done = _run(["ldd", str(path)], 10)
            if done.returncode != 0 or b"not a dynamic" in done.stdout + done.stderr:
                return path
            raise EngineUnavailable(f"{path} is dynamically linked; a container needs the static one "
                                    "(apt-get install busybox-static)")
    raise EngineUnavailable("no busybox to build a test image from (apt-get install busybox-static)")


def build_busybox(engine: str = "podman", image: str = BUSYBOX) -> str:
    binary = _busybox_binary()
    applets = _run([str(binary), "--list"], 10).stdout.decode().split()
    links = {f"bin/{a}": "busybox" for a in applets if a != "busybox"}
    links.update({"usr/bin": "../bin", "sbin": "bin"})
    files = {"bin/busybox": binary.read_bytes(), MARKER.lstrip("/"): b"busybox\n",
             "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n", "etc/group": b"root:x:0:\n"}
    _import(engine, files, links, ["bin", "etc", "tmp", "root", "usr", "proc", "sys", "dev"], image)
    return image


def build_debian(engine: str = "podman", timeout: float = 900) -> None:
    """One ``debootstrap --variant=minbase`` of this machine's Debian release with python3: imported as
    :data:`PYTHON`, then without Python as :data:`DEBIAN`, then :data:`BASH` on top of it."""
    if shutil.which("debootstrap") is None:
        raise EngineUnavailable("debootstrap is not installed (apt-get install debootstrap)")
    release, mirror = _debian_source()
    with tempfile.TemporaryDirectory(prefix="oscar-plugins-rootfs-") as tmp:
        root = Path(tmp) / "rootfs"
        done = _run(["debootstrap", "--variant=minbase", "--include=python3,ca-certificates", release,
                     str(root), mirror], timeout)
        if done.returncode != 0:
            raise EngineUnavailable(f"debootstrap {release} from {mirror} failed: {_said(done)}")
        shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
        (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
        (root / "usr/bin/python").unlink(missing_ok=True)
        (root / "usr/bin/python").symlink_to("python3")
        (root / MARKER.lstrip("/")).write_text("python\n")
        _import_tree(engine, root, PYTHON)
        for pattern in ("usr/bin/python*", "usr/bin/py3*", "usr/bin/pydoc*", "usr/lib/python3*",
                        "usr/lib/python3.*", "usr/local/lib/python3*"):
            for path in root.glob(pattern):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        (root / MARKER.lstrip("/")).write_text("debian\n")
        _import_tree(engine, root, DEBIAN)
        entry = root / "usr/local/bin/docker-entrypoint.sh"
        entry.write_bytes(ENTRYPOINT)
        entry.chmod(0o755)
        (root / MARKER.lstrip("/")).write_text("bash\n")
        _import_tree(engine, root, BASH, 'ENTRYPOINT ["docker-entrypoint.sh"]', 'CMD ["bash"]')


def build_scipy(engine: str = "podman", timeout: float = 1200) -> None:
    """:data:`SCIPY`: ``debootstrap --variant=minbase`` with Debian's python3-numpy and python3-scipy."""
    if shutil.which("debootstrap") is None:
        raise EngineUnavailable("debootstrap is not installed (apt-get install debootstrap)")
    release, mirror = _debian_source()
    with tempfile.TemporaryDirectory(prefix="oscar-plugins-rootfs-") as tmp:
        root = Path(tmp) / "rootfs"
        packages = "python3,python3-numpy,python3-scipy,ca-certificates"
        done = _run(["debootstrap", "--variant=minbase", f"--include={packages}", release, str(root), mirror],
                    timeout)
        if done.returncode != 0:
            raise EngineUnavailable(f"debootstrap {release} from {mirror} failed: {_said(done)}")
        shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
        (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
        (root / MARKER.lstrip("/")).write_text("scipy\n")
        _import_tree(engine, root, SCIPY)


def _import_tree(engine: str, root: Path, image: str, *changes: str) -> None:
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    cmd = [engine, "import"]
    for change in changes:
        cmd += ["--change", change]
    done = _run([*cmd, "-", image], 600, stdin=tar.stdout)
    tar.wait()
    if done.returncode != 0:
        raise EngineUnavailable(f"{engine} import failed: {_said(done)}")


def _debian_source() -> tuple[str, str]:
    """The release codename and the mirror this machine's apt uses (the only Debian source reachable)."""
    release = "bookworm"
    os_release = Path("/etc/os-release")
    if os_release.exists():
        for line in os_release.read_text().splitlines():
            if line.startswith("VERSION_CODENAME=") and line.split("=", 1)[1].strip('"'):
                release = line.split("=", 1)[1].strip('"')
    mirror = "http://deb.debian.org/debian"
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for source in sources:
        if not source.is_file():
            continue
        for line in source.read_text(errors="replace").splitlines():
            words = line.split()
            if words[:1] == ["deb"] and "security" not in line:
                mirror = next(w for w in words[1:] if w.startswith("http"))
                return release, mirror
            if line.startswith("URIs:") and "security" not in line:
                mirror = line.split()[1]
                return release, mirror
    return release, mirror


def probe(engine: str, image: str) -> None:
    """A real run of ``image`` (``info`` answering does not mean containers run)."""
    done = _run([engine, "run", "--rm", "--network", "host", "--entrypoint", "/bin/sh", image, "-c", f"cat {MARKER}"],
                120)
    if done.returncode != 0:
        raise EngineUnavailable(f"{engine} cannot run a container here: {_said(done)} (see docs/CONTAINERS.md: "
                                "runc, cgroupfs and default_ulimits = [] in containers.conf)")


def ready(kind: str = "busybox", engine: str = "podman", *, aliases: bool = False) -> str:
    """The image of ``kind`` (a key of :data:`IMAGES`), built when missing and proven to run; with
    ``aliases``, every image the conformance suite names too.

    Raises:
        EngineUnavailable: no engine, no way to build the image, or the engine cannot run containers.
    """
    if os.environ.get("OSCAR_PLUGINS_TEST_ENGINE", engine) == "none":
        raise EngineUnavailable("container tests are turned off (OSCAR_PLUGINS_TEST_ENGINE=none)")
    if shutil.which(engine) is None:
        raise EngineUnavailable(f"{engine} is not installed (.ci/containers.sh installs it: apt-get install podman "
                                "runc)")
    kinds = {kind, *CONFORMANCE_ALIASES.values()} if aliases else {kind}
    for k in sorted(kinds):
        if not has_image(engine, IMAGES[k]):
            if k == "busybox":
                build_busybox(engine)
            elif k == "scipy":
                build_scipy(engine)
            else:
                build_debian(engine)
        probe(engine, IMAGES[k])
    if aliases:
        for alias, k in CONFORMANCE_ALIASES.items():
            _run([engine, "tag", IMAGES[k], alias], 60)
    return IMAGES[kind]


@functools.cache
def reason(kind: str = "busybox", engine: str = "podman", *, aliases: bool = False) -> str | None:
    """Why the image of ``kind`` cannot run here, or None when it can."""
    try:
        ready(kind, engine, aliases=aliases)
    except EngineUnavailable as exc:
        return str(exc)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{engine}: {exc}"
    return None


@contextlib.contextmanager
def registry(tmp: Path) -> Iterator[Registry]:
    """A real registry (Debian's ``docker-registry``, the CNCF distribution server) on a loopback port.

    Raises:
        EngineUnavailable: it is not installed or does not answer.
    """
    binary = shutil.which("docker-registry")
    if binary is None:
        raise EngineUnavailable("docker-registry is not installed (.ci/containers.sh installs it: apt-get install "
                                "docker-registry)")
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    host = f"127.0.0.1:{port}"
    config = tmp / "registry.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {tmp / 'data'}\n"
                      f"http:\n  addr: {host}\n")
    conf = tmp / "registries.conf"  # plain HTTP on loopback: the engine must be told it is fine
    conf.write_text(f'[[registry]]\nlocation = "{host}"\ninsecure = true\n')
    log = (tmp / "registry.log").open("wb")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://{host}/v2/", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise EngineUnavailable(f"docker-registry did not answer on {host} (see {tmp / 'registry.log'})")
            time.sleep(0.1)
        yield Registry(host, conf)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@dataclass(frozen=True)
class Registry:
    host: str
    #: A ``registries.conf`` that lets the engine use it over plain HTTP (``CONTAINERS_REGISTRIES_CONF``).
    conf: Path

    def push(self, engine: str, image: str, name: str) -> str:
        """Push a local ``image`` as ``name`` (``repo:tag``); its full reference."""
        target = f"{self.host}/{name}"
        env = {**os.environ, "CONTAINERS_REGISTRIES_CONF": str(self.conf)}
        done = _run([engine, "push", image, target], 300, env=env)
        if done.returncode != 0:
            raise EngineUnavailable(f"{engine} push {target} failed: {_said(done)}")
        return target
