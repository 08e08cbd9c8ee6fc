"""Synchronous runs (``POST /run/{svc}``) that stream: memory does not grow with the data.

The request body is the input base64-encoded chunk by chunk (a JSON object is sent as base64 of its
bytes, which keeps user JSON away from the supervisor's reserved keys). The response is read as a
stream: leading supervisor log lines are skipped; then the body is either base64 (one output file, or
a zip of several) decoded incrementally to disk, or plain text (the script's log).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._exceptions import ConfigError, InputNotFound, JobFailed, OscarError, OutputExists
from ._wrapper import EXIT_RE

if TYPE_CHECKING:
    from ._client import OscarClient

__all__ = ["RunResult", "encode_stream", "run"]

_READ = 3 * 1024 * 1024  # a multiple of 3: base64 chunks concatenate cleanly
_SUPERVISOR_LINE = re.compile(rb"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d[,.]?\d* - \S+ - (DEBUG|INFO|WARNING|ERROR)"
                              rb" - [^\n]*\n")
_B64_CHARS = re.compile(rb"^[A-Za-z0-9+/=\r\n]*$")


@dataclass
class RunResult:
    """What a synchronous run returned.

    Attributes:
        kind: ``"file"`` (one output), ``"files"`` (several, from a zip), or ``"text"`` (no output file).
        data: the output's bytes when ``kind == "file"`` and no ``output`` path was given.
        paths: files written when an ``output`` path was given.
        text: the script's log when ``kind == "text"``.
        exit_code: the script's exit code, when the service is wrapped by oscar-plugins.
    """

    kind: str
    data: bytes | None = None
    paths: list[Path] = field(default_factory=list)
    text: str = ""
    exit_code: int | None = None


def encode_stream(data: Any) -> Iterator[bytes]:
    """Yield base64 of the input, streaming files from disk."""
    if data is None:
        yield b""
    elif isinstance(data, Path):
        if not data.is_file():
            raise InputNotFound(f"input file {data} does not exist: check the path")
        with data.open("rb") as fh:
            while chunk := fh.read(_READ):
                yield base64.b64encode(chunk)
    elif isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        for start in range(0, len(raw), _READ):
            yield base64.b64encode(raw[start:start + _READ])
    elif isinstance(data, str):
        yield base64.b64encode(data.encode("utf-8"))
    elif isinstance(data, (dict, list)):
        yield base64.b64encode(json.dumps(data).encode("utf-8"))
    else:
        raise ConfigError(f"cannot send a {type(data).__name__} as input: give a Path, bytes, str or dict")


class _B64Sink:
    """Decode base64 incrementally into a file object."""

    def __init__(self, out: io.BufferedIOBase) -> None:
        self.out = out
        self.rest = b""
        self.first = b""

    def feed(self, chunk: bytes) -> None:
        data = self.rest + chunk.replace(b"\n", b"").replace(b"\r", b"")
        cut = len(data) - len(data) % 4
        self.rest = data[cut:]
        if cut:
            decoded = base64.b64decode(data[:cut], validate=True)
            if len(self.first) < 4:
                self.first += decoded[:4]
            self.out.write(decoded)

    def close(self) -> None:
        if self.rest.strip(b"="):
            raise binascii.Error("truncated base64 body")


def _strip_supervisor_lines(buffer: bytes) -> tuple[bytes, bool]:
    """Drop complete supervisor log lines at the start; True once the body proper has begun."""
    while True:
        match = _SUPERVISOR_LINE.match(buffer)
        if not match:
            break
        buffer = buffer[match.end():]
    begun = bool(buffer) and (b"\n" in buffer or len(buffer) > 512 or not buffer[:1].isdigit())
    return buffer, begun


def _check_target(output: Path | None, overwrite: bool) -> None:
    if output is not None and output.exists() and not overwrite and not output.is_dir():
        raise OutputExists(f"{output} already exists: remove it, choose another path, or pass overwrite=True")


def run(client: OscarClient, service: str, data: Any = None, *, output: Path | None = None,
        expect: str = "auto", overwrite: bool = False, timeout: float | None = None) -> RunResult:
    """Run ``service`` synchronously and decode its answer.

    Args:
        data: a Path (streamed), bytes, str, or a JSON-able dict/list.
        output: where to write: a file path for one output, a directory for several.
        expect: ``"auto"``, ``"file"`` (never unzip), ``"zip"`` (always unzip), or ``"text"``.

    Raises:
        JobFailed: the (wrapped) script exited non-zero; carries the log tail.
        OutputExists: ``output`` exists and ``overwrite`` is False.
    """
    if expect not in {"auto", "file", "zip", "text"}:
        raise ConfigError(f"expect={expect!r}: use auto, file, zip or text")
    _check_target(output, overwrite)
    token = client.service_token(service)
    body = encode_stream(data)
    response = client.stream_post(f"/run/{service}", body, bearer=token, service=service, timeout=timeout)
    try:
        return _decode(response, service, output, expect, overwrite)
    finally:
        response.close()


def _decode(response: Any, service: str, output: Path | None, expect: str, overwrite: bool) -> RunResult:
    chunks = response.iter_bytes()
    head = b""
    begun = False
    for chunk in chunks:
        head, begun = _strip_supervisor_lines(head + chunk)
        if begun:
            break
    else:
        head, _ = _strip_supervisor_lines(head)
    is_text = expect == "text" or (expect == "auto" and (not _B64_CHARS.match(head[:4096]) or not head.strip()))
    if is_text:
        text = (head + b"".join(chunks)).decode("utf-8", "replace")
        return _text_result(service, text)
    tmp_dir = (output.parent if output is not None and not output.is_dir() else output) or Path(tempfile.gettempdir())
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".oscar-run-", dir=tmp_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            sink = _B64Sink(fh)
            try:
                sink.feed(head)
                for chunk in chunks:
                    sink.feed(chunk)
                sink.close()
            except (binascii.Error, ValueError):
                raise OscarError(f"the answer of {service!r} is neither text nor valid base64 (truncated?): "
                                 "retry, or pass expect='text' to read it as text") from None
        is_zip = expect == "zip" or (expect == "auto" and sink.first.startswith(b"PK\x03\x04")
                                     and zipfile.is_zipfile(tmp))
        if is_zip:
            return RunResult("files", paths=_unzip(tmp, output, overwrite))
        if output is None:
            return RunResult("file", data=tmp.read_bytes())
        dest = output
        if output.is_dir():
            raise ConfigError(f"{output} is a directory but the service returned one file: give a file path")
        os.replace(tmp, dest)
        return RunResult("file", paths=[dest])
    finally:
        tmp.unlink(missing_ok=True)


def _text_result(service: str, text: str) -> RunResult:
    """The script's output exactly: the wrapper's exit line and the newline it writes before it removed."""
    marks = list(EXIT_RE.finditer(text))
    if not marks:
        return RunResult("text", text=text, exit_code=None)
    last = marks[-1]
    exit_code = int(last.group(1))
    start = last.start() - 1 if last.start() and text[last.start() - 1] == "\n" else last.start()
    rest = text[last.end():]
    clean = text[:start] + (rest if rest.strip() else "")
    if exit_code:
        tail = "\n".join(clean.rstrip().splitlines()[-20:])
        raise JobFailed(f"service {service!r} (sync run) failed: the script exited with code {exit_code}.\n"
                        f"Log tail:\n{tail}", service=service, exit_code=exit_code, log_tail=tail)
    return RunResult("text", text=clean, exit_code=exit_code)


def _unzip(archive: Path, output: Path | None, overwrite: bool) -> list[Path]:
    target = output or Path(tempfile.mkdtemp(prefix="oscar-run-"))
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    written: list[Path] = []
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            if member.is_dir():
                continue
            dest = (root / member.filename).resolve()
            if root not in dest.parents:
                raise OscarError(f"the service's zip holds an unsafe path {member.filename!r}; refused")
            if dest.exists() and not overwrite:
                raise OutputExists(f"{dest} already exists: remove it, choose another directory, or pass "
                                   "overwrite")
            dest.parent.mkdir(parents=True, exist_ok=True)
            part = dest.with_name(f".{dest.name}.part")
            with zf.open(member) as src, part.open("wb") as dst:
                while chunk := src.read(_READ):
                    dst.write(chunk)
            os.replace(part, dest)
            written.append(dest)
    return written
