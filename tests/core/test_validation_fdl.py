"""The FDL model and loader: all services, global providers, scripts relative to the file, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from oscar_plugins import FDLError, Service, load_fdl, service_from_dict
from oscar_plugins._fdl import SPEC_HASH_ANNOTATION
from oscar_plugins._validation import parse_cpu, parse_memory, service_name_problem


@pytest.mark.parametrize("text,cores", [("0.5", 0.5), ("500m", 0.5), ("2", 2.0), (1, 1.0), (".25", 0.25)])
def test_parse_cpu(text, cores):
    assert parse_cpu(text) == pytest.approx(cores)


@pytest.mark.parametrize("text", ["", "-1", "abc", "1.5x", "0"])
def test_parse_cpu_rejects(text):
    with pytest.raises(ValueError, match="cpu"):
        parse_cpu(text)


@pytest.mark.parametrize("text,size", [("256Mi", 256 * 2**20), ("1Gi", 2**30), ("500M", 500 * 10**6), (1024, 1024)])
def test_parse_memory(text, size):
    assert parse_memory(text) == size


def test_service_names():
    assert service_name_problem("ok-name-1") is None
    assert "39" in service_name_problem("a" * 40)
    assert "DNS-1123" in service_name_problem("Bad_Name")
    assert "missing" in service_name_problem("")


FDL_TEXT = """
functions:
  oscar:
  - cluster-a:
      name: svc-one
      image: ghcr.io/grycap/cowsay
      script: scripts/one.sh
      input: [{storage_provider: minio.default, path: svc-one/in}]
      output: [{storage_provider: minio.default, path: svc-one/out}]
      future_field: {kept: true}
  - cluster-b:
      name: svc-two
      image: alpine
      script: scripts/two.sh
      cpu: '1.0'
      memory: 1Gi
      storage_providers:
        minio: {own: {endpoint: 'http://own:9000', access_key: a, secret_key: b}}
storage_providers:
  minio: {shared: {endpoint: 'https://minio.example.org', access_key: k, secret_key: s}}
  webdav: {dcache: {hostname: dcache.example.org, login: u, password: p}}
clusters:
  cluster-b: {endpoint: 'https://b.example.org', auth_user: oscar, auth_password: pw, ssl_verify: false}
"""


def _write_fdl(tmp_path: Path, text: str = FDL_TEXT) -> Path:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "one.sh").write_text("echo one\n")
    (tmp_path / "scripts" / "two.sh").write_text("echo two\n")
    path = tmp_path / "fdl.yaml"
    path.write_text(text)
    return path


def test_load_fdl_all_services_and_globals(tmp_path, monkeypatch):
    path = _write_fdl(tmp_path)
    monkeypatch.chdir("/")  # scripts are relative to the FDL file, not the working directory
    fdl = load_fdl(path)
    assert [(s.cluster_id, s.service.name) for s in fdl.services] == [("cluster-a", "svc-one"),
                                                                       ("cluster-b", "svc-two")]
    one, two = (s.service for s in fdl.services)
    assert one.script == "echo one\n" and two.script == "echo two\n"
    assert set(one.storage_providers.minio) == {"shared"}
    assert set(two.storage_providers.minio) == {"shared", "own"}  # merged, the service's own kept
    assert one.storage_providers.webdav["dcache"].hostname == "dcache.example.org"
    assert fdl.clusters["cluster-b"].ssl_verify is False
    assert one.api_dict()["future_field"] == {"kept": True}  # unknown fields are sent on
    assert fdl.for_cluster("cluster-b") == [two]


def test_secrets_hidden_in_repr(tmp_path):
    text = FDL_TEXT.replace("auth_password: pw", "auth_password: SENTINEL-PW-1").replace(
        "secret_key: s}", "secret_key: SENTINEL-SK-2}").replace("password: p}", "password: SENTINEL-DAV-3}")
    fdl = load_fdl(_write_fdl(tmp_path, text))
    assert fdl.services[1].service.clusters["cluster-b"].auth_password == "SENTINEL-PW-1"
    shown = repr(fdl) + str(fdl)
    assert "SENTINEL" not in shown


@pytest.mark.parametrize("mutate,field,words", [
    (lambda t: t.replace("name: svc-one", "name: Svc_One"), "name", "DNS-1123"),
    (lambda t: t.replace("name: svc-one", "name: " + "a" * 40), "name", "at most 39"),
    (lambda t: t.replace("memory: 1Gi", "memory: lots"), "memory", "256Mi"),
    (lambda t: t.replace("      image: alpine\n", ""), "image", "missing"),
    (lambda t: t.replace("scripts/one.sh", "scripts/none.sh"), "script", "not found"),
])
def test_invalid_fdl_names_file_service_and_field(tmp_path, mutate, field, words):
    path = _write_fdl(tmp_path, mutate(FDL_TEXT))
    with pytest.raises(FDLError) as err:
        load_fdl(path)
    message = str(err.value)
    assert str(path) in message and field in message and words in message


def test_malformed_fdl(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("functions: [unclosed")
    with pytest.raises(FDLError, match="not valid YAML"):
        load_fdl(bad)
    bad.write_text("services: []")
    with pytest.raises(FDLError, match="functions"):
        load_fdl(bad)
    with pytest.raises(FDLError, match="does not exist"):
        load_fdl(tmp_path / "missing.yaml")


def test_spec_hash_ignores_token_and_server_fields():
    svc = service_from_dict({"name": "a1", "image": "alpine", "script": "true"})
    same = svc.model_copy(update={"token": "x" * 64})
    other = svc.model_copy(update={"cpu": "1"})
    assert svc.spec_hash() == same.spec_hash() != other.spec_hash()
    assert svc.with_spec_hash().annotations[SPEC_HASH_ANNOTATION] == svc.spec_hash()
    assert svc.with_spec_hash().spec_hash() == svc.spec_hash()


def test_service_defaults_match_oscar():
    svc = Service(name="x1", image="alpine", script="true")
    assert (svc.cpu, svc.memory) == ("0.2", "256Mi")
