"""``POST /run`` and ``POST /job`` of the local cluster, over real HTTP."""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile

import pytest

from tests.local.local_helpers import Api

SUPERVISOR_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - supervisor - INFO - .+$")


def _split(body: str) -> tuple[list[str], str]:
    """(supervisor lines, rest) of a /run response."""
    lines = body.splitlines(keepends=True)
    head = [line.rstrip("\n") for line in lines if SUPERVISOR_LINE.match(line.rstrip("\n"))]
    rest = "".join(line for line in lines if not SUPERVISOR_LINE.match(line.rstrip("\n")))
    return head, rest


@pytest.fixture(scope="module")
def upper(api: Api) -> dict[str, object]:
    return api.create('tr a-z A-Z < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/out.txt"\n')


def test_run_base64_in_single_file_out(api: Api, upper: dict[str, object]) -> None:
    response = api.run(upper, base64.b64encode(b"hello world"))
    assert response.status_code == 200
    head, rest = _split(response.text)
    assert len(head) >= 3 and head[-1].endswith("Creating response")
    assert base64.b64decode(rest.strip()) == b"HELLO WORLD"


def test_run_critical_log_level_returns_only_output(api: Api) -> None:
    quiet = api.create('cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/copy.bin"\n', log_level="CRITICAL")
    payload = bytes(range(256)) * 100
    response = api.run(quiet, base64.b64encode(payload))
    assert response.status_code == 200 and base64.b64decode(response.text) == payload


def test_run_several_files_returns_a_zip(api: Api) -> None:
    service = api.create('mkdir -p "$TMP_OUTPUT_DIR/sub"; echo a > "$TMP_OUTPUT_DIR/a.txt"\n'
                         'echo b > "$TMP_OUTPUT_DIR/sub/b.txt"\n', log_level="CRITICAL")
    response = api.run(service, base64.b64encode(b"x"))
    archive = zipfile.ZipFile(io.BytesIO(base64.b64decode(response.text)))
    assert sorted(archive.namelist()) == ["a.txt", "sub/b.txt"]
    assert archive.read("sub/b.txt") == b"b\n"


def test_run_without_files_returns_the_script_output(api: Api) -> None:
    service = api.create('echo "to stdout"; echo "to stderr" >&2; exit 3\n')
    response = api.run(service, base64.b64encode(b"x"))
    _, rest = _split(response.text)
    assert response.status_code == 200 and rest == "to stdout\nto stderr\n"  # exit code 3 is not read


def test_run_json_object_body_is_the_input_file(api: Api) -> None:
    service = api.create('cat "$INPUT_FILE_PATH"\n', log_level="CRITICAL")
    response = api.run(service, {"numbers": [1, 2], "text": "ü"})
    assert json.loads(response.text) == {"numbers": [1, 2], "text": "ü"}


@pytest.mark.parametrize("body", [b"this is not base64!", b"[1, 2, 3]", b'"a string"', b"{broken json"])
def test_run_invalid_bodies_are_400(api: Api, upper: dict[str, object], body: bytes) -> None:
    response = api.run(upper, body)
    assert response.status_code == 400 and "base64" in response.text


def test_run_streams_a_large_body(api: Api) -> None:
    service = api.create('wc -c < "$INPUT_FILE_PATH"\n', log_level="CRITICAL")
    size = 24 << 20

    def chunks():  # type: ignore[no-untyped-def]
        block = base64.b64encode(b"\x00" * (3 << 20))
        for _ in range(size // (3 << 20)):
            yield block

    response = api.anon.post(f"/run/{service['name']}", headers=api.bearer(service), content=chunks())
    assert response.status_code == 200 and int(response.text) == size


def test_job_201_with_empty_body_and_delegated_name(api: Api) -> None:
    service = api.create('echo "job $JOB_UUID got $(cat "$INPUT_FILE_PATH")"\n')
    response = api.job(service, base64.b64encode(b"payload"), name="my-job-1")
    assert response.status_code == 201 and response.content == b""
    assert api.wait_finished(service["name"], "my-job-1") == "Succeeded"
    assert "job my-job-1 got payload" in api.log(service["name"], "my-job-1")
    duplicate = api.job(service, b"", name="my-job-1")
    assert duplicate.status_code == 500 and "already exists" in duplicate.text
    invalid = api.job(service, b"", name="Not_A_Label")  # Kubernetes refuses the Job's name
    assert invalid.status_code == 500 and "RFC 1123" in invalid.text


def test_job_default_name_and_json_body(api: Api) -> None:
    service = api.create('cat "$INPUT_FILE_PATH"\n', name="a-service-name-of-30-chars-xyz")
    assert api.job(service, json.dumps({"k": "v"}).encode()).status_code == 201
    name = next(iter(api.jobs(service["name"])))
    assert re.fullmatch(r"a-service-name-o-[0-9a-f-]{36}", name)
    api.wait_finished(service["name"], name)
    assert '{"k": "v"}' in api.log(service["name"], name)


def test_job_body_over_128_kib_fails_the_job(api: Api, upper: dict[str, object]) -> None:
    # job.go keeps the body in the pod's EVENT variable; Linux refuses one string over 128 KiB at exec
    accepted = api.job(upper, b"A" * (128 << 10), name="too-long")
    assert accepted.status_code == 201
    assert api.wait_finished(str(upper["name"]), "too-long") == "Failed"
    fits = api.job(upper, base64.b64encode(b"x" * (90 << 10)), name="fits")
    assert fits.status_code == 201 and api.wait_finished(str(upper["name"]), "fits") == "Succeeded"


def test_job_bodies_are_read_as_the_supervisor_reads_them(api: Api) -> None:
    service = api.create('wc -c < "$INPUT_FILE_PATH"\n')
    # Not JSON, so base64-decoded leniently: characters outside the alphabet are dropped (an empty input) ...
    assert api.job(service, b"%%%", name="odd-body").status_code == 201
    assert api.wait_finished(service["name"], "odd-body") == "Succeeded"
    assert api.log(service["name"], "odd-body").strip().endswith("0")
    # ... and a length that is not a multiple of 4 crashes the supervisor: the job fails
    assert api.job(service, b"abc", name="bad-body").status_code == 201
    assert api.wait_finished(service["name"], "bad-body") == "Failed"
    assert "Incorrect padding" in api.log(service["name"], "bad-body")


def test_script_exit_code_does_not_fail_the_job(api: Api) -> None:
    service = api.create("echo failing; exit 1\n")
    api.job(service, b"", name="exit-one")
    assert api.wait_finished(service["name"], "exit-one") == "Succeeded"
    log = api.log(service["name"], "exit-one")
    # faas-supervisor never reads the exit code; without output files it prints the script's output
    assert log.splitlines()[-2:] == ["failing", ""] and "Creating response" in log
    stamped = api.admin.get(f"/system/logs/{service['name']}/exit-one", params={"timestamps": "true"}).text
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ", stamped)
