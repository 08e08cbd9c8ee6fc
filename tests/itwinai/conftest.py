"""Fixtures of the itwinai tests: the session's local cluster as environment variables, and a runner of
``itwinai exec-pipeline`` in a subprocess (the way users run YAML pipelines)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ITWINAI = Path(sys.executable).with_name("itwinai")


@pytest.fixture(scope="session")
def oscar_env(local_cluster: object) -> dict[str, str]:
    """``OSCAR_*`` variables pointing at the session's local cluster (precedence: environment)."""
    lc = local_cluster
    return {"OSCAR_ENDPOINT": lc.endpoint, "OSCAR_USER": lc.username,  # type: ignore[attr-defined]
            "OSCAR_PASSWORD": lc.password, "OSCAR_SSL_VERIFY": "false"}  # type: ignore[attr-defined]


@pytest.fixture()
def on_cluster(oscar_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """In-process steps reach the local cluster; the working directory is a fresh temporary one."""
    for key, value in oscar_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(HERE))
    yield tmp_path


@dataclass
class Completed:
    returncode: int
    stdout: str
    stderr: str


def exec_pipeline(config_dir: Path, pipe_key: str, env: dict[str, str], *overrides: str,
                  timeout: float = 240) -> Completed:
    """``itwinai exec-pipeline --config-path DIR --config-name config +pipe_key=KEY`` in ``config_dir``."""
    full_env = {**os.environ, **env, "PYTHONPATH": str(HERE), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [str(ITWINAI), "exec-pipeline", "--config-path", str(config_dir), "--config-name", "config",
         f"+pipe_key={pipe_key}", *overrides],
        cwd=config_dir, env=full_env, capture_output=True, text=True, timeout=timeout, check=False)
    return Completed(proc.returncode, proc.stdout, proc.stderr)
