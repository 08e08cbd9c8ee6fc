"""Event-driven drought warning: a new month of climate data lands, and the warning map follows.

No schedule and no one pressing a button:

1. a new ``climate_YYYY-MM.tar`` is uploaded to the OSCAR service's input bucket ``drought-monthly/in``;
2. OSCAR's own bucket trigger starts a ``drought-monthly`` job (``monthly.sh``: SPI/SPEI of every tile and
   the next month's forecast; service in ``drought_monthly.yaml``);
3. the job finishes; the asset watcher :class:`~oscar_plugins.airflow.watchers.OscarJobsFinishedTrigger`
   (in the triggerer) turns that into an event of the asset ``drought-monthly-indices``;
4. the event starts the DAG ``drought_warning_on_new_month``, whose one task downloads the job's outputs
   (named in the event) and draws the warning map (``steps/warning_map.py``: PNG, CSV, report, checks).

``run_events.py`` runs it end to end on the embedded local cluster, with Airflow's scheduler, triggerer,
DAG processor and API server. Outputs go to ``<DROUGHT_DATA_DIR>/<month>-<job>/``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from oscar_plugins.airflow.hook import OscarHook
from oscar_plugins.airflow.watchers import OscarJobsFinishedTrigger

STEPS = Path(__file__).resolve().parent / "steps"
SERVICE = "drought-monthly"
DATA_DIR = Path(os.environ.get("DROUGHT_DATA_DIR", Path(tempfile.gettempdir()) / "oscar-drought-events"))

new_indices = Asset("drought-monthly-indices", watchers=[AssetWatcher(
    name="drought-monthly-jobs",
    trigger=OscarJobsFinishedTrigger(service_name=SERVICE, statuses=["Succeeded"],
                                     poll_interval=float(os.environ.get("DROUGHT_WATCH_INTERVAL", "5"))))])


@task
def warning_map_for_new_month(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
    """One warning map per finished month job among the events that started this run."""
    spec = importlib.util.spec_from_file_location("drought_step_warning_map", STEPS / "warning_map.py")
    assert spec is not None and spec.loader is not None
    warning_map = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(warning_map)

    hook = OscarHook()
    storage = hook.client.storage
    done = []
    for event in (e for events in triggering_asset_events.values() for e in events):
        payload = event.extra["payload"]
        keys = payload["output_keys"]
        if not keys:
            raise RuntimeError(f"job {payload['job']} of {SERVICE} named no outputs: is the service deployed "
                               "through oscar-plugins (oscar-plugins service apply drought_monthly.yaml)?")
        inputs = DATA_DIR / f"{payload['job']}-inputs"
        files = []
        for key in keys:
            bucket, _, name = key.partition("/")
            files.append(storage.download(bucket, name, inputs / Path(name).name, overwrite=True))
        region = json.loads((inputs / "region.json").read_text())
        folder = DATA_DIR / f"{region['end']}-{payload['job']}"
        names = {p.name: p for p in files}
        code = warning_map.main([
            "--region", str(names["region.json"]),
            "--forecast", str(names["forecast.json"]), str(names["forecast.npz"]),
            "--indices", *sorted(str(p) for p in files if p.name.startswith(("indices_", "summary_"))),
            "--out-dir", str(folder)])
        report = json.loads((folder / "report.json").read_text())
        if code != 0:
            raise RuntimeError(f"physical checks failed for {region['end']}: see {folder}/report.json")
        print(f"warning map of {region['end']} (job {payload['job']}, finished {payload['finish_time']}): "
              f"{folder / 'drought_warning.png'}")
        done.append({"month": region["end"], "job": payload["job"], "map": str(folder / "drought_warning.png"),
                     "checks": [c["name"] for c in report["checks"] if c["ok"]]})
    hook.close()
    return done


with DAG(
    dag_id="drought_warning_on_new_month",
    schedule=[new_indices],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["oscar", "drought", "example", "event-driven"],
    doc_md=__doc__,
):
    warning_map_for_new_month()
