"""What a container image says about how it runs (its ``ENTRYPOINT``), read without pulling it.

OSCAR starts every pod with its own command (the watchdog and faas-supervisor, ``types.ToPodSpec``), so an
image's ``ENTRYPOINT`` never runs there. Tools written for ``docker run IMAGE ARGS`` (a CWL
``DockerRequirement`` among them) expect it to: :class:`ImageInspector` finds it so the caller can put it
in front of the command, as ``docker run`` would.

Where it looks, in order: the local cluster's container engine (``engine image inspect``) when the
cluster runs jobs in images on this machine, then the image's registry over the Docker Registry HTTP API
v2 (anonymous pull token; manifest lists resolved to ``linux/amd64``, what OSCAR clusters run). An image
neither can read gives None: the caller runs the command as it is and says so.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import threading
from typing import Any

import httpx

__all__ = ["ImageInspector", "parse_reference"]

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
