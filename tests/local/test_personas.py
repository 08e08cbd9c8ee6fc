"""The local cluster as each OSCAR release a client may meet (docs/FIDELITY.md, "Version personas")."""

from __future__ import annotations

import base64
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
