"""What faas-supervisor 2.0.1 does in an OSCAR job pod, as pure functions (the built-in runner's rules).

An OSCAR job pod runs ``/bin/sh -c "echo $EVENT | /oscar/bin/supervisor"`` (``job.go``
MakeJobHandler). The supervisor (grycap/faas-supervisor, ``supervisor.py`` main) reads the event from
stdin, classifies it (``events/__init__.py`` parse_event), saves or downloads the input
(``events/unknown.py`` save_event, ``storage/config.py`` download_input), runs ``/bin/sh script.sh``
logging each output line at DEBUG only (``faas/binary/supervisor.py`` execute_function), uploads every
file under ``$TMP_OUTPUT_DIR`` whose path *relative to it* passes each output's prefix and suffix lists
(``storage/config.py`` upload_output, ``storage/providers/__init__.py`` get_file_key), then prints a
response: for an event of unknown type, the base64 of the single output file or of a zip of all of
them, built in memory (``create_response``); else the script's output. The script's exit code is
never read.

Nothing here runs a process: the runner (``_runner.py``) does, with these rules.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

__all__ = [
    "RESPONSE_BASELINE",
    "Event",
    "EventError",
    "echo_event",
    "file_key",
    "parse_event",
    "passes_filters",
    "response_memory",
    "save_unknown",
]

#: Resident memory of the supervisor itself (a PyInstaller Python with boto3 loaded), before the response.
RESPONSE_BASELINE = 64 << 20
_STORAGE_SOURCES = {"aws:s3": "S3", "minio:s3": "MINIO"}
_GLOB = set("*?[")
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


class EventError(Exception):
    """The supervisor crashes on this event (a Python traceback, exit code 1): the job fails."""


@dataclass(frozen=True)
class Event:
    """A classified event: ``UNKNOWN`` (saved as the input file) or a storage event (downloaded)."""

    kind: str  # UNKNOWN, MINIO, S3
    raw: Any = None  # UNKNOWN: the text or the dict to save
    bucket: str = ""
    key: str = ""
    record: dict[str, Any] = field(default_factory=dict)
    provider_id: str = "default"
    lines: tuple[str, ...] = ()  # log lines written while parsing


def _dash_echo(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "\\" or i + 1 >= len(text):
            out.append(char)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "c":
            return "".join(out)  # \c: no further output, not even the newline
        if nxt == "0":
            digits = ""
            j = i + 2
            while j < len(text) and len(digits) < 3 and text[j] in "01234567":
                digits += text[j]
                j += 1
            out.append(chr(int(digits or "0", 8)))
            i = j
            continue
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out) + "\n"


def echo_event(event: str, cwd: Path) -> str:
    """What ``echo $EVENT`` prints under Debian's /bin/sh (dash): the unquoted value is split on blanks
    (runs of spaces, tabs and newlines become one space), each word with ``*``, ``?`` or ``[`` is
    replaced by the file names it matches in ``cwd`` (sorted; kept as is when nothing matches), and
    echo interprets backslash escapes. Base64 bodies pass unchanged; JSON bodies may not."""
    words = event.split()
    expanded: list[str] = []
    for word in words:
        if _GLOB & set(word):
            try:
                names = sorted(n for n in os.listdir(cwd) if not n.startswith(".") and fnmatch.fnmatchcase(n, word))
            except OSError:
                names = []
            expanded.extend(names or [word])
        else:
            expanded.append(word)
    return _dash_echo(" ".join(expanded))


def _storage(event: dict[str, Any], provider_id: str, lines: list[str]) -> Event | None:
    records = event.get("Records")
    if not (records and isinstance(records, list) and isinstance(records[0], dict)):
        return None
    kind = _STORAGE_SOURCES.get(str(records[0].get("eventSource")))
    if kind is None:
        return None
    record = records[0]
    lines.append("Storage event found.")
    lines.append(f"event_records = {record!r} \n")
    lines.append(f"{kind} event created")
    try:
        bucket = str(record["s3"]["bucket"]["name"])
        key = unquote_plus(str(record["s3"]["object"]["key"]))
    except (KeyError, TypeError) as exc:
        raise EventError(f"KeyError: {exc}") from None
    return Event(kind, bucket=bucket, key=key, record=record, provider_id=provider_id, lines=tuple(lines))


def parse_event(stdin: str, provider_id: str = "default", lines: list[str] | None = None) -> Event:
    """``events/__init__.py`` parse_event for what the supervisor reads on stdin.

    Raises:
        EventError: the supervisor would crash (a JSON number, ``null`` or list; ``event_type`` without
            ``payload``), or the event is of a kind the local cluster does not reproduce.
    """
    lines = [] if lines is None else lines
    try:
        event: Any = json.loads(stdin)
    except ValueError:
        return Event("UNKNOWN", raw=stdin, lines=tuple(lines))
    if isinstance(event, str):
        return Event("UNKNOWN", raw=event, lines=tuple(lines))
    if not isinstance(event, dict):
        raise EventError(f"TypeError: argument of type '{type(event).__name__}' is not iterable")
    if "httpMethod" in event or ("event" in event and "subscription" in event):
        raise EventError("API Gateway and dCache events are not reproduced by the local cluster")
    if "event_type" in event:
        if not isinstance(event.get("payload"), dict):
            raise EventError("KeyError: 'payload'")
        if "scope" in event["payload"]:
            raise EventError("Rucio events are not reproduced by the local cluster")
    if "event" in event:
        lines.append("Delegated event found.")
        inner = event["event"]
        text = inner if isinstance(inner, str) else json.dumps(inner)
        return parse_event(text, str(event.get("storage_provider") or provider_id), lines)
    found = _storage(event, provider_id, lines)
    if found is not None:
        return found
    records = event.get("Records")
    if records and isinstance(records, list):
        lines.append(f"event_records = {records[0]!r} \n")
    return Event("UNKNOWN", raw=event, lines=tuple(lines))


def save_unknown(event: Event) -> bytes:
    """``UnknownEvent.save_event``: a JSON object is written back as ``json.dumps`` gives it; any other text
    is base64-decoded the lenient way (characters outside the alphabet are dropped).

    Raises:
        EventError: the text is not base64 (``binascii.Error: Incorrect padding``, the job fails).
    """
    if isinstance(event.raw, dict):
        return json.dumps(event.raw).encode()
    try:
        return base64.b64decode(str(event.raw))
    except binascii.Error as exc:
        raise EventError(f"binascii.Error: {exc}") from None
    except ValueError as exc:  # non-ASCII characters
        raise EventError(f"ValueError: {exc}") from None


def passes_filters(relative: str, prefixes: Sequence[str] | None, suffixes: Sequence[str] | None) -> bool:
    """``upload_output``: the path relative to ``$TMP_OUTPUT_DIR`` starts with one prefix and ends with one
    suffix (an absent or empty list passes everything)."""
    if prefixes and not any(relative.startswith(p) for p in prefixes):
        return False
    return not suffixes or any(relative.endswith(s) for s in suffixes)


def file_key(output_path: str, relative: str) -> tuple[str, str]:
    """``get_file_key``: (bucket, key) for a file; the output path's first segment is the bucket and the
    rest, when there is one, is prefixed verbatim (``bucket/`` gives ``/file``, ``b/k/`` gives ``k//file``)."""
    bucket, sep, rest = output_path.partition("/")
    return bucket, f"{rest}/{relative}" if sep else relative


def response_memory(files: Sequence[int], limit: int) -> int:
    """Bytes the supervisor holds while building an unknown event's response from output files of these
    sizes under a memory ``limit``: itself (at most half the limit: a smaller limit is assumed to fit it),
    and the file (or zip) read whole, its base64 bytes and their decoded string (11/3 of the data)."""
    if not files:
        return 0
    return min(RESPONSE_BASELINE, limit // 2) + (11 * sum(files) + 2) // 3
