"""OSCAR REST API of the local cluster: health, auth, system routes and service CRUD (real HTTP)."""

from __future__ import annotations

import httpx
import pytest
from botocore.exceptions import ClientError

from oscar_plugins.local import LocalCluster
from tests.local.local_helpers import Api


def test_health_needs_no_auth(api: Api) -> None:
    response = api.anon.get("/health")
    assert response.status_code == 200 and response.text == "Ok"


@pytest.mark.parametrize("path", ["/system/info", "/system/config", "/system/status", "/system/services",
                                  "/system/services/x", "/system/logs/x"])
def test_system_routes_need_basic_auth(api: Api, cluster: LocalCluster, path: str) -> None:
    assert api.anon.get(path).status_code == 401
    wrong = api.anon.get(path, auth=(cluster.username, cluster.password + "x"))
    # gin.BasicAuth: 401, no body, a challenge (auth.go GetAuthMiddleware without OIDC)
    assert wrong.status_code == 401 and wrong.content == b""
    assert wrong.headers["www-authenticate"] == 'Basic realm="Authorization Required"'
    assert api.anon.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401


def test_run_and_job_take_only_the_service_bearer(api: Api, cluster: LocalCluster) -> None:
    service = api.create("echo hi")
    for route in ("run", "job"):
        url = f"/{route}/{service['name']}"
        assert api.anon.post(url).status_code == 401
        assert api.anon.post(url, auth=(cluster.username, cluster.password)).status_code == 401
        assert api.anon.post(url, headers={"Authorization": "Bearer " + "0" * 64}).status_code == 401
        unknown = api.anon.post(f"/{route}/no-such-svc", headers=api.bearer(service))
        assert unknown.status_code == 401


def test_info_config_status_shapes(api: Api, cluster: LocalCluster) -> None:
    info = api.admin.get("/system/info").json()
    assert info["version"] == "4.1.2"  # the release tag without its "v" (version.go, ldflags)
    assert info["serverless_backend"]["name"] == "local" and info["local_execution"] == "host"
    assert {"git_commit", "architecture", "kubernetes_version"} <= set(info)
    config = api.admin.get("/system/config").json()
    assert config["config"]["services_namespace"] == "oscar-svc" and config["config"]["gpu_available"] is False
    assert "minio_quota_enabled" in config["config"] and config["allowed_image_repositories"] == []
    minio = config["minio_provider"]
    assert minio == {"endpoint": cluster.s3_endpoint, "verify": False, "access_key": cluster.s3_access_key,
                     "secret_key": cluster.s3_secret_key, "region": "us-east-1"}
    status = api.admin.get("/system/status").json()
    cpu = status["cluster"]["metrics"]["cpu"]  # millicores (status.go: Quantity.MilliValue())
    assert cpu["total_schedulable_on_node_cores"] <= cpu["total_schedulable_cores"] <= 2000
    assert 0 <= cpu["total_free_cores"] <= 2000
    assert 0 < status["cluster"]["metrics"]["memory"]["total_free_bytes"] <= 4 << 30
    assert status["cluster"]["nodes_count"] == 1 and status["oscar"]["ready"] is True
    assert {"buckets_count", "total_objects"} <= set(status["minio"])


def test_service_crud(api: Api) -> None:
    body = {"name": "crud-svc", "image": "alpine", "script": "echo hi", "future_field": {"kept": True},
            "input": [{"storage_provider": "minio.default", "path": "crud-in/data"}],
            "output": [{"storage_provider": "minio", "path": "crud-out/results"}]}
    created = api.admin.post("/system/services", json=body)
    assert created.status_code == 201 and created.content == b""
    duplicate = api.admin.post("/system/services", json=body)  # create.go serviceWithSameNameExists (v4.1)
    assert duplicate.status_code == 400 and duplicate.text == "A service with the provided name already exists"
    stored = api.admin.get("/system/services/crud-svc").json()
    assert "future_field" not in stored and len(stored["token"]) == 64  # encoding/json drops unknown keys
    assert stored["cpu"] == "0.2" and stored["memory"] == "256Mi" and stored["owner"] == "cluster_admin"
    assert stored["storage_providers"]["minio"]["default"]["secret_key"] == "hidden"
    assert stored["mount"] == {"storage_provider": "", "path": ""} and stored["annotations"] == {}
    assert any(s["name"] == "crud-svc" for s in api.admin.get("/system/services").json())
    keys = [o["Key"] for o in api.s3.list_objects_v2(Bucket="crud-in").get("Contents", [])]
    assert keys == ["data/"] and api.s3.head_bucket(Bucket="crud-out")

    updated = api.admin.put("/system/services", json={**body, "memory": "512Mi"})
    assert updated.status_code == 204
    after = api.admin.get("/system/services/crud-svc").json()
    assert after["memory"] == "512Mi" and after["token"] == stored["token"]
    missing = api.admin.put("/system/services", json={**body, "name": "not-there"})
    assert missing.status_code == 404 and missing.content == b""

    api.s3.put_object(Bucket="crud-out", Key="results/x.txt", Body=b"x")
    assert api.admin.delete("/system/services/crud-svc").status_code == 204
    assert api.admin.get("/system/services/crud-svc").status_code == 404
    assert api.admin.delete("/system/services/crud-svc").status_code == 404
    for bucket in ("crud-in", "crud-out"):
        with pytest.raises(ClientError):
            api.s3.head_bucket(Bucket=bucket)


@pytest.mark.parametrize("body,status,words", [
    # create.go: ShouldBindJSON and the binding tags of types.Service answer 400 ...
    ({"name": "x" * 40, "image": "a", "script": "s"}, 400, "'Service.Name' Error:Field validation for 'Name' failed "
                                                           "on the 'max' tag"),
    ({"name": "no-image", "script": "s"}, 400, "'Image' failed on the 'required' tag"),
    ({"name": "no-script", "image": "a"}, 400, "'Script' failed on the 'required' tag"),
    ({"name": "num-cpu", "image": "a", "script": "s", "cpu": 1}, 400,
     "json: cannot unmarshal number into Go struct field Service.cpu of type string"),
    # ... what Kubernetes and MinIO refuse afterwards is a 500 "Error creating the service: ..."
    ({"name": "Bad_Name", "image": "a", "script": "s"}, 500, "RFC 1123"),
    ({"name": "bad-cpu", "image": "a", "script": "s", "cpu": "fast"}, 500, "quantities must match"),
    ({"name": "bad-mem", "image": "a", "script": "s", "memory": "lots"}, 500, "quantities must match"),
    ({"name": "bad-bucket", "image": "a", "script": "s",
      "output": [{"storage_provider": "minio.default", "path": "ab/out"}]}, 500, "bucket"),
    # createBuckets: a provider must be given and declared; inputs only from MinIO, dCache or Rucio
    ({"name": "no-provider", "image": "a", "script": "s", "output": [{"path": "np/out"}]}, 500,
     'the StorageProvider ".default" is not defined'),
    ({"name": "s3-input", "image": "a", "script": "s", "input": [{"storage_provider": "s3.x", "path": "b/in"}]},
     400, "unrecognized input"),
])
def test_invalid_services_are_refused_as_oscar_does(api: Api, body: dict[str, object], status: int,
                                                    words: str) -> None:
    response = api.admin.post("/system/services", json=body)
    assert response.status_code == status and words in response.text
    assert api.admin.get(f"/system/services/{body['name']}").status_code in (400, 404)  # nothing left behind


def test_malformed_json_is_400_and_server_survives(api: Api) -> None:
    before = len(api.admin.get("/system/services").json())
    response = api.admin.post("/system/services", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "The service specification is not valid" in response.text
    assert api.admin.put("/system/services", content=b"[").status_code == 400
    assert len(api.admin.get("/system/services").json()) == before


def test_path_traversal_is_rejected(api: Api) -> None:
    service = api.create("echo hi")
    for path in ("/system/services/..%2F..%2Fetc", "/system/services/%2E%2E", "/system/logs/..",
                 f"/system/logs/{service['name']}/..", f"/system/logs/{service['name']}/%2E%2E%2Fx"):
        assert api.admin.get(path).status_code in (400, 404), path
    bad_job = api.job(service, b"", name="../../etc/passwd")  # job.go: Kubernetes refuses the name
    assert bad_job.status_code == 500 and "RFC 1123" in bad_job.text
    assert api.admin.post("/system/services", json={"name": "../x", "image": "a", "script": "s"}).status_code == 500
    folder = api.admin.post("/system/services", json={"name": "dotdot", "image": "a", "script": "s",
                                                      "input": [{"storage_provider": "minio.default",
                                                                 "path": "dotdot-bkt/../x"}]})
    assert folder.status_code == 500 and api.admin.get("/system/services/dotdot").status_code == 404
    assert api.admin.post("/system/buckets/..%2Fx/presign", json={}).status_code in (400, 404)


def test_presign_upload_and_download(api: Api) -> None:
    service = api.create("echo hi", input=[{"path": "presign-bkt/in"}])
    assert service["input"][0]["path"] == "presign-bkt/in"
    up = api.admin.post("/system/buckets/presign-bkt/presign",
                        json={"object_key": "in/p.txt", "operation": "upload", "expires_in": 60}).json()
    assert up["method"] == "PUT" and up["object_key"] == "in/p.txt" and up["expires_at"].endswith("Z")
    assert httpx.put(up["url"], content=b"presigned", trust_env=False).status_code == 200
    down = api.admin.post("/system/buckets/presign-bkt/presign",
                          json={"object_key": "in/p.txt", "operation": "download"}).json()
    assert httpx.get(down["url"], trust_env=False).content == b"presigned"
    assert httpx.get(down["url"].replace("Signature=", "Signature=0"), trust_env=False).status_code == 403
    assert api.admin.post("/system/buckets/presign-bkt/presign", json={"operation": "upload"}).status_code == 400
    missing = api.admin.post("/system/buckets/no-such-bucket/presign",
                             json={"object_key": "k", "operation": "download"})
    assert missing.status_code == 404


def test_s3_rejects_wrong_credentials(cluster: LocalCluster) -> None:
    import boto3
    from botocore.config import Config

    bad = boto3.client("s3", endpoint_url=cluster.s3_endpoint, aws_access_key_id=cluster.s3_access_key,
                       aws_secret_access_key="wrong", region_name="us-east-1", config=Config(proxies={}))
    with pytest.raises(ClientError, match="SignatureDoesNotMatch"):
        bad.list_buckets()
    assert httpx.get(f"{cluster.s3_endpoint}/", trust_env=False).status_code == 403


def test_repr_hides_secrets(cluster: LocalCluster) -> None:
    assert cluster.password not in repr(cluster) and cluster.s3_secret_key not in repr(cluster)
    assert cluster.password not in repr(cluster.info())
