"""The wrapper convention, executed for real with /bin/sh the way OSCAR's supervisor runs scripts."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest

from oscar_plugins._wrapper import (
    MANIFEST_HEADER,
    STATUS_FILE,
    Manifest,
    is_wrapped,
    parse_status,
    unwrap_script,
    wrap_script,
)

USER_SCRIPT = """\
set -e
cat "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/copy.txt"
mkdir -p "$TMP_OUTPUT_DIR/sub"
echo "$GREETING" > "$TMP_OUTPUT_DIR/sub/greeting.txt"
printf '%s\\n' 'quotes "$HOME" and \\backslashes'
exit ${EXIT_WITH:-0}
"""


def _run(tmp_path: Path, script: str, input_bytes: bytes, job: str | None, env: dict[str, str] | None = None):
    work = tmp_path / (job or "sync")
    (work / "in").mkdir(parents=True)
    (work / "out").mkdir()
    inp = work / "in" / "event"
    inp.write_bytes(input_bytes)
    script_file = work / "script.sh"
    script_file.write_text(script)
    run_env = {"PATH": os.environ["PATH"], "INPUT_FILE_PATH": str(inp), "TMP_INPUT_DIR": str(work / "in"),
               "TMP_OUTPUT_DIR": str(work / "out"), **(env or {})}
    if job:
        run_env["JOB_UUID"] = job
    proc = subprocess.run(["/bin/sh", str(script_file)], env=run_env, capture_output=True, text=True, timeout=60)
    return proc, work / "out"


def test_wrap_is_idempotent_and_reversible():
    wrapped = wrap_script(USER_SCRIPT)
    assert is_wrapped(wrapped) and wrap_script(wrapped) == wrapped
    assert unwrap_script(wrapped) == USER_SCRIPT


def test_async_job_outputs_per_job_with_status(tmp_path):
    proc, out = _run(tmp_path, wrap_script(USER_SCRIPT), b"hello", "job-a", {"GREETING": "hi"})
    assert proc.returncode == 0, proc.stderr
    assert (out / "job-a" / "copy.txt").read_text() == "hello"
    assert (out / "job-a" / "sub" / "greeting.txt").read_text() == "hi\n"
    status = parse_status((out / "job-a" / STATUS_FILE).read_text())
    assert status.exit_code == 0
    assert sorted(r.path for r in status.outputs) == ["copy.txt", "sub/greeting.txt"]
    import hashlib
    rec = next(r for r in status.outputs if r.path == "copy.txt")
    assert rec.size == 5 and rec.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert 'quotes "$HOME" and \\backslashes' in proc.stdout  # the user's script ran unchanged


def test_small_outputs_ride_inline_in_the_status(tmp_path):
    script = ('printf small > "$TMP_OUTPUT_DIR/small"; head -c 20000 /dev/zero > "$TMP_OUTPUT_DIR/big"; '
              ': > "$TMP_OUTPUT_DIR/empty"; '
              'for i in 1 2 3 4; do head -c 16000 /dev/urandom > "$TMP_OUTPUT_DIR/r$i"; done')
    proc, out = _run(tmp_path, wrap_script(script), b"x", "job-i")
    assert proc.returncode == 0, proc.stderr
    recs = {r.path: r for r in parse_status((out / "job-i" / STATUS_FILE).read_text()).outputs}
    assert recs["small"].inline == b"small"
    assert recs["big"].inline is None and recs["empty"].inline is None  # over 16 KiB; nothing to carry
    randoms = [recs[f"r{i}"] for i in range(1, 5)]
    assert [r.inline == (out / "job-i" / r.path).read_bytes() for r in randoms].count(True) == 3  # 48 KiB a job
    assert all(r.inline is None for r in randoms if r.inline != (out / "job-i" / r.path).read_bytes())


def test_damaged_inline_line_is_ignored():
    status = parse_status("exit=0\nfile 5 abc x\ninline !!notbase64\nfile 1 def y\ninline eQ==\n")
    assert [(r.path, r.inline) for r in status.outputs] == [("x", None), ("y", b"y")]


def test_async_failure_recorded(tmp_path):
    proc, out = _run(tmp_path, wrap_script(USER_SCRIPT), b"x", "job-b", {"EXIT_WITH": "3", "GREETING": "g"})
    assert parse_status((out / "job-b" / STATUS_FILE).read_text()).exit_code == 3
    assert "script exited with code 3" in proc.stdout


def test_sync_failure_drops_outputs(tmp_path):
    proc, out = _run(tmp_path, wrap_script(USER_SCRIPT), b"x", None, {"EXIT_WITH": "2", "GREETING": "g"})
    assert list(out.iterdir()) == []
    assert "script exited with code 2" in proc.stdout


def test_manifest_inputs_and_env(tmp_path):
    staged = tmp_path / "staged.bin"
    staged.write_bytes(b"\x00\x01big")
    m = Manifest()
    m.add_data("first.txt", b"inline data")
    m.add_url("second.bin", staged.as_uri())  # curl fetches file:// like a presigned https URL
    m.add_data("empty.txt", b"")
    m.add_env("GREETING", "multi word $value")
    script = ('cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/first"; cp "$OSCAR_INPUTS_DIR/second.bin" '
              '"$TMP_OUTPUT_DIR/second"; ls "$OSCAR_INPUTS_DIR" > "$TMP_OUTPUT_DIR/ls"; '
              'printf %s "$GREETING" > "$TMP_OUTPUT_DIR/env"')
    proc, out = _run(tmp_path, wrap_script(script), m.render(), "job-m")
    assert proc.returncode == 0, proc.stderr
    assert (out / "job-m" / "first").read_bytes() == b"inline data"
    assert (out / "job-m" / "second").read_bytes() == b"\x00\x01big"
    assert (out / "job-m" / "ls").read_text().split() == ["empty.txt", "first.txt", "second.bin"]
    assert (out / "job-m" / "env").read_text() == "multi word $value"


def test_manifest_rejects_unsafe_names():
    m = Manifest()
    for bad in ["../x", "a b", "/abs", "..", ""]:
        with pytest.raises(ValueError):
            m.add_data(bad, b"x")
    with pytest.raises(ValueError):
        m.add_env("1BAD", "x")
    assert m.render().startswith(MANIFEST_HEADER.encode())


def test_reserved_terminator_refused():
    with pytest.raises(ValueError, match="reserves"):
        wrap_script("echo\n__OSCAR_PLUGINS_USER_SCRIPT_END__\n")


def test_non_manifest_input_passes_through(tmp_path):
    _proc, out = _run(tmp_path, wrap_script('cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/same"'),
                     base64.b64decode(base64.b64encode(b"raw bytes")), "job-r")
    assert (out / "job-r" / "same").read_bytes() == b"raw bytes"
