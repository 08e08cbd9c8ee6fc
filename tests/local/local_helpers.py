"""Helpers for the local-cluster tests: polling and a thin wrapper over the REST API and S3."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import httpx
from botocore.config import Config

from oscar_plugins.local import LocalCluster

FINISHED = ("Succeeded", "Failed")


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value: {value!r})")
        time.sleep(interval)


class Api:
    """Small helper around the cluster's REST API (plain httpx, nothing mocked)."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.admin = httpx.Client(base_url=cluster.endpoint, auth=(cluster.username, cluster.password),
                                  timeout=60, trust_env=False)
        self.anon = httpx.Client(base_url=cluster.endpoint, timeout=60, trust_env=False)
        self.s3 = boto3.client(
            "s3", endpoint_url=cluster.s3_endpoint, aws_access_key_id=cluster.s3_access_key,
            aws_secret_access_key=cluster.s3_secret_key, region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, proxies={}),
        )

    def close(self) -> None:
        self.admin.close()
        self.anon.close()

    def create(self, script: str, name: str | None = None, **fields: Any) -> dict[str, Any]:
        """Create a service and return its stored definition (with token).

        Input and output entries without a ``storage_provider`` get ``minio.default``: OSCAR refuses
        them without one (``create.go`` createBuckets), and these tests are not about that.
        """
        name = name or f"svc-{uuid.uuid4().hex[:8]}"
        for section in ("input", "output"):
            fields[section] = [{"storage_provider": "minio.default", **entry} for entry in fields.get(section) or []]
        body = {"name": name, "image": "alpine", "script": script, **fields}
        response = self.admin.post("/system/services", json=body)
        assert response.status_code == 201, response.text
        stored: dict[str, Any] = self.admin.get(f"/system/services/{name}").json()
        return stored

    def bearer(self, service: dict[str, Any]) -> dict[str, str]:
        return {"Authorization": f"Bearer {service['token']}"}

    def run(self, service: dict[str, Any], body: Any = b"", **kwargs: Any) -> httpx.Response:
        if isinstance(body, dict):
            kwargs["json"] = body
        else:
            kwargs["content"] = body
        return self.anon.post(f"/run/{service['name']}", headers=self.bearer(service), **kwargs)

    def job(self, service: dict[str, Any], body: bytes = b"", name: str | None = None) -> httpx.Response:
        headers = self.bearer(service)
        if name is not None:
            headers["X-Delegated-Job-ID"] = name
        return self.anon.post(f"/job/{service['name']}", headers=headers, content=body)

    def jobs(self, service: str) -> dict[str, dict[str, Any]]:
        """Every job of a service (following next_page)."""
        out: dict[str, dict[str, Any]] = {}
        params: dict[str, str] = {}
        while True:
            body = self.admin.get(f"/system/logs/{service}", params=params).json()
            out.update(body["jobs"])
            if "next_page" not in body:
                return out
            params = {"page": body["next_page"]}

    def status_of(self, service: str, job: str) -> str | None:
        info = self.jobs(service).get(job)
        return None if info is None else str(info["status"])

    def wait_finished(self, service: str, job: str, timeout: float = 20.0) -> str:
        return str(wait_for(lambda: (s := self.status_of(service, job)) in FINISHED and s, timeout))

    def log(self, service: str, job: str) -> str:
        return self.admin.get(f"/system/logs/{service}/{job}").text
