"""Users' real FDL files: every trait of OSCAR v4.1.2's examples/ loads as oscar-cli and OSCAR read it, or
fails with one line naming the file, the service, the field and the fix; ``service apply`` sends each service
where its cluster id says.

The fixtures in ``data/fdl`` are our own small files, one per trait found in OSCAR's examples (see
``test_oscar_examples`` for the examples themselves, a developer check that runs only where they are).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from oscar_plugins import FDLError, load_fdl
from oscar_plugins._fdl_read import parse_yaml

DATA = Path(__file__).parent / "data" / "fdl"
SCRIPT = (DATA / "script.sh").read_text()
#: OSCAR's examples/ at v4.1.2 (third-party, not in the repository); OSCAR_EXAMPLES_DIR overrides.
EXAMPLES = Path(os.environ.get("OSCAR_EXAMPLES_DIR", "/work/facts/oscar-examples/examples"))


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from an empty directory: scripts are found beside the FDL file, not by chance in the cwd."""
    monkeypatch.chdir(tmp_path)


def _error(path: Path) -> str:
    with pytest.raises(FDLError) as err:
        load_fdl(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    return message


# -- each trait of the examples, on our own fixtures ------------------------------------------------------
def test_crlf_and_tabs_after_values_load_as_oscar_cli_reads_them():
    raw = (DATA / "crlf_tabs.yaml").read_bytes()
    assert b"INFO\t\t\r\n" in raw and b"alpine\t# a comment" in raw and not raw.endswith(b"\n")  # the trait is there
    with pytest.raises(yaml.scanner.ScannerError, match="cannot start any token"):
        yaml.safe_load(raw.decode())  # PyYAML's pure loader refuses it; goccy and libyaml do not
    (item,) = load_fdl(DATA / "crlf_tabs.yaml").services
    svc = item.service
    assert (item.cluster_id, svc.name, svc.image, svc.log_level) == ("oscar-cluster", "crlf-tabs", "alpine", "INFO")
    assert svc.script == SCRIPT and svc.allowed_users == [] and svc.output[0].path == "crlf-tabs/out"


@pytest.mark.parametrize("text", [
    "name: foo\t\n",
    "name: foo\t\t\r\nimage: bar\r\n",
    "name: 'foo'\t# comment\n",
    "ports: [1, 2]\t\n",
    "a: 1\n  \t\nb: 2\n",
    "script: |\t\n  echo a\t\n  echo b\n",
    "script: |\n  keep\t\t\n  this\t# too\nname: x\t\n",
    "a:\n  - x\t\n  - y\t\t\n",
])
def test_tab_tolerance_matches_libyaml(text):
    if not hasattr(yaml, "CSafeLoader"):
        pytest.skip("PyYAML is built without libyaml here")
    assert parse_yaml(text, "t.yaml")[0] == yaml.load(text, Loader=yaml.CSafeLoader)


def test_block_text_keeps_its_tabs():
    svc = load_fdl(DATA / "block_script_tabs.yaml").services[0].service
    assert svc.script == "echo one\t\nprintf 'a\\tb'\t\t# stays\n\necho two\n"
    assert (svc.name, svc.image, svc.environment.variables) == ("block-tabs", "alpine", {"K": "v"})


def test_leading_blank_line_and_no_final_newline():
    raw = (DATA / "layout.yaml").read_bytes()
    assert raw.startswith(b"\n") and raw.endswith(b"   ")
    svc = load_fdl(DATA / "layout.yaml").services[0].service
    assert (svc.name, svc.script) == ("layout", SCRIPT)


def test_variables_in_any_case_and_values_as_written():
    svc = load_fdl(DATA / "env_scalars.yaml").services[0].service
    assert svc.environment.variables == {"SEND_SNS": "false", "RETRIES": "3", "RATE": "1.0", "MODE": "0755",
                                         "AT": "12:30", "EMPTY": "", "NAME": "later-wins"}
    assert svc.environment.secrets == {"API_KEY": "12345"}
    assert svc.annotations == {"example.org/enabled": "true"} and svc.cpu == "1.0"
    body = svc.api_dict()
    assert set(body["environment"]) == {"variables", "secrets"}  # no 'Variables' nor 'VARIABLES' sent as extras
    assert body["environment"]["variables"]["SEND_SNS"] == "false"


def test_fields_of_oscar_v4_are_kept():
    svc = load_fdl(DATA / "v4_fields.yaml").services[0].service
    body = svc.api_dict(version=(4, 1, 2))
    assert body["volume"] == {"size": "1Gi", "mount_path": "/data"}
    assert body["kserve"]["type"] == "llm_inference" and body["file_stage_in"] is False
    assert body["expose"]["api_port"] == [5000] and body["expose"]["health_path"] == "/"
    assert body["federation"]["members"][0]["cluster_id"] == "oscar-edge"  # v4.1 moved 'replicas' there
    assert body["mount"] == {"storage_provider": "minio.default", "path": "v4-fields/shared", "prefix": [],
                             "suffix": []}
    assert svc.environment.secrets == {"TOKEN_FOR_APP": "s3cr3t-value"}
    assert svc.environment.variables == {"MODE": "lowercase-key"}
    assert svc.api_dict(version=(3, 6, 0))["expose"]["api_port"] == 5000


def test_placeholder_vo_names_the_field_and_the_fix():
    message = _error(DATA / "placeholder_vo.yaml")
    assert "service 'placeholder-vo'" in message and "replace it with a value" in message
    assert "field 'vo' is the template placeholder [vo of the cluster]" in message


def test_placeholder_env_values_are_all_named_in_one_line():
    message = _error(DATA / "placeholder_env.yaml")
    for shown in ("'environment.variables.CLOUD_KEY_ID' ([cloud_key_id])",
                  "'environment.variables.CLOUD_SECRET' ([cloud_secret])", "'environment.variables.TOPIC' ([topic])"):
        assert shown in message
    assert "are template placeholders" in message and "replace each with a value" in message
    assert "NOTIFY" not in message and "OUTPUT_FORMAT" not in message  # a boolean is a value, not a placeholder


@pytest.mark.parametrize("name,service", [("no_script.yaml", "no-script"),
                                          ("kserve_no_script.yaml", "kserve-no-script")])
def test_a_service_without_script_is_an_incomplete_fdl(name, service):
    message = _error(DATA / name)
    assert f"service {service!r}" in message and "field 'script' is missing" in message
    assert "OSCAR requires a script" in message and "script.sh is beside it" in message


def test_missing_script_names_both_places_looked_in(tmp_path):
    message = _error(DATA / "missing_script.yaml")
    assert "service 'missing-script'" in message and "field 'script'" in message and "not found" in message
    assert str(DATA / "task.sh") in message and str(tmp_path / "task.sh") in message


def test_template_entries_nobody_uses_are_left_out(caplog):
    with caplog.at_level(logging.WARNING):
        fdl = load_fdl(DATA / "template_unused.yaml")
    (item,) = fdl.services
    assert item.cluster_id == "oscar-eu" and fdl.clusters == {}
    assert fdl.incomplete_clusters == {"oscar-us": ("endpoint", "auth_user", "auth_password")}
    assert "oscar-us" not in (item.service.storage_providers.minio if item.service.storage_providers else {})
    assert "storage_providers.minio.oscar-us, clusters.oscar-us have empty values" in caplog.text
    assert fdl.cluster_for("oscar-eu", "templated") is None


def test_template_provider_in_use_is_named():
    message = _error(DATA / "template_used_provider.yaml")
    assert "output uses storage provider 'minio.oscar-us'" in message
    assert "storage_providers.minio.oscar-us endpoint, access_key, secret_key are empty" in message


def test_template_cluster_is_an_error_only_where_a_service_goes():
    fdl = load_fdl(DATA / "template_used_cluster.yaml")
    with pytest.raises(FDLError) as err:
        fdl.cluster_for("oscar-us", "templated")
    message = str(err.value)
    assert "service 'templated' goes to cluster 'oscar-us'" in message
    assert "endpoint, auth_user, auth_password are empty" in message and "-c NAME" in message


def test_every_fixture_is_tested():
    names = {p.name for p in DATA.glob("*.yaml")}
    source = Path(__file__).read_text()
    assert names and all(f'"{name}"' in source for name in names), names


# -- script: beside the FDL file, else in the working directory -------------------------------------------
FDL = "functions:\n  oscar:\n  - c1:\n      name: scripted\n      image: alpine\n      script: run.sh\n"


def _fdl_in(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fdl.yaml").write_text(FDL)
    return folder / "fdl.yaml"


def test_script_from_the_working_directory_when_not_beside(tmp_path):
    path = _fdl_in(tmp_path / "example")
    (tmp_path / "run.sh").write_text("echo from cwd\n")  # the cwd is tmp_path: oscar-cli < 1.12 read it here
    assert load_fdl(path).services[0].service.script == "echo from cwd\n"


def test_script_beside_the_fdl_wins_with_one_warning(tmp_path, caplog):
    path = _fdl_in(tmp_path / "example2")
    (path.parent / "run.sh").write_text("echo beside\n")
    (tmp_path / "run.sh").write_text("echo from cwd\n")
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            assert load_fdl(path).services[0].service.script == "echo beside\n"
    (record,) = [r for r in caplog.records if "run.sh" in r.getMessage()]
    message = record.getMessage()
    assert str(path.parent / "run.sh") in message and str(tmp_path / "run.sh") in message
    assert message.endswith(f"using {path.parent / 'run.sh'}")


def test_same_script_in_both_places_is_no_warning(tmp_path, caplog):
    path = _fdl_in(tmp_path / "example3")
    for folder in (path.parent, tmp_path):
        (folder / "run.sh").write_text("echo same\n")
    with caplog.at_level(logging.WARNING):
        assert load_fdl(path).services[0].service.script == "echo same\n"
    assert "run.sh" not in caplog.text


# -- YAML errors: exactly where and why ---------------------------------------------------------------------
@pytest.mark.parametrize("text,where,words", [
    ("functions:\n  oscar: [1,\t2]\n", "line 2, column 13", "replace it with spaces"),
    ("functions:\n  oscar:\n  - c1:\n      name:\tfoo\n", "line 4, column 12", "replace it with spaces"),
    ("functions:\n  oscar:\n  - c1:\n      name: a: b\n", "line 4, column 14", "quote the value"),
    ("functions:\n  oscar:\n    - c1: {}\n   bad: 1\n", "line 4, column 4", "fix the indentation"),
    ("functions: [unclosed", "line 1, column 21", "close the quote or bracket"),
])
def test_yaml_errors_say_where_and_what_to_change(tmp_path, text, where, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    message = _error(path)
    assert "not valid YAML at " + where in message and words in message, message


def test_several_cluster_ids_in_one_item(tmp_path):
    (tmp_path / "two.yaml").write_text("functions:\n  oscar:\n  - a: {name: s-a, image: alpine, script: 'true'}\n"
                                       "    b: {name: s-b, image: alpine, script: 'true'}\n")
    fdl = load_fdl(tmp_path / "two.yaml")
    assert [(s.cluster_id, s.service.name) for s in fdl.services] == [("a", "s-a"), ("b", "s-b")]


# -- the 41 FDL files of OSCAR v4.1.2's examples/ (developer check, not in CI) -----------------------------
#: file -> None (loads) or words its error must hold (the template placeholder or the script problem).
EXPECTED: dict[str, tuple[str, ...] | None] = {
    "dog-breed-detector/dog-breed.yaml": ("field 'vo' is the template placeholder [vo of the cluster]",),
    "fire-detection/fire_detection.yaml": ("'environment.variables.AWS_ACCESS_KEY_ID' ([aws_access_key_id])",
                                           "'environment.variables.TOPIC_ARN' ([topic_arn])"),
    "fire-detection/fire_detection_replicas.yaml": (
        "'environment.variables.AWS_ACCESS_KEY_ID' ([aws_access_key_id])",),
    "fish-detector-replicas/fish-us.yaml": ("output uses storage provider 'minio.oscar-eu'",
                                            "storage_providers.minio.oscar-eu endpoint, access_key, secret_key"),
    "kserve-llmisvc-qwen2-5/fdl.yaml": ("field 'script' is missing: OSCAR requires a script",),
    "rucio/rucio-service.yaml": ("field 'script' is missing: OSCAR requires a script", "script.sh is beside it"),
    "thermal-detector-interlink/thermal-detector-interlink.yaml": (
        "file 'script.sh' not found beside the FDL file", "nor in the current directory",
        "script-interlink.sh is beside it"),
}


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason=f"OSCAR's examples are not at {EXAMPLES} (set OSCAR_EXAMPLES_DIR)")
def test_oscar_examples(capsys):
    files = sorted(p for p in EXAMPLES.rglob("*.y*ml") if "functions:" in p.read_text(errors="replace"))
    rows, wrong = [], []
    for path in files:
        rel = path.relative_to(EXAMPLES).as_posix()
        try:
            fdl = load_fdl(path)
            outcome, ok = f"loads: {', '.join(s.service.name for s in fdl.services)}", EXPECTED.get(rel) is None
        except FDLError as exc:
            message = str(exc)
            outcome = "error: " + message.split("): ", 1)[-1]
            one_line = "\n" not in message or " services have problems:\n" in message  # then one line each
            ok = one_line and all(w in message for w in EXPECTED.get(rel) or ("(never)",))
        rows.append(f"| {rel} | {outcome} |")
        if not ok:
            wrong.append(rel)
    with capsys.disabled():
        print("\n| FDL (examples/) | outcome |\n|---|---|\n" + "\n".join(rows))
    assert len(files) == 41 and not wrong, wrong


# -- service apply: each service where its cluster id says ------------------------------------------------
def _cli(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "oscar_plugins.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def _name(tag: str) -> str:
    return f"apply-{tag}-{uuid.uuid4().hex[:6]}"


def _write(tmp_path: Path, services: list[tuple[str, str]], extra: str = "") -> Path:
    """An FDL of (cluster id, service name) items with the script beside it."""
    (tmp_path / "job.sh").write_text("echo ok\n")
    items = "".join(f"  - {cid}:\n      name: {name}\n      image: alpine\n      script: job.sh\n"
                    for cid, name in services)
    path = tmp_path / "fdl.yaml"
    path.write_text("functions:\n  oscar:\n" + items + extra)
    return path


@pytest.fixture()
def profiles(local_cluster, tmp_path):
    """An oscar-cli profile file: 'oscar-cluster' is the session's local cluster; the default profile
    'elsewhere' points nowhere, so a service that reaches the cluster went by its id."""
    lc = local_cluster
    here = {"endpoint": lc.endpoint, "auth_user": lc.username, "auth_password": lc.password, "ssl_verify": False}
    nowhere = {"endpoint": "http://127.0.0.1:9", "auth_user": "x", "auth_password": "y"}
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"oscar": {"oscar-cluster": here, "elsewhere": nowhere, "mine": here},
                                   "default": "elsewhere"}))
    return {**os.environ, "OSCAR_CONFIG": str(cfg)}


def _exists(client, name: str) -> bool:
    return name in {s.name for s in client.list_services()}


def test_apply_goes_to_the_profile_named_by_the_cluster_id(profiles, tmp_path, client):
    name = _name("byid")
    out = _cli(profiles, "service", "apply", str(_write(tmp_path, [("oscar-cluster", name)])))
    assert out.returncode == 0, out.stderr
    assert f"service {name} ready on oscar-cluster" in out.stdout and _exists(client, name)


def test_apply_default_cluster_is_the_default_profile(profiles, tmp_path, client):
    cfg = Path(profiles["OSCAR_CONFIG"])
    cfg.write_text(cfg.read_text().replace("default: elsewhere", "default: mine"))
    name = _name("default")
    out = _cli(profiles, "service", "apply", str(_write(tmp_path, [("default-cluster", name)])))
    assert out.returncode == 0, out.stderr
    assert "ready on mine" in out.stdout and _exists(client, name)


def test_apply_dash_c_sends_every_service_there(profiles, tmp_path, client):
    one, two = _name("c1"), _name("c2")
    path = _write(tmp_path, [("oscar-eu", one), ("oscar-us", two)])
    out = _cli(profiles, "service", "apply", str(path), "-c", "oscar-cluster")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("ready on oscar-cluster") == 2 and _exists(client, one) and _exists(client, two)


def test_apply_unknown_cluster_id_names_the_fix_and_deploys_nothing(profiles, tmp_path, client):
    first = _name("first")
    path = _write(tmp_path, [("oscar-cluster", first), ("oscar-hpc", _name("hpc"))])
    out = _cli(profiles, "service", "apply", str(path))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("oscar-plugins: error:") and str(path) in line and "'oscar-hpc'" in line
    for fix in ("-c local", "-c elsewhere", "-c mine", "-c oscar-cluster", "oscar-plugins cluster add oscar-hpc"):
        assert fix in line
    assert not _exists(client, first)  # every target is checked before the first deploy


def test_apply_with_the_fdl_own_clusters_section(local_cluster, tmp_path, client):
    lc = local_cluster
    name = _name("own")
    extra = (f"clusters:\n  site-a:\n    endpoint: {lc.endpoint}\n    auth_user: {lc.username}\n"
             f"    auth_password: {lc.password}\n    ssl_verify: false\n")
    env = {**os.environ, "OSCAR_CONFIG": str(tmp_path / "none.yaml")}
    out = _cli(env, "service", "apply", str(_write(tmp_path, [("site-a", name)], extra)))
    assert out.returncode == 0, out.stderr
    assert "ready on site-a" in out.stdout and "embedded" not in out.stderr and _exists(client, name)


def test_apply_to_a_template_cluster_names_its_empty_fields(profiles, tmp_path):
    extra = "clusters:\n  oscar-cluster:\n    endpoint:\n    auth_user:\n    auth_password:\n"
    out = _cli(profiles, "service", "apply", str(_write(tmp_path, [("oscar-cluster", _name("tpl"))], extra)))
    assert out.returncode == 1
    (line,) = out.stderr.strip().splitlines()
    assert "clusters.oscar-cluster endpoint, auth_user, auth_password are empty" in line


def test_apply_unknown_id_goes_to_the_environment_cluster(local_cluster, tmp_path, client):
    lc = local_cluster
    env = {**os.environ, "OSCAR_CONFIG": str(tmp_path / "none.yaml"), "OSCAR_ENDPOINT": lc.endpoint,
           "OSCAR_USER": lc.username, "OSCAR_PASSWORD": lc.password, "OSCAR_SSL_VERIFY": "false"}
    name = _name("env")
    out = _cli(env, "service", "apply", str(_write(tmp_path, [("oscar-cluster", name)])))
    assert out.returncode == 0, out.stderr
    assert "cluster 'oscar-cluster' is not a profile: deploying to 'env'" in out.stderr and _exists(client, name)


def test_apply_with_nothing_configured_uses_the_embedded_cluster(tmp_path):
    from oscar_plugins.local import down

    local_dir = tmp_path / "local"
    env = {**os.environ, "OSCAR_CONFIG": str(tmp_path / "none.yaml"), "OSCAR_PLUGINS_LOCAL_DIR": str(local_dir)}
    name = _name("local")
    try:
        out = _cli(env, "service", "apply", str(_write(tmp_path, [("oscar-cluster", name)])))
        assert out.returncode == 0, out.stderr
        assert out.stderr.strip().splitlines() == [
            "oscar-plugins: cluster 'oscar-cluster' is not configured: deploying to the embedded local cluster; "
            "use -c NAME to choose"]
        assert f"service {name} ready on local" in out.stdout
        listed = _cli(env, "-q", "-c", "local", "service", "list")
        assert listed.returncode == 0 and name in listed.stdout
    finally:
        down(local_dir)


def test_a_parsed_dict_gets_yaml_spellings():
    fdl = load_fdl({"functions": {"oscar": [{"c1": {"name": "from-dict", "image": "alpine", "script": "true",
                                                     "environment": {"Variables": {"ON": True, "N": 2}}}}]}})
    assert fdl.services[0].service.environment.variables == {"ON": "true", "N": "2"}
