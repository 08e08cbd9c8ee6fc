"""Fidelity evidence: the official client, oscar-python 2.2.0, works against the embedded local cluster."""

from __future__ import annotations

import base64
import json
import time

import pytest

oscar_python = pytest.importorskip("oscar_python.client")


def test_oscar_python_lists_creates_runs_uploads_and_lists_jobs(local_cluster, tmp_path):
    lc = local_cluster
    client = oscar_python.Client({"cluster_id": "local", "endpoint": lc.endpoint, "user": lc.username,
                                  "password": lc.password, "ssl": "False"})
    assert client.health_check().status_code == 200
    assert client.get_cluster_info().json()["version"].startswith("4.")
    before = client.list_services()
    assert before.status_code == 200 and isinstance(before.json(), list)

    script = tmp_path / "script.sh"
    script.write_text('tr a-z A-Z < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/$(basename "$INPUT_FILE_PATH").up"\n')
    fdl = tmp_path / "fdl.yaml"
    fdl.write_text(
        "functions:\n  oscar:\n  - local:\n      name: official-upper\n      image: alpine\n"
        "      script: script.sh\n      cpu: 0.2\n      log_level: CRITICAL\n"
        "      input: [{storage_provider: minio.default, path: official-upper/in}]\n"
        "      output: [{storage_provider: minio.default, path: official-upper/out}]\n")
    assert client.create_service(str(fdl)).status_code == 201
    assert "official-upper" in [s["name"] for s in client.list_services().json()]

    # Synchronous run: oscar-python base64-encodes the input and returns the raw response.
    text_in = tmp_path / "words.txt"
    text_in.write_text("hello oscar")
    response = client.run_service("official-upper", input=str(text_in), timeout=120)
    assert response.status_code == 200
    assert base64.b64decode(response.text) == b"HELLO OSCAR"

    # Upload to the input bucket (the canonical OSCAR path): one job starts; list it and its output.
    storage = client.create_storage_client("official-upper")
    storage.upload_file("minio.default", str(text_in), "official-upper/in")
    deadline = time.monotonic() + 60
    jobs: dict = {}
    while time.monotonic() < deadline:
        jobs = json.loads(client.list_jobs("official-upper").text)["jobs"]
        if jobs and all(j["status"] == "Succeeded" for j in jobs.values()):
            break
        time.sleep(0.5)
    assert len(jobs) == 1 and next(iter(jobs.values()))["status"] == "Succeeded"
    listing = storage.list_files_from_path("minio.default", "official-upper/out/")
    assert "out/words.txt.up" in [o["Key"] for o in listing["Contents"]]
    job = next(iter(jobs))
    assert client.get_job_logs("official-upper", job).status_code == 200
    assert client.remove_service("official-upper").status_code == 204
