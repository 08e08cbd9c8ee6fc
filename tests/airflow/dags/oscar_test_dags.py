"""DAGs the provider's tests run with ``dag.test()`` against the embedded local cluster.

Every run gets ``{"out": <directory>}`` as its conf; tasks write there, the tests read it back.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task

from oscar_plugins.airflow.operators import (
    OscarDeployServiceOperator,
    OscarRunServiceOperator,
    OscarSubmitJobOperator,
)
from oscar_plugins.airflow.sensors import OscarJobSensor, OscarOutputSensor

START = datetime(2026, 1, 1)
OUT = "{{ dag_run.conf['out'] }}"

STATS_SCRIPT = """\
sleep "${SLEEP:-0}"
python3 - <<'EOF'
import json, os, pathlib, statistics
inp = pathlib.Path(os.environ["INPUT_FILE_PATH"])
many = os.environ.get("OSCAR_INPUTS_DIR")
files = sorted(p for p in pathlib.Path(many).iterdir() if p.name != "payload") if many else [inp]
scale = float(os.environ.get("SCALE", "1"))
out = pathlib.Path(os.environ["TMP_OUTPUT_DIR"])
for f in files:
    values = [float(v) * scale for v in f.read_text().split()]
    mean = statistics.fmean(values)
    (out / (f.stem + ".json")).write_text(json.dumps({"n": len(values), "mean": mean}))
    print(f"{f.name}: n={len(values)} mean={mean:.3f}")
if many and (pathlib.Path(many) / "payload").exists():
    (out / "payload-seen.txt").write_text((pathlib.Path(many) / "payload").read_text())
EOF
"""


def stats_service(name: str) -> dict[str, Any]:
    return {"name": name, "image": "python:3.11-slim", "script": STATS_SCRIPT, "cpu": "0.5", "memory": "256Mi",
            "input": [{"storage_provider": "minio.default", "path": f"{name}/in"}],
            "output": [{"storage_provider": "minio.default", "path": f"{name}/out"}]}


STATS_FDL = {"functions": {"oscar": [{"local": stats_service("af-stats")}]}}
FAIL_SCRIPT = 'echo "reading tile"\necho "boom: tile 7 is corrupt" >&2\nexit 3\n'
FAIL_SERVICE = {"name": "af-fail", "image": "alpine", "script": FAIL_SCRIPT, "output": [{"path": "af-fail/out"}]}


def record_error(context: Any) -> None:
    """on_failure_callback: keep the task's error where the test can read it."""
    out = Path(context["dag_run"].conf["out"])
    out.mkdir(parents=True, exist_ok=True)
    (out / f"error-{context['ti'].task_id}.txt").write_text(str(context.get("exception")))


class TimedSubmit(OscarSubmitJobOperator):
    """Records when the worker holds the task: execute() until it defers, and execute_complete()."""

    def _mark(self, context: Any, key: str) -> None:
        path = Path(context["dag_run"].conf["out"]) / f"timing-{self.task_id}.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data.setdefault(key, time.time())
        path.write_text(json.dumps(data))

    def execute(self, context: Any) -> Any:
        self._mark(context, "execute_start")
        try:
            return super().execute(context)
        finally:
            self._mark(context, "execute_end")

    def submit_job(self, context: Any) -> dict[str, Any]:
        result = super().submit_job(context)
        self._mark(context, "submitted")
        return result

    def execute_complete(self, context: Any, event: dict[str, Any]) -> list[str]:
        self._mark(context, "resume_start")
        try:
            return super().execute_complete(context, event)
        finally:
            self._mark(context, "resume_end")


class CrashOnceSubmit(OscarSubmitJobOperator):
    """Dies right after the submit on the first try, like a worker killed while waiting."""

    def poll_until_complete(self, external_id: Any, context: Any) -> Any:
        if context["ti"].try_number == 1:
            raise RuntimeError("simulated worker crash after submitting the jobs")
        return super().poll_until_complete(external_id, context)


@task
def make_inputs(dag_run: Any = None) -> list[str]:
    folder = Path(dag_run.conf["out"]) / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(3):
        path = folder / f"series-{i}.txt"
        path.write_text(" ".join(str(i + k) for k in range(1, 5)))  # mean = i + 2.5
        paths.append(str(path))
    return paths


@task
def verify(run_output: str, job_outputs: list[str], single_outputs: list[str], found: list[str],
           dag_run: Any = None) -> dict[str, Any]:
    summary = {"run": json.loads(run_output), "jobs": {}, "single": {}, "found": found}
    for path in job_outputs:
        summary["jobs"][Path(path).name] = json.loads(Path(path).read_text())
    for path in single_outputs:
        summary["single"][Path(path).name] = Path(path).read_text()
    (Path(dag_run.conf["out"]) / "verify.json").write_text(json.dumps(summary))
    return summary


for deferrable in (False, True):
    kind = "deferrable" if deferrable else "sync"
    with DAG(f"oscar_e2e_{kind}", schedule=None, start_date=START, catchup=False,
             default_args={"retries": 0, "on_failure_callback": record_error}):
        inputs = make_inputs()
        deploy = OscarDeployServiceOperator(task_id="deploy", fdl=STATS_FDL, environment={"SLEEP": "1"})
        run = OscarRunServiceOperator(task_id="run", service_name="af-stats", data="1 2 3 4")
        jobs = TimedSubmit(task_id="jobs", service_name="af-stats", inputs=inputs, one_job_per_input=True,
                           environment={"SCALE": "{{ dag_run.conf['scale'] }}"}, output_dir=OUT + "/jobs",
                           deferrable=deferrable, poll_interval=1.0)
        single = OscarSubmitJobOperator(task_id="single", service_name="af-stats", inputs=inputs,
                                        payload={"note": "{{ dag_run.conf['note'] }}"}, output_dir=OUT + "/single",
                                        deferrable=deferrable, poll_interval=0.5)
        nowait = OscarSubmitJobOperator(task_id="nowait", service_name="af-stats",
                                        inputs=OUT + "/inputs/series-*.txt", wait_for_completion=False)
        job_name = "{{ ti.xcom_pull(task_ids='nowait')[0] }}"
        if deferrable:
            sensors = [OscarJobSensor(task_id="job_sensor", service_name="af-stats", job_name=job_name,
                                      deferrable=True, poke_interval=0.5, timeout=120)]
        else:
            sensors = [OscarJobSensor(task_id=f"job_sensor_{mode}", service_name="af-stats", job_name=job_name,
                                      mode=mode, poke_interval=0.5, timeout=120) for mode in ("poke", "reschedule")]
        outputs = OscarOutputSensor(task_id="output_sensor", service_name="af-stats", prefix=job_name,
                                    deferrable=deferrable, poke_interval=0.5, timeout=120)
        deploy >> [run, jobs, single, nowait]
        inputs >> nowait >> sensors >> outputs
        verify(run.output, jobs.output, single.output, outputs.output)


with DAG("oscar_failing", schedule=None, start_date=START, catchup=False,
         default_args={"retries": 0, "on_failure_callback": record_error}):
    fail_deploy = OscarDeployServiceOperator(task_id="deploy", fdl=FAIL_SERVICE)
    for deferrable in (False, True):
        fail_deploy >> OscarSubmitJobOperator(task_id=f"job_{'deferrable' if deferrable else 'sync'}",
                                              service_name="af-fail", payload="tile-7", deferrable=deferrable,
                                              poll_interval=0.5)
    fail_deploy >> OscarRunServiceOperator(task_id="run", service_name="af-fail", data="tile-7")


with DAG("oscar_bad_input", schedule=None, start_date=START, catchup=False,
         default_args={"retries": 2, "retry_delay": timedelta(0), "on_failure_callback": record_error}):
    OscarRunServiceOperator(task_id="no_endpoint", service_name="af-stats", data="1",
                            oscar_conn_id="oscar_no_endpoint")
    OscarDeployServiceOperator(task_id="bad_password", fdl=STATS_FDL, oscar_conn_id="oscar_bad_password")
    OscarDeployServiceOperator(task_id="bad_fdl", fdl={"name": "Bad_Name!", "image": "alpine", "script": "true"})
    OscarDeployServiceOperator(task_id="missing_fdl_file", fdl="does-not-exist.yaml")
    OscarSubmitJobOperator(task_id="missing_service", service_name="no-such-service", payload="x")
    OscarRunServiceOperator(task_id="missing_connection", service_name="af-stats", data="1",
                            oscar_conn_id="oscar_not_defined")
    OscarRunServiceOperator(task_id="no_password", service_name="af-stats", data="1",
                            oscar_conn_id="oscar_no_password")
    OscarSubmitJobOperator(task_id="missing_input", service_name="af-stats", inputs=[OUT + "/no-such-input.txt"])
    OscarSubmitJobOperator(task_id="no_inputs", service_name="af-stats", inputs=[], one_job_per_input=True)


for deferrable in (False, True):
    kind = "deferrable" if deferrable else "sync"
    with DAG(f"oscar_reattach_{kind}", schedule=None, start_date=START, catchup=False,
             default_args={"retries": 1, "retry_delay": timedelta(0), "on_failure_callback": record_error}):
        deploy = OscarDeployServiceOperator(task_id="deploy", fdl={**stats_service("af-reattach"),
                                                                   "environment": {"variables": {"SLEEP": "2"}}})
        deploy >> CrashOnceSubmit(task_id="submit", service_name="af-reattach", payload="1 2 3",
                                  output_dir=OUT + "/reattach", deferrable=deferrable, poll_interval=0.5)
