"""The ``oscar-plugins`` CLI as a user runs it: real processes against the embedded local cluster."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

FDL = """\
functions:
  oscar:
  - local:
      name: cli-upper
      image: alpine
      script: upper.sh
      input: [{storage_provider: minio.default, path: cli-upper/in}]
      output: [{storage_provider: minio.default, path: cli-upper/out}]
"""


@pytest.fixture()
def env(local_cluster, tmp_path):
    """An oscar-cli profile file pointing at the session's local cluster, as a user would have it."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"oscar": {"local-test": {
        "endpoint": local_cluster.endpoint, "auth_user": local_cluster.username,
        "auth_password": local_cluster.password, "ssl_verify": False}}, "default": "local-test"}))
    return {**os.environ, "OSCAR_CONFIG": str(cfg)}


def cli(env, *args, stdin=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "oscar_plugins.cli", *args], env=env, capture_output=True,
                          text=True, input=stdin, timeout=300, cwd=cwd)


def test_help_is_fast_and_complete():
    t0 = time.perf_counter()
    out = cli(dict(os.environ), "--help")
    assert out.returncode == 0
    for word in ("cluster", "service", "run", "job", "logs", "local", "OSCAR_ENDPOINT"):
        assert word in out.stdout
    assert time.perf_counter() - t0 < 30  # sanity only; the start-up figure is in the benchmarks


def test_apply_run_job_logs(env, tmp_path, local_cluster):
    script = 'tr a-z A-Z < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/$(basename "$INPUT_FILE_PATH")"\n'
    (tmp_path / "upper.sh").write_text(script)
    (tmp_path / "fdl.yaml").write_text(FDL)
    out = cli(env, "--cluster", "local-test", "service", "apply", str(tmp_path / "fdl.yaml"))
    assert out.returncode == 0, out.stderr
    assert "cli-upper ready" in out.stdout
    assert "cli-upper" in cli(env, "service", "list").stdout
    got = cli(env, "service", "get", "cli-upper").stdout
    assert '"token"' not in got and local_cluster.password not in got

    src = tmp_path / "words.txt"
    src.write_text("hello oscar")
    out = cli(env, "run", "cli-upper", str(src))
    assert out.returncode == 0 and out.stdout == "HELLO OSCAR"

    files = []
    for i in range(3):
        f = tmp_path / f"f{i}.txt"
        f.write_text(f"file {i}")
        files.append(str(f))
    out = cli(env, "job", "cli-upper", *files, "--wait", "-o", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    assert "jobs" in out.stderr  # the progress bar
    results = sorted(p.read_text() for p in (tmp_path / "out").rglob("f*.txt"))
    assert results == ["FILE 0", "FILE 1", "FILE 2"]

    listing = cli(env, "logs", "cli-upper").stdout
    job = listing.split()[0]
    assert "Succeeded" in listing
    assert "script exited with code 0" in cli(env, "logs", "cli-upper", job).stdout


def test_logs_show_the_scripts_own_output(env, tmp_path):
    # faas-supervisor logs a script's output only at DEBUG; the wrapper keeps it for `logs SERVICE JOB`
    (tmp_path / "talk.sh").write_text('echo "talking to the log"; echo "then failing" >&2; exit 2\n')
    (tmp_path / "fdl.yaml").write_text(FDL.replace("cli-upper", "cli-talk").replace("upper.sh", "talk.sh"))
    assert cli(env, "--cluster", "local-test", "service", "apply", str(tmp_path / "fdl.yaml")).returncode == 0
    (tmp_path / "x.txt").write_text("x")
    failed = cli(env, "job", "cli-talk", str(tmp_path / "x.txt"), "--wait", "-o", str(tmp_path / "out"))
    assert failed.returncode == 1 and "talking to the log" in failed.stderr  # the failure report shows it too
    job = cli(env, "logs", "cli-talk").stdout.split()[0]
    shown = cli(env, "logs", "cli-talk", job).stdout
    assert "--- the script's own output" in shown and "talking to the log\nthen failing" in shown


@pytest.mark.parametrize("args,words", [
    (("service", "get", "nope-svc"), "does not exist"),
    (("run", "nope-svc", "/etc/hostname"), "does not exist"),
    (("job", "cli-upper", "/no/such/file", "--wait"), "does not exist"),
    (("--cluster", "unknown-profile", "service", "list"), "no cluster profile named"),
    (("service", "apply", "/no/such/fdl.yaml"), "does not exist"),
])
def test_user_errors_are_one_line_without_traceback(env, args, words):
    out = cli(env, *args)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and words in out.stderr
    assert out.stderr.strip().startswith("oscar-plugins: error:")


def test_cluster_add_reads_password_from_stdin(tmp_path):
    env = {**os.environ, "OSCAR_CONFIG": str(tmp_path / "c.yaml")}
    out = cli(env, "cluster", "add", "prod", "--endpoint", "https://oscar.example.org", "--user", "oscar",
              "--password-stdin", stdin="SENTINEL-PASS\n")
    assert out.returncode == 0 and "SENTINEL" not in out.stdout + out.stderr
    listing = cli(env, "cluster", "list")
    assert "prod" in listing.stdout and "SENTINEL" not in listing.stdout
    assert yaml.safe_load(Path(tmp_path / "c.yaml").read_text())["oscar"]["prod"]["auth_password"] == "SENTINEL-PASS"
