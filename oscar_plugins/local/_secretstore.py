"""Keep service secrets out of the state database: they live in ``<data_dir>/secrets/`` (0600 files).

OSCAR keeps a service's secrets (``environment.secrets``, its token, storage provider keys) in
Kubernetes Secrets, apart from the service definition. Here :func:`split_secrets` takes them out of a
definition before it is stored, and :func:`merge_secrets` puts them back when it is read.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from oscar_plugins._auth import SECRET_FIELDS

__all__ = ["SecretFiles", "merge_secrets", "split_secrets"]

Secrets = list[tuple[list[str], Any]]


def split_secrets(definition: dict[str, Any]) -> tuple[dict[str, Any], Secrets]:
    """A copy of ``definition`` without secret values, and the (path, value) pairs taken out."""
    public = copy.deepcopy(definition)
    taken: Secrets = []

    def walk(node: Any, path: list[str], under_secrets: bool) -> None:
        if not isinstance(node, dict):
            return
        for key in list(node):
            value = node[key]
            here = [*path, key]
            if isinstance(value, str) and (under_secrets or key in SECRET_FIELDS):
                taken.append((here, value))
                del node[key]
            elif isinstance(value, dict):
                walk(value, here, under_secrets or (key == "secrets" and path == ["environment"]))

    walk(public, [], False)
    return public, taken


def merge_secrets(public: dict[str, Any], taken: Secrets) -> dict[str, Any]:
    """Put the secret values back into a stored definition."""
    merged = copy.deepcopy(public)
    for path, value in taken:
        node = merged
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return merged


class SecretFiles:
    """One 0600 JSON file per service under a 0700 directory."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
        self.directory = directory

    def _path(self, service: str) -> Path:
        return self.directory / f"{service}.json"

    def write(self, service: str, taken: Secrets) -> None:
        tmp = self.directory / f".{service}.json.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(taken, fh)
        os.replace(tmp, self._path(service))

    def read(self, service: str) -> Secrets:
        try:
            data = json.loads(self._path(service).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        return [(list(path), value) for path, value in data]

    def delete(self, service: str) -> None:
        self._path(service).unlink(missing_ok=True)
