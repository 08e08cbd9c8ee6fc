"""Jobs of the local cluster: bucket triggers, listing, logs, deletion, isolation and memory limits."""

from __future__ import annotations

import base64
import os
import re
import time

import psutil

from oscar_plugins.local import LocalCluster
from tests.local.local_helpers import Api, wait_for


def test_upload_triggers_exactly_one_job_and_outputs_land(api: Api) -> None:
    script = ('echo "key=$STORAGE_OBJECT_KEY file=$(basename "$INPUT_FILE_PATH")"\n'
              'tr a-z A-Z < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/$(basename "$INPUT_FILE_PATH").up"\n'
              'echo skipped > "$TMP_OUTPUT_DIR/ignored.log"\n')
    service = api.create(script, input=[{"storage_provider": "minio.default", "path": "trig-bkt/in"}],
                         output=[{"storage_provider": "minio.default", "path": "trig-out/res", "suffix": [".up"]}])
    api.s3.put_object(Bucket="trig-bkt", Key="elsewhere/x.txt", Body=b"no trigger")
    started = time.monotonic()
    api.s3.put_object(Bucket="trig-bkt", Key="in/data/hello.txt", Body=b"hello")
    jobs = wait_for(lambda: api.jobs(service["name"]), timeout=5)
    assert time.monotonic() - started < 3 and len(jobs) == 1
    name = next(iter(jobs))
    assert api.wait_finished(service["name"], name) == "Succeeded"
    time.sleep(0.5)
    assert len(api.jobs(service["name"])) == 1
    log = api.log(service["name"], name)
    # events/minio.py: STORAGE_OBJECT_KEY is the object's key inside the bucket, unquoted
    assert "key=in/data/hello.txt file=hello.txt" in log
    keys = [o["Key"] for o in api.s3.list_objects_v2(Bucket="trig-out")["Contents"]]
    assert sorted(keys) == ["res/", "res/hello.txt.up"]
    assert api.s3.get_object(Bucket="trig-out", Key="res/hello.txt.up")["Body"].read() == b"HELLO"


def test_multipart_upload_and_odd_keys_trigger_safely(api: Api) -> None:
    service = api.create('echo "got $(wc -c < "$INPUT_FILE_PATH") in $INPUT_FILE_PATH"\n',
                         input=[{"path": "odd-bkt/in"}])
    api.s3.upload_fileobj(__import__("io").BytesIO(b"z" * (12 << 20)), "odd-bkt", "in/big.bin",
                          Config=__import__("boto3").s3.transfer.TransferConfig(multipart_threshold=5 << 20))
    api.s3.put_object(Bucket="odd-bkt", Key="in/../../escape", Body=b"x")
    jobs = wait_for(lambda: len(api.jobs(service["name"])) == 2 and api.jobs(service["name"]), timeout=10)
    logs = []
    for name in jobs:
        assert api.wait_finished(service["name"], name) == "Succeeded"
        logs.append(api.log(service["name"], name))
    work = str(api.cluster.data_dir / "work")
    assert any(f"got {12 << 20} in {work}" in log and "/input/big.bin" in log for log in logs)
    assert any(re.search(rf"got 1 in {re.escape(work)}/[^ ]+/input/escape\n", log) for log in logs)


def test_listing_paginates_70_at_a_time(api: Api) -> None:
    service = api.create("true\n", cpu="0.05")
    for i in range(150):
        assert api.job(service, b"", name=f"page-{i:03d}").status_code == 201
    first = api.admin.get(f"/system/logs/{service['name']}").json()
    # logs.go: Kubernetes never sets remainingItemCount for a label-selected list, so OSCAR has none
    assert len(first["jobs"]) == 70 and "remaining_jobs" not in first
    second = api.admin.get(f"/system/logs/{service['name']}", params={"page": first["next_page"]}).json()
    assert len(second["jobs"]) == 70
    third = api.admin.get(f"/system/logs/{service['name']}", params={"page": second["next_page"]}).json()
    assert len(third["jobs"]) == 10 and "next_page" not in third
    names = [*first["jobs"], *second["jobs"], *third["jobs"]]
    assert names == sorted(names) and len(set(names)) == 150
    wait_for(lambda: "creation_time" in api.jobs(service["name"])["page-149"], timeout=60)
    info = api.jobs(service["name"])["page-149"]  # creation_time is the pod's start time, once it has one
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["creation_time"])
    assert api.admin.get(f"/system/logs/{service['name']}", params={"page": "!!"}).status_code == 500
    wait_for(lambda: all(j["status"] == "Succeeded" for j in api.jobs(service["name"]).values()), timeout=60)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_delete_running_job_kills_it(api: Api) -> None:
    service = api.create('echo "pid=$$"; sleep 60\n', log_level="DEBUG")  # script output is logged at DEBUG
    api.job(service, b"", name="to-kill")
    log = wait_for(lambda: "pid=" in (text := api.log(service["name"], "to-kill")) and text)
    pid = int(re.search(r"pid=(\d+)", log).group(1))  # type: ignore[union-attr]
    assert api.status_of(service["name"], "to-kill") == "Running"
    assert api.admin.delete(f"/system/logs/{service['name']}/to-kill").status_code == 204
    wait_for(lambda: _gone(pid))
    # logs.go MakeGetLogsHandler: an unknown job is a nil dereference (500, no body); DELETE says 404
    gone = api.admin.get(f"/system/logs/{service['name']}/to-kill")
    assert gone.status_code == 500 and gone.content == b""
    assert api.admin.delete(f"/system/logs/{service['name']}/to-kill").status_code == 404


def test_delete_finished_then_all(api: Api) -> None:
    service = api.create("sleep 30\n")
    quick = api.create("true\n", name=service["name"] + "-q")
    api.job(quick, b"", name="quick-1")
    api.wait_finished(quick["name"], "quick-1")
    api.job(service, b"", name="slow-1")
    wait_for(lambda: api.status_of(service["name"], "slow-1") == "Running")
    assert api.admin.delete(f"/system/logs/{service['name']}").status_code == 204
    assert set(api.jobs(service["name"])) == {"slow-1"}
    assert api.admin.delete(f"/system/logs/{quick['name']}").status_code == 204
    assert api.jobs(quick["name"]) == {}
    assert api.admin.delete(f"/system/logs/{service['name']}", params={"all": "true"}).status_code == 204
    assert api.jobs(service["name"]) == {}
    assert api.admin.delete("/system/logs/no-such-service").status_code == 404


def test_secrets_stay_with_their_service_and_server_env_is_not_passed(api: Api, cluster: LocalCluster) -> None:
    os.environ["OSCAR_TEST_SERVER_ONLY"] = "server-env-value"
    owner = api.create("env\n", environment={"variables": {"VISIBLE": "yes"}, "secrets": {"MY_SECRET": "s3cr3t-v4lue"}})
    other = api.create("env\n")
    for service in (owner, other):
        api.job(service, b"", name=f"env-{service['name']}")
    logs = {s["name"]: (api.wait_finished(s["name"], f"env-{s['name']}"), api.log(s["name"], f"env-{s['name']}"))
            for s in (owner, other)}
    assert "MY_SECRET=s3cr3t-v4lue" in logs[owner["name"]][1] and "VISIBLE=yes" in logs[owner["name"]][1]
    for _, log in logs.values():
        assert "server-env-value" not in log and cluster.password not in log and cluster.s3_secret_key not in log
    assert "s3cr3t-v4lue" not in logs[other["name"]][1]
    python_dir = os.path.dirname(__import__("sys").executable)
    assert f"PATH={python_dir}:" in logs[other["name"]][1]
    del os.environ["OSCAR_TEST_SERVER_ONLY"]


def test_memory_limit_kills_as_oom(api: Api) -> None:
    service = api.create('python3 -c "import time; b = b\'x\' * (400 << 20); time.sleep(30)"\n', memory="128Mi")
    api.job(service, base64.b64encode(b""), name="oom-1")
    assert api.wait_finished(service["name"], "oom-1", timeout=30) == "Failed"
    assert "OOMKilled" in api.log(service["name"], "oom-1")
    response = api.run(service, base64.b64encode(b"x"))
    assert response.status_code == 500 and response.text.startswith("exit status 1") and "OOMKilled" in response.text


def test_service_token_opens_run_and_job_only(api: Api) -> None:
    # main.go: /system/* is behind gin.BasicAuth (or OIDC); only /run and /job take a service token
    mine = api.create("echo mine\n")
    assert api.job(mine, b"", name=f"tok-{mine['name']}").status_code == 201
    api.wait_finished(mine["name"], f"tok-{mine['name']}")
    assert api.anon.get(f"/system/logs/{mine['name']}", headers=api.bearer(mine)).status_code == 401
    assert api.anon.get("/system/services", headers=api.bearer(mine)).status_code == 401
