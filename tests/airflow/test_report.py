"""OscarRunReportOperator: a real DAG run (``dag.test()``) on the local cluster, its timeline and its RO-Crate."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from .conftest import run_dag, task_states, xcom

pytestmark = pytest.mark.usefixtures("oscar_connections")
NAMESPACE = "https://oscar-plugins.readthedocs.io/cwl#"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ids(value):
    """Entity ids (ro-crate-py gives an id it has no entity for as the string)."""
    return [getattr(v, "id", v) for v in (value if isinstance(value, list) else [value])]


def test_a_dag_run_writes_its_timeline_png_and_crate(dagbag, tmp_path, local_cluster):
    from PIL import Image
    from rocrate.rocrate import ROCrate

    dr = run_dag(dagbag, "oscar_report", {"out": str(tmp_path)})
    states = task_states(dr)
    assert all(state == "success" for state, _ in states.values()), states
    assert xcom(dr, "report", "return_value") == {"timeline": str(tmp_path / "run.png"),
                                                  "ro_crate": str(tmp_path / "run.crate.zip")}

    # the picture decodes, and is a real figure, not a blank page
    image = Image.open(io.BytesIO((tmp_path / "run.png").read_bytes()))
    image.load()
    assert image.format == "PNG" and image.width >= 1000 and image.height >= 300
    assert len(image.convert("RGB").getcolors(1 << 20) or []) > 10

    # the OSCAR operators' records: three jobs and a synchronous run, no secret
    jobs = xcom(dr, "tiles", "oscar_jobs")
    assert [j["status"] for j in jobs] == ["succeeded"] * 3
    assert {j["job"] for j in jobs} == set(xcom(dr, "tiles", "job_names"))
    assert all(j["started"] and j["finished"] and j["submitted"] and j["collected"] for j in jobs)
    assert all(j["endpoint"] == local_cluster.endpoint and j["cpu"] == "0.5" for j in jobs)
    [probe] = xcom(dr, "probe", "oscar_jobs")
    assert probe["job"] is None and probe["service"] == "af-report" and probe["status"] == "succeeded"

    # the crate, re-read by ro-crate-py
    crate = ROCrate(tmp_path / "run.crate.zip")
    profiles = _ids(crate.root_dataset["conformsTo"])
    assert "https://w3id.org/ro/wfrun/workflow/0.5" in profiles and "https://w3id.org/ro/wfrun/process/0.5" in profiles
    main = crate.mainEntity
    assert "ComputationalWorkflow" in main.type and main.id == "oscar_report_dags.py"
    assert main["programmingLanguage"]["name"] == "Apache Airflow"
    actions = {a["name"]: a for a in crate.get_by_type("CreateAction")}
    assert set(actions) == {"Run of Airflow DAG oscar_report", *(f"Run of {t}" for t in states if t != "report")}
    assert actions["Run of Airflow DAG oscar_report"]["instrument"].id == main.id
    assert actions["Run of make_inputs"].get("oscarJob") is None  # ran locally
    tiles = actions["Run of tiles"]
    assert _ids(tiles["actionStatus"]) == ["http://schema.org/CompletedActionStatus"]
    oscar_jobs = tiles["oscarJob"]
    assert sorted(j["name"] for j in oscar_jobs) == sorted(j["job"] for j in jobs)
    assert all(j.type == "OscarJob" and j["oscarService"] == "af-report" and j["startTime"] for j in oscar_jobs)
    assert all(j["subjectOf"]["about"].id == tiles.id for j in oscar_jobs)
    results = tiles["result"]
    assert len(results) == 3
    for entity in results:  # each collected output, copied in, with the sha256 of the file the task collected
        collected = next(p for p in (tmp_path / "tiles").rglob(entity["name"]))
        assert entity["sha256"] == _sha256(collected)
    assert actions["Run of probe"]["oscarJob"]["name"] == "run of af-report"
    assert crate.dereference(NAMESPACE + "OscarJob")["rdfs:comment"]  # the ad-hoc terms are described
    metadata = json.loads(zipfile.ZipFile(tmp_path / "run.crate.zip").read("ro-crate-metadata.json"))
    assert metadata["@context"][-1]["oscarJob"] == NAMESPACE + "oscarJob"
    blobs = [zipfile.ZipFile(tmp_path / "run.crate.zip").read(n)
             for n in zipfile.ZipFile(tmp_path / "run.crate.zip").namelist()]
    assert not [b for b in blobs if local_cluster.password.encode() in b]


def test_an_html_timeline_and_a_folder_crate(dagbag, tmp_path):
    from rocrate.rocrate import ROCrate

    dr = run_dag(dagbag, "oscar_report_html", {"out": str(tmp_path)})
    assert all(state == "success" for state, _ in task_states(dr).values())
    page = (tmp_path / "run.html").read_text()
    assert page.count("<tr class='job'>") == 7  # 3 jobs, the sync run, 3 local tasks (make_inputs, deploy, summarise)
    assert "data-service='af-report'" in page and "Airflow tasks (local)" in page
    crate = ROCrate(tmp_path / "crate")
    assert len(crate.get_by_type("OscarJob")) == 4


def test_a_report_path_that_cannot_be_written_fails_the_report_only(dagbag, tmp_path):
    dr = run_dag(dagbag, "oscar_report_bad_path", {"out": str(tmp_path)})
    states = task_states(dr)
    assert states.pop("report")[0] == "failed"
    assert all(state == "success" for state, _ in states.values()), states  # the work was done
    assert (tmp_path / "summary.json").is_file()


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"timeline": "/tmp/run.svg"}, "end the name in .png"),
    ({}, "needs timeline="),
])
def test_bad_report_arguments_are_a_dag_import_error(oscar_connections, tmp_path, kwargs, needle):
    from airflow.dag_processing.dagbag import DagBag

    (tmp_path / "bad_report.py").write_text(
        "from datetime import datetime\n"
        "from airflow.sdk import DAG\n"
        "from oscar_plugins.airflow.report import OscarRunReportOperator\n"
        "with DAG('oscar_bad_report', schedule=None, start_date=datetime(2026, 1, 1)):\n"
        f"    OscarRunReportOperator(task_id='report', **{kwargs!r})\n")
    bag = DagBag(dag_folder=str(tmp_path))
    (error,) = bag.import_errors.values()
    assert needle in error
