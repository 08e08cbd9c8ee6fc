"""The local cluster as a detached daemon: up, status, down, ensure_local_cluster and the CLI."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from oscar_plugins.local import down, ensure_local_cluster, status, up
from oscar_plugins.local.cli import add_local_commands


def test_daemon_lifecycle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "daemon"
    try:
        with ThreadPoolExecutor(2) as pool:  # two racers start ONE daemon
            first, second = pool.map(lambda _: up(data), range(2))
        assert first.pid == second.pid and first.endpoint == second.endpoint
        response = httpx.get(f"{first.endpoint}/system/info", auth=(first.username, first.password), trust_env=False)
        assert response.status_code == 200
        meta = json.loads((data / "server.json").read_text())
        assert set(meta) == {"pid", "endpoint", "s3_endpoint", "started_at", "oscar_version", "execution", "engine",
                             "ca"} and meta["pid"] == first.pid
        assert meta["oscar_version"] == "4.1.2" and meta["execution"] == "builtin" and meta["ca"] is None
        assert first.password not in (data / "server.json").read_text()
        current = status(data)
        assert current is not None and current.pid == first.pid

        info = ensure_local_cluster(data)
        again = ensure_local_cluster(data)
        assert info.pid == again.pid == first.pid
        err = capsys.readouterr().err
        assert err.count("using the embedded local cluster at " + first.endpoint) == 1

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "oscar_plugins.cli", "local", *args, "--data-dir", str(data)],
                                  capture_output=True, text=True, timeout=60)

        secrets = (first.password, first.s3_secret_key)
        for command in ("status", "up"):  # secrets only when asked, and the output says how to ask
            shown = cli(command)
            assert shown.returncode == 0 and first.endpoint in shown.stdout
            assert not any(s in shown.stdout + shown.stderr for s in secrets), command
            assert "local status --show-credentials" in shown.stdout
            shown = cli(command, "--show-credentials")
            assert shown.returncode == 0 and f"password:    {first.password}" in shown.stdout
            assert first.s3_secret_key in shown.stdout
    finally:
        assert down(data)
    assert status(data) is None and not (data / "server.json").exists()
    assert down(data) is False
    assert "local cluster ready" in (data / "server.log").read_text()


def test_add_local_commands_parses() -> None:
    parser = argparse.ArgumentParser(prog="oscar-plugins")
    add_local_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["local", "up", "--data-dir", "/tmp/x", "--port", "8123", "--cpus", "1.5",
                              "--memory", "2Gi"])
    assert (args.port, args.cpus, args.memory, args.data_dir) == (8123, 1.5, 2 << 30, "/tmp/x")
    assert callable(args.func)
    with pytest.raises(SystemExit):
        parser.parse_args(["local", "up", "--memory", "lots"])
