"""Shared fixtures: one embedded local cluster (real HTTP + real S3 on loopback) for the session."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_ISOLATED = Path(tempfile.mkdtemp(prefix="oscar-plugins-tests-"))
#: faas-supervisor's source beside the repository (../shared), for OSCAR_PLUGINS_LOCAL_EXECUTION=supervisor.
SUPERVISOR = Path(__file__).resolve().parents[2] / "shared" / "faas-supervisor"
_SKIP_ALL: str | None = None


def _supervisor_problem() -> str | None:
    if not (SUPERVISOR / "faassupervisor" / "supervisor.py").is_file():
        return f"faas-supervisor is not at {SUPERVISOR} (../shared beside the repository)"
    import importlib.util

    for module in ("webdav3", "rucio"):
        if importlib.util.find_spec(module) is None:
            return f"faas-supervisor needs {module} (webdavclient3, rucio-clients: make install-all)"
    return None


def pytest_configure(config: pytest.Config) -> None:
    # Tests never read the developer's profiles, journal, caches or local cluster.
    for var in ("OSCAR_ENDPOINT", "OSCAR_USER", "OSCAR_PASSWORD", "OSCAR_TOKEN", "OSCAR_REFRESH_TOKEN",
                "OSCAR_CLUSTER", "OSCAR_OIDC_ACCOUNT"):
        os.environ.pop(var, None)
    os.environ["OSCAR_CONFIG"] = str(_ISOLATED / "oscar-cli" / "config.yaml")
    os.environ["OSCAR_PLUGINS_STATE_DIR"] = str(_ISOLATED / "state")
    os.environ["OSCAR_PLUGINS_CACHE_DIR"] = str(_ISOLATED / "cache")
    os.environ["OSCAR_PLUGINS_LOCAL_DIR"] = str(_ISOLATED / "local-default")
    if os.environ.get("OSCAR_PLUGINS_LOCAL_EXECUTION") == "supervisor":
        global _SKIP_ALL
        _SKIP_ALL = _supervisor_problem()
        os.environ.setdefault("OSCAR_PLUGINS_LOCAL_SUPERVISOR", str(SUPERVISOR))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _SKIP_ALL:
        for item in items:
            item.add_marker(pytest.mark.skip(reason=f"the supervisor execution cannot run: {_SKIP_ALL}"))


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from oscar_plugins.local import LocalCluster

    with LocalCluster(data_dir=tmp_path_factory.mktemp("cluster"), port=0, cpus=2.0) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def profile(local_cluster: object) -> object:
    from oscar_plugins._auth import BasicCredentials
    from oscar_plugins._profiles import ClusterProfile

    lc = local_cluster
    return ClusterProfile("local", lc.endpoint, BasicCredentials(lc.username, lc.password),  # type: ignore[attr-defined]
                          ssl_verify=False, source="test", local_data_dir=str(lc.data_dir))  # type: ignore[attr-defined]


@pytest.fixture()
def client(profile: object) -> Iterator[object]:
    from oscar_plugins import OscarClient

    with OscarClient(profile) as c:  # type: ignore[arg-type]
        yield c
