"""Unit tests of the local cluster's pure pieces (no server)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from oscar_plugins._events import minio_event
from oscar_plugins.local import LocalClusterInfo, default_data_dir
from oscar_plugins.local._config import inside
from oscar_plugins.local._store import Store, rfc3339
from oscar_plugins.local.api._services import triggered_by
from oscar_plugins.local.execution._execution import (
    WorkDirs,
    build_env,
    container_command,
    container_env,
    default_job_name,
    host_command,
    input_file_name,
    output_files,
)
from oscar_plugins.local.execution._payload import Base64Decoder, BodyError, save_body
from oscar_plugins.local.execution._supervisor import (
    EventError,
    echo_event,
    file_key,
    parse_event,
    passes_filters,
    response_memory,
    save_unknown,
)
from oscar_plugins.local.storage._s3persist import key_to_relpath, relpath_to_key
from oscar_plugins.local.storage._sigv4 import verify


def test_container_command_docker_passes_names_not_values(tmp_path: Path) -> None:
    cmd = container_command("docker", "ghcr.io/grycap/cowsay", tmp_path, tmp_path / "script.sh", ["A", "SECRET"],
                            cpus=0.5, memory=256 << 20, name="oscar-job-1")
    assert cmd[:3] == ["docker", "run", "--name"]  # kept until its end is read (out of memory?), then removed
    assert ["--cpus", "0.5"] == cmd[cmd.index("--cpus"):cmd.index("--cpus") + 2]
    assert ["--memory", str(256 << 20)] == cmd[cmd.index("--memory"):cmd.index("--memory") + 2]
    assert f"{tmp_path}:{tmp_path}" in cmd
    assert cmd[-4:] == ["--entrypoint", "/bin/sh", "ghcr.io/grycap/cowsay", str(tmp_path / "script.sh")]
    assert "-e" in cmd and "SECRET" in cmd and not any("=" in part for part in cmd)
    gpu = container_command("podman", "img", tmp_path, tmp_path / "s.sh", [], cpus=1, memory=1, name="n", gpu=True)
    assert ["--device", "nvidia.com/gpu=0"] == gpu[gpu.index("--device"):gpu.index("--device") + 2]
    docker = container_command("docker", "img", tmp_path, tmp_path / "s.sh", [], cpus=1, memory=1, name="n", gpu=True)
    assert ["--gpus", "1"] == docker[docker.index("--gpus"):docker.index("--gpus") + 2]


def test_container_command_apptainer_and_env(tmp_path: Path) -> None:
    cmd = container_command("apptainer", "alpine", tmp_path, tmp_path / "s.sh", ["X"], cpus=1, memory=1, name="n")
    assert cmd[:2] == ["apptainer", "exec"] and "docker://alpine" in cmd
    assert cmd[-2:] == ["/bin/sh", str(tmp_path / "s.sh")]
    env = container_env("apptainer", {"X": "1", "PATH": "/p"}, {"PATH": "/usr/bin"})
    assert env == {"PATH": "/usr/bin", "APPTAINERENV_X": "1"}
    with pytest.raises(ValueError, match="unknown container engine"):
        container_command("lxc", "alpine", tmp_path, tmp_path / "s.sh", [], cpus=1, memory=1, name="n")


def test_host_command_limits_address_space(tmp_path: Path) -> None:
    assert host_command(tmp_path / "s.sh", None) == ["/bin/sh", str(tmp_path / "s.sh")]
    cmd = host_command(tmp_path / "s.sh", 1 << 30)
    assert cmd[0] == "/bin/sh" and "ulimit -v 1048576" in cmd[2] and cmd[-1] == str(tmp_path / "s.sh")


def test_build_env_is_minimal_and_reserved_names_win(tmp_path: Path) -> None:
    work = WorkDirs(tmp_path)
    service = {"name": "svc", "environment": {"variables": {"A": "1", "INPUT_FILE_PATH": "x"},
                                              "secrets": {"TOKEN": "s3cr3t"}}}
    env = build_env(service, work, input_file=work.input / "f", job_name="job-1", object_key="b/k",
                    python_dir="/venv/bin")
    assert env["PATH"].startswith("/venv/bin:")
    assert env["INPUT_FILE_PATH"] == str(work.input / "f") and env["STORAGE_OBJECT_KEY"] == "b/k"
    assert env["A"] == "1" and env["TOKEN"] == "s3cr3t" and env["JOB_UUID"] == "job-1"
    assert env["HOME"] == str(tmp_path) and env["OSCAR_SERVICE_NAME"] == "svc"
    assert set(env) <= {"PATH", "HOME", "LANG", "TMPDIR", "A", "TOKEN", "INPUT_FILE_PATH", "TMP_INPUT_DIR",
                        "TMP_OUTPUT_DIR", "JOB_UUID", "STORAGE_OBJECT_KEY", "OSCAR_SERVICE_NAME"}


def test_filters_names_and_output_files(tmp_path: Path) -> None:
    assert passes_filters("res_1.png", ["res_"], [".png"])
    assert not passes_filters("res_1.jpg", ["res_"], [".png"])
    assert passes_filters("anything", [], None)
    # storage/config.py upload_output matches the path relative to $TMP_OUTPUT_DIR, not the basename
    assert not passes_filters("job-1/res_1.png", ["res_"], None)
    assert passes_filters("job-1/res_1.png", None, [".png"])
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("x")
    (tmp_path / "y.txt").write_text("y")
    (tmp_path / "link").symlink_to("/etc/passwd")
    assert [rel for _, rel in output_files(tmp_path)] == ["y.txt", "a/x.txt"]  # no symlink


def test_job_names_and_input_names() -> None:
    assert default_job_name("short").startswith("short-")
    long_name = "a" * 30
    name = default_job_name(long_name)
    assert name.startswith("a" * 16 + "-") and len(name) == 16 + 1 + 36
    assert input_file_name("in/../..") == "input" and input_file_name("in/dir/f.txt") == "f.txt"


@pytest.mark.parametrize("key", ["a/b/c.txt", "folder/", "", ".", "..", "a//b", "x/../y", "%41", "a%2Fb", "ü/é"])
def test_object_key_paths_round_trip(key: str) -> None:
    relpath = key_to_relpath(key)
    assert relpath is not None and relpath_to_key(relpath) == key
    assert all(part not in ("", ".", "..") for part in relpath.split("/"))


def test_inside_rejects_escapes(tmp_path: Path) -> None:
    assert inside(tmp_path, "svc", "job.log") == tmp_path.resolve() / "svc" / "job.log"
    for bad in ("..", "../x", "/etc", "a\x00b", ""):
        with pytest.raises(ValueError):
            inside(tmp_path, bad)


def test_base64_decoder_streams_and_validates() -> None:
    out = io.BytesIO()
    decoder = Base64Decoder(out)
    for chunk in (b"aGVs", b"bG8g\nd2", b"9y", b"bGQ="):
        decoder.feed(chunk)
    decoder.finish()
    assert out.getvalue() == b"hello world"
    for bad in (b"not base64!!", b"QQ==QQ==", b"QUJ"):
        with pytest.raises(BodyError):
            d = Base64Decoder(io.BytesIO())
            d.feed(bad)
            d.finish()


def test_save_body_json_object_and_rejects_other_json(tmp_path: Path) -> None:
    async def stream(*chunks: bytes):  # type: ignore[no-untyped-def]
        for chunk in chunks:
            yield chunk

    target = tmp_path / "in"
    assert asyncio.run(save_body(stream(b' {"a": ', b"[1, 2]}"), target)) == {"a": [1, 2]}
    assert json.loads(target.read_text()) == {"a": [1, 2]}
    with pytest.raises(BodyError, match="not an object"):
        asyncio.run(save_body(stream(b"[1, 2]"), target))
    with pytest.raises(BodyError):
        asyncio.run(save_body(stream(b"A" * 10), target, limit=5))


def test_supervisor_event_rules(tmp_path: Path) -> None:
    # echo $EVENT (dash): blanks collapse, globs expand in the working directory, escapes are interpreted
    (tmp_path / "input").mkdir()
    assert echo_event("aGVs\nbG8=", tmp_path) == "aGVs bG8=\n"
    assert echo_event('{"t":"a\\nb"}', tmp_path) == '{"t":"a\nb"}\n'  # a JSON escape becomes a newline
    assert echo_event('{"a":  "x  y"}', tmp_path) == '{"a": "x y"}\n'
    assert echo_event('{"op": "a * b"}', tmp_path) == '{"op": "a input b"}\n'
    assert echo_event("", tmp_path) == "\n"
    # parse_event: base64 text and JSON objects are UNKNOWN events; MinIO records are storage events
    unknown = parse_event("aGVsbG8=\n")
    assert unknown.kind == "UNKNOWN" and save_unknown(unknown) == b"hello"
    assert save_unknown(parse_event('{"k": "é"}')) == b'{"k": "\\u00e9"}'
    assert save_unknown(parse_event("%%%\n")) == b""  # non-alphabet characters are dropped, not refused
    with pytest.raises(EventError, match="Incorrect padding"):
        save_unknown(parse_event("abc\n"))
    for crash in ("123", "null", "[1]", '{"event_type": "x"}'):
        with pytest.raises(EventError):
            parse_event(crash)
    storage = parse_event(json.dumps(minio_event("bkt", "in/dir a/p+1.txt", "AKID")))
    assert (storage.kind, storage.bucket, storage.key) == ("MINIO", "bkt", "in/dir a/p+1.txt")
    delegated = parse_event(json.dumps({"event": "aGk=", "storage_provider": "minio.x"}))
    assert delegated.kind == "UNKNOWN" and save_unknown(delegated) == b"hi"
    # get_file_key and the in-memory response
    assert file_key("svc/out", "sub/a.txt") == ("svc", "out/sub/a.txt")
    assert file_key("svc", "a.txt") == ("svc", "a.txt")
    assert file_key("svc/", "x.log") == ("svc", "/x.log")
    assert response_memory([], 256 << 20) == 0 and response_memory([3 << 20], 256 << 20) > 11 << 20
    assert response_memory([100], 64 << 20) < 64 << 20  # small outputs fit a small limit


def test_triggers_match_input_paths_only() -> None:
    service = {"input": [{"storage_provider": "minio.default", "path": "bkt/in", "suffix": [".txt"]}]}
    assert triggered_by(service, "bkt", "in/a.txt")
    assert triggered_by(service, "bkt", "in/sub/a.txt")
    assert triggered_by(service, "bkt", "in/a.png")  # the notification filters on the folder prefix only
    assert not triggered_by(service, "bkt", "out/a.txt")
    assert not triggered_by(service, "bkt", "inx/a.txt")
    assert not triggered_by(service, "other", "in/a.txt")
    assert not triggered_by(service, "bkt", "in/")


def _signed(url: str, secret: str, when: datetime) -> AWSRequest:
    request = AWSRequest(method="PUT", url=url, data=b"body", headers={})
    request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(b"body").hexdigest()
    signer = S3SigV4Auth(BotoCredentials("AKID", secret), "s3", "us-east-1")
    signer._timestamp = lambda: when.strftime("%Y%m%dT%H%M%SZ")  # type: ignore[method-assign]
    request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
    signer.add_auth(request)
    return request


def test_sigv4_verification_against_botocore_signatures() -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    request = _signed("http://127.0.0.1:9000/bkt/dir/a%20b.txt?x-id=PutObject", "secret", now)
    headers = {k.lower(): v for k, v in request.headers.items()}
    headers["host"] = "127.0.0.1:9000"
    args = ("PUT", "/bkt/dir/a%20b.txt", "x-id=PutObject", headers)
    assert verify(*args, "AKID", "secret", now=now) is None
    problem = verify(*args, "AKID", "other", now=now)
    assert problem is not None and problem.code == "SignatureDoesNotMatch"
    problem = verify(*args, "OTHER", "secret", now=now)
    assert problem is not None and problem.code == "InvalidAccessKeyId"
    problem = verify("GET", "/bkt", "", {"host": "h"}, "AKID", "secret", now=now)
    assert problem is not None and problem.code == "AccessDenied"


def test_rfc3339_shows_the_second_datetime_shows() -> None:
    """The per-second cache rounds as datetime.fromtimestamp does (to the microsecond first)."""
    stamps = [0.0, 0.4999995, 0.9999994, 0.9999995, 0.9999996, 59.9999999, 86399.9999996, 1796173056.61,
              1796173056.9999996, 1796173057.0000004, 4102444799.9999999, -1.5]
    stamps += [1796173056 + i / 7 for i in range(50)]
    for stamp in stamps:
        assert rfc3339(stamp) == datetime.fromtimestamp(stamp, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_small_formats_and_reprs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00Z" and rfc3339(None) is None
    info = LocalClusterInfo("http://x", "oscar", "pw-secret", "http://s3", "AK", "sk-secret", tmp_path, 1)
    assert "pw-secret" not in repr(info) and "sk-secret" not in repr(info)
    monkeypatch.setenv("OSCAR_PLUGINS_LOCAL_DIR", str(tmp_path / "explicit"))
    assert default_data_dir() == tmp_path / "explicit"
    monkeypatch.delenv("OSCAR_PLUGINS_LOCAL_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "oscar-plugins" / "local"


def test_store_pages_10000_jobs_by_name(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.sqlite")
    for i in range(10_000):
        store.add_job(f"job-{i:05d}", "big", created=float(i))
    store.add_job("other-job", "small")
    seen, after, pages = [], None, 0
    while True:
        jobs, remaining = store.page_jobs("big", after, 70)
        seen += [j.name for j in jobs]
        pages += 1
        if not remaining:
            break
        assert remaining == 10_000 - len(seen)
        after = jobs[-1].name
    assert pages == 143 and seen == sorted(seen) and len(seen) == 10_000
    assert store.fail_unfinished("restart") and store.count_by_status() == {"Failed": 10_001}
    store.close()


def test_the_engine_is_a_choice_host_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from oscar_plugins.local.execution._execution import detect_engine

    assert detect_engine(None) == "host" and detect_engine("") == "host"  # whatever is installed
    assert detect_engine("podman") == "podman"
    monkeypatch.setenv("PATH", "/nonexistent")
    assert detect_engine("auto") == "host"  # nothing answers
    with pytest.raises(ValueError, match="unknown engine 'lxc'"):
        detect_engine("lxc")
