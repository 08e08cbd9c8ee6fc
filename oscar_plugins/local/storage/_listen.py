"""MinIO's bucket-notification listening API on the local S3 server (runs in the S3 child process).

Client scripts wait for outputs with ``minio.Minio.listen_bucket_notification`` (minio-py), which sends
``GET /<bucket>?events=s3:ObjectCreated:*&prefix=..&suffix=..`` and reads a stream of JSON lines, one
``{"Records": [<event>]}`` per object event; MinIO's ``ListenNotificationHandler`` keeps the stream alive
with a single space every 500 ms, or with ``{"Records":null}`` lines every ``ping`` seconds when asked.
"""

from __future__ import annotations

import fnmatch
import json
import queue
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EventHub", "Listener", "listen_stream"]


@dataclass(eq=False)
class Listener:
    """One open listening request: its bucket, filters and queue of matching records."""

    bucket: str
    prefix: str
    suffix: str
    events: tuple[str, ...]
    records: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)

    def wants(self, bucket: str, key: str, name: str) -> bool:
        return (bucket == self.bucket and key.startswith(self.prefix) and key.endswith(self.suffix)
                and any(fnmatch.fnmatchcase(name, pattern) for pattern in self.events))


class EventHub:
    """Fans object events out to the open listening requests."""

    def __init__(self) -> None:
        self._listeners: set[Listener] = set()
        self._lock = threading.Lock()

    def listening(self) -> bool:
        """Whether any listening request is open (a record is worth building)."""
        return bool(self._listeners)

    def publish(self, bucket: str, key: str, name: str, record: dict[str, Any]) -> None:
        with self._lock:
            listeners = [item for item in self._listeners if item.wants(bucket, key, name)]
        for listener in listeners:
            listener.records.put(record)

    def subscribe(self, bucket: str, query: Mapping[str, list[str]]) -> Listener:
        events = tuple(query.get("events") or ["s3:ObjectCreated:*", "s3:ObjectRemoved:*", "s3:ObjectAccessed:*"])
        listener = Listener(bucket, (query.get("prefix") or [""])[0], (query.get("suffix") or [""])[0], events)
        with self._lock:
            self._listeners.add(listener)
        return listener

    def unsubscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.discard(listener)


def listen_stream(hub: EventHub, listener: Listener, ping: float | None) -> Iterator[bytes]:
    """The response body: one JSON line per record; keep-alives as MinIO sends them."""
    try:
        while True:
            try:
                record = listener.records.get(timeout=ping or 0.5)
            except queue.Empty:
                yield b'{"Records":null}\n' if ping else b" "
                continue
            yield json.dumps({"Records": [record]}, separators=(",", ":")).encode() + b"\n"
    finally:
        hub.unsubscribe(listener)
