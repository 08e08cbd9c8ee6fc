"""The wrapper convention that makes OSCAR jobs dependable, and the job manifest format.

OSCAR ignores a script's exit code and uploads every job's outputs into one shared folder. The
library therefore installs ``wrapper.sh`` around the scripts of services it deploys. The wrapper:

* runs the user's script unchanged with ``/bin/sh``, its output going both to the job's log and to a
  file: faas-supervisor logs a script's output only at ``log_level: DEBUG`` and ends a job's log with the
  base64 of its outputs, so the job's log cannot tell why a script failed;
* for async jobs, points ``$TMP_OUTPUT_DIR`` at ``<output>/<job name>/`` so concurrent jobs never
  collide, keeps there only the files that pass the service's output prefix/suffix lists (matched against
  their path inside that folder), and writes ``.oscar-plugins-log`` (the script's output) and
  ``.oscar-plugins-status``: ``exit=<code>``, ``log <base64 of the output's last 16 KiB>``, and one
  ``file <size> <sha256> <path>`` line per output, used to verify downloads, each small output
  (<= 16 KiB, 48 KiB a job) followed by ``inline <base64 content>`` so it needs no download;
* uploads those files itself, status last, when the job's manifest carries an ``upload`` policy and the
  image has curl or python3; then ``$TMP_OUTPUT_DIR`` is left empty, so outputs of any size never pass
  through the supervisor's response, which it builds in memory (base64 of every output file) and which
  gets a pod OOM-killed after a successful upload once outputs near a quarter of its memory limit.
  Otherwise (no policy, no tool, a failed upload) the supervisor uploads them as usual;
* for sync runs, prints ``oscar-plugins: script exited with code N`` and, on failure, removes the
  outputs so the response body is the log;
* reads a *manifest* input (below) to fetch several or large staged inputs and set variables;
* from wrapper v3, runs a *batch*: a manifest ``v2 N`` lists N members, each run once, one after the
  other, each in a subshell of its own (its inputs, variables, payload, ``$TMP_OUTPUT_DIR`` at
  ``<job>/member-<i>/``, its exit code and log), as if each were a job of its own. The one status file
  of the job starts with ``exit=0`` (the batch ran) and has a section per member: a ``member <i>`` line
  then that member's ``exit=``, ``log``, ``file`` and ``inline`` lines (paths inside its folder; the
  48 KiB inline are the job's, shared by its members). A v2 wrapper does not read a ``v2`` manifest
  (the script would get it as a plain input): :func:`wrapper_version` tells the client which it has.

Manifest (UTF-8 text, the job's input file)::

    #oscar-plugins-manifest v1
    url  <name> <presigned GET url>
    data <name> <base64 content, one line>
    empty <name>
    payload <base64 content>       (a job's only input: it becomes $INPUT_FILE_PATH, no $OSCAR_INPUTS_DIR)
    payload-url <presigned GET url>
    env  <NAME> <base64 value>
    upload <POST url> <key prefix> <base64 of the policy's form fields, one "name=value" a line>
    insecure                       (the object store's certificate is not to be verified)

A batch's manifest (``#oscar-plugins-manifest v2 <N>``) has the shared lines first (``upload``,
``insecure``), then each member's: ``member <i>`` (0 to N-1, in order) followed by that member's
``url``/``data``/``empty``/``payload``/``payload-url``/``env`` lines, read as a one-job manifest's.

Everything here is pure: building text, parsing text.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources

from ._fdl import StorageIO

__all__ = [
    "BATCH_MANIFEST_HEADER",
    "BATCH_WRAPPER_VERSION",
    "CLUSTER_FAILED",
    "EXIT_RE",
    "LOG_FILE",
    "MANIFEST_HEADER",
    "PREPARE_FAILED",
    "PREPARE_FAILED_LINE",
    "RESERVED_FILES",
    "STATUS_FILE",
    "WRAPPER_MARKER",
    "BatchManifest",
    "JobStatusFile",
    "Manifest",
    "explain_job_log",
    "is_wrapped",
    "member_folder",
    "parse_status",
    "unwrap_script",
    "wrap_script",
    "wrapped_outputs",
    "wrapper_version",
]

WRAPPER_MARKER = "# oscar-plugins wrapper v3"
_MARKER = re.compile(r"\A#!/bin/sh\n# oscar-plugins wrapper v(\d+)\n")
#: The first wrapper version that runs batches (a ``v2`` manifest with members).
BATCH_WRAPPER_VERSION = 3
MANIFEST_HEADER = "#oscar-plugins-manifest v1"
BATCH_MANIFEST_HEADER = "#oscar-plugins-manifest v2"
_MEMBER_FOLDER = "member-{}"
STATUS_FILE = ".oscar-plugins-status"
LOG_FILE = ".oscar-plugins-log"
#: Files the wrapper writes next to a job's outputs.
RESERVED_FILES = (STATUS_FILE, LOG_FILE)
#: The wrapper's exit code when a job's inputs could not be prepared (the script did not run), and the
#: line it then ends the job's log with.
PREPARE_FAILED = 86
PREPARE_FAILED_LINE = "oscar-plugins: the job's inputs could not be prepared, so the script did not run"
EXIT_RE = re.compile(r"^oscar-plugins: script exited with code (\d+)\s*$", re.MULTILINE)
_END = "__OSCAR_PLUGINS_USER_SCRIPT_END__"
_FILTER_ENDS = ("__OSCAR_PLUGINS_PREFIX_END__", "__OSCAR_PLUGINS_SUFFIX_END__")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._+@=-][A-Za-z0-9._+@=-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _template() -> str:
    return resources.files("oscar_plugins").joinpath("wrapper.sh").read_text(encoding="utf-8")


def wrapper_version(script: str) -> int | None:
    """The version of the oscar-plugins wrapper around ``script`` (1, 2, 3...), or None when not wrapped."""
    found = _MARKER.match(script)
    return int(found.group(1)) if found else None


def is_wrapped(script: str) -> bool:
    """True when ``script`` already carries an oscar-plugins wrapper (of any version)."""
    return wrapper_version(script) is not None


def member_folder(member: int) -> str:
    """The folder of batch member ``member`` inside its job's folder (its ``$TMP_OUTPUT_DIR``)."""
    return _MEMBER_FOLDER.format(member)


def wrap_script(script: str, prefixes: Sequence[str] = (), suffixes: Sequence[str] = ()) -> str:
    """Embed ``script`` in the wrapper (idempotent: a wrapped script is returned unchanged).

    Args:
        prefixes, suffixes: the service's output filters, which the wrapper applies to each job's files.

    Raises:
        ValueError: the script contains the wrapper's heredoc terminator line, or a filter is multi-line.
    """
    if is_wrapped(script):
        return script
    if any(line.strip() == _END for line in script.splitlines()):
        raise ValueError(f"the script contains the line {_END!r}, which the wrapper reserves")
    for value in (*prefixes, *suffixes):
        if "\n" in value or value.strip() in _FILTER_ENDS:
            raise ValueError(f"output filter {value!r} must be one line")
    return (_template().replace("@@USER_SCRIPT@@", script.rstrip("\n"), 1)
            .replace("@@PREFIXES@@", "\n".join(prefixes), 1).replace("@@SUFFIXES@@", "\n".join(suffixes), 1))


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

    def add_payload(self, data: bytes) -> None:
        """The job's only input, inline: the script sees it as ``$INPUT_FILE_PATH`` (a plain job body's way)."""
        self.lines.append(f"payload {base64.b64encode(data).decode()}")

    def add_payload_url(self, url: str) -> None:
        """The job's only input, staged."""
        self.lines.append(f"payload-url {url}")

    def add_upload(self, url: str, prefix: str, fields: Mapping[str, str]) -> None:
        """Let the wrapper upload the job's outputs under ``prefix`` with a presigned POST policy."""
        lines = "".join(f"{k}={v}\n" for k, v in fields.items())
        if any(c.isspace() for c in url + prefix):
            raise ValueError(f"upload URL {url!r} and prefix {prefix!r} must not contain spaces")
        self.lines.append(f"upload {url} {prefix} {base64.b64encode(lines.encode()).decode()}")

    def add_insecure(self) -> None:
        """The object store's TLS certificate is not to be verified (a profile with ``ssl_verify: false``)."""
        self.lines.append("insecure")

    def add_env(self, key: str, value: str) -> None:
        if not _ENV_NAME.match(key):
            raise ValueError(f"environment variable name {key!r} must match [A-Za-z_][A-Za-z0-9_]*")
        self.lines.append(f"env {key} {base64.b64encode(value.encode()).decode()}")

    def render(self) -> bytes:
        return ("\n".join([MANIFEST_HEADER, *self.lines]) + "\n").encode()


@dataclass
class BatchManifest:
    """Builder for a batch's manifest: ``shared`` lines (the upload policy), then one :class:`Manifest` a
    member (see the module docstring). Only a wrapper of :data:`BATCH_WRAPPER_VERSION` or later reads it."""

    shared: Manifest = field(default_factory=Manifest)
    members: list[Manifest] = field(default_factory=list)

    def render(self) -> bytes:
        if not self.members:
            raise ValueError("a batch needs at least one member")
        lines = [f"{BATCH_MANIFEST_HEADER} {len(self.members)}", *self.shared.lines]
        for i, member in enumerate(self.members):
            lines += [f"member {i}", *(line for line in member.lines if not line.startswith("upload "))]
        return ("\n".join(lines) + "\n").encode()


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
    #: The end of the script's own output (stdout and stderr), when the wrapper recorded it.
    log_tail: str = ""
    #: A batch's members, by their number in the batch: each one's own status (paths inside its folder).
    members: dict[int, JobStatusFile] = field(default_factory=dict)


def parse_status(text: str) -> JobStatusFile:
    """Parse a status file; tolerant of unknown lines (newer wrappers). A batch's ``member <i>`` lines
    start each member's section, parsed as a job's own status."""
    sections: list[tuple[int | None, list[str]]] = [(None, [])]
    for line in text.splitlines():
        head, _, rest = line.partition(" ")
        if head == "member" and rest.strip().isdigit():
            sections.append((int(rest), []))
        else:
            sections[-1][1].append(line)
    top = _parse_section(sections[0][1])
    members = {i: _parse_section(lines) for i, lines in sections[1:] if i is not None}
    return JobStatusFile(top.exit_code, top.outputs, top.log_tail, members)


def _parse_section(lines: list[str]) -> JobStatusFile:
    exit_code: int | None = None
    outputs: list[OutputRecord] = []
    log_tail = ""
    for line in lines:
        if line.startswith("log "):
            try:
                log_tail = base64.b64decode(line[4:].strip(), validate=True).decode("utf-8", "replace")
            except ValueError:
                log_tail = ""
        elif line.startswith("exit="):
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
    return JobStatusFile(exit_code, outputs, log_tail)


def wrapped_outputs(name: str, outputs: Sequence[StorageIO]) -> list[StorageIO]:
    """A wrapped service's ``output`` entries as deployed: prefix/suffix lists that still pass its jobs' files.

    faas-supervisor matches the path relative to ``$TMP_OUTPUT_DIR`` (``<job>/<file>`` for a wrapped job),
    so a prefix would drop every file of a job and a suffix its status file. The wrapper applies the
    service's filters itself inside the job's folder; the deployed lists add the job folders' prefix
    (``<service>-``; OSCAR's own names cut the service to 16 characters from 25) and the wrapper's files.
    """
    deployed = []
    for entry in outputs:
        prefix = [*entry.prefix, f"{name}-", f"{name[:16]}-"] if entry.prefix else []
        suffix = [*entry.suffix, *RESERVED_FILES] if entry.suffix else []
        deployed.append(entry.model_copy(update={"prefix": list(dict.fromkeys(prefix)), "suffix": suffix}))
    return deployed


#: The local cluster's own line saying why a job failed (what a Kubernetes pod status would say).
CLUSTER_FAILED = "oscar-plugins local cluster: the job failed: "
_B64_LINE = re.compile(r"^[A-Za-z0-9+/]{76,}={0,2}$")
_CAUSES = (
    ("OOMKilled", "out of memory (OOMKilled): raise the service's memory, or write smaller outputs"),
    ("argument list too long", "the job's body did not fit the pod's EVENT variable (128 KiB)"),
    ("ImagePullBackOff", "the service's image could not be pulled"),
    ("ErrImagePull", "the service's image could not be pulled"),
)


def explain_job_log(text: str, lines: int = 20) -> tuple[str | None, str]:
    """(the known cause, the last meaningful lines) of a job's log as OSCAR returns it.

    A job's log is faas-supervisor's: its own lines, the script's output only at ``DEBUG``, and, after the
    uploads, the base64 of the job's outputs (its response). Base64 lines are summarised, so a failure
    report shows what happened rather than encoded outputs.
    """
    kept: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if _B64_LINE.match(stripped):
            kept.append(f"[{len(stripped)} characters of base64: the supervisor's response, the job's outputs]")
        elif stripped:
            kept.append(line.rstrip())
    noted = [line.split(CLUSTER_FAILED, 1)[1] for line in kept if CLUSTER_FAILED in line]
    cause = noted[-1] if noted else next((why for marker, why in _CAUSES if marker in text), None)
    if cause is None:
        errors = [line for line in kept if " - ERROR - " in line or line.startswith(("Traceback", "binascii."))]
        cause = errors[-1].split(" - ERROR - ")[-1] if errors else None
    return cause, "\n".join(kept[-lines:])
