"""The wrapper convention, executed for real with /bin/sh the way OSCAR's supervisor runs scripts."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from oscar_plugins._fdl import StorageIO
from oscar_plugins._wrapper import (
    LOG_FILE,
    MANIFEST_HEADER,
    STATUS_FILE,
    Manifest,
    is_wrapped,
    parse_status,
    unwrap_script,
    wrap_script,
    wrapped_outputs,
)
from oscar_plugins.local.execution._supervisor import passes_filters

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


def test_script_output_and_exit_code_are_kept_for_the_client(tmp_path):
    script = 'echo "line one"; echo "to stderr" >&2; exit 4'
    proc, out = _run(tmp_path, wrap_script(script), b"x", "job-l")
    status = parse_status((out / "job-l" / STATUS_FILE).read_text())
    assert status.exit_code == 4 and status.log_tail == "line one\nto stderr\n"
    assert (out / "job-l" / LOG_FILE).read_text() == "line one\nto stderr\n"
    assert "line one" in proc.stdout  # still streamed to the job's log (faas-supervisor logs it at DEBUG)
    assert [r.path for r in status.outputs] == []  # the wrapper's own files are not outputs


def test_service_filters_apply_inside_the_job_folder(tmp_path):
    # faas-supervisor matches prefix/suffix against the path relative to $TMP_OUTPUT_DIR (<job>/<file>);
    # the wrapper applies the service's filters to the path inside the job's folder instead.
    script = ('for f in res_a.png res_b.txt other.png; do echo x > "$TMP_OUTPUT_DIR/$f"; done; '
              'mkdir -p "$TMP_OUTPUT_DIR/res_dir"; echo y > "$TMP_OUTPUT_DIR/res_dir/in.png"')
    _proc, out = _run(tmp_path, wrap_script(script, prefixes=["res_"], suffixes=[".png"]), b"x", "svc-f1")
    kept = sorted(p.relative_to(out / "svc-f1").as_posix() for p in (out / "svc-f1").rglob("*") if p.is_file())
    assert kept == sorted([STATUS_FILE, "res_a.png", "res_dir/in.png"])  # the script printed nothing: no log file
    outputs = [StorageIO(path="b/out", prefix=["res_"], suffix=[".png"]), StorageIO(path="b/x")]
    deployed = wrapped_outputs("svc", outputs)
    assert deployed[0].prefix == ["res_", "svc-"] and deployed[0].suffix == [".png", STATUS_FILE, LOG_FILE]
    assert deployed[1].prefix == [] and deployed[1].suffix == []
    for rel in ("svc-f1/res_a.png", f"svc-f1/{STATUS_FILE}", f"svc-f1/{LOG_FILE}"):
        assert passes_filters(rel, deployed[0].prefix, deployed[0].suffix)


def _policy_manifest(cluster, bucket: str) -> tuple[Manifest, object]:
    from oscar_plugins._storage import Storage

    storage = Storage(cluster.s3_endpoint, cluster.s3_access_key, cluster.s3_secret_key, verify=False)
    storage.client.create_bucket(Bucket=bucket)
    policy = storage.presign_post(bucket, "out/")
    manifest = Manifest()
    manifest.add_upload(policy.url, policy.prefix, policy.fields)
    manifest.add_data("in.txt", b"payload")
    return manifest, storage


@pytest.mark.parametrize("tool", ["curl", "python3"])
def test_outputs_upload_directly_and_leave_nothing_to_the_supervisor(tmp_path, local_cluster, tool):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("sh", "cat", "head", "mkdir", "mktemp", "rm", "tail", "base64", "tr", "find", "wc", "sha256sum",
                 "printf", "tee", "ln", "cp", "mv", "grep", tool):
        target = sys.executable if name == "python3" else __import__("shutil").which(name)
        if target:
            (bin_dir / name).symlink_to(target)
    manifest, storage = _policy_manifest(local_cluster, f"direct-{tool}")
    script = ('cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/copy.txt"; mkdir "$TMP_OUTPUT_DIR/d"; '
              'echo z > "$TMP_OUTPUT_DIR/d/z"')
    proc, out = _run(tmp_path, wrap_script(script), manifest.render(), "job-up", {"PATH": str(bin_dir)})
    assert proc.returncode == 0, proc.stderr
    assert not (out / "job-up").exists()  # nothing for faas-supervisor to upload or to hold in its response
    status = parse_status(storage.get_bytes(f"direct-{tool}", f"out/job-up/{STATUS_FILE}").decode())
    assert sorted(r.path for r in status.outputs) == ["copy.txt", "d/z"] and status.exit_code == 0
    assert storage.get_bytes(f"direct-{tool}", "out/job-up/copy.txt") == b"payload"
    assert storage.exists(f"direct-{tool}", f"out/job-up/{LOG_FILE}") is None  # the script printed nothing


def test_a_refused_upload_leaves_the_outputs_to_the_supervisor(tmp_path, local_cluster):
    manifest, _storage = _policy_manifest(local_cluster, "direct-refused")
    line = next(i for i, text in enumerate(manifest.lines) if text.startswith("upload "))
    manifest.lines[line] = manifest.lines[line].replace(" out/ ", " elsewhere/ ")  # outside the policy's prefix
    proc, out = _run(tmp_path, wrap_script('echo a > "$TMP_OUTPUT_DIR/a.txt"'), manifest.render(), "job-fb")
    assert proc.returncode == 0 and "direct upload failed" in proc.stderr
    assert (out / "job-fb" / "a.txt").read_text() == "a\n" and (out / "job-fb" / STATUS_FILE).is_file()


MEMBER_SCRIPT = """\
echo "member sees ${LABEL:-unset} ${LEAK:-clean}"
export LEAK=leaked
cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/out.txt"
[ -z "${FAIL:-}" ] || { echo "failing on purpose" >&2; exit 5; }
"""


def _batch_manifest() -> bytes:
    from oscar_plugins._wrapper import BatchManifest

    batch = BatchManifest()
    for i, fail in enumerate(("", "1", "")):
        member = Manifest()
        if i == 2:
            member.add_payload(b"\x00binary payload " + b"x" * 9000)  # not text: decoded by base64, not awk
        else:
            member.add_data("in.txt", f"input {i}\n".encode())
        member.add_env("LABEL", str(i))
        if fail:
            member.add_env("FAIL", fail)
        batch.members.append(member)
    return batch.render()


@pytest.mark.parametrize("shell", ["sh", "busybox", "no-awk"])
def test_a_batch_runs_each_member_apart_with_its_own_status(tmp_path, shell):
    import shutil

    env = {}
    if shell == "busybox":
        if shutil.which("busybox") is None:
            pytest.skip("busybox is not installed")
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        for name in ("sh", "cat", "head", "mkdir", "mktemp", "rm", "tail", "base64", "tr", "find", "wc",
                     "sha256sum", "tee", "cp", "mv", "awk"):
            (bin_dir / name).symlink_to(shutil.which("busybox"))
        env["PATH"] = str(bin_dir)
    elif shell == "no-awk":
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        for name in ("sh", "cat", "head", "mkdir", "mktemp", "rm", "tail", "base64", "tr", "find", "wc",
                     "sha256sum", "tee", "cp", "mv"):
            (bin_dir / name).symlink_to(shutil.which(name))
        env["PATH"] = str(bin_dir)
    proc, out = _run(tmp_path, wrap_script(MEMBER_SCRIPT), _batch_manifest(), "job-b", env)
    assert proc.stdout.count("member sees") == 3 and "leaked" not in proc.stdout  # nothing leaks between members
    assert "member sees 1 clean" in proc.stdout
    status = parse_status((out / "job-b" / STATUS_FILE).read_text())
    assert status.exit_code == 0 and status.outputs == [] and sorted(status.members) == [0, 1, 2]
    assert [status.members[k].exit_code for k in (0, 1, 2)] == [0, 5, 0]
    assert "failing on purpose" in status.members[1].log_tail and "member sees 0" not in status.members[1].log_tail
    for k, content in ((0, b"input 0\n"), (1, b"input 1\n"), (2, b"\x00binary payload " + b"x" * 9000)):
        (record,) = status.members[k].outputs
        assert record.path == "out.txt" and (out / "job-b" / f"member-{k}" / "out.txt").read_bytes() == content
        assert (out / "job-b" / f"member-{k}" / LOG_FILE).is_file()
    assert status.members[0].outputs[0].inline == b"input 0\n"  # small outputs still ride in the one status


def test_a_batch_manifest_without_its_member_count_fails_without_running(tmp_path):
    proc, out = _run(tmp_path, wrap_script(MEMBER_SCRIPT), b"#oscar-plugins-manifest v2 x\nmember 0\n", "job-x")
    status = parse_status((out / "job-x" / STATUS_FILE).read_text())
    assert status.exit_code == 86 and "member sees" not in proc.stdout and "member count" not in proc.stdout
    assert "how many members" in status.log_tail


def test_a_batch_uploads_every_member_directly_or_leaves_them_all_to_the_supervisor(tmp_path, local_cluster):
    from oscar_plugins._wrapper import BatchManifest

    single, storage = _policy_manifest(local_cluster, "direct-batch")
    upload = next(line for line in single.lines if line.startswith("upload "))
    for refused, job in ((False, "job-ok"), (True, "job-fb")):
        batch = BatchManifest()
        batch.shared.lines.append(upload.replace(" out/ ", " elsewhere/ ") if refused else upload)
        for i in range(2):
            member = Manifest()
            member.add_data("in.txt", f"input {i}\n".encode())
            batch.members.append(member)
        proc, out = _run(tmp_path, wrap_script('cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/out.txt"'), batch.render(), job)
        assert proc.returncode == 0, proc.stderr
        if refused:  # the supervisor uploads the job's folder: every member's, and the status
            assert (out / job / "member-1" / "out.txt").read_text() == "input 1\n"
            status = parse_status((out / job / STATUS_FILE).read_text())
        else:
            assert not (out / job).exists()
            assert storage.get_bytes("direct-batch", f"out/{job}/member-1/out.txt") == b"input 1\n"
            status = parse_status(storage.get_bytes("direct-batch", f"out/{job}/{STATUS_FILE}").decode())
        assert sorted(status.members) == [0, 1] and status.members[1].outputs[0].inline == b"input 1\n"
