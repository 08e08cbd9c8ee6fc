"""The wrapper convention that makes OSCAR jobs dependable, and the job manifest format.

OSCAR ignores a script's exit code and uploads every job's outputs into one shared folder. The
library therefore installs ``wrapper.sh`` around the scripts of services it deploys. The wrapper:

* runs the user's script unchanged with ``/bin/sh``;
* for async jobs, points ``$TMP_OUTPUT_DIR`` at ``<output>/<job name>/`` so concurrent jobs never
  collide, and writes ``.oscar-plugins-status`` there: ``exit=<code>`` and one
  ``file <size> <sha256> <path>`` line per output, used to verify downloads, each small output
  (<= 16 KiB, 48 KiB a job) followed by ``inline <base64 content>`` so it needs no download;
* for sync runs, prints ``oscar-plugins: script exited with code N`` and, on failure, removes the
  outputs so the response body is the log;
* reads a *manifest* input (below) to fetch several or large staged inputs and set variables.

Manifest (UTF-8 text, the job's input file)::

    #oscar-plugins-manifest v1
    url  <name> <presigned GET url>
    data <name> <base64 content, one line>
    empty <name>
    env  <NAME> <base64 value>

Everything here is pure: building text, parsing text.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from importlib import resources

__all__ = [
    "EXIT_RE",
    "MANIFEST_HEADER",
    "STATUS_FILE",
    "WRAPPER_MARKER",
    "JobStatusFile",
    "Manifest",
    "is_wrapped",
    "parse_status",
    "unwrap_script",
    "wrap_script",
]

WRAPPER_MARKER = "# oscar-plugins wrapper v1"
MANIFEST_HEADER = "#oscar-plugins-manifest v1"
STATUS_FILE = ".oscar-plugins-status"
EXIT_RE = re.compile(r"^oscar-plugins: script exited with code (\d+)\s*$", re.MULTILINE)
_END = "__OSCAR_PLUGINS_USER_SCRIPT_END__"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._+@=-][A-Za-z0-9._+@=-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _template() -> str:
    return resources.files("oscar_plugins").joinpath("wrapper.sh").read_text(encoding="utf-8")


def is_wrapped(script: str) -> bool:
    """True when ``script`` already carries the oscar-plugins wrapper."""
    return script.startswith("#!/bin/sh\n" + WRAPPER_MARKER)


def wrap_script(script: str) -> str:
    """Embed ``script`` in the wrapper (idempotent: a wrapped script is returned unchanged).

    Raises:
        ValueError: the script contains the wrapper's heredoc terminator line.
    """
    if is_wrapped(script):
        return script
    if any(line.strip() == _END for line in script.splitlines()):
        raise ValueError(f"the script contains the line {_END!r}, which the wrapper reserves")
    return _template().replace("@@USER_SCRIPT@@", script.rstrip("\n"), 1)


def unwrap_script(script: str) -> str:
    """The user's script inside a wrapped script (or the script itself when not wrapped)."""
    if not is_wrapped(script):
        return script
    marker = "<<'" + _END + "'\n"
    start = script.index(marker) + len(marker)
    end = script.index("\n" + _END + "\n", start)
    return script[start:end] + "\n"


def check_input_name(name: str) -> str:
    """Validate a staged input's file name (one path segment, no spaces or '..')."""
    if not _SAFE_NAME.match(name) or name in {".", ".."}:
        raise ValueError(
            f"input name {name!r} must be one file name of letters, digits and ._+@=- (no spaces or '/')"
        )
    return name


@dataclass
class Manifest:
    """Builder for a job manifest (see the module docstring)."""

    lines: list[str] = field(default_factory=list)

    def add_url(self, name: str, url: str) -> None:
        self.lines.append(f"url {check_input_name(name)} {url}")

    def add_data(self, name: str, data: bytes) -> None:
        check_input_name(name)
        if data:
            self.lines.append(f"data {name} {base64.b64encode(data).decode()}")
        else:
            self.lines.append(f"empty {name}")

    def add_env(self, key: str, value: str) -> None:
        if not _ENV_NAME.match(key):
            raise ValueError(f"environment variable name {key!r} must match [A-Za-z_][A-Za-z0-9_]*")
        self.lines.append(f"env {key} {base64.b64encode(value.encode()).decode()}")

    def render(self) -> bytes:
        return ("\n".join([MANIFEST_HEADER, *self.lines]) + "\n").encode()


@dataclass(frozen=True)
class OutputRecord:
    size: int
    sha256: str | None
    path: str
    #: The content, when the wrapper put it in the status file (small outputs); still to be verified.
    inline: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class JobStatusFile:
    """The parsed ``.oscar-plugins-status`` of a job."""

    exit_code: int | None
    outputs: list[OutputRecord]


def parse_status(text: str) -> JobStatusFile:
    """Parse a status file; tolerant of unknown lines (newer wrappers)."""
    exit_code: int | None = None
    outputs: list[OutputRecord] = []
    for line in text.splitlines():
        if line.startswith("exit="):
            try:
                exit_code = int(line[5:].strip())
            except ValueError:
                exit_code = None
        elif line.startswith("file "):
            parts = line.split(" ", 3)
            if len(parts) == 4 and parts[1].isdigit():
                outputs.append(OutputRecord(int(parts[1]), None if parts[2] == "-" else parts[2], parts[3]))
        elif line.startswith("inline ") and outputs and outputs[-1].inline is None:
            try:
                data = base64.b64decode(line[7:].strip(), validate=True)
            except ValueError:
                continue  # damaged: the output is downloaded instead
            last = outputs[-1]
            outputs[-1] = OutputRecord(last.size, last.sha256, last.path, data)
    return JobStatusFile(exit_code, outputs)
