"""``local up --tls``: the local cluster as HTTPS, like real clusters, with clients that verify it."""

from __future__ import annotations

import io
import ssl
from pathlib import Path

import httpx
import pytest

from oscar_plugins import Dispatcher, OscarClient, service_from_dict
from oscar_plugins._auth import BasicCredentials
from oscar_plugins._profiles import ClusterProfile
from oscar_plugins.local import LocalCluster
from oscar_plugins.local.storage._tls import trust_env


def test_clients_verifying_the_generated_ca_work_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with LocalCluster(data_dir=tmp_path / "c", port=0, cpus=2, tls=True) as lc:
        ca = lc.info().ca
        assert ca is not None and lc.endpoint.startswith("https://") and lc.s3_endpoint.startswith("https://")
        with pytest.raises(httpx.ConnectError):  # not trusted by default: it is a real certificate check
            httpx.get(f"{lc.endpoint}/health", verify=ssl.create_default_context(), trust_env=False)
        for name, value in trust_env(ca).items():
            monkeypatch.setenv(name, value)
        profile = ClusterProfile("tls", lc.endpoint, BasicCredentials(lc.username, lc.password), ssl_verify=True)
        with OscarClient(profile) as client:
            assert client.config()["minio_provider"]["verify"] is True
            client.ensure_service(service_from_dict({"name": "tls-svc", "image": "alpine",
                                                     "script": 'tr a-z A-Z < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/up"',
                                                     "output": [{"path": "tls-svc/out"}]}))
            (tmp_path / "in.txt").write_text("secure")
            (result,) = Dispatcher(client).map("tls-svc", [[tmp_path / "in.txt"]], tmp_path / "out")
            assert result.ok and result.outputs[0].read_text() == "SECURE"  # staged, uploaded and collected
            assert client.run("tls-svc", b"sync").data == b"SYNC"
            from minio import Minio

            provider = client.config()["minio_provider"]
            minio = Minio(provider["endpoint"].split("://", 1)[1], provider["access_key"], provider["secret_key"],
                          secure=True, region=provider["region"])
            minio.put_object("tls-svc", "out/extra.txt", io.BytesIO(b"x"), 1)
            assert "out/extra.txt" in [o.object_name for o in minio.list_objects("tls-svc", "out/")]
