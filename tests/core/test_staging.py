"""Staging inputs: content sent once, and a large new file read once (uploaded while it is hashed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from oscar_plugins import Storage
from oscar_plugins._storage import CAS_PREFIX, UPLOAD_PREFIX


@pytest.fixture()
def storage(local_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("OSCAR_PLUGINS_CACHE_DIR", str(tmp_path / "cache"))
    lc = local_cluster
    st = Storage(lc.s3_endpoint, lc.s3_access_key, lc.s3_secret_key, verify=False)
    bucket = f"staging-{os.getpid()}-{tmp_path.name[-12:].lower().replace('_', '-')}"
    st.client.create_bucket(Bucket=bucket)
    st.overlap_min = 1 << 20  # "large" from 1 MiB, for the test
    yield st, bucket
    st.close()


def _file(path: Path, size: int, seed: int) -> Path:
    path.write_bytes(bytes((i * seed) % 251 for i in range(size)))
    return path


def test_a_small_file_goes_under_its_hash_once(storage, tmp_path):
    st, bucket = storage
    small = _file(tmp_path / "small.bin", 4096, 7)
    key = st.stage(bucket, small)
    assert key.startswith(CAS_PREFIX) and st.get_bytes(bucket, key) == small.read_bytes()
    sent = st.bytes_uploaded
    assert st.stage(bucket, small) == key and st.bytes_uploaded == sent  # unchanged: nothing sent


def test_a_large_new_file_is_uploaded_while_hashed_and_never_sent_twice(storage, tmp_path):
    st, bucket = storage
    big = _file(tmp_path / "big.bin", 3 << 20, 13)
    key = st.stage(bucket, big)
    assert key.startswith(UPLOAD_PREFIX)  # its hash was not known before the upload: a fresh key
    assert st.get_bytes(bucket, key) == big.read_bytes()
    assert st.bytes_uploaded == 3 << 20
    assert st.stage(bucket, big) == key and st.bytes_uploaded == 3 << 20  # the hash cache knows where it is

    # the object went away (a cleaned bucket): sent again, now under its hash, which is known
    st.client.delete_object(Bucket=bucket, Key=key)
    again = st.stage(bucket, big)
    assert again.startswith(CAS_PREFIX) and st.get_bytes(bucket, again) == big.read_bytes()
    assert st.bytes_uploaded == 6 << 20

    # changed content: a new upload, never the old object
    big.write_bytes(b"x" * (2 << 20))
    changed = st.stage(bucket, big)
    assert changed not in (key, again) and st.get_bytes(bucket, changed) == b"x" * (2 << 20)


def test_a_get_does_not_wait_while_boto3s_client_is_built(storage, monkeypatch):
    """Collecting results (signed GETs) goes on while another thread builds boto3's client, which takes a
    while (oscar-cwl's first cleanup builds it in the middle of a run's collections)."""
    import threading

    import boto3

    st, bucket = storage
    st.put_bytes(bucket, "k", b"data")
    building, release = threading.Event(), threading.Event()
    real = boto3.session.Session.client

    def slow(self, *args, **kwargs):
        building.set()
        release.wait(60)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(boto3.session.Session, "client", slow)
    st._client = None
    builder = threading.Thread(target=lambda: st.client)
    builder.start()
    got: list[bytes] = []
    try:
        assert building.wait(60)
        getter = threading.Thread(target=lambda: got.append(st.get_bytes(bucket, "k")))
        getter.start()
        getter.join(60)  # with one lock for both clients the GET would wait for the release below
        assert got == [b"data"]
    finally:
        release.set()
        builder.join(60)


def test_delete_keys_removes_the_objects_without_building_boto3s_client(storage, local_cluster):
    st, bucket = storage
    keys = ["a", "dir/c d.txt", "x&y<z>'\".bin", "dir/./e"]
    for key in keys:
        st.put_bytes(bucket, key, b"data")
    lc = local_cluster
    fresh = Storage(lc.s3_endpoint, lc.s3_access_key, lc.s3_secret_key, verify=False)
    try:
        assert fresh.delete_keys(bucket, [*keys, "never-there"]) == len(keys) + 1  # a missing key is fine
        assert fresh._client is None  # signed by us: boto3 never loaded for a cleanup
    finally:
        fresh.close()
    assert [st.exists(bucket, key) for key in keys] == [None] * len(keys)
