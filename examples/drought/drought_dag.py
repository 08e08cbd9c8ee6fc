"""Drought early warning for an Alpine region: SPI and SPEI per tile and a surrogate forecaster, on OSCAR.

Mirrors EURAC's Alpine drought digital twin at a small scale (see README.md):

1. ``prepare_climate`` (local) writes synthetic monthly precipitation and temperature with Alpine
   seasonality (``steps/climate.py``): one ``tile_NN.npz`` per tile, and ``region.json``.
2. ``deploy_services`` deploys the two OSCAR services of ``drought_services.yaml`` (idempotent).
3. ``indices_per_tile`` submits one OSCAR job per tile (service ``drought-spi``, script ``indices.sh``
   running ``steps/indices.py``, shipped with the tile): SPI and SPEI, fitted on the reference period. The
   jobs are waited for in the triggerer (deferrable: no worker slot held); their logs are copied into
   the task log.
4. ``forecaster`` runs one OSCAR job (service ``drought-forecast``, ``steps/forecast.py``) that trains a
   ridge-regression surrogate on every tile's indices, verifies it against persistence and forecasts
   the next month.
5. ``warning_map`` (local, ``steps/warning_map.py``) draws the drought-warning map (PNG), writes the
   summary table (CSV) and ``report.json``, prints both and the physical checks; it fails when a check fails.

Run it on the embedded local cluster::

    export AIRFLOW__CORE__DAGS_FOLDER=$PWD/examples/drought
    export AIRFLOW_CONN_OSCAR_DEFAULT='{"conn_type": "oscar", "extra": {"local": true}}'
    airflow db migrate && airflow dags test drought_spi

Point ``oscar_default`` at a real OSCAR cluster instead (host + login/password or an OIDC token) to run
the same DAG there. Outputs go to ``<data_dir>/<run id>/``.
"""

from __future__ import annotations

import importlib.util
import re
import tempfile
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from airflow.sdk import DAG, Param, task

from oscar_plugins.airflow.operators import OscarDeployServiceOperator, OscarSubmitJobOperator

STEPS = Path(__file__).resolve().parent / "steps"


def step(name: str) -> ModuleType:
    """A step script of ``steps/`` as a module (the local tasks call them in-process)."""
    spec = importlib.util.spec_from_file_location(f"drought_step_{name}", STEPS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_folder(params: dict[str, Any], run_id: str) -> Path:
    return Path(params["data_dir"]) / re.sub(r"[^A-Za-z0-9._-]+", "_", run_id)


@task(multiple_outputs=True)
def prepare_climate(params: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Synthetic gridded climate, one file per tile; each index job gets its tile and the step's code."""
    folder = run_folder(params, run_id)
    climate = folder / "climate"
    step("climate").main(["--tiles", str(params["tiles"]), "--tile-size", str(params["tile_size"]),
                          "--years", str(params["years"]), "--end-month", str(params["end_month"]),
                          "--seed", str(params["seed"]), "--out-dir", str(climate)])
    tiles = sorted(str(p) for p in climate.glob("tile_*.npz"))
    return {"index_jobs": [[tile, str(STEPS / "indices.py")] for tile in tiles], "region": str(climate / "region.json"),
            "indices_dir": str(folder / "indices"), "forecast_dir": str(folder / "forecast"), "folder": str(folder)}


@task
def forecast_inputs(index_outputs: list[str]) -> list[str]:
    """The forecaster's one job: its code and the indices of every tile."""
    return [str(STEPS / "forecast.py"), *sorted(p for p in index_outputs if Path(p).name.startswith("indices_"))]


@task
def warning_map(region: str, index_outputs: list[str], forecast_outputs: list[str], folder: str) -> dict[str, Any]:
    """Map, table and checks (local); the report is the task's XCom."""
    import json

    code = step("warning_map").main(["--region", region, "--forecast", *forecast_outputs,
                                     "--indices", *index_outputs, "--out-dir", folder])
    report: dict[str, Any] = json.loads(Path(folder, "report.json").read_text())
    if code != 0:
        failed = [c["name"] for c in report["checks"] if not c["ok"]]
        raise RuntimeError(f"physical checks failed: {failed}; see {folder}/report.json")
    return report


with DAG(
    dag_id="drought_spi",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["oscar", "drought", "example"],
    doc_md=__doc__,
    params={
        "tiles": Param(6, type="integer", minimum=1, maximum=64, description="tiles (laid out nearly square)"),
        "tile_size": Param(20, type="integer", minimum=2, description="5 km cells per tile side"),
        "years": Param(35, type="integer", minimum=5, description="of monthly data from January 1991"),
        "end_month": Param(8, type="integer", minimum=1, maximum=12, description="last month of the record"),
        "scale": Param(3, type="integer", enum=[1, 3, 6, 12], description="index accumulation, months"),
        "seed": Param(7, type="integer"),
        "data_dir": Param(str(Path(tempfile.gettempdir()) / "oscar-drought"), type="string"),
    },
):
    prep = prepare_climate()
    deploy = OscarDeployServiceOperator(task_id="deploy_services", fdl="drought_services.yaml")
    indices = OscarSubmitJobOperator(
        task_id="indices_per_tile",
        service_name="drought-spi",
        inputs=prep["index_jobs"],
        one_job_per_input=True,
        environment={"SPI_SCALE": "{{ params.scale }}"},
        output_dir=prep["indices_dir"],
        deferrable=True,
        poll_interval=2.0,
    )
    forecaster = OscarSubmitJobOperator(
        task_id="forecaster",
        service_name="drought-forecast",
        inputs=forecast_inputs(indices.output),
        output_dir=prep["forecast_dir"],
        deferrable=True,
        poll_interval=2.0,
    )
    deploy >> indices
    deploy >> forecaster
    warning_map(prep["region"], indices.output, forecaster.output, prep["folder"])
