"""The drought example runs green with ``airflow dags test`` on the embedded local cluster (``local: true``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import AIRFLOW_HOME, conn_json

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "drought"


def test_drought_example_with_airflow_dags_test(airflow_db, tmp_path):
    from oscar_plugins.local import down

    local_dir = tmp_path / "local"
    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE), "OSCAR_PLUGINS_LOCAL_DIR": str(local_dir),
           "AIRFLOW_CONN_OSCAR_DEFAULT": conn_json(extra={"local": True})}
    conf = {"data_dir": str(tmp_path / "data"), "tiles": 3, "years": 10}
    airflow = str(Path(sys.executable).parent / "airflow")
    try:
        proc = subprocess.run([airflow, "dags", "test", "drought_spi", "-c", json.dumps(conf)], env=env,
                              capture_output=True, text=True, timeout=400)
    finally:
        down(local_dir)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "state=success" in output, output[-5000:]

    (report_file,) = (tmp_path / "data").glob("*/report.json")
    report = json.loads(report_file.read_text())
    assert set(report["tiles"]) == {"tile_00", "tile_01", "tile_02"}
    for tile in report["tiles"].values():  # a correct SPI is standard normal over the whole record
        assert abs(tile["spi_mean"]) < 0.15 and abs(tile["spi_std"] - 1) < 0.15, tile
    assert report["tiles"]["tile_00"]["class"] == "near normal"
    assert report["tiles"]["tile_02"]["class"] in {"severe drought", "extreme drought"}
    assert report["tiles_in_drought"][-1] == "tile_02"
    assert "----- log of OSCAR job drought-spi-" in output  # job logs copied into the task log

    # Secrets of the cluster never reach the output or a log file.
    creds = json.loads((local_dir / "credentials.json").read_text())
    logs = output + "".join(p.read_text(errors="replace") for p in (AIRFLOW_HOME / "logs").rglob("*") if p.is_file())
    for key in ("password", "s3_secret_key"):
        assert creds[key] not in logs, key
