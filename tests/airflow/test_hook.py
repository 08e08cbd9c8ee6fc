"""OscarHook against the local cluster: connections from JSON and URI, the Test button, cancelling."""

from __future__ import annotations

import os
import time
from urllib.parse import quote

import pytest

from oscar_plugins.airflow.hook import OscarHook

from .conftest import SENTINEL_PASSWORD


@pytest.fixture()
def uri_connection(local_cluster, oscar_connections):
    host, port = local_cluster.endpoint.removeprefix("http://").split(":")
    os.environ["AIRFLOW_CONN_OSCAR_URI"] = (f"oscar://{local_cluster.username}:{quote(local_cluster.password, safe='')}"
                                            f"@{host}:{port}/http?ssl_verify=false")
    yield "oscar_uri"
    os.environ.pop("AIRFLOW_CONN_OSCAR_URI")


def test_test_connection_button(uri_connection):
    for conn_id in ("oscar_default", uri_connection):
        ok, message = OscarHook(conn_id).test_connection()
        assert ok, message
        assert message.startswith("Connected to OSCAR")
    ok, message = OscarHook("oscar_bad_password").test_connection()
    assert not ok and "401" in message and "'oscar_bad_password'" in message
    assert SENTINEL_PASSWORD not in message


def test_operator_on_kill_cancels_the_jobs_it_waits_for(oscar_client, oscar_connections):
    from oscar_plugins.airflow.operators import OscarSubmitJobOperator

    oscar_client.ensure_service({"name": "af-killme", "image": "alpine", "script": "sleep 30",
                                 "output": [{"path": "af-killme/out"}]})
    name = oscar_client.submit_job("af-killme", b"", name=f"af-killme-{int(time.time())}")
    op = OscarSubmitJobOperator(task_id="t", service_name="af-killme")
    op._inflight = ("af-killme", [name])  # what poll_until_complete records while it waits
    op.on_kill()
    assert name not in oscar_client.list_jobs("af-killme")
