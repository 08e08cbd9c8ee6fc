"""The core's run records and crates, no cluster: JobRecord, StepRun -> rows, check_crate_path, write_run_crate."""

from __future__ import annotations

import hashlib
import zipfile

import pytest

from oscar_plugins import (
    ConfigError,
    Job,
    JobRecord,
    JobState,
    Service,
    StepRun,
    check_crate_path,
    file_hashes,
    run_rows,
    write_run_crate,
)

NAMESPACE = "https://oscar-plugins.readthedocs.io/cwl#"


def _record(name: str = "svc-1", **extra):
    job = Job("svc", name, state=JobState.SUCCEEDED, submitted_at=100.0,
              info={"start_time": "1970-01-01T00:01:45Z", "finish_time": "1970-01-01T00:01:50Z"})
    svc = Service(name="svc", image="alpine", script="true", cpu="500m", memory="128Mi")
    return JobRecord.of(job, svc, cluster="prod", endpoint="https://u:pw@oscar.example.org/?token=tk",
                        collected=112.0, status="succeeded", **extra)


def test_a_record_has_the_job_service_and_times_and_no_credential():
    data = _record(inputs=[{"path": "a", "size": 3, "sha256": "0" * 64, "password": "pw"}]).as_dict()
    assert (data["job"], data["image"], data["cpu"], data["memory"]) == ("svc-1", "alpine", "500m", "128Mi")
    assert data["endpoint"] == "https://oscar.example.org/" and data["state"] == "Succeeded"
    assert data["submitted"].startswith("1970-01-01T00:01:40") and data["started"] == "1970-01-01T00:01:45Z"
    assert "pw" not in repr(data) and "tk" not in repr(data)
    assert JobRecord.from_dict(data).job == "svc-1"


def test_run_rows_put_jobs_under_their_service_and_local_steps_beside_them():
    steps = [StepRun("prepare", started=90.0, finished=99.0, where="here"),
             StepRun("tiles", started=99.0, finished=113.0, jobs=[_record("a").as_dict(), _record("b").as_dict()]),
             StepRun("broken", started=113.0, finished=114.0, status="failed", where="here")]
    rows = run_rows(steps)
    assert [(r.group, r.name, r.kind, r.status) for r in rows] == [
        ("here", "prepare", "local", "succeeded"), ("svc", "tiles #0", "offloaded", "succeeded"),
        ("svc", "tiles #1", "offloaded", "succeeded"), ("here", "broken", "local", "failed")]
    assert rows[1].cpu == 0.5 and [s for s, _, _ in rows[1].spans()] == ["queued", "running", "collecting"]


def test_crate_paths_are_checked_before_a_run(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    (tmp_path / "a-file").write_text("")
    for path, needle in [(tmp_path / "missing" / "c.zip", "does not exist"), (tmp_path / "full", "other files"),
                         (tmp_path / "a-file", "is a file")]:
        with pytest.raises(ConfigError, match=needle):
            check_crate_path(path)
    assert check_crate_path(tmp_path / "new.zip") == tmp_path / "new.zip"


def test_a_run_crate_round_trips_through_rocrate(tmp_path):
    from rocrate.rocrate import ROCrate

    workflow = tmp_path / "flow.py"
    workflow.write_text("# the workflow\n")
    output = tmp_path / "out.txt"
    output.write_text("result\n")
    record = _record(outputs=file_hashes([output], root=tmp_path)).as_dict()
    steps = [StepRun("prepare", 90.0, 99.0), StepRun("run", 99.0, 113.0, jobs=[record], outputs=[output])]
    dest = write_run_crate(steps, tmp_path / "run.zip", name="a run", workflow=workflow,
                           language=("https://example.org/lang", "Lang", "1.0"))
    crate = ROCrate(dest)
    assert crate.mainEntity.id == "flow.py" and crate.mainEntity["programmingLanguage"]["name"] == "Lang"
    actions = {a["name"]: a for a in crate.get_by_type("CreateAction")}
    assert set(actions) == {"Run of flow", "Run of prepare", "Run of run"}
    job = actions["Run of run"]["oscarJob"]
    assert (job.type, job["name"], job["oscarEndpoint"]) == ("OscarJob", "svc-1", "https://oscar.example.org/")
    [result] = actions["Run of run"]["result"]
    assert result["sha256"] == hashlib.sha256(b"result\n").hexdigest() == record["outputs"][0]["sha256"]
    assert crate.dereference(NAMESPACE + "oscarService")["@type"] == "rdf:Property"
    assert "oscar/svc-1.json" in zipfile.ZipFile(dest).namelist()
