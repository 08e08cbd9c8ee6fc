"""Sentinel secrets through the main flows: never in CLI output, DEBUG logs, errors, reprs, or files the
local cluster writes outside its credential store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from oscar_plugins import Dispatcher, OscarClient, OscarError, service_from_dict
from oscar_plugins._auth import BasicCredentials
from oscar_plugins._profiles import ClusterProfile
from oscar_plugins.local import LocalCluster

SERVICE_SECRET = "SENTINEL-SERVICE-SECRET-4711"
PROVIDER_SECRET = "SENTINEL-PROVIDER-KEY-0815"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with LocalCluster(data_dir=tmp_path_factory.mktemp("secrets") / "data", port=0, cpus=1.0) as lc:
        yield lc


def _secrets(lc) -> list[str]:
    return [lc.password, lc.s3_secret_key, SERVICE_SECRET, PROVIDER_SECRET]


def test_no_secret_leaks(cluster, tmp_path):
    lc = cluster
    token_holder = OscarClient(ClusterProfile("s", lc.endpoint, BasicCredentials(lc.username, lc.password),
                                              ssl_verify=False))
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"oscar": {"s": {"endpoint": lc.endpoint, "auth_user": lc.username,
                                                   "auth_password": lc.password, "ssl_verify": False}},
                                   "default": "s"}))
    script = tmp_path / "echo.sh"
    script.write_text('cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/out"; echo "key length ${#API_KEY}"\n')
    fdl = tmp_path / "fdl.yaml"
    fdl.write_text(yaml.safe_dump({"functions": {"oscar": [{"s": {
        "name": "secretive", "image": "alpine", "script": "echo.sh",
        "environment": {"variables": {"MODE": "x"}, "secrets": {"API_KEY": SERVICE_SECRET}},
        "output": [{"storage_provider": "minio.default", "path": "secretive/out"}]}}]},
        "storage_providers": {"s3": {"aws": {"access_key": "AKIA", "secret_key": PROVIDER_SECRET,
                                             "region": "eu-west-1"}}}}))
    data = tmp_path / "in.txt"
    data.write_text("hello")
    env = {**os.environ, "OSCAR_CONFIG": str(cfg), "OSCAR_PLUGINS_STATE_DIR": str(tmp_path / "state")}
    transcript = []
    for args in (["service", "apply", str(fdl)], ["service", "get", "secretive"], ["service", "list"],
                 ["run", "secretive", str(data)], ["job", "secretive", str(data), "--wait", "-o", str(tmp_path / "o")],
                 ["logs", "secretive"], ["cluster", "show"], ["cluster", "list"],
                 ["--cluster", "s", "run", "no-such-service", str(data)]):
        out = subprocess.run([sys.executable, "-m", "oscar_plugins.cli", "-vv", *args], env=env, capture_output=True,
                             text=True, timeout=300)
        transcript.append(out.stdout + out.stderr)
    job = next(line.split()[0] for line in transcript[5].splitlines() if line.startswith("secretive-"))
    transcript.append(token_holder.job_log("secretive", job))
    # Errors and reprs.
    wrong = OscarClient(ClusterProfile("w", lc.endpoint, BasicCredentials("oscar", SERVICE_SECRET), ssl_verify=False))
    try:
        wrong.list_services()
    except OscarError as exc:
        transcript.append(str(exc) + repr(exc))
    svc = token_holder.get_service("secretive")
    transcript += [repr(token_holder), repr(token_holder.storage), repr(svc), str(svc), repr(token_holder.profile),
                   repr(lc), repr(lc.info())]
    text = "\n".join(transcript)
    assert "key length 28" in text  # the secret did reach the job, as a variable
    assert svc.environment.secrets["API_KEY"] == SERVICE_SECRET  # and the API still returns it to its owner
    for secret in _secrets(lc):
        assert secret not in text, f"a secret leaked: {secret[:10]}..."
    # Files the local cluster wrote, outside its credential store.
    leaks = []
    for path in Path(lc.data_dir).rglob("*"):
        if not path.is_file() or path.name == "credentials.json" or "secrets" in path.relative_to(lc.data_dir).parts:
            continue
        blob = path.read_bytes()
        leaks += [f"{path.relative_to(lc.data_dir)}" for s in _secrets(lc) if s.encode() in blob]
    assert not leaks, leaks
    secret_dir = Path(lc.data_dir) / "secrets"
    assert secret_dir.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in secret_dir.iterdir())


def test_job_cannot_see_another_services_secret(cluster, tmp_path):
    lc = cluster
    client = OscarClient(ClusterProfile("s", lc.endpoint, BasicCredentials(lc.username, lc.password),
                                        ssl_verify=False))
    client.ensure_service(service_from_dict({"name": "holder", "image": "alpine", "script": "true",
                                             "environment": {"secrets": {"API_KEY": SERVICE_SECRET}}}))
    client.ensure_service(service_from_dict({"name": "snoop", "image": "alpine", "script": "env",
                                             "output": [{"storage_provider": "minio.default", "path": "snoop/out"}]}))
    (res,) = Dispatcher(client).map("snoop", [[]], tmp_path / "o")
    assert res.ok
    log = client.job_log("snoop", res.job.name)
    assert "OSCAR_SERVICE_NAME=snoop" in log and SERVICE_SECRET not in log and lc.password not in log
