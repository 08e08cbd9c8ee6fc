"""What a container image says about how it runs (its ``ENTRYPOINT``), read without pulling it.

OSCAR starts every pod with its own command (the watchdog and faas-supervisor, ``types.ToPodSpec``), so an
image's ``ENTRYPOINT`` never runs there. Tools written for ``docker run IMAGE ARGS`` (a CWL
``DockerRequirement`` among them) expect it to: :class:`ImageInspector` finds it so the caller can put it
in front of the command, as ``docker run`` would.

Where it looks, in order: the local cluster's container engine (``engine image inspect``) when the
cluster runs jobs in images on this machine, then the image's registry over the Docker Registry HTTP API
v2 (anonymous pull token; manifest lists resolved to ``linux/amd64``, what OSCAR clusters run). An image
neither can read gives None: the caller runs the command as it is and says so.

:class:`ImageBuilder` builds, loads or imports an image into the local engine, for a local cluster that runs
jobs in images (a real OSCAR cluster only pulls from registries).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from ._exceptions import OscarError

__all__ = ["ImageBuilder", "ImageInspector", "parse_reference"]

log = logging.getLogger("oscar_plugins")

_MANIFESTS = ", ".join((
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))
_BEARER = re.compile(r'(\w+)="([^"]*)"')


def parse_reference(image: str) -> tuple[str, str, str]:
    """(registry host, repository, tag or digest) of an image reference, as Docker reads it:
    ``python:3`` is ``docker.io``'s ``library/python``, tag ``3``; no tag means ``latest``.

    Raises:
        ValueError: not an image reference.
    """
    ref = image.strip()
    if not ref or any(c.isspace() for c in ref):
        raise ValueError(f"{image!r} is not an image reference")
    name, _, digest = ref.partition("@")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = "docker.io", name
    tag = "latest"
    if ":" in path.rsplit("/", 1)[-1]:
        path, tag = path.rsplit(":", 1)
    if registry == "docker.io" and "/" not in path:
        path = f"library/{path}"
    if not path or not re.fullmatch(r"[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*", path):
        raise ValueError(f"{image!r} is not an image reference (repository {path!r})")
    return registry, path, digest or tag


class ImageInspector:
    """Reads images' entrypoints, each once (thread-safe).

    Args:
        engine: the container engine that runs the local cluster's jobs on this machine (``podman``,
            ``docker``), or None for a remote cluster.
        timeout: seconds for each registry request.
    """

    def __init__(self, engine: str | None = None, *, timeout: float = 10.0) -> None:
        self.engine = engine if engine in ("podman", "docker") else None
        self.timeout = timeout
        self._cache: dict[str, list[str] | None] = {}
        self._lock = threading.Lock()

    def entrypoint(self, image: str) -> list[str] | None:
        """The image's ``ENTRYPOINT`` (``[]`` when it has none), or None when it could not be read."""
        with self._lock:
            if image in self._cache:
                return self._cache[image]
        found = self._from_engine(image)
        if found is None:
            try:
                found = self._from_registry(image)
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                log.warning("could not read the ENTRYPOINT of image %s from its registry (%s): commands run in it "
                            "without one; if the image needs it, put it in front of the command yourself", image,
                            exc)
        with self._lock:
            self._cache[image] = found
        return found

    def _from_engine(self, image: str) -> list[str] | None:
        if self.engine is None:
            return None
        try:
            done = subprocess.run([self.engine, "image", "inspect", "--format", "{{json .Config.Entrypoint}}", image],
                                  capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if done.returncode != 0:
            return None  # not here yet: the local cluster pulls it when its first job runs
        value = json.loads(done.stdout.strip() or "null")
        return [str(v) for v in value] if isinstance(value, list) else []

    def _from_registry(self, image: str) -> list[str]:
        registry, repo, ref = parse_reference(image)
        host = "registry-1.docker.io" if registry == "docker.io" else registry
        scheme = "http" if host.split(":")[0] in ("localhost", "127.0.0.1", "::1") else "https"
        base = f"{scheme}://{host}/v2/{repo}"
        with httpx.Client(timeout=self.timeout, follow_redirects=True) as http:
            token: list[str] = []
            manifest = self._get(http, f"{base}/manifests/{ref}", repo, token, accept=_MANIFESTS)
            if "manifests" in manifest:  # an index: the linux/amd64 image
                chosen = next((m for m in manifest["manifests"]
                               if (m.get("platform") or {}).get("os") == "linux"
                               and (m.get("platform") or {}).get("architecture") == "amd64"), None)
                if chosen is None:
                    raise ValueError("the image has no linux/amd64 variant")
                manifest = self._get(http, f"{base}/manifests/{chosen['digest']}", repo, token, accept=_MANIFESTS)
            config = self._get(http, f"{base}/blobs/{manifest['config']['digest']}", repo, token)
        value = (config.get("config") or {}).get("Entrypoint")
        return [str(v) for v in value] if isinstance(value, list) else []

    @staticmethod
    def _get(http: httpx.Client, url: str, repo: str, token: list[str], accept: str | None = None) -> Any:
        headers = {"Accept": accept} if accept else {}
        if token:
            headers["Authorization"] = f"Bearer {token[0]}"
        response = http.get(url, headers=headers)
        challenge = response.headers.get("WWW-Authenticate", "")
        if response.status_code == 401 and challenge.lower().startswith("bearer") and not token:
            params = dict(_BEARER.findall(challenge))
            realm = params.pop("realm", "")
            params.setdefault("scope", f"repository:{repo}:pull")
            granted = http.get(realm, params=params)
            granted.raise_for_status()
            body = granted.json()
            token.append(str(body.get("token") or body.get("access_token") or ""))
            headers["Authorization"] = f"Bearer {token[0]}"
            response = http.get(url, headers=headers)
        if response.status_code != 200:
            raise ValueError(f"GET {url}: HTTP {response.status_code}")
        return response.json()


class ImageBuilder:
    """Puts images into a local container engine's storage, where a local cluster running jobs with that
    engine finds them (it pulls only what it does not have): CWL's ``dockerFile``, ``dockerLoad`` and
    ``dockerImport``, which a real OSCAR cluster cannot take (it pulls from registries).

    Args:
        engine: ``podman`` or ``docker``.
        timeout: seconds for one build, load or import.
    """

    def __init__(self, engine: str, *, timeout: float = 1800.0) -> None:
        if engine not in ("podman", "docker"):
            raise ValueError(f"cannot build images with {engine!r}: podman or docker")
        self.engine = engine
        self.timeout = timeout

    def exists(self, image: str) -> bool:
        """Whether the engine has ``image``."""
        done = self._run("image", "inspect", "--format", "{{.Id}}", image, check=False)
        return done.returncode == 0

    def build(self, dockerfile: str, tag: str) -> str:
        """``engine build`` of a Dockerfile's text (no context directory, as CWL's ``dockerFile``) as ``tag``."""
        with tempfile.TemporaryDirectory(prefix="oscar-plugins-build-") as context:
            self._run("build", "--tag", tag, "-f", "-", ".", stdin=dockerfile, what=f"building image {tag}",
                      cwd=context)
        return tag

    def load(self, source: str, tag: str | None = None) -> str:
        """``engine load`` of an image archive (a path or an http(s) URL); the loaded image's name, tagged
        ``tag`` when given."""
        with self._local(source) as path:
            done = self._run("load", "-i", path, what=f"loading image archive {source}")
        loaded = re.findall(r"Loaded image(?:\(s\))?(?: ID)?:\s*(\S+)", done.stdout + done.stderr)
        if not loaded:
            raise OscarError(f"{self.engine} load {source} did not say which image it loaded: give dockerImageId")
        if tag and tag != loaded[-1]:
            self._run("tag", loaded[-1], tag, what=f"tagging {loaded[-1]} as {tag}")
            return tag
        return str(loaded[-1])

    def import_(self, source: str, tag: str) -> str:
        """``engine import`` of a root file system tarball (a path or an http(s) URL) as ``tag``."""
        with self._local(source) as path:
            self._run("import", path, tag, what=f"importing {source}")
        return tag

    @contextlib.contextmanager
    def _local(self, source: str) -> Iterator[str]:
        if not source.startswith(("http://", "https://")):
            yield source.removeprefix("file://")
            return
        with tempfile.TemporaryDirectory(prefix="oscar-plugins-image-") as tmp:
            path = Path(tmp) / "image.tar"
            try:
                with httpx.stream("GET", source, follow_redirects=True, timeout=60) as response:
                    response.raise_for_status()
                    with path.open("wb") as fh:
                        for chunk in response.iter_bytes(1 << 20):
                            fh.write(chunk)
            except httpx.HTTPError as exc:
                raise OscarError(f"could not download the image archive {source}: {exc}") from exc
            yield str(path)

    def _run(self, *args: str, stdin: str | None = None, what: str = "", check: bool = True,
             cwd: str | None = None) -> subprocess.CompletedProcess[str]:
        try:
            done = subprocess.run([self.engine, *args], input=stdin, capture_output=True, text=True,
                                  timeout=self.timeout, check=False, cwd=cwd)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise OscarError(f"{what or self.engine}: {exc}") from exc
        if check and done.returncode != 0:
            said = (done.stderr.strip() or done.stdout.strip()).splitlines()[-5:]
            raise OscarError(f"{what} with {self.engine} failed (exit {done.returncode}): " + " | ".join(said))
        return done
