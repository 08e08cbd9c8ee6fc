"""Run ``oscar-cwl`` (the installed console script) against the session's local cluster, and cwltool."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"
BIN = Path(sys.executable).parent


@dataclass
class Run:
    code: int
    out: Any
    stderr: str


@pytest.fixture(scope="session")
def cluster_env(local_cluster: Any) -> dict[str, str]:
    """Environment that points oscar-cwl (a subprocess) at the test cluster."""
    env = dict(os.environ)
    env.update({"OSCAR_ENDPOINT": local_cluster.endpoint, "OSCAR_USER": local_cluster.username,
                "OSCAR_PASSWORD": local_cluster.password, "OSCAR_SSL_VERIFY": "false"})
    return env


def _run(cmd: list[str], env: dict[str, str] | None, cwd: Path, timeout: float) -> Run:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    try:
        out = json.loads(proc.stdout) if proc.stdout.strip() else None
    except json.JSONDecodeError:
        out = proc.stdout
    return Run(proc.returncode, out, proc.stderr)


@pytest.fixture()
def oscar_cwl(cluster_env: dict[str, str], tmp_path: Path):
    def run(*args: str, outdir: str = "oscar-out", timeout: float = 300, env: dict[str, str] | None = None) -> Run:
        cmd = [str(BIN / "oscar-cwl"), "--outdir", str(tmp_path / outdir), *args]
        return _run(cmd, {**cluster_env, **(env or {})}, DATA, timeout)

    return run


@pytest.fixture()
def cwltool(tmp_path: Path):
    def run(*args: str, outdir: str = "cwltool-out") -> Run:
        cmd = [str(BIN / "cwltool"), "--no-container", "--outdir", str(tmp_path / outdir), *args]
        return _run(cmd, None, DATA, 300)

    return run


def normalize(value: Any) -> Any:
    """An output object without the run-specific parts (where files landed), for comparison."""
    if isinstance(value, dict):
        drop = {"location", "path", "dirname"}
        out = {k: normalize(v) for k, v in value.items() if k not in drop}
        if "listing" in out:
            out["listing"] = sorted(out["listing"], key=lambda e: e.get("basename", ""))
        return out
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return value
