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


# -- a newcomer's first hour (issue 15) ------------------------------------------------------------------
def test_global_options_work_after_the_subcommand(env, tmp_path):
    (tmp_path / "upper.sh").write_text('tr a-z A-Z < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/out.txt"\n')
    (tmp_path / "fdl.yaml").write_text(FDL.replace("cli-upper", "cli-after"))
    out = cli(env, "service", "apply", str(tmp_path / "fdl.yaml"), "-c", "local-test", "-q")
    assert out.returncode == 0, out.stderr
    assert "cli-after ready on local-test" in out.stdout
    wrong = cli(env, "service", "list", "-c", "unknown-profile")  # -c after the command is honoured
    assert wrong.returncode == 1 and "no cluster profile named 'unknown-profile'" in wrong.stderr
    (tmp_path / "a.txt").write_text("quiet")
    out = cli(env, "-q", "job", "cli-after", str(tmp_path / "a.txt"), "--wait", "-o", str(tmp_path / "o1"))
    assert out.returncode == 0 and "jobs" not in out.stderr, out.stderr  # -q before: no progress bar
    out = cli(env, "job", "cli-after", str(tmp_path / "a.txt"), "--wait", "-o", str(tmp_path / "o2"), "-q")
    assert out.returncode == 0 and "jobs" not in out.stderr, out.stderr  # -q after: the same
    from oscar_plugins.cli import build_parser

    args = build_parser().parse_args(["-q", "-c", "a", "run", "svc", "f"])  # before still works, not overwritten
    assert (args.quiet, args.cluster, args.verbose) == (True, "a", 0)
    args = build_parser().parse_args(["run", "svc", "f", "-c", "b", "-vv"])
    assert (args.quiet, args.cluster, args.verbose) == (False, "b", 2)


@pytest.mark.parametrize("args,words", [
    (("run", "some-svc"), "give an input file, --json '{...}' or --payload TEXT"),
    (("run", "some-svc", "/etc/hostname", "--payload", "x"), "give only one of"),
    (("job", "some-svc", "--wait"), "give input files (one job each) or --payload TEXT"),
    (("job", "some-svc"), "give input files (one job each) or --payload TEXT"),
    (("job", "some-svc", "--cancel"), "name the jobs to cancel"),
    (("job", "some-svc", "/etc/hostname", "--max-in-flight", "0"), "--max-in-flight: 0 is too small: give at least 1"),
    (("job", "some-svc", "/etc/hostname", "--retries", "-1"), "-1 is negative: give 0 (no retry) or more"),
    (("job", "some-svc", "/etc/hostname", "--env", "FOO"), "'FOO' is not NAME=VALUE: write it as FOO=VALUE"),
    (("job", "some-svc", "/etc/hostname", "--batch", "0", "--wait"), "--batch: 0 is too small: give at least 1"),
    (("job", "some-svc", "/etc/hostname", "--batch", "two"), "--batch: 'two' is not a whole number"),
    (("job", "some-svc", "/etc/hostname", "--batch", "2"), "job --batch runs several inputs in one job"),
])
def test_usage_errors_exit_2_and_say_what_to_pass(args, words, tmp_path):
    environ = {**os.environ, "OSCAR_CONFIG": str(tmp_path / "none.yaml"),  # nothing must start a cluster
               "OSCAR_ENDPOINT": "https://127.0.0.1:9", "OSCAR_TOKEN": "x"}
    out = cli(environ, *args)
    assert out.returncode == 2, out.stderr
    assert words in out.stderr and "Traceback" not in out.stderr


def test_oscar_endpoint_without_credentials_names_the_variables(tmp_path):
    environ = {**os.environ, "OSCAR_CONFIG": str(tmp_path / "none.yaml"), "OSCAR_ENDPOINT": "https://oscar.example.org"}
    out = cli(environ, "service", "list")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    for name in ("OSCAR_USER", "OSCAR_PASSWORD", "OSCAR_TOKEN"):
        assert name in out.stderr
    out = cli({**environ, "OSCAR_USER": "u"}, "service", "list")
    assert out.returncode == 1 and "OSCAR_PASSWORD is not" in out.stderr


def test_fdl_errors_list_every_problem(env, tmp_path):
    (tmp_path / "bad.yaml").write_text(
        "functions:\n  oscar:\n  - local:\n      name: Bad_Name\n      image: alpine\n      cpu: lots\n"
        "      memory: x\n      script: /etc/hostname\n  - local:\n      name: second\n      cpu: '-1'\n"
        "      script: /etc/hostname\n")
    out = cli(env, "service", "apply", str(tmp_path / "bad.yaml"), "-c", "local-test")
    assert out.returncode == 1 and "more problem" not in out.stderr
    for words in ("2 services have problems", "field 'name'", "cpu 'lots'", "memory 'x'",
                  "required field 'image' is missing", "cpu '-1'"):
        assert words in out.stderr


def test_output_exists_names_the_cli_option(env, tmp_path):
    (tmp_path / "taken.txt").write_text("mine")
    out = cli(env, "run", "any-svc", "/etc/hostname", "-o", str(tmp_path / "taken.txt"))
    assert out.returncode == 1 and "--overwrite" in out.stderr and "pass overwrite" not in out.stderr


def test_cluster_show_has_no_secrets(env, local_cluster):
    out = cli(env, "cluster", "show")
    assert out.returncode == 0, out.stderr
    assert local_cluster.endpoint in out.stdout
    assert local_cluster.password not in out.stdout + out.stderr


def _subparsers(parser, path=()):
    import argparse

    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subparsers(sub, (*path, name))


def test_every_option_has_help_and_its_default():
    import argparse

    from oscar_plugins.cli import build_parser

    missing, no_default = [], []
    for path, parser in _subparsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            name = " ".join((*path, action.option_strings[-1] if action.option_strings else action.dest))
            if not (action.help or "").strip():
                missing.append(name)
            elif action.default not in (None, False, argparse.SUPPRESS, []) and \
                    "default" not in action.help and "%(default)s" not in action.help:
                no_default.append(f"{name} (default {action.default!r})")
    assert not missing, f"options without help: {missing}"
    assert not no_default, f"help does not say the default: {no_default}"
    assert len(list(_subparsers(build_parser()))) > 15  # the walk reached every command


def test_readme_python_snippet_prints_what_it_says(local_cluster, tmp_path):
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    (snippet,) = re.findall(r"## Use it from Python\n\n```python\n(.*?)```", readme, re.S)
    (tmp_path / "copy.sh").write_text('cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/$(basename "$INPUT_FILE_PATH")"\n')
    (tmp_path / "services.yaml").write_text(FDL.replace("cli-upper", "my-svc").replace("upper.sh", "copy.sh"))
    for name in ("input.nc", "a.nc", "b.nc"):
        (tmp_path / name).write_text(f"data of {name}")
    (tmp_path / "snippet.py").write_text(snippet)
    environ = {**os.environ, "OSCAR_ENDPOINT": local_cluster.endpoint, "OSCAR_USER": local_cluster.username,
               "OSCAR_PASSWORD": local_cluster.password, "OSCAR_SSL_VERIFY": "false"}
    out = subprocess.run([sys.executable, "snippet.py"], cwd=tmp_path, env=environ, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "[PosixPath('result.nc')]"  # what the comment promises
    assert (tmp_path / "result.nc").read_text() == "data of input.nc"
    for line, name in zip(lines[1:], ("a.nc", "b.nc"), strict=True):
        job, paths = line.split(" ", 1)
        assert job.startswith("my-svc-") and paths == f"[PosixPath('out/{job}/{name}')]", line
        assert (tmp_path / "out" / job / name).read_text() == f"data of {name}"


def _job_names(env, service):
    return {line.split()[0] for line in cli(env, "logs", service).stdout.splitlines() if line.strip()}


def test_job_wait_reuses_collected_outputs_in_folders_named_after_the_inputs(env, tmp_path):
    (tmp_path / "upper.sh").write_text('tr a-z A-Z < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/up.txt"\n')
    (tmp_path / "fdl.yaml").write_text(FDL.replace("cli-upper", "cli-rerun"))
    assert cli(env, "-c", "local-test", "service", "apply", str(tmp_path / "fdl.yaml")).returncode == 0
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    files = [tmp_path / "one" / "a.txt", tmp_path / "two" / "a.txt", tmp_path / "b.txt"]  # two share a name
    for f in files:
        f.write_text(f"from {f.parent.name}/{f.name}")
    out = tmp_path / "out"
    first = cli(env, "job", "cli-rerun", *map(str, files), "--wait", "-o", str(out), "-q")
    assert first.returncode == 0, first.stderr
    assert (out / "a" / "up.txt").read_text() == "FROM ONE/A.TXT"
    assert (out / "a-2" / "up.txt").read_text() == "FROM TWO/A.TXT"
    assert (out / "b" / "up.txt").read_text() == "FROM TMP/B.TXT".replace("TMP", tmp_path.name.upper())
    jobs = _job_names(env, "cli-rerun")
    assert len(jobs) == 3

    again = cli(env, "job", "cli-rerun", *map(str, files), "--wait", "-o", str(out), "-q")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already collected (--force to redo)") == 3
    assert _job_names(env, "cli-rerun") == jobs  # nothing submitted again

    files[2].write_text("changed")  # a changed input and a damaged output are done again, the rest reused
    (out / "a" / "up.txt").write_text("damaged")
    third = cli(env, "job", "cli-rerun", *map(str, files), "--wait", "-o", str(out), "-q", "--overwrite")
    assert third.returncode == 0, third.stderr
    assert third.stdout.count("already collected") == 1 and f"{files[1]}: already collected" in third.stdout
    assert (out / "a" / "up.txt").read_text() == "FROM ONE/A.TXT" and (out / "b" / "up.txt").read_text() == "CHANGED"
    assert len(_job_names(env, "cli-rerun")) == 5

    forced = cli(env, "job", "cli-rerun", *map(str, files), "--wait", "-o", str(out), "-q", "--force")
    assert forced.returncode == 0 and "already collected" not in forced.stdout, forced.stderr
    assert len(_job_names(env, "cli-rerun")) == 8


def test_job_wait_batch_runs_several_inputs_a_job_and_reports_each(env, tmp_path):
    script = 'grep -q bad "$INPUT_FILE_PATH" && { echo "refused $(cat "$INPUT_FILE_PATH")" >&2; exit 4; }\n'
    (tmp_path / "upper.sh").write_text(script + 'tr a-z A-Z < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/up.txt"\n')
    (tmp_path / "fdl.yaml").write_text(FDL.replace("cli-upper", "cli-batch"))
    assert cli(env, "-c", "local-test", "service", "apply", str(tmp_path / "fdl.yaml")).returncode == 0
    files = [tmp_path / f"{n}.txt" for n in ("a", "b", "c", "d")]
    for f in files:
        f.write_text("bad input" if f.stem == "c" else f"from {f.stem}")
    out = tmp_path / "out"
    run = cli(env, "job", "cli-batch", *map(str, files), "--wait", "--batch", "3", "-o", str(out), "-q",
              "--timeline", str(tmp_path / "t.html"))
    assert run.returncode == 1 and len(_job_names(env, "cli-batch")) == 2  # 4 inputs, 3 a job
    assert (out / "a" / "up.txt").read_text() == "FROM A" and (out / "d" / "up.txt").read_text() == "FROM D"
    assert f"{files[2]}: job " in run.stderr and "batch member 2" in run.stderr and "refused bad input" in run.stderr
    assert "1 of 4 job(s) failed" in run.stderr and (tmp_path / "t.html").is_file()


def test_interrupted_job_wait_says_what_was_collected_and_resumes(env, tmp_path):
    import signal

    block = tmp_path / "block"
    block.write_text("")
    script = (f'if grep -q slow "$INPUT_FILE_PATH"; then while [ -e {block} ]; do sleep 0.2; done; fi\n'
              'cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/copy.txt"\n')
    (tmp_path / "upper.sh").write_text(script)
    (tmp_path / "fdl.yaml").write_text(FDL.replace("cli-upper", "cli-resume"))
    assert cli(env, "-c", "local-test", "service", "apply", str(tmp_path / "fdl.yaml")).returncode == 0
    fast, slow = tmp_path / "fast.txt", tmp_path / "slow.txt"
    fast.write_text("fast")
    slow.write_text("slow")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "oscar_plugins.cli", "job", "cli-resume", str(fast), str(slow), "--wait", "-o",
           str(out), "-q"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "fast" / "copy.txt").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)  # the fast job is collected and reported; the slow one still runs
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted: 1 of 2 job(s) collected" in stderr and "run the same command again to resume" in stderr
    assert (out / "fast" / ".oscar-plugins-job.json").is_file()
    before = _job_names(env, "cli-resume")

    block.unlink()
    resumed = cli(env, *cmd[3:])
    assert resumed.returncode == 0, resumed.stderr
    assert f"{fast}: already collected" in resumed.stdout
    assert (out / "slow" / "copy.txt").read_text() == "slow"
    assert len(_job_names(env, "cli-resume") - before) == 1  # only the slow job was submitted again


def test_interrupted_batched_job_wait_keeps_the_batches_collected_and_resumes_the_rest(env, tmp_path):
    import signal

    block = tmp_path / "block"
    block.write_text("")
    script = (f'if grep -q slow "$INPUT_FILE_PATH"; then while [ -e {block} ]; do sleep 0.2; done; fi\n'
              'cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/copy.txt"\n')
    (tmp_path / "upper.sh").write_text(script)
    (tmp_path / "fdl.yaml").write_text(FDL.replace("cli-upper", "cli-bresume"))
    assert cli(env, "-c", "local-test", "service", "apply", str(tmp_path / "fdl.yaml")).returncode == 0
    files = [tmp_path / f"{n}.txt" for n in ("a", "b", "c", "slow")]  # a, b in one job; c, slow in another
    for f in files:
        f.write_text(f.stem)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "oscar_plugins.cli", "job", "cli-bresume", *map(str, files), "--wait", "--batch",
           "2", "--max-in-flight", "2", "-o", str(out), "-q"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "b" / "copy.txt").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)  # the first batch is collected and reported; the second one still runs
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted: 2 of 4 job(s) collected" in stderr
    assert not (out / "c" / "copy.txt").exists()  # its batch was cancelled with the slow input
    before = _job_names(env, "cli-bresume")

    block.unlink()
    resumed = cli(env, *cmd[3:])
    assert resumed.returncode == 0, resumed.stderr
    assert f"{files[0]}: already collected" in resumed.stdout and f"{files[1]}: already collected" in resumed.stdout
    assert (out / "c" / "copy.txt").read_text() == "c" and (out / "slow" / "copy.txt").read_text() == "slow"
    assert len(_job_names(env, "cli-bresume") - before) == 1  # c and slow again, in one job
