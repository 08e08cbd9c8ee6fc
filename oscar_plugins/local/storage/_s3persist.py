"""Disk mirror of the local S3 server's objects (runs inside the S3 child process).

moto keeps objects in memory. Every object created is also written to ``<root>/<bucket>/<key>``
(atomically: temporary file, then rename) and every deletion removes it, so a restart can load them
back. Keys that cannot be file names as they are (empty or dot segments, a key that is both a file and
a "folder" of other keys) are stored under ``<root>/.overflow/``. ``<root>/.index.sqlite`` records
each object's file, ETag, metadata and modification time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote

__all__ = ["DiskMirror", "StoredObject", "key_to_relpath", "relpath_to_key"]

_SPECIAL = {"": "%", ".": "%2E", "..": "%2E%2E"}
_MAX_NAME = 255


def key_to_relpath(key: str) -> str | None:
    """Map an object key to a relative file path, reversibly; None when a segment is too long."""
    out = []
    for segment in key.split("/"):
        encoded = segment.replace("%", "%25").replace("\x00", "%00")
        encoded = _SPECIAL.get(encoded, encoded)
        if len(encoded.encode("utf-8", "surrogatepass")) > _MAX_NAME:
            return None
        out.append(encoded)
    return "/".join(out)


def relpath_to_key(relpath: str) -> str:
    """Inverse of :func:`key_to_relpath`."""
    return "/".join("" if seg == "%" else unquote(seg) for seg in relpath.split("/"))


@dataclass(frozen=True)
class StoredObject:
    """One object found on disk."""

    key: str
    path: Path
    etag: str | None
    metadata: dict[str, Any]
    last_modified: float | None


class DiskMirror:
    """Files and index of the objects of every bucket under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / ".tmp"
        self._overflow = root / ".overflow"
        for path in (root, self._tmp, self._overflow):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        for stale in self._tmp.iterdir():
            with contextlib.suppress(OSError):
                stale.unlink()
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(root / ".index.sqlite"), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(
            "CREATE TABLE IF NOT EXISTS buckets (name TEXT PRIMARY KEY);"
            "CREATE TABLE IF NOT EXISTS objects (bucket TEXT, key TEXT, relpath TEXT, etag TEXT,"
            " metadata TEXT, last_modified REAL, PRIMARY KEY (bucket, key));"
        )

    def _sql(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # buckets ------------------------------------------------------------------------------------
    def bucket_created(self, name: str) -> None:
        """Record a new bucket."""
        (self.root / name).mkdir(exist_ok=True, mode=0o700)
        self._sql("INSERT OR IGNORE INTO buckets (name) VALUES (?)", (name,))

    def bucket_deleted(self, name: str) -> None:
        """Forget a bucket and every file left in it."""
        self._sql("DELETE FROM buckets WHERE name = ?", (name,))
        self._sql("DELETE FROM objects WHERE bucket = ?", (name,))
        shutil.rmtree(self.root / name, ignore_errors=True)
        shutil.rmtree(self._overflow / name, ignore_errors=True)

    def buckets(self) -> list[str]:
        """Buckets recorded in the index or present as directories."""
        names = {str(r[0]) for r in self._sql("SELECT name FROM buckets")}
        names.update(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        return sorted(names)

    # objects ------------------------------------------------------------------------------------
    def _place(self, bucket: str, key: str) -> Path:
        relpath = key_to_relpath(key)
        if relpath is not None:
            target = self.root / bucket / relpath
            try:
                target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                if not target.is_dir():
                    return target
            except (FileExistsError, NotADirectoryError):
                pass
        digest = hashlib.sha256(f"{bucket}/{key}".encode("utf-8", "surrogatepass")).hexdigest()
        (self._overflow / bucket).mkdir(parents=True, exist_ok=True, mode=0o700)
        return self._overflow / bucket / digest

    def object_written(
        self,
        bucket: str,
        key: str,
        copy_into: Callable[[IO[bytes]], None],
        etag: str | None,
        metadata: dict[str, Any],
        last_modified: float | None,
    ) -> None:
        """Store an object's bytes (written by ``copy_into``) and index entry, replacing older ones."""
        fd, tmp = tempfile.mkstemp(dir=self._tmp, prefix="obj-")
        try:
            with os.fdopen(fd, "wb") as handle:
                copy_into(handle)
            target = self._place(bucket, key)
            old = self._sql("SELECT relpath FROM objects WHERE bucket = ? AND key = ?", (bucket, key))
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        relpath = str(target.relative_to(self.root))
        if old and old[0][0] != relpath:
            self._remove_file(bucket, self.root / str(old[0][0]))
        self._sql(
            "INSERT OR REPLACE INTO objects (bucket, key, relpath, etag, metadata, last_modified)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (bucket, key, relpath, etag, json.dumps(metadata), last_modified),
        )

    def metadata_changed(self, bucket: str, key: str, metadata: dict[str, Any]) -> None:
        """Update the stored metadata of an object."""
        self._sql("UPDATE objects SET metadata = ? WHERE bucket = ? AND key = ?", (json.dumps(metadata), bucket, key))

    def object_deleted(self, bucket: str, key: str) -> None:
        """Remove an object's file and index entry."""
        rows = self._sql("SELECT relpath FROM objects WHERE bucket = ? AND key = ?", (bucket, key))
        self._sql("DELETE FROM objects WHERE bucket = ? AND key = ?", (bucket, key))
        relpath = str(rows[0][0]) if rows else key_to_relpath(key)
        if relpath is not None:
            self._remove_file(bucket, self.root / relpath if rows else self.root / bucket / relpath)

    def _remove_file(self, bucket: str, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            path.unlink()
        stop = {self.root / bucket, self._overflow / bucket, self.root}
        parent = path.parent
        while parent not in stop and self.root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def objects(self, bucket: str) -> Iterator[StoredObject]:
        """Every object of ``bucket`` on disk: indexed ones, then files placed there by hand."""
        indexed = self._sql(
            "SELECT key, relpath, etag, metadata, last_modified FROM objects WHERE bucket = ?", (bucket,)
        )
        known: set[str] = set()
        for key, relpath, etag, metadata, modified in indexed:
            known.add(str(relpath))
            path = self.root / str(relpath)
            if path.is_file():
                yield StoredObject(str(key), path, etag, json.loads(metadata or "{}"), modified)
        base = self.root / bucket
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                path = Path(dirpath) / name
                relpath = str(path.relative_to(self.root))
                if relpath not in known and not path.is_symlink():
                    yield StoredObject(relpath_to_key(str(path.relative_to(base))), path, None, {}, None)

    def close(self) -> None:
        """Close the index."""
        with self._lock:
            self._db.close()
