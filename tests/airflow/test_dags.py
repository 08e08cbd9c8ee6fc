"""Real DAGs run end to end with ``dag.test()`` on the embedded local cluster (no HTTP mocking)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest

from tests.reliability.catalogue import expect

from .conftest import run_dag, task_states, xcom

pytestmark = pytest.mark.usefixtures("oscar_connections")


def errors(out: Path) -> dict[str, str]:
    return {p.stem.removeprefix("error-"): p.read_text() for p in out.glob("error-*.txt")}


@pytest.mark.parametrize("kind", ["sync", "deferrable"])
def test_e2e(dagbag, tmp_path, kind):
    dr = run_dag(dagbag, f"oscar_e2e_{kind}", {"out": str(tmp_path), "scale": "2", "note": "hi"})
    states = task_states(dr)
    assert all(state == "success" for state, _ in states.values()), (states, errors(tmp_path))
    summary = json.loads((tmp_path / "verify.json").read_text())
    assert summary["run"] == {"n": 4, "mean": 2.5}
    assert summary["jobs"] == {f"series-{i}.json": {"n": 4, "mean": 2 * (i + 2.5)} for i in range(3)}
    assert json.loads(summary["single"]["payload-seen.txt"]) == {"note": "hi"}
    assert {f"series-{i}.json" for i in range(3)} <= set(summary["single"])
    assert summary["found"] and all(k.startswith("af-stats/out/") for k in summary["found"])
    endpoint = json.loads(os.environ["AIRFLOW_CONN_OSCAR_DEFAULT"])["host"]
    assert xcom(dr, "jobs", "oscar_job_url") == f"{endpoint}/#/ui/services/af-stats/logs"  # the extra link
    names = xcom(dr, "jobs", "job_names")
    assert len(names) == 3 and set(xcom(dr, "jobs", "outputs_by_job")) == set(names)
    # Worker time: execute() up to the deferral, plus execute_complete(); the jobs run 1 s each.
    t = json.loads((tmp_path / "timing-jobs.json").read_text())
    worker = t["execute_end"] - t["execute_start"] + t.get("resume_end", 0) - t.get("resume_start", 0)
    wall = t.get("resume_end", t["execute_end"]) - t["submitted"]
    phases = {k: round(v - t["execute_start"], 2) for k, v in t.items()}
    print(f"\n[{kind}] submit->success {wall:.2f} s, worker seconds held {worker:.2f} s, phases {phases}")
    if kind == "deferrable":
        assert worker < wall - 0.9, t  # the slot was free while the jobs ran


def test_failed_jobs_fail_the_task_with_the_log_tail(dagbag, tmp_path):
    dr = run_dag(dagbag, "oscar_failing", {"out": str(tmp_path)})
    states = task_states(dr)
    assert states["deploy"][0] == "success"
    errs = errors(tmp_path)
    for task_id in ("job_sync", "job_deferrable", "run"):
        assert states[task_id][0] == "failed", states
        assert "exited with code 3" in errs[task_id], errs[task_id]
        assert "boom: tile 7 is corrupt" in errs[task_id], errs[task_id]  # the log tail


def test_bad_input_fails_at_once_naming_the_connection(dagbag, tmp_path, capfd):
    """The catalogue's Airflow cases (tests/reliability/catalogue.py): each task hits one."""
    from .conftest import SENTINEL_PASSWORD

    dr = run_dag(dagbag, "oscar_bad_input", {"out": str(tmp_path)})
    states = task_states(dr)
    errs = errors(tmp_path)
    expected = {
        "no_endpoint": [expect("af-conn-no-endpoint"), "'oscar_no_endpoint'", "AIRFLOW_CONN_OSCAR_NO_ENDPOINT",
                        '"local": true'],
        "no_password": [expect("af-conn-no-password"), "'oscar_no_password'", "add the password"],
        "bad_password": [expect("af-cred-wrong"), "'oscar_bad_password'", "401"],
        "bad_fdl": [expect("af-fdl-invalid"), "'oscar_default'", "Bad_Name!", "field 'name'"],
        "missing_fdl_file": [expect("af-fdl-missing"), "does-not-exist.yaml"],
        "missing_service": [expect("af-service-missing"), "'oscar_default'", "'no-such-service' does not exist"],
        "missing_connection": [expect("af-conn-missing"), "'oscar_not_defined'", "AIRFLOW_CONN_OSCAR_NOT_DEFINED"],
        "missing_input": [expect("af-input-missing"), "no-such-input.txt does not exist"],
        "no_inputs": [expect("af-inputs-empty"), "one_job_per_input=True but inputs is empty"],
    }
    assert set(expected) == set(states), states
    for task_id, needles in expected.items():
        assert states[task_id] == ("failed", 1), (task_id, states[task_id])  # no retries: it cannot help
        assert "Traceback" not in errs[task_id], errs[task_id]  # the task's error is a message, not a stack
        for needle in needles:
            assert needle in errs[task_id], (task_id, needle, errs[task_id])
    captured = capfd.readouterr()
    everything = captured.out + captured.err + "".join(errs.values())
    assert SENTINEL_PASSWORD not in everything


def test_conflicting_operator_arguments_are_a_dag_import_error(oscar_connections, tmp_path):
    from airflow.dag_processing.dagbag import DagBag

    (tmp_path / "conflict_dag.py").write_text(
        "from datetime import datetime\n"
        "from airflow.sdk import DAG\n"
        "from oscar_plugins.airflow.operators import OscarRunServiceOperator\n"
        "with DAG('oscar_conflict', schedule=None, start_date=datetime(2026, 1, 1)):\n"
        "    OscarRunServiceOperator(task_id='both', service_name='s', data='x', input_path='/tmp/x')\n")
    bag = DagBag(dag_folder=str(tmp_path))
    (error,) = bag.import_errors.values()  # what the UI and 'airflow dags list-import-errors' show
    assert expect("af-args-conflict") in error and "not both" in error
    assert "oscar_conflict" not in bag.dag_ids


@pytest.mark.parametrize("kind", ["sync", "deferrable"])
def test_retry_after_a_crash_reattaches_instead_of_resubmitting(dagbag, oscar_client, tmp_path, kind):
    with contextlib.suppress(Exception):
        oscar_client.delete_jobs("af-reattach", all_jobs=True)
    dr = run_dag(dagbag, f"oscar_reattach_{kind}", {"out": str(tmp_path)})
    states = task_states(dr)
    assert states["submit"] == ("success", 2), (states, errors(tmp_path))
    jobs = oscar_client.list_jobs("af-reattach")
    assert len(jobs) == 1, jobs  # submitted once, by try 1; try 2 reattached
    (output,) = (tmp_path / "reattach").iterdir()
    assert output.read_text().startswith('{"n": 3, "mean": 2.0')


def test_clearing_a_finished_task_runs_its_jobs_again(dagbag, oscar_client, tmp_path):
    from datetime import datetime, timezone

    with contextlib.suppress(Exception):
        oscar_client.delete_jobs("af-reattach", all_jobs=True)
    when = datetime.now(timezone.utc)
    for attempt in (1, 2):  # the same DAG run: the second dag.test() clears its tasks and runs them again
        dr = run_dag(dagbag, "oscar_reattach_sync", {"out": str(tmp_path)}, logical_date=when, run_after=when)
        assert task_states(dr)["submit"][0] == "success", errors(tmp_path)
        assert len(oscar_client.list_jobs("af-reattach")) == attempt
