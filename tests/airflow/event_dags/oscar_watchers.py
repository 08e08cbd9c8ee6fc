"""Assets watched by the OSCAR event triggers, for tests/airflow/test_watchers.py (a real triggerer).

Two job watchers of one service (they share one listing per poll) and one bucket-path watcher. The
service and the path come from the environment the test gives the triggerer.
"""

from __future__ import annotations

import os

from airflow.sdk import DAG, Asset, AssetWatcher, task

from oscar_plugins.airflow.watchers import OscarJobsFinishedTrigger, OscarNewObjectsTrigger

SERVICE = os.environ.get("OSCAR_WATCH_SERVICE", "af-watched")
PATH = os.environ.get("OSCAR_WATCH_PATH", "af-watched/in")
INTERVAL = float(os.environ.get("OSCAR_WATCH_INTERVAL", "0.5"))

succeeded = Asset("oscar-succeeded", watchers=[AssetWatcher(name="succeeded", trigger=OscarJobsFinishedTrigger(
    service_name=SERVICE, statuses=["Succeeded"], poll_interval=INTERVAL))])
finished = Asset("oscar-finished", watchers=[AssetWatcher(name="finished", trigger=OscarJobsFinishedTrigger(
    service_name=SERVICE, poll_interval=INTERVAL))])
landed = Asset("oscar-landed", watchers=[AssetWatcher(name="landed", trigger=OscarNewObjectsTrigger(
    path=PATH, poll_interval=INTERVAL, suffixes=[".txt"]))])

with DAG("oscar_watchers", schedule=(succeeded | finished | landed), catchup=False):

    @task
    def noop() -> None:
        pass

    noop()
