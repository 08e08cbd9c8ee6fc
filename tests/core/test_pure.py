"""Pure pieces: version parsing, both job-list shapes, status shapes, error mapping, redaction."""

from __future__ import annotations

import time

import pytest

from oscar_plugins import (
    AuthenticationError,
    JobNotFound,
    JobState,
    ServiceNotFound,
    ServiceUnavailable,
    free_capacity,
    parse_version,
)
from oscar_plugins._client import new_job_name, parse_job_list
from oscar_plugins._http import error_for_response
from oscar_plugins._validation import job_name_problem


def test_parse_version():
    assert parse_version("v4.1.2") == (4, 1, 2)
    assert parse_version("3.6.4") == (3, 6, 4)
    assert parse_version("v4.0.0-rc1") == (4, 0, 0)
    assert parse_version("devel") == (99, 0, 0) and parse_version(None) == (99, 0, 0)


def test_job_list_shapes():
    new = {"jobs": {"a": {"status": "Running"}}, "next_page": "tok", "remaining_jobs": 3}
    assert parse_job_list(new) == ({"a": {"status": "Running"}}, "tok")
    last = {"jobs": {"b": {"status": "Succeeded"}}}
    assert parse_job_list(last) == ({"b": {"status": "Succeeded"}}, None)
    old = {"a": {"status": "Pending", "creation_time": "2024-01-01T00:00:00Z"}}  # before v3.6.4
    assert parse_job_list(old) == (old, None)


def test_job_states_tolerate_surprises():
    assert JobState.parse("Succeeded") is JobState.SUCCEEDED
    assert JobState.parse("succeeded") is JobState.SUCCEEDED
    assert JobState.parse("Evicted") is JobState.UNKNOWN
    assert JobState.parse(None) is JobState.UNKNOWN
    assert JobState.LOST.terminal and not JobState.SUSPENDED.terminal


def test_job_names_valid_and_newest_first():
    name = new_job_name("a" * 39)
    assert job_name_problem(name) is None and len(name) <= 63
    older = new_job_name("svc")
    time.sleep(0.002)
    newer = new_job_name("svc")
    assert newer < older  # the job list (name order) shows the newest jobs first


def test_free_capacity_every_shape():
    # status.go: *_cores figures are millicores (Quantity.MilliValue()) in every shape
    v3 = {"cluster": {"metrics": {"cpu": {"total_free_cores": 6000}, "memory": {"total_free_bytes": 10}}}}
    assert free_capacity(v3) == (6.0, 10)
    v4 = {"cluster": {"metrics": {"cpu": {"total_free_cores": 6000, "total_schedulable_cores": 1500},
                                  "memory": {"total_free_bytes": 10, "total_schedulable_bytes": 7}}}}
    assert free_capacity(v4) == (1.5, 7)  # what Kubernetes schedules by: allocatable minus requests
    assert free_capacity({"cpuFreeTotal": 2500, "memoryFreeTotal": 42}) == (2.5, 42)
    assert free_capacity({"cluster": {"nodes_count": 0, "metrics": None, "nodes": None}}) == (0.0, 0)


def test_error_mapping_and_redaction():
    err = error_for_response(401, "GET /system/services", "bad password SENTINEL-XYZ", cluster="c",
                             secrets=["SENTINEL-XYZ"])
    assert isinstance(err, AuthenticationError) and "SENTINEL" not in str(err) and err.status == 401
    bearer = error_for_response(401, "POST /run/s", "", cluster="c", service="s", bearer=True)
    assert "service token" in str(bearer)
    assert isinstance(error_for_response(404, "GET x", "", cluster="c", service="s"), ServiceNotFound)
    assert isinstance(error_for_response(404, "GET x", "", cluster="c", service="s", job="j"), JobNotFound)
    assert isinstance(error_for_response(502, "POST /run/s", "", cluster="c"), ServiceUnavailable)
    long = error_for_response(400, "POST x", "y" * 5000, cluster="c")
    assert len(str(long)) < 600


@pytest.mark.parametrize("status", [400, 409, 413, 500])
def test_every_error_says_what_happened(status):
    err = error_for_response(status, "POST /system/services", "detail", cluster="prod")
    assert "prod" in str(err) and str(status) in str(err) and "detail" in str(err)


def test_sigv4_signer_matches_aws_examples_and_the_local_verifier():
    from datetime import datetime, timezone

    from oscar_plugins._sigv4 import EMPTY_SHA256, host_header, object_path, presign_url, sign_headers
    from oscar_plugins.local.storage._sigv4 import verify

    key, secret = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    when = datetime(2013, 5, 24, tzinfo=timezone.utc)
    # AWS's documented examples (S3 SigV4, "GET Object" with a Range header, and a presigned URL).
    headers = sign_headers("GET", "examplebucket.s3.amazonaws.com", "/test.txt", key, secret, "us-east-1",
                           headers={"range": "bytes=0-9"}, payload_hash=EMPTY_SHA256, now=when)
    assert headers["authorization"].endswith(
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    url = presign_url("https://examplebucket.s3.amazonaws.com", "examplebucket.s3.amazonaws.com", "/test.txt",
                      key, secret, "us-east-1", expires=86400, now=when)
    assert url.endswith("X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
    # Path-style object keys with spaces, unicode and slashes verify on the local cluster's S3 server.
    path = object_path("bucket", "dir/a b+ü~.txt")
    signed = sign_headers("GET", "127.0.0.1:9000", path, key, secret, "us-east-1", now=when)
    assert verify("GET", path, "", {"host": "127.0.0.1:9000", **signed}, key, secret, now=when) is None
    assert verify("GET", path, "", {"host": "127.0.0.1:9000", **signed}, key, "other", now=when) is not None
    query = presign_url("http://127.0.0.1:9000", "127.0.0.1:9000", path, key, secret, "us-east-1", expires=60,
                        now=when).split("?", 1)[1]
    assert verify("GET", path, query, {"host": "127.0.0.1:9000"}, key, secret, now=when) is None
    assert [host_header(e) for e in ("https://m.example.org:443", "http://m:80", "http://127.0.0.1:9000",
                                     "https://[::1]:9443", "https://m")] == [
        "m.example.org", "m", "127.0.0.1:9000", "[::1]:9443", "m"]
