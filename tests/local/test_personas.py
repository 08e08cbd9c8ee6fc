"""The local cluster as each OSCAR release a client may meet (docs/FIDELITY.md, "Version personas")."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from oscar_plugins.local import LocalCluster
from oscar_plugins.local.api._persona import persona
from tests.local.local_helpers import Api, wait_for

VERSIONS = ["4.1.2", "4.0.0", "3.7.1", "3.6.3"]


@pytest.fixture(scope="module", params=VERSIONS)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with LocalCluster(data_dir=tmp_path_factory.mktemp(f"persona-{request.param}"), port=0, cpus=2,
                      oscar_version=request.param) as lc:
        helper = Api(lc)
        yield helper
        helper.close()


def _version(api: Api) -> tuple[int, int, int]:
    return api.cluster.persona.version_tuple


def test_info_config_and_status_shapes(api: Api) -> None:
    version = api.admin.get("/system/info").json()["version"]
    assert version == api.cluster.persona.version  # version.go: the tag without its "v"
    config = api.admin.get("/system/config").json()
    assert list(config["config"]) == list(persona(version).config_keys)
    assert ("allowed_image_repositories" in config) == (_version(api) >= (4, 0, 0))
    status = api.admin.get("/system/status").json()
    if _version(api) >= (3, 6, 5):
        cpu = status["cluster"]["metrics"]["cpu"]
        assert ("total_schedulable_cores" in cpu) == (_version(api) >= (4, 0, 0))
        assert cpu["total_free_cores"] <= 2000  # millicores
    else:
        assert {"numberNodes", "cpuFreeTotal", "memoryFreeTotal", "detail"} <= set(status)
        assert isinstance(status["detail"][0]["cpuCapacity"], str)


def test_service_shape_duplicates_and_tokens(api: Api) -> None:
    service = api.create("echo hi", name="p-svc", output=[{"path": "p-svc/out"}])
    assert ("namespace" in service) == (_version(api) >= (3, 6, 5))
    assert ("volume_status" in service) == (_version(api) >= (4, 0, 0))
    assert ("replicas" not in service) and (("delegation" in service) == (_version(api) < (4, 1, 0)))
    assert isinstance(service["expose"].get("nodePort", []), list) == (_version(api) >= (4, 1, 0))
    duplicate = api.admin.post("/system/services", json={"name": "p-svc", "image": "a", "script": "s"})
    assert duplicate.status_code == (400 if _version(api) >= (4, 1, 0) else 409)
    body = {k: service[k] for k in ("name", "image", "script", "output")}
    assert api.admin.put("/system/services", json={**body, "owner": "cluster_admin"}).status_code == 204
    token = api.admin.get("/system/services/p-svc").json()["token"]
    assert (token == service["token"]) == (_version(api) >= (4, 0, 0))  # update.go keeps it from v4.0


def test_paths_without_a_folder(api: Api) -> None:
    body = {"name": "p-nofolder", "image": "a", "script": "s",
            "input": [{"storage_provider": "minio.default", "path": "bare"}]}
    created = api.admin.post("/system/services", json=body)
    if _version(api) >= (4, 1, 0):
        assert created.status_code == 201
        assert api.admin.get("/system/services/p-nofolder").json()["input"][0]["path"] == "p-nofolder/bare"
    else:  # CreateS3PathWithWebhook indexes the missing folder: a panic, gin's empty 500; the service stays
        assert created.status_code == 500 and created.content == b""
        assert api.admin.get("/system/services/p-nofolder").status_code == 200


def test_job_names_and_the_job_list(api: Api) -> None:
    service = api.create('cat "$INPUT_FILE_PATH"\n', name="p-jobs")
    assert api.job(service, base64.b64encode(b"x"), name="p-jobs-named").status_code == 201
    named = _version(api) >= (4, 1, 0)
    body = wait_for(lambda: api.admin.get("/system/logs/p-jobs").json())
    jobs = body["jobs"] if _version(api) >= (3, 6, 4) else body  # a bare map before v3.6.4
    (name,) = jobs
    assert (name == "p-jobs-named") == named


def test_body_owner_on_create(api: Api, tmp_path: Path) -> None:
    created = api.admin.post("/system/services", json={"name": "p-owner", "image": "a", "script": "s",
                                                       "owner": "someone"})
    assert created.status_code == 201
    owner = api.admin.get("/system/services/p-owner").json()["owner"]
    assert owner == ("someone" if _version(api) < (3, 7, 0) else "cluster_admin")


def test_metrics_route_as_each_release_answers_it(api: Api) -> None:
    """``GET /system/metrics/{service}`` exists from v4.0.0 (``handlers/metrics.go`` MakeMetricValueHandler);
    the local cluster's usage source counts cores held x time, even for jobs deleted since."""
    service = api.create("sleep 1", name="p-metrics", cpu="0.5", input=[{"path": "p-metrics/in"}])
    path = "/system/metrics/p-metrics"
    if _version(api) < (4, 0, 0):
        assert api.admin.get(path, params={"metric": "cpu-hours"}).status_code == 404
        return
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5))
    assert api.job(service, base64.b64encode(b"x")).status_code == 201
    states = wait_for(lambda: [i.get("status") for i in api.jobs("p-metrics").values()
                               if i.get("status") in ("Succeeded", "Failed")], timeout=30)
    api.admin.delete("/system/logs/p-metrics", params={"all": "true"})  # Prometheus outlives the job
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
    one = api.admin.get(path, params={"metric": "cpu-hours", "start": start, "end": end}).json()
    assert set(one) == {"service_id", "metric", "start", "end", "value", "unit", "sources"}, states
    assert one["service_id"] == "p-metrics" and one["unit"] == "hours" and one["start"] == start
    assert 0 < one["value"] < 1  # the job's second at half a core, whatever the machine's speed
    assert one["sources"] == [{"name": "prometheus", "status": "ok"}]
    every = api.admin.get(path).json()
    assert [m["metric"] for m in every["metrics"]] == [
        "cpu-hours", "gpu-hours", "requests-sync-per-service", "requests-async-per-service",
        "requests-exposed-per-service", "users-per-service"]
    assert every["metrics"][2]["sources"][0]["status"] == "missing"
    assert api.admin.get(path, params={"metric": "nope"}).json() == {"error": "invalid metric key"}
    assert api.admin.get(path, params={"metric": "countries-count"}).json() == {
        "error": "unsupported metric for value query"}
    assert api.admin.get(path, params={"end": "yesterday"}).json() == {"error": "invalid end timestamp"}
    assert api.admin.get(path, params={"start": end, "end": start}).status_code == 400
    # v4.0.0 checks the service for every caller (404); v4.1.0+ only for bearer callers (metrics.go)
    unknown = api.admin.get("/system/metrics/no-such-svc", params={"metric": "cpu-hours"})
    assert unknown.status_code == (404 if _version(api) < (4, 1, 0) else 200)
