"""DAGs whose runs end in an ``OscarRunReportOperator`` (timeline + Workflow Run RO-Crate), run by ``dag.test()``.

Every run gets ``{"out": <directory>}`` as its conf; the reports and the tasks' files go there.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task

from oscar_plugins.airflow.operators import (
    OscarDeployServiceOperator,
    OscarRunServiceOperator,
    OscarSubmitJobOperator,
)
from oscar_plugins.airflow.report import OscarRunReportOperator

START = datetime(2026, 1, 1)
OUT = "{{ dag_run.conf['out'] }}"

SCRIPT = """\
sleep "${SLEEP:-0}"
python3 - <<'EOF'
import json, os, pathlib
inp = pathlib.Path(os.environ["INPUT_FILE_PATH"])
values = [float(v) for v in inp.read_text().split()]
out = pathlib.Path(os.environ["TMP_OUTPUT_DIR"])
(out / (inp.stem + ".json")).write_text(json.dumps({"n": len(values), "sum": sum(values)}))
EOF
"""
SERVICE = {"name": "af-report", "image": "python:3.11-slim", "script": SCRIPT, "cpu": "0.5", "memory": "128Mi",
           "environment": {"variables": {"SLEEP": "1"}},
           "input": [{"storage_provider": "minio.default", "path": "af-report/in"}],
           "output": [{"storage_provider": "minio.default", "path": "af-report/out"}]}


@task
def make_inputs(dag_run: Any = None) -> list[str]:
    folder = Path(dag_run.conf["out"]) / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(3):
        path = folder / f"tile-{i}.txt"
        path.write_text(" ".join(str(i * 10 + k) for k in range(5)))
        paths.append(str(path))
    time.sleep(0.5)  # a local step long enough to be seen
    return paths


@task
def summarise(outputs: list[str], dag_run: Any = None) -> dict[str, float]:
    total = {Path(p).stem: json.loads(Path(p).read_text())["sum"] for p in outputs}
    (Path(dag_run.conf["out"]) / "summary.json").write_text(json.dumps(total))
    time.sleep(0.5)
    return total


def report_dag(dag_id: str, timeline: str, ro_crate: str | None) -> None:
    with DAG(dag_id, schedule=None, start_date=START, catchup=False, default_args={"retries": 0}):
        inputs = make_inputs()
        deploy = OscarDeployServiceOperator(task_id="deploy", fdl=SERVICE)
        tiles = OscarSubmitJobOperator(task_id="tiles", service_name="af-report", inputs=inputs,
                                       one_job_per_input=True, output_dir=OUT + "/tiles", deferrable=True,
                                       poll_interval=0.5)
        probe = OscarRunServiceOperator(task_id="probe", service_name="af-report", data="1 2 3",
                                        output_path=OUT + "/probe")
        total = summarise(tiles.output)
        report = OscarRunReportOperator(task_id="report", timeline=timeline, ro_crate=ro_crate,
                                        title="Report test: tiles on OSCAR")
        deploy >> [tiles, probe]
        [total, probe] >> report


report_dag("oscar_report", OUT + "/run.png", OUT + "/run.crate.zip")
report_dag("oscar_report_html", OUT + "/run.html", OUT + "/crate")
report_dag("oscar_report_bad_path", OUT + "/no-such-folder/run.png", None)
