"""Pure pieces of running a service script the way faas-supervisor does.

Building the environment, the command (on the host or in a container engine), the work directory
layout and the output-file filter are plain functions, unit-tested without running anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = [
    "ENGINES",
    "WorkDirs",
    "build_env",
    "container_command",
    "default_job_name",
    "detect_engine",
    "host_command",
    "input_file_name",
    "output_files",
]

ENGINES = ("host", "docker", "podman", "apptainer", "singularity")
_BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_RESERVED = (
    "INPUT_FILE_PATH",
    "TMP_INPUT_DIR",
    "TMP_OUTPUT_DIR",
    "JOB_UUID",
    "STORAGE_OBJECT_KEY",
    "OSCAR_SERVICE_NAME",
)


@dataclass(frozen=True)
class WorkDirs:
    """The directories of one execution: ``<root>/input``, ``<root>/output``, ``<root>/tmp``."""

    root: Path

    @property
    def input(self) -> Path:
        """``$TMP_INPUT_DIR``."""
        return self.root / "input"

    @property
    def output(self) -> Path:
        """``$TMP_OUTPUT_DIR``."""
        return self.root / "output"

    @property
    def tmp(self) -> Path:
        """``$TMPDIR`` of the script."""
        return self.root / "tmp"

    @property
    def script(self) -> Path:
        """The service's script."""
        return self.root / "script.sh"

    @property
    def log(self) -> Path:
        """Supervisor log of synchronous runs."""
        return self.root / "run.log"

    @property
    def captured(self) -> Path:
        """The script's output, kept whatever the log level (the supervisor's ``self.output``)."""
        return self.root / "script-output"

    def create(self, script: str) -> None:
        """Create the directories (mode 0700) and write the script."""
        for path in (self.root, self.input, self.output, self.tmp):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.script.write_text(script, encoding="utf-8")

    def remove(self) -> None:
        """Delete everything."""
        shutil.rmtree(self.root, ignore_errors=True)


def default_job_name(service: str) -> str:
    """``<service name, cut to 16 characters when it has 25 or more>-<uuid4>``, as OSCAR names jobs."""
    prefix = service[:16] if len(service) >= 25 else service
    return f"{prefix}-{uuid.uuid4()}"


def input_file_name(object_key: str) -> str:
    """A safe file name for a downloaded object: its basename, or ``input`` when that is unusable."""
    name = PurePosixPath(object_key).name
    if name in ("", ".", "..") or "\x00" in name:
        return "input"
    while len(name.encode()) > 200:
        name = name[1:]
    return name


def build_env(
    service: Mapping[str, Any],
    work: WorkDirs,
    *,
    input_file: Path | None,
    job_name: str | None,
    object_key: str | None,
    python_dir: str | None = None,
) -> dict[str, str]:
    """The script's environment: a small base, the service's variables and secrets, then OSCAR's.

    The server's own environment is NOT passed on (it may hold secrets). ``python_dir`` (default: the
    directory of ``sys.executable``) goes first in PATH so ``python3`` resolves to the server's Python.
    """
    python_dir = python_dir if python_dir is not None else os.path.dirname(sys.executable)
    env = {
        "PATH": f"{python_dir}:{_BASE_PATH}" if python_dir else _BASE_PATH,
        "HOME": str(work.root),
        "LANG": "C.UTF-8",
        "TMPDIR": str(work.tmp),
    }
    environment = service.get("environment") or {}
    for section in ("variables", "secrets"):
        values = environment.get(section) or {}
        env.update({str(k): str(v) for k, v in values.items() if str(k) not in _RESERVED})
    env.update(
        {
            "TMP_INPUT_DIR": str(work.input),
            "TMP_OUTPUT_DIR": str(work.output),
            "OSCAR_SERVICE_NAME": str(service.get("name", "")),
        }
    )
    if input_file is not None:
        env["INPUT_FILE_PATH"] = str(input_file)
    if job_name is not None:
        env["JOB_UUID"] = job_name
    if object_key is not None:
        env["STORAGE_OBJECT_KEY"] = object_key
    return env


def host_command(script: Path, memory_limit: int | None) -> list[str]:
    """``/bin/sh <script>`` with, when given, an address-space limit (``ulimit -v``, in KiB)."""
    if not memory_limit:
        return ["/bin/sh", str(script)]
    kib = max(memory_limit // 1024, 1)
    return ["/bin/sh", "-c", f'ulimit -v {kib} 2>/dev/null; exec /bin/sh "$0"', str(script)]


def container_command(
    engine: str,
    image: str,
    work_root: Path,
    script: Path,
    env_names: Sequence[str],
    *,
    cpus: float,
    memory: int,
    name: str,
    gpu: bool = False,
) -> list[str]:
    """The command running ``/bin/sh <script>`` in ``image`` with the work directory bind-mounted, the
    service's ``cpu`` and ``memory`` as the engine's limits (OSCAR sets them as the container's limits,
    ``types.CreateResources``), the host's network (a pod reaches the cluster's services and the internet),
    and, with ``gpu`` (``enable_gpu``: OSCAR asks for one ``nvidia.com/gpu``), one NVIDIA GPU (CDI
    ``nvidia.com/gpu=0`` for podman, ``--gpus 1`` for docker; apptainer's ``--nv`` shows them all). The
    container is kept until the runner has read how it ended (out of memory or not) and removed it.

    Variable VALUES are not on the command line (``ps`` would show secrets): docker and podman read
    ``-e NAME`` from their own environment, apptainer reads ``APPTAINERENV_NAME``/``SINGULARITYENV_NAME``
    (see :func:`container_env`).

    Raises:
        ValueError: unknown engine.
    """
    mount = f"{work_root}:{work_root}"
    if engine in ("docker", "podman"):
        cmd = [engine, "run", "--name", name, "--network", "host"]
        cmd += ["--cpus", f"{cpus:g}", "--memory", str(memory), "-v", mount, "-w", str(work_root)]
        if gpu:
            # one GPU, as OSCAR's limit nvidia.com/gpu: 1 (types.CreateResources); CDI's first for podman
            cmd += ["--device", "nvidia.com/gpu=0"] if engine == "podman" else ["--gpus", "1"]
        for var in env_names:
            cmd += ["-e", var]
        return [*cmd, "--entrypoint", "/bin/sh", image, str(script)]
    if engine in ("apptainer", "singularity"):
        ref = image if "://" in image else f"docker://{image}"
        return [engine, "exec", "--cleanenv", "--no-home", *(["--nv"] if gpu else []), "--bind", mount,
                "--pwd", str(work_root), ref, "/bin/sh", str(script)]
    raise ValueError(f"unknown container engine {engine!r}: use one of {', '.join(ENGINES)}")


def container_env(engine: str, env: Mapping[str, str], base: Mapping[str, str]) -> dict[str, str]:
    """The environment of the engine's client process that carries ``env`` into the container."""
    if engine in ("apptainer", "singularity"):
        prefix = "APPTAINERENV_" if engine == "apptainer" else "SINGULARITYENV_"
        return {**base, **{prefix + k: v for k, v in env.items() if k != "PATH"}}
    return {**base, **env}


def detect_engine(preferred: str | None = None) -> str:
    """The engine that runs jobs: ``preferred`` (``host``, ``docker``, ``podman``, ``apptainer``,
    ``singularity``), ``auto`` for the first of docker, podman, apptainer, singularity that answers (else
    host), or, with nothing given, ``host``.

    Host is the default on purpose: an engine pulls each service's image when its first job runs (several
    GB for scientific images, impossible offline), so running in images is a choice (``--engine``), never
    a surprise of what happens to be installed.

    Raises:
        ValueError: an unknown engine name.
    """
    if preferred in (None, ""):
        return "host"
    if preferred != "auto":
        if preferred not in ENGINES:
            raise ValueError(f"unknown engine {preferred!r}: use one of {', '.join(ENGINES)} or auto")
        return preferred
    for engine in ("docker", "podman"):
        if shutil.which(engine):
            try:
                done = subprocess.run([engine, "info"], capture_output=True, timeout=10, check=False)
            except (OSError, subprocess.TimeoutExpired):
                continue
            if done.returncode == 0:
                return engine
    for engine in ("apptainer", "singularity"):
        if shutil.which(engine):
            return engine
    return "host"


def output_files(output_dir: Path) -> Iterator[tuple[Path, str]]:
    """Regular files under ``output_dir`` (recursively, sorted) with their relative POSIX paths.

    Symbolic links are skipped: they could point at files outside the work directory.
    """
    for dirpath, dirnames, filenames in os.walk(output_dir, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file():
                continue
            yield path, path.relative_to(output_dir).as_posix()
