"""Fixtures for the embedded local cluster: a real server over loopback, real HTTP and S3 clients."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from oscar_plugins.local import LocalCluster
from tests.local.local_helpers import Api


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(data_dir=tmp_path_factory.mktemp("local-cluster"), port=0, cpus=2, memory=4 << 30) as lc:
        yield lc


@pytest.fixture(scope="session")
def api(cluster: LocalCluster) -> Iterator[Api]:
    helper = Api(cluster)
    yield helper
    helper.close()
