"""MinIO as client scripts use it: /system/config's minio_provider with boto3 and the minio package, and
MinIO's bucket-notification listening API (scripts wait for outputs with it)."""

from __future__ import annotations

import io
import threading
import time
from typing import Any

import boto3
import pytest
from botocore.config import Config

from oscar_plugins.local import LocalCluster
from tests.local.local_helpers import Api

minio = pytest.importorskip("minio")


def _provider(api: Api) -> dict[str, Any]:
    provider: dict[str, Any] = api.admin.get("/system/config").json()["minio_provider"]
    return provider


def test_boto3_and_minio_use_the_minio_provider(api: Api) -> None:
    provider = _provider(api)
    s3 = boto3.client("s3", endpoint_url=provider["endpoint"], aws_access_key_id=provider["access_key"],
                      aws_secret_access_key=provider["secret_key"], region_name=provider["region"],
                      verify=provider["verify"], config=Config(proxies={}))
    s3.create_bucket(Bucket="mc-boto3")
    s3.put_object(Bucket="mc-boto3", Key="a/b.txt", Body=b"boto3")
    client = minio.Minio(provider["endpoint"].split("://", 1)[1], provider["access_key"], provider["secret_key"],
                         secure=provider["endpoint"].startswith("https"), region=provider["region"])
    assert client.get_object("mc-boto3", "a/b.txt").read() == b"boto3"
    client.put_object("mc-boto3", "a/c.txt", io.BytesIO(b"minio"), 5)
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket="mc-boto3")["Contents"]) == ["a/b.txt", "a/c.txt"]


def test_scripts_can_wait_for_outputs_with_listen_bucket_notification(api: Api, cluster: LocalCluster) -> None:
    provider = _provider(api)
    client = minio.Minio(provider["endpoint"].split("://", 1)[1], provider["access_key"], provider["secret_key"],
                         secure=False, region=provider["region"])
    service = api.create('tr a-z A-Z < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/result.txt"\n',
                         input=[{"path": "mc-listen/in"}], output=[{"path": "mc-listen/out", "suffix": [".txt"]}])
    seen: list[dict[str, Any]] = []

    def wait_for_output() -> None:
        with client.listen_bucket_notification("mc-listen", prefix="out/", events=["s3:ObjectCreated:*"]) as events:
            for event in events:
                seen.extend(event["Records"])
                return

    listener = threading.Thread(target=wait_for_output, daemon=True)
    listener.start()
    time.sleep(0.5)
    client.put_object("mc-listen", "in/hello.txt", io.BytesIO(b"hello"), 5)  # starts the service's job
    listener.join(30)
    assert seen and seen[0]["s3"]["object"]["key"] == "out%2Fresult.txt"  # MinIO URL-encodes keys in events
    assert seen[0]["eventName"] == "s3:ObjectCreated:Put" and seen[0]["s3"]["bucket"]["name"] == "mc-listen"
    assert client.get_object("mc-listen", "out/result.txt").read() == b"HELLO"
    assert service["output"][0]["suffix"] == [".txt"]
