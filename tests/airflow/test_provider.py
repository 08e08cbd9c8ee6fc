"""Registration: the provider info validates against Airflow's schemas, and Airflow lists the provider."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import jsonschema
import pytest

from oscar_plugins.airflow.get_provider_info import get_provider_info


def _schema(name: str) -> dict:
    import airflow

    return json.loads((Path(airflow.__file__).parent / name).read_text())


def test_provider_info_passes_airflow_runtime_schema():
    info = get_provider_info()
    jsonschema.validate(info, _schema("provider_info.schema.json"))
    dist = metadata.distribution(info["package-name"])
    entry = [e for e in dist.entry_points if e.group == "apache_airflow_provider"]
    assert [e.value for e in entry] == ["oscar_plugins.airflow.get_provider_info:get_provider_info"]


def test_connection_type_passes_the_stricter_provider_yaml_schema():
    """provider.yaml's schema checks conn-fields and ui-field-behaviour in detail."""
    item_schema = _schema("provider.yaml.schema.json")["properties"]["connection-types"]["items"]
    for conn_type in get_provider_info()["connection-types"]:
        jsonschema.validate(conn_type, item_schema)
    fields = get_provider_info()["connection-types"][0]["conn-fields"]
    assert {"oidc_token", "refresh_token", "ssl_verify", "cluster_id", "local"} <= set(fields)
    assert fields["oidc_token"]["schema"]["format"] == "password"
    assert fields["refresh_token"]["schema"]["format"] == "password"


def test_every_class_and_module_named_imports():
    info = get_provider_info()
    modules = [m for key in ("hooks", "operators", "sensors", "triggers") for item in info[key]
               for m in item["python-modules"]]
    for module in modules:
        importlib.import_module(module)
    for dotted in [info["connection-types"][0]["hook-class-name"], *info["extra-links"]]:
        module, _, name = dotted.rpartition(".")
        assert getattr(importlib.import_module(module), name)


def test_providers_manager_sees_hook_form_and_link():
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    pm = ProvidersManager()
    assert "oscar-plugins" in pm.providers
    hook = ProvidersManagerTaskRuntime().hooks["oscar"]
    assert hook.hook_class_name == "oscar_plugins.airflow.hook.OscarHook"
    assert hook.connection_testable
    widgets = pm.connection_form_widgets
    assert widgets["extra__oscar__oidc_token"].is_sensitive
    assert widgets["extra__oscar__refresh_token"].is_sensitive
    assert pm.field_behaviours["oscar"]["relabeling"]["host"] == "Endpoint"
    assert "oscar_plugins.airflow.links.OscarJobLink" in pm.extra_links_class_names
    assert ("oscar-plugins", "oscar_plugins.airflow.triggers") in {(t.package_name, t.trigger_class_name)
                                                                   for t in pm.trigger}


@pytest.mark.usefixtures("airflow_db")
def test_airflow_providers_list_shows_it():
    airflow = str(Path(sys.executable).parent / "airflow")
    out = subprocess.run([airflow, "providers", "list", "-o", "json"], capture_output=True, text=True, timeout=120,
                         env=os.environ.copy())
    assert out.returncode == 0, out.stderr[-2000:]
    listed = {p["package_name"]: p for p in json.loads(out.stdout)}
    assert listed["oscar-plugins"]["version"] == metadata.version("oscar-plugins")
