"""Airflow fixtures: an isolated AIRFLOW_HOME with SQLite, migrated once, and connections to the local cluster.

Airflow reads its configuration when first imported, so the environment is set here, at import time
of this conftest, before any test module of this folder imports Airflow. ``dag.test()`` in Airflow
3.3.2 needs the DAGs in the DAGS_FOLDER (``tests/airflow/dags``): DAGs defined inside a test function
are "not serialized".
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
DAGS = HERE / "dags"
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="oscar-airflow-home-"))
atexit.register(shutil.rmtree, AIRFLOW_HOME, ignore_errors=True)
#: A password no real run uses: it must never reach a log.
SENTINEL_PASSWORD = "s3ntinel-Pa55w0rd-9f81c2"

os.environ.update({
    "AIRFLOW_HOME": str(AIRFLOW_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME}/airflow.db",
    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "False",
})


def conn_json(**fields: Any) -> str:
    return json.dumps({"conn_type": "oscar", **fields})


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """``airflow db migrate`` once per session (a few seconds on SQLite)."""
    proc = subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], capture_output=True,
                          text=True, timeout=300, env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return AIRFLOW_HOME


@pytest.fixture(scope="session")
def oscar_connections(local_cluster: Any, airflow_db: Path) -> Iterator[dict[str, str]]:
    """AIRFLOW_CONN_* for the local cluster, plus deliberately broken ones for the error tests."""
    lc = local_cluster
    conns = {
        "AIRFLOW_CONN_OSCAR_DEFAULT": conn_json(host=lc.endpoint, login=lc.username, password=lc.password,
                                                extra={"ssl_verify": False}),
        "AIRFLOW_CONN_OSCAR_NO_ENDPOINT": conn_json(login="oscar", password=SENTINEL_PASSWORD),
        "AIRFLOW_CONN_OSCAR_NO_PASSWORD": conn_json(host=lc.endpoint, login=lc.username),
        "AIRFLOW_CONN_OSCAR_BAD_PASSWORD": conn_json(host=lc.endpoint, login=lc.username,
                                                     password=SENTINEL_PASSWORD, extra={"ssl_verify": "false"}),
    }
    os.environ.update(conns)
    yield conns
    for key in conns:
        os.environ.pop(key, None)


@pytest.fixture(scope="session")
def oscar_client(local_cluster: Any) -> Iterator[Any]:
    from oscar_plugins import ClusterProfile, OscarClient
    from oscar_plugins._auth import BasicCredentials

    lc = local_cluster
    profile = ClusterProfile("local", lc.endpoint, BasicCredentials(lc.username, lc.password), ssl_verify=False)
    with OscarClient(profile) as client:
        yield client


@pytest.fixture(scope="session")
def dagbag(oscar_connections: dict[str, str]) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    return bag


def run_dag(dagbag: Any, dag_id: str, conf: dict[str, Any], **kwargs: Any) -> Any:
    """``dag.test()``; returns the finished DagRun (its task instances are in the database)."""
    dag = dagbag.get_dag(dag_id)
    assert dag is not None, f"{dag_id} not in {sorted(dagbag.dag_ids)}"
    return dag.test(run_conf=conf, **kwargs)


def task_states(dr: Any) -> dict[str, tuple[str, int]]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: (str(ti.state), ti.try_number) for ti in dr.get_task_instances(session=session)}


def xcom(dr: Any, task_id: str, key: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(XComModel.get_many(run_id=dr.run_id, dag_ids=dr.dag_id, task_ids=task_id,
                                                  key=key)).all()
        assert len(rows) == 1, (task_id, key, rows)
        return XComModel.deserialize_value(rows[0])
