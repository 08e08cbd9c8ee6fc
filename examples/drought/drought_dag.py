"""Drought early warning, small but real: the SPI of every tile of a region, computed on OSCAR.

1. ``make_precipitation`` writes synthetic monthly precipitation (30 years, one ``.npy`` per tile;
   a dry spell is imposed on some tiles in the last months).
2. ``deploy_spi_service`` deploys the OSCAR service of ``spi_service.yaml`` (idempotent).
3. ``spi_per_tile`` submits one asynchronous OSCAR job per tile (inputs staged through the service's
   bucket), waits in the triggerer (deferrable: no worker slot held), copies each job's log into the
   task log and collects the verified outputs.
4. ``drought_report`` classifies each tile's latest SPI (McKee classes) and writes ``report.json``.

Run it on the embedded local cluster::

    export AIRFLOW__CORE__DAGS_FOLDER=$PWD/examples/drought
    export AIRFLOW_CONN_OSCAR_DEFAULT='{"conn_type": "oscar", "extra": {"local": true}}'
    airflow db migrate && airflow dags test drought_spi

Point ``oscar_default`` at a real OSCAR cluster instead (host + login/password or an OIDC token) to run
the same DAG there.
"""

from __future__ import annotations

import json
import re
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, task

from oscar_plugins.airflow.operators import OscarDeployServiceOperator, OscarSubmitJobOperator

#: McKee et al. (1993) SPI classes, from the driest.
CLASSES = [(-2.0, "extreme drought"), (-1.5, "severe drought"), (-1.0, "moderate drought"),
           (1.0, "near normal"), (1.5, "moderately wet"), (2.0, "very wet"), (float("inf"), "extremely wet")]


def classify(spi: float) -> str:
    """The McKee class of an SPI value."""
    for upper, label in CLASSES:
        if spi <= upper if upper < 0 else spi < upper:
            return label
    return CLASSES[-1][1]


def run_folder(params: dict[str, Any], run_id: str) -> Path:
    return Path(params["data_dir"]) / re.sub(r"[^A-Za-z0-9._-]+", "_", run_id)


@task(multiple_outputs=True)
def make_precipitation(params: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Synthetic precipitation: seasonal gamma-distributed monthly totals, some dry months, a dry spell."""
    import numpy as np

    folder = run_folder(params, run_id)
    (folder / "precip").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(int(params["seed"]))
    months, size = 12 * int(params["years"]), int(params["tile_size"])
    season = 60 + 40 * np.sin(2 * np.pi * (np.arange(months) % 12) / 12)
    tiles = []
    for t in range(int(params["tiles"])):
        precip = rng.gamma(2.0, season[:, None, None] / 2.0, size=(months, size, size))
        precip[rng.random(precip.shape) < 0.03] = 0.0
        dryness = 1.0 - 0.8 * t / max(1, int(params["tiles"]) - 1)  # tile 0 normal ... last tile very dry
        precip[-6:] *= dryness
        path = folder / "precip" / f"tile_{t:02d}.npy"
        np.save(path, precip.astype("float32"))
        tiles.append(str(path))
    return {"tiles": tiles, "spi_dir": str(folder / "spi"), "folder": str(folder)}


@task
def drought_report(outputs: list[str], folder: str) -> dict[str, Any]:
    """Per tile: the latest SPI, its class and the drought area; plus a sanity check of the fit."""
    report: dict[str, Any] = {"tiles": {}}
    for path in sorted(p for p in outputs if Path(p).name.startswith("summary_")):
        s = json.loads(Path(path).read_text())
        report["tiles"][s["tile"]] = {"latest_mean_spi": s["latest_mean_spi"], "class": classify(s["latest_mean_spi"]),
                                      "drought_area": s["latest_drought_fraction"],
                                      "spi_mean": s["all_mean_spi"], "spi_std": s["all_std_spi"]}
    report["tiles_in_drought"] = sorted(t for t, v in report["tiles"].items() if v["latest_mean_spi"] <= -1.0)
    Path(folder, "report.json").write_text(json.dumps(report, indent=1))
    for tile, values in report["tiles"].items():
        print(f"{tile}: SPI {values['latest_mean_spi']:+.2f} ({values['class']}), "
              f"{100 * values['drought_area']:.0f}% of the tile in drought")
    return report


with DAG(
    dag_id="drought_spi",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["oscar", "drought", "example"],
    doc_md=__doc__,
    params={
        "tiles": Param(4, type="integer", minimum=1, maximum=64),
        "tile_size": Param(16, type="integer", minimum=1),
        "years": Param(30, type="integer", minimum=3),
        "scale": Param(3, type="integer", enum=[1, 3, 6, 12]),
        "seed": Param(7, type="integer"),
        "data_dir": Param(str(Path(tempfile.gettempdir()) / "oscar-drought"), type="string"),
    },
):
    precip = make_precipitation()
    deploy = OscarDeployServiceOperator(task_id="deploy_spi_service", fdl="spi_service.yaml")
    spi = OscarSubmitJobOperator(
        task_id="spi_per_tile",
        service_name="drought-spi",
        inputs=precip["tiles"],
        one_job_per_input=True,
        environment={"SPI_SCALE": "{{ params.scale }}"},
        output_dir=precip["spi_dir"],
        deferrable=True,
        poll_interval=2.0,
    )
    deploy >> spi
    drought_report(spi.output, precip["folder"])
