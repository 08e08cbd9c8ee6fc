"""The client against what OSCAR's Go code does, one divergence at a time (docs/FIDELITY.md numbers them).

Each test meets a behaviour of OSCAR v4.1.2 (or of an older persona) that the client once got wrong,
reproduced by the local cluster from the Go function named in the test's comment.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from oscar_plugins import (
    ConfigError,
    Dispatcher,
    JobFailed,
    JobState,
    OscarClient,
    service_from_api,
    service_from_dict,
)
from oscar_plugins._auth import BasicCredentials
from oscar_plugins._fdl import HIDDEN
from oscar_plugins._jobs import Job
from oscar_plugins._profiles import ClusterProfile
from oscar_plugins._storage import Storage
from oscar_plugins.local import LocalCluster

COPY = 'cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/copy"'


def _svc(name: str, script: str = COPY, **extra):
    return service_from_dict({"name": name, "image": "alpine", "script": script,
                              "output": [{"storage_provider": "minio.default", "path": f"{name}/out"}], **extra})


def _admin(lc: LocalCluster, **kwargs) -> OscarClient:
    profile = ClusterProfile("local", lc.endpoint, BasicCredentials(lc.username, lc.password), ssl_verify=False)
    return OscarClient(profile, **kwargs)


# 1 -------------------------------------------------------------------------------------------------------
def test_1_a_server_read_is_never_sent_back_as_the_users(client):
    client.ensure_service(_svc("fid-read", environment={"secrets": {"KEY": "value-1"}}))
    read = client.get_service("fid-read")  # Go's zero values: mount {"", ""}, hidden MinIO keys, blank secrets
    assert read.mount is None and read.hidden_secrets == {"KEY"} and read.token
    body = read.api_dict(client.version)
    assert "token" not in body and "owner" not in body and HIDDEN not in str(body)
    assert "secrets" not in body.get("environment", {})  # sent blank, they would replace the Secret's values
    read.environment.secrets["NEW"] = "value-2"  # a new secret beside a hidden one would drop the hidden one
    with pytest.raises(ConfigError, match="came back blank"):
        read.api_dict()
    read.environment.secrets.pop("NEW")
    read.cpu = "0.3"
    client.update_service(read)  # a read-modify-write keeps the Secret and the owner
    after = client.get_service("fid-read")
    assert after.cpu == "0.3" and after.owner == "cluster_admin" and after.hidden_secrets == {"KEY"}


def test_1_every_zero_value_and_null_reads(client):
    raw = {"name": "x", "image": "i", "script": "s", "cpu": "", "memory": "", "mount": {"storage_provider": "",
           "path": ""}, "environment": {"variables": None, "secrets": None}, "annotations": None, "labels": None,
           "allowed_users": None, "input": None, "output": None, "expose": {"api_port": [8080], "nodePort": None},
           "volume_status": {"enabled": False}, "deployment": None, "kserve": None, "federation": None,
           "storage_providers": {"minio": {"default": {"access_key": HIDDEN, "secret_key": HIDDEN}}},
           "a_field_of_a_newer_oscar": {"kept": True}}
    svc = service_from_api(raw, source="test")
    assert svc.cpu == "0.2" and svc.input == [] and svc.mount is None and svc.annotations == {}
    assert svc.model_extra["a_field_of_a_newer_oscar"] == {"kept": True}
    assert "storage_providers" not in svc.api_dict()
    assert svc.api_dict((4, 0, 0))["expose"]["api_port"] == 8080  # numbers before v4.1, lists after


# 6 -------------------------------------------------------------------------------------------------------
def test_6_concurrent_deploys_of_one_service_all_succeed(local_cluster):
    # create.go answers 400 "A service with the provided name already exists" from v4.1 (409 before)
    errors: list[BaseException] = []

    def deploy() -> None:
        try:
            with _admin(local_cluster) as mine:
                mine.ensure_service(_svc("fid-race"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deploy) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


# 8 -------------------------------------------------------------------------------------------------------
def test_8_an_update_keeps_the_owner(client, local_cluster):
    client.ensure_service(_svc("fid-owner"))
    client.ensure_service(_svc("fid-owner", cpu="0.4"))  # update.go: a basic-auth PUT stores the body's owner
    raw = httpx.get(f"{local_cluster.endpoint}/system/services/fid-owner",
                    auth=(local_cluster.username, local_cluster.password)).json()
    assert raw["owner"] == "cluster_admin" and raw["cpu"] == "0.4"


# 10 ------------------------------------------------------------------------------------------------------
def test_10_deleting_a_services_jobs_keeps_the_failed_ones_unless_all(client, tmp_path):
    client.ensure_service(_svc("fid-del", 'exit 0'), wrap=False)
    client.ensure_service(_svc("fid-del-bad", 'exit 0'), wrap=False)
    dispatcher = Dispatcher(client)
    ok = dispatcher.submit("fid-del", payload="x")
    bad = Job("fid-del", "fid-del-unreadable")
    httpx.post(f"{client.profile.endpoint}/job/fid-del", content=b"abc", timeout=30,  # crashes the supervisor
               headers={"Authorization": f"Bearer {client.service_token('fid-del')}", "X-Delegated-Job-ID": bad.name})
    dispatcher.tracker.wait([ok, bad], timeout=60) if client.version >= (4, 1, 0) else dispatcher.tracker.wait([ok])
    client.delete_jobs("fid-del")  # logs.go: only Succeeded (status.successful!=0)
    left = client.list_jobs("fid-del")
    assert ok.name not in left and (bad.name in left or client.version < (4, 1, 0))
    client.delete_jobs("fid-del", all_jobs=True)
    assert client.list_jobs("fid-del") == {}


# 11 ------------------------------------------------------------------------------------------------------
def test_11_a_job_list_walk_outlives_its_continue_token(tmp_path):
    with LocalCluster(data_dir=tmp_path / "c", port=0, cpus=2, continue_ttl=1.0) as lc, _admin(lc) as admin:
        admin.ensure_service(_svc("fid-pages", "true"), wrap=False)
        token = admin.service_token("fid-pages")
        for i in range(75):  # two pages of 70
            assert httpx.post(f"{lc.endpoint}/job/fid-pages", content=b"", timeout=30,
                              headers={"Authorization": f"Bearer {token}"}).status_code == 201
        if not lc.persona.paged_job_list:  # before v3.6.4: one bare map, no continue token
            assert len(admin.list_jobs("fid-pages")) == 75
            return
        pages = admin.iter_job_pages("fid-pages")
        first = next(pages)
        time.sleep(1.5)  # the token expires: OSCAR answers 500; the walk starts again
        rest = [page for page in pages]
        assert len(first) == 70 and sum(map(len, rest)) == 70 + 5  # page 1 again, then page 2


# 12 ------------------------------------------------------------------------------------------------------
def test_12_paths_without_a_folder_are_stored_under_the_service(client):
    svc = client.ensure_service(service_from_dict({"name": "fid-path", "image": "alpine", "script": "true",
                                                   "input": [{"storage_provider": "minio.default", "path": "in"}]}))
    assert svc.input[0].path == "fid-path/in"  # normalizeStoragePaths (v4.1); older servers crash on "in"


# 3 -------------------------------------------------------------------------------------------------------
BIG = 'head -c 70000000 /dev/zero > "$TMP_OUTPUT_DIR/big.bin"; echo "made the big output"'


def test_3_outputs_bigger_than_a_quarter_of_the_memory_come_back(client, tmp_path):
    # faas-supervisor builds its response (base64 of the outputs) in memory after uploading them: 70 MB of
    # outputs under a 256 MiB limit get the pod OOM-killed. The wrapper uploads them itself instead.
    client.ensure_service(_svc("fid-big", BIG, memory="256Mi"))
    (result,) = Dispatcher(client).map("fid-big", [[]], tmp_path / "out")
    assert result.ok, result.error
    assert result.outputs[0].stat().st_size == 70_000_000


def test_3_a_failure_report_shows_the_cause_and_the_scripts_lines(client, tmp_path):
    client.ensure_service(_svc("fid-big-raw", BIG, memory="256Mi"), wrap=False)  # the supervisor uploads
    dispatcher = Dispatcher(client)
    job = dispatcher.submit("fid-big-raw", payload="x")
    dispatcher.tracker.wait([job], timeout=120)
    assert job.state == JobState.FAILED
    report = str(dispatcher.failure(job, "the cluster reports it Failed"))
    assert "OOMKilled: the supervisor holds its response in memory" in report, report  # the cluster's own words
    assert "raise the service's memory, or write smaller outputs" in report and "characters of base64" not in report
    client.ensure_service(_svc("fid-fails", 'echo "reading the tile"; echo "tile 7 is corrupt" >&2; exit 3'))
    (failed,) = Dispatcher(client).map("fid-fails", [[]], tmp_path / "o")
    assert isinstance(failed.error, JobFailed) and failed.error.exit_code == 3
    assert "Script output (last lines):\nreading the tile\ntile 7 is corrupt" in str(failed.error)


# 4 -------------------------------------------------------------------------------------------------------
def test_4_output_filters_apply_to_the_files_of_each_job(client, tmp_path):
    script = 'for f in res_1.png res_2.txt notes.png; do echo "$f" > "$TMP_OUTPUT_DIR/$f"; done'
    client.ensure_service(_svc("fid-filter", script, output=[{"storage_provider": "minio.default",
                                                              "path": "fid-filter/out", "prefix": ["res_"],
                                                              "suffix": [".png"]}]))
    (result,) = Dispatcher(client).map("fid-filter", [[]], tmp_path / "out")
    assert result.ok, result.error
    assert sorted(p.name for p in result.outputs) == ["res_1.png"]


# 13 ------------------------------------------------------------------------------------------------------
def test_13_transfers_ride_through_a_minio_restart(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(b"\x01" * (48 << 20))
    with LocalCluster(data_dir=tmp_path / "c", port=0, cpus=2, minio_restart=3.0) as lc, _admin(lc) as admin:
        storage = Storage(lc.s3_endpoint, lc.s3_access_key, lc.s3_secret_key, verify=False)
        storage.client.create_bucket(Bucket="fid-staging")
        keys: list[object] = []

        def stage() -> None:
            try:
                keys.append(storage.stage("fid-staging", big))
            except Exception as exc:
                keys.append(exc)

        uploader = threading.Thread(target=stage)
        uploader.start()
        started = time.monotonic()
        admin.ensure_service(_svc("fid-restart", "true"))  # create.go: the MinIO webhook, then RestartServer
        assert time.monotonic() - started >= 3.0
        uploader.join(120)
        assert keys and isinstance(keys[0], str), keys
        assert storage.get_bytes("fid-staging", keys[0])[:4] == b"\x01" * 4


# 9 -------------------------------------------------------------------------------------------------------
def test_9_a_delegated_job_is_not_silently_lost(client):
    # job.go: with federation members and no room here, OSCAR delegates the job (201) and creates no local one.
    # The FDL's federation.members travel as top-level replicas to servers before v4.1.
    members = [{"type": "oscar", "cluster_id": "edge", "service_name": "fid-fed", "url": "https://edge.example.org"}]
    client.ensure_service(_svc("fid-fed", "true", federation={"group_id": "g", "topology": "star", "members": members}))
    svc = client.get_service("fid-fed")
    assert svc.federation_members() == ["fid-fed on https://edge.example.org"]
    gone = Job("fid-fed", "fid-fed-delegated", state=JobState.LOST)
    with pytest.raises(JobFailed, match=r"delegated it to a federation member.*fid-fed on https://edge\.example\.org"):
        Dispatcher(client).collect(gone, Path("/nonexistent"))


@pytest.fixture()
def client(local_cluster) -> Iterator[OscarClient]:
    with _admin(local_cluster) as c:
        yield c
