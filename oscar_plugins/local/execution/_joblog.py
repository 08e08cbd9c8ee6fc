"""Job logs: supervisor lines and the script's output, one timestamped line at a time.

Each stored line is ``<RFC 3339 nano timestamp> <text>``, the format of ``kubectl logs --timestamps``;
:func:`read_log` strips the timestamps unless asked for them. Output is appended as it arrives, so
memory does not grow with the length of the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from oscar_plugins._wrapper import CLUSTER_FAILED

__all__ = ["LEVELS", "JobLog", "read_log", "supervisor_line"]

LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING,
          "ERROR": logging.ERROR, "CRITICAL": logging.CRITICAL}
_MAX_LINE = 64 * 1024


def _stamp(now: float | None = None) -> bytes:
    now = time.time() if now is None else now
    moment = datetime.fromtimestamp(now, tz=timezone.utc)
    nanos = round((now % 1) * 1e9) % 1_000_000_000
    return (moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z").encode()


def supervisor_line(message: str, level: str = "INFO", now: float | None = None) -> str:
    """A faas-supervisor log line: ``YYYY-MM-DD HH:MM:SS,mmm - supervisor - LEVEL - message``."""
    now = time.time() if now is None else now
    local = datetime.fromtimestamp(now)
    return f"{local.strftime('%Y-%m-%d %H:%M:%S')},{int(now * 1000) % 1000:03d} - supervisor - {level} - {message}"


class JobLog:
    """Append-only log of one execution, as a pod's log reads: the supervisor's lines, the script's output
    as DEBUG lines (faas-supervisor logs each line with ``get_logger().debug``), then what it prints.

    Args:
        path: the log file (created with mode 0600).
        log_level: the service's ``log_level``; supervisor lines below it are not written.
        capture: a file that receives the script's output whatever the level (the supervisor keeps it in
            ``self.output`` for its response).
    """

    def __init__(self, path: Path, log_level: str = "INFO", capture: Path | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        self._threshold = LEVELS.get(str(log_level).upper(), logging.INFO)
        self._file: BinaryIO | None = open(path, "ab", buffering=0)  # closed in close()
        self._capture: BinaryIO | None = open(capture, "ab") if capture is not None else None
        self._partial = b""
        self.supervisor_lines: list[str] = []

    def supervisor(self, message: str, level: str = "INFO") -> None:
        """Write a supervisor line (if the service's log level lets it through)."""
        if LEVELS.get(level, logging.INFO) < self._threshold:
            return
        line = supervisor_line(message, level)
        self.supervisor_lines.append(line)
        self._write_line(line.encode("utf-8", "replace"))

    def cluster_note(self, message: str) -> None:
        """A line from the local cluster itself, whatever the log level: why a job failed (what Kubernetes
        shows as the pod's status, which OSCAR's API does not pass on)."""
        self._write_line(f"oscar-plugins local cluster: {message}".encode("utf-8", "replace"))

    def failed(self, reason: str) -> None:
        """The line saying why the job failed, which the client quotes as the cause."""
        self._write_line(f"{CLUSTER_FAILED}{reason}".encode("utf-8", "replace"))

    @property
    def debug(self) -> bool:
        """Whether DEBUG lines (the script's output) reach the log."""
        return self._threshold <= logging.DEBUG

    def output(self, chunk: bytes) -> None:
        """Take a chunk of the script's output: captured, and logged line by line at DEBUG."""
        if self._capture is not None:
            self._capture.write(chunk)
        if not self.debug:
            return
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._debug_line(line)
        if len(self._partial) > _MAX_LINE:
            self._debug_line(self._partial)
            self._partial = b""

    def _debug_line(self, line: bytes) -> None:
        text = line.decode("utf-8", "ignore").strip()
        self._write_line(supervisor_line(text, "DEBUG").encode("utf-8", "replace"))

    def flush_output(self) -> None:
        """Write a last unterminated output line."""
        if self._partial:
            self._debug_line(self._partial)
            self._partial = b""
        if self._capture is not None:
            self._capture.flush()

    def raw(self, chunk: bytes) -> None:
        """Append a chunk of a pod's own output (the real supervisor's stdout and stderr), line by line."""
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._write_line(line)

    def flush_raw(self) -> None:
        """Write a last unterminated pod output line."""
        if self._partial:
            self._write_line(self._partial)
            self._partial = b""

    def printed(self, chunks: Iterable[bytes]) -> None:
        """What the supervisor prints on stdout (its response) and print()'s newline, streamed line by line
        (a base64 response is one long line; it is never held whole)."""
        if self._file is None:
            return
        at_start = True
        for chunk in chunks:
            parts = chunk.split(b"\n")
            for index, part in enumerate(parts):
                if at_start:
                    self._file.write(_stamp() + b" ")
                    at_start = False
                self._file.write(part)
                if index < len(parts) - 1:
                    self._file.write(b"\n")
                    at_start = True
        if at_start:
            self._file.write(_stamp() + b" ")
        self._file.write(b"\n")

    def _write_line(self, line: bytes) -> None:
        if self._file is not None:
            self._file.write(_stamp() + b" " + line.rstrip(b"\r") + b"\n")

    def close(self) -> None:
        """Flush and close."""
        self.flush_output()
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._capture is not None:
            self._capture.close()
            self._capture = None


def read_log(path: Path, timestamps: bool = False) -> Iterator[bytes]:
    """Yield a stored log's lines (with ``\\n``), without timestamps unless ``timestamps``.

    Args:
        path: the log file.
        timestamps: keep the RFC 3339 timestamp at the start of each line.
    """
    with open(path, "rb") as handle:
        for raw in handle:
            text = raw.partition(b" ")[2]
            yield raw if timestamps else text
