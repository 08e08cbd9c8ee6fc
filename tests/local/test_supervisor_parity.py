"""The built-in runner against the real faas-supervisor: the same jobs both ways, the same results.

Each case runs on a cluster with the built-in rules (``_supervisor``) and on one that runs the real
faas-supervisor 2.0.1 from ``../shared/faas-supervisor`` as a pod does (``_podrun``); the objects written,
their keys, the job's status and the supervisor's log messages must agree.
"""

from __future__ import annotations

import base64
import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oscar_plugins.local import LocalCluster
from tests.local.local_helpers import Api, wait_for

SUPERVISOR = Path(__file__).resolve().parents[3] / "shared" / "faas-supervisor"
if not (SUPERVISOR / "faassupervisor" / "supervisor.py").is_file():
    pytest.skip(f"faas-supervisor is not at {SUPERVISOR} (../shared beside the repository)", allow_module_level=True)
for module in ("webdav3.client", "rucio.client"):
    pytest.importorskip(module, reason="faas-supervisor imports webdavclient3 and rucio-clients (make install-all)")

_PATH = re.compile(r"'/[^']*'")
_USER = re.compile(r"credentials for user: '[^']*'")
_RECORDS = re.compile(r"event_records = \{.*")
_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - supervisor - ")


@pytest.fixture(scope="module")
def apis() -> Iterator[dict[str, Api]]:
    with tempfile.TemporaryDirectory() as top:
        with LocalCluster(data_dir=Path(top) / "b", port=0, cpus=2) as builtin, \
                LocalCluster(data_dir=Path(top) / "s", port=0, cpus=2, execution="supervisor",
                             supervisor=SUPERVISOR) as real:
            found = {"builtin": Api(builtin), "supervisor": Api(real)}
            yield found
            for api in found.values():
                api.close()


def _messages(log: str) -> list[str]:
    """The supervisor's log, without times and with paths (temporary folders differ) blanked."""
    out = []
    for line in log.splitlines():
        if _STAMP.match(line):
            text = _PATH.sub("'<path>'", _STAMP.sub("", line))
            out.append(_RECORDS.sub("event_records = {...}", _USER.sub("credentials for user: '<key>'", text)))
    return out


def _objects(api: Api, bucket: str) -> dict[str, bytes]:
    keys = [o["Key"] for o in api.s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {k: api.s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys if not k.endswith("/")}


def _both(apis: dict[str, Api], definition: dict[str, Any], body: bytes | None = None,
          upload: tuple[str, bytes] | None = None) -> dict[str, tuple[str, str, dict[str, bytes]]]:
    """Run one job on each cluster: (status, log, objects of the output bucket) by mode."""
    results = {}
    for mode, api in apis.items():
        service = api.create(definition["script"], name=definition["name"],
                             **{k: v for k, v in definition.items() if k not in ("name", "script")})
        if upload is not None:
            api.s3.put_object(Bucket=service["input"][0]["path"].split("/")[0], Key=upload[0], Body=upload[1])
            name = wait_for(lambda: next(iter(api.jobs(service["name"])), None), timeout=20)
        else:
            name = f"{service['name']}-job"
            assert api.job(service, body or b"", name=name).status_code == 201
        status = api.wait_finished(service["name"], name, timeout=60)
        bucket = service["output"][0]["path"].split("/")[0] if service["output"] else ""
        results[mode] = (status, api.log(service["name"], name), _objects(api, bucket) if bucket else {})
    return results


def test_filters_keys_and_response_agree(apis: dict[str, Api]) -> None:
    script = ('mkdir -p "$TMP_OUTPUT_DIR/res_dir"; for f in res_a.txt res_b.png other.txt res_dir/c.txt; do '
              'tr a-z A-Z < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/$f"; done; echo "script said hi"; exit 3\n')
    definition = {"name": "par-filters", "script": script, "log_level": "DEBUG",
                  "output": [{"path": "par-filters/out", "prefix": ["res_"], "suffix": [".txt"]},
                             {"path": "par-filters/all"}]}
    got = _both(apis, definition, base64.b64encode(b"abc"))
    builtin, real = got["builtin"], got["supervisor"]
    assert builtin[0] == real[0] == "Succeeded"  # the script's exit code 3 is never read
    assert builtin[2] == real[2]
    assert set(real[2]) == {"out/res_a.txt", "out/res_dir/c.txt", "all/res_a.txt", "all/res_b.png", "all/other.txt",
                            "all/res_dir/c.txt"}
    assert _messages(builtin[1]) == _messages(real[1])
    assert "DEBUG - script said hi" in real[1]


def test_json_body_is_rewritten_the_same_way(apis: dict[str, Api]) -> None:
    definition = {"name": "par-json", "script": 'cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/event.json"\n',
                  "output": [{"path": "par-json/out"}]}
    body = json.dumps({"k": "é", "n": [1, 2]}, separators=(",", ":")).encode()
    got = _both(apis, definition, body)
    assert got["builtin"][2] == got["supervisor"][2] == {"out/event.json": b'{"k": "\\u00e9", "n": [1, 2]}'}


def test_bucket_triggered_job_agrees(apis: dict[str, Api]) -> None:
    definition = {"name": "par-trig", "script": 'echo "$STORAGE_OBJECT_KEY" > "$TMP_OUTPUT_DIR/key.txt"\n'
                                                'cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/copy"\n',
                  "input": [{"path": "par-trig/in"}], "output": [{"path": "par-trig/out"}]}
    got = _both(apis, definition, upload=("in/dir a/p+1.txt", b"data"))
    builtin, real = got["builtin"], got["supervisor"]
    assert builtin[0] == real[0] == "Succeeded"
    assert builtin[2] == real[2] == {"out/key.txt": b"in/dir a/p+1.txt\n", "out/copy": b"data",
                                     "in/dir a/p+1.txt": b"data"}  # the input and output share the bucket
    assert _messages(builtin[1])[:3] == _messages(real[1])[:3]  # Storage event found, records, MINIO event


def test_a_body_the_supervisor_cannot_read_fails_both(apis: dict[str, Api]) -> None:
    definition = {"name": "par-bad", "script": "echo never\n", "output": [{"path": "par-bad/out"}]}
    got = _both(apis, definition, b"abc")  # not JSON, not base64: binascii.Error in save_event
    assert got["builtin"][0] == got["supervisor"][0] == "Failed"
    assert "Incorrect padding" in got["builtin"][1] and "Incorrect padding" in got["supervisor"][1]


def test_a_batch_under_the_real_supervisor_splits_into_its_members(apis: dict[str, Api], tmp_path: Path) -> None:
    """The wrapper's batch as a pod runs it (the real faas-supervisor runs the wrapped script, the service's
    filters deployed as the library deploys them): each spec's own results, the same on both clusters."""
    from oscar_plugins import Dispatcher, JobSpec, OscarClient, service_from_dict
    from oscar_plugins._auth import BasicCredentials
    from oscar_plugins._profiles import ClusterProfile

    script = ('cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/res_copy.txt"; echo x > "$TMP_OUTPUT_DIR/dropped.bin"\n'
              'echo "member of $LABEL"; [ "$LABEL" != 1 ] || exit 7\n')
    specs = [JobSpec(payload=f"input {i}", env={"LABEL": str(i)}) for i in range(4)]
    got = {}
    for mode, api in apis.items():
        lc = api.cluster
        profile = ClusterProfile(mode, lc.endpoint, BasicCredentials(lc.username, lc.password), ssl_verify=False,
                                 source="test", local_data_dir=str(lc.data_dir))
        with OscarClient(profile) as client:
            client.ensure_service(service_from_dict({
                "name": "par-batch", "image": "alpine", "script": script,
                "output": [{"storage_provider": "minio.default", "path": "par-batch/out", "prefix": ["res_"],
                            "suffix": [".txt"]}]}))
            results = Dispatcher(client).map("par-batch", specs, tmp_path / mode, batch=3,
                                             folders=[f"s{i}" for i in range(4)])
            assert len(client.list_jobs("par-batch")) == 2
        got[mode] = [(r.ok, r.exit_code, sorted(p.relative_to(tmp_path / mode).as_posix() for p in r.outputs))
                     for r in results]
        assert "batch member 1" in str(results[1].error) and "member of 1" in str(results[1].error)
        assert (tmp_path / mode / "s3" / "res_copy.txt").read_text() == "input 3"
    assert got["builtin"] == got["supervisor"]
    assert got["supervisor"] == [(True, 0, ["s0/res_copy.txt"]), (False, 7, []), (True, 0, ["s2/res_copy.txt"]),
                                 (True, 0, ["s3/res_copy.txt"])]
