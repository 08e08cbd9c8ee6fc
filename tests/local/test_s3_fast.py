"""The local S3 server's hot paths (``_s3fast``): plain POST-policy uploads and GETs answered without moto's
Flask app must answer as moto does. Each case is sent twice, once as the fast path takes it and once with a
detail that sends it to moto (an ``acl`` field, a ``versionId=null`` query), and the answers compared."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from oscar_plugins._storage import Storage
from oscar_plugins.local import LocalCluster
from oscar_plugins.local.execution._process import _resident_by_scan, resident
from oscar_plugins.local.storage._s3fast import parse_form

BUCKET = "fast-paths"
_VARYING = {"date", "x-amzn-requestid", "last-modified"}


@pytest.fixture(scope="module")
def storage(cluster: LocalCluster) -> Iterator[Storage]:
    store = Storage(cluster.s3_endpoint, cluster.s3_access_key, cluster.s3_secret_key, verify=False)
    store.client.create_bucket(Bucket=BUCKET)
    yield store


def _post(storage: Storage, bucket: str, fields: dict[str, str], content: bytes = b"hello",
          filename: str = "f.txt") -> httpx.Response:
    policy = storage.presign_post(BUCKET, "in/")
    url = policy.url.rsplit("/", 1)[0] + "/" + bucket
    return httpx.post(url, data={**policy.fields, **fields}, files={"file": (filename, content)}, trust_env=False)


def _same(fast: httpx.Response, moto: httpx.Response) -> None:
    assert fast.status_code == moto.status_code and fast.text == moto.text
    assert {k: v for k, v in fast.headers.items() if k not in _VARYING} == \
        {k: v for k, v in moto.headers.items() if k not in _VARYING}


def _head(storage: Storage, key: str) -> dict[str, Any]:
    headers = storage.client.head_object(Bucket=BUCKET, Key=key)["ResponseMetadata"]["HTTPHeaders"]
    return {k: v for k, v in headers.items() if k not in _VARYING}


@pytest.mark.parametrize("fields", [
    {},
    {"success_action_status": "201"},
    {"x-amz-meta-colour": "blue", "Content-Type": "text/plain", "Cache-Control": "no-cache"},
])
def test_a_policy_upload_answers_and_stores_as_moto_does(storage: Storage, fields: dict[str, str]) -> None:
    name = hashlib.sha256(repr(fields).encode()).hexdigest()[:8]
    fast = _post(storage, BUCKET, {"key": f"in/{name}-fast", **fields})
    moto = _post(storage, BUCKET, {"key": f"in/{name}-moto", "acl": "private", **fields})
    _same(fast, moto)
    assert _head(storage, f"in/{name}-fast") == _head(storage, f"in/{name}-moto")
    assert storage.get_bytes(BUCKET, f"in/{name}-fast") == b"hello"


def test_refusals_and_what_moto_answers(storage: Storage) -> None:
    refused = _post(storage, BUCKET, {"key": "elsewhere/x"})
    assert refused.status_code == 403 and "starts-with" in refused.text
    assert _post(storage, "not-a-bucket", {"key": "in/x"}).status_code == 403  # the policy names the bucket
    long_key = "in/" + "k" * 1100  # over S3's 1,024 bytes: moto takes it in a POST, and so do the fast paths
    _same(_post(storage, BUCKET, {"key": long_key}), _post(storage, BUCKET, {"key": long_key + "2", "acl": "private"}))
    assert _post(storage, BUCKET, {"key": "in/${filename}"}, filename="dir/name.txt").status_code == 204
    assert storage.get_bytes(BUCKET, "in/name.txt") == b"hello"  # ${filename}: the base name, as moto does
    redirect = _post(storage, BUCKET, {"key": "in/r", "success_action_redirect": "http://example.org/done"})
    assert redirect.status_code == 303 and redirect.headers["location"].startswith("http://example.org/done?")


def test_a_plain_get_answers_as_moto_does(storage: Storage) -> None:
    client = storage.client
    client.put_object(Bucket=BUCKET, Key="in/get me", Body=b"x" * 1000, ContentType="application/json",
                      Metadata={"a": "b"})
    fast = client.get_object(Bucket=BUCKET, Key="in/get me")
    moto = client.get_object(Bucket=BUCKET, Key="in/get me", VersionId="null")
    assert fast["Body"].read() == moto["Body"].read() == b"x" * 1000
    headers = [{k: v for k, v in r["ResponseMetadata"]["HTTPHeaders"].items() if k not in _VARYING}
               for r in (fast, moto)]
    assert headers[0] == headers[1] and headers[0]["x-amz-meta-a"] == "b"
    assert client.get_object(Bucket=BUCKET, Key="in/get me", Range="bytes=0-9")["Body"].read() == b"x" * 10
    url = client.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "in/get me"})
    assert httpx.get(url, trust_env=False).content == b"x" * 1000
    assert httpx.get(url.replace("Signature=", "Signature=0"), trust_env=False).status_code == 403
    missing = httpx.get(client.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "in/no"}),
                        trust_env=False)
    assert missing.status_code == 404 and "NoSuchKey" in missing.text


def test_parse_form_takes_plain_forms_only() -> None:
    body = (b'--XyZ\r\nContent-Disposition: form-data; name="key"\r\n\r\nin/a\r\n'
            b'--XyZ\r\nContent-Disposition: form-data; name="x-amz-meta-q"\r\n\r\nsay \xc3\xa9\r\n'
            b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a \\"b\\""\r\n'
            b'Content-Type: application/octet-stream\r\n\r\n\r\n-XyZ in the file\r\n--XyZ--\r\n')
    assert parse_form(body, 'multipart/form-data; boundary="XyZ"') == (
        [("key", "in/a"), ("x-amz-meta-q", "say é")], 'a "b"', b"\r\n-XyZ in the file")
    file_first = body.replace(b'name="key"', b'name="file"; filename="f"', 1)
    assert parse_form(file_first, "multipart/form-data; boundary=XyZ") is None  # a field after the file
    assert parse_form(body, "multipart/form-data; boundary=Other") is None
    assert parse_form(body.replace(b"filename=", b"filename*=UTF-8''x; y="), "multipart/form-data; boundary=XyZ") \
        is None
    assert parse_form(body[:-12], "multipart/form-data; boundary=XyZ") is None  # cut short
    odd = body.replace(b"-XyZ in", b"--XyZ in")  # the boundary inside the content: moto sorts it out
    assert parse_form(odd, "multipart/form-data; boundary=XyZ") is None


def test_resident_memory_from_proc_agrees_with_a_scan() -> None:
    import os
    import subprocess
    import time

    child = subprocess.Popen(["/bin/sh", "-c", "sleep 5 & sleep 5"])
    try:
        time.sleep(0.5)  # both sleeps started (the shell's children: the scan's way and /proc's agree)
        assert resident([child.pid]) == _resident_by_scan([child.pid]) != {child.pid: 0}
        assert resident([os.getpid()])[os.getpid()] > 0
    finally:
        child.kill()
        child.wait()
