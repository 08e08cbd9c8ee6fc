"""Faults between the client and the cluster: every job completes, exactly once, with identical outputs."""

from __future__ import annotations

import hashlib
import os
from urllib.parse import urlparse

import pytest

from oscar_plugins import ChecksumMismatch, Dispatcher, JobSpec, JobState, OscarClient, service_from_dict
from oscar_plugins._profiles import ClusterProfile
from tests.reliability.faultproxy import FaultProxy, FaultRates

SCRIPT = ('sha256sum "$INPUT_FILE_PATH" | cut -d" " -f1 > "$TMP_OUTPUT_DIR/digest"; '
          'cat "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/copy"')
N_JOBS = int(os.environ.get("OSCAR_FAULT_JOBS", "120"))


def _service(name: str):
    return service_from_dict({"name": name, "image": "alpine", "script": SCRIPT, "cpu": "0.1", "memory": "64Mi",
                              "output": [{"storage_provider": "minio.default", "path": f"{name}/out"}]})


def test_jobs_through_faults_complete_exactly_once(profile, tmp_path):
    direct = OscarClient(profile)
    direct.ensure_service(_service("faults"))
    url = urlparse(profile.endpoint)
    rates = FaultRates(refuse=0.05, reset_before=0.05, reset_after=0.05, bad_gateway_after=0.05, stall=0.03,
                       truncate=0.05, stall_s=0.5)
    payloads = [f"payload {i} " * (1 + i % 7) for i in range(N_JOBS)]
    with FaultProxy(url.hostname, url.port, rates) as proxy:
        faulty = OscarClient(ClusterProfile("faulty", proxy.url, profile.credentials, ssl_verify=False), retries=10)
        results = Dispatcher(faulty).map("faults", [JobSpec(payload=p) for p in payloads], tmp_path / "out")
    print("faults injected:", dict(proxy.injected), "of", proxy.requests, "requests")
    failures = [str(r.error) for r in results if not r.ok]
    assert not failures, failures[:3]
    for kind in ("refuse", "reset_before", "reset_after", "bad_gateway_after", "truncate"):
        assert proxy.injected[kind] > 0, proxy.injected
    # Exactly once: the cluster's own records hold one job per payload, all succeeded.
    jobs = direct.list_jobs("faults")
    names = {r.job.name for r in results}
    assert len(names) == N_JOBS and names <= set(jobs) and len(jobs) == N_JOBS
    assert all(JobState.parse(jobs[n]["status"]) is JobState.SUCCEEDED for n in names)
    # Outputs byte-identical to a fault-free computation.
    for r in results:
        payload = payloads[r.index].encode()
        files = {p.name: p.read_bytes() for p in r.outputs}
        assert files["copy"] == payload
        assert files["digest"].decode().strip() == hashlib.sha256(payload).hexdigest()


def test_partial_download_never_replaces_a_good_file(client, tmp_path):
    client.ensure_service(_service("faults-dl"))
    good = tmp_path / "result.bin"
    good.write_bytes(b"the good result")
    st = client.storage
    st.client.put_object(Bucket="faults-dl", Key="out/x", Body=b"new bytes")
    with pytest.raises(ChecksumMismatch):
        st.download("faults-dl", "out/x", good, size=9, sha256="0" * 64, overwrite=True)
    assert good.read_bytes() == b"the good result"
    with pytest.raises(ChecksumMismatch):
        st.download("faults-dl", "out/x", good, size=10, overwrite=True)  # the job recorded another size
    assert good.read_bytes() == b"the good result"
    assert not [p for p in tmp_path.iterdir() if p.name != "result.bin"]  # no partial files left behind
    st.download("faults-dl", "out/x", good, size=9, sha256=hashlib.sha256(b"new bytes").hexdigest(), overwrite=True)
    assert good.read_bytes() == b"new bytes"


def test_inline_output_is_verified_before_use(client, tmp_path):
    client.ensure_service(_service("faults-dl"))
    st = client.storage
    st.client.put_object(Bucket="faults-dl", Key="out/y", Body=b"object")
    sha = hashlib.sha256(b"object").hexdigest()
    damaged = tmp_path / "damaged"
    st.download("faults-dl", "out/y", damaged, size=6, sha256=sha, inline=b"objekt")  # fails the check: GET
    assert damaged.read_bytes() == b"object"
    carried = tmp_path / "carried"  # a verified inline copy needs no GET (the stored object differs here)
    st.client.put_object(Bucket="faults-dl", Key="out/y", Body=b"OBJECT")
    st.download("faults-dl", "out/y", carried, size=6, sha256=sha, inline=b"object")
    assert carried.read_bytes() == b"object"


def test_signed_gets_and_presigned_urls_take_any_key(client):
    import subprocess

    client.ensure_service(_service("faults-dl"))
    st = client.storage
    for key in ["dir/a b+ü~(1).txt", "x=y&z;%41.txt", "a/../b", "./c", "d/."]:
        st.client.put_object(Bucket="faults-dl", Key=key, Body=key.encode())
        assert st.get_bytes("faults-dl", key) == key.encode()
        assert st._get("faults-dl", key, (0, 2)) == key.encode()[:3]  # a ranged GET, as large downloads use
        got = subprocess.run(["curl", "-sSf", "--path-as-is", st.presign_get("faults-dl", key)], capture_output=True)
        assert got.returncode == 0 and got.stdout == key.encode(), got.stderr
