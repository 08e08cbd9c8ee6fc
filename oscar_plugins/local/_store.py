"""Durable state of the local cluster: services and jobs in SQLite (WAL mode).

One connection guarded by a lock; every call is a short transaction, so the event loop can call it
directly. Times are stored as UNIX seconds and formatted as RFC 3339 by :func:`rfc3339`.
"""

from __future__ import annotations

import functools
import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from oscar_plugins.local._secretstore import SecretFiles, merge_secrets, split_secrets

__all__ = ["FINISHED", "DuplicateJobError", "JobRow", "Store", "rfc3339"]

PENDING, RUNNING, SUCCEEDED, FAILED = "Pending", "Running", "Succeeded", "Failed"
FINISHED = (SUCCEEDED, FAILED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS services (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    name TEXT PRIMARY KEY,
    service TEXT NOT NULL,
    status TEXT NOT NULL,
    creation_time REAL NOT NULL,
    start_time REAL,
    finish_time REAL,
    exit_code INTEGER,
    reason TEXT,
    owner TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_service ON jobs (service, name);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status);
CREATE TABLE IF NOT EXISTS usage (
    service TEXT NOT NULL,
    start REAL NOT NULL,
    finish REAL NOT NULL,
    cpu REAL NOT NULL,
    gpu INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_by_service ON usage (service, finish);
"""


class DuplicateJobError(Exception):
    """A job with that name already exists (job names are unique in the cluster, as in Kubernetes)."""


def rfc3339(stamp: float | None) -> str | None:
    """Format UNIX seconds as RFC 3339 in UTC with second precision, or None."""
    if stamp is None:
        return None
    if stamp < 0:
        return datetime.fromtimestamp(stamp, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    # The second datetime.fromtimestamp would show (it rounds to the microsecond first), formatted once per
    # second: every job listing formats each job's times again, and many jobs share a second.
    fraction, whole = math.modf(stamp)
    return _second(int(whole) + (round(fraction * 1e6) >= 1_000_000))


@functools.lru_cache(maxsize=4096)
def _second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))


@dataclass(frozen=True)
class JobRow:
    """One stored job."""

    name: str
    service: str
    status: str
    creation_time: float
    start_time: float | None
    finish_time: float | None
    exit_code: int | None
    reason: str | None
    #: The ``oscar.grycap/job-owner`` label (None: the job has none).
    owner: str | None = None

    def info(self, at: float | None = None) -> dict[str, Any]:
        """The job as ``types.JobInfo`` (``logs.go`` getPod): the pod's phase, and only the times it has.

        ``creation_time`` is the pod's start time, ``start_time``/``finish_time`` the container's; a job
        still waiting for room has no pod start yet. ``at`` gives the job as it was at that moment (the
        first page's snapshot, which later pages of a listing reuse).
        """
        status, start, finish = self.status, self.start_time, self.finish_time
        if at is not None:
            if finish is not None and finish > at:
                status, finish = RUNNING, None
            if start is not None and start > at:
                status, start = PENDING, None
        info: dict[str, Any] = {"status": status}
        if start is not None:
            info["creation_time"] = rfc3339(start)
            info["start_time"] = rfc3339(start)
        if finish is not None:
            info["finish_time"] = rfc3339(finish)
        return info


_SELECT_JOBS = ("SELECT name, service, status, creation_time, start_time, finish_time, exit_code, reason, owner "
                "FROM jobs ")


class Store:
    """Services and jobs of one data directory.

    Example:
        >>> store = Store(Path("/tmp/x/state.sqlite"))          # doctest: +SKIP
        >>> store.put_service("svc", {"name": "svc", ...})      # doctest: +SKIP
    """

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._secrets = SecretFiles(path.parent / "secrets")
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if "owner" not in columns:  # a data directory of an earlier version
            self._db.execute("ALTER TABLE jobs ADD COLUMN owner TEXT")

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def _run(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, tuple(params))

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    # services -----------------------------------------------------------------------------------
    def put_service(self, name: str, definition: dict[str, Any]) -> bool:
        """Insert a service; return False when the name is taken."""
        public, taken = split_secrets(definition)
        try:
            self._run("INSERT INTO services (name, definition) VALUES (?, ?)", (name, json.dumps(public)))
        except sqlite3.IntegrityError:
            return False
        self._secrets.write(name, taken)
        return True

    def replace_service(self, name: str, definition: dict[str, Any]) -> bool:
        """Replace a service's definition; return False when it does not exist."""
        public, taken = split_secrets(definition)
        cur = self._run("UPDATE services SET definition = ? WHERE name = ?", (json.dumps(public), name))
        if cur.rowcount > 0:
            self._secrets.write(name, taken)
        return cur.rowcount > 0

    def get_service(self, name: str) -> dict[str, Any] | None:
        """Return a service's stored definition, or None."""
        rows = self._rows("SELECT definition FROM services WHERE name = ?", (name,))
        return merge_secrets(json.loads(rows[0][0]), self._secrets.read(name)) if rows else None

    def list_services(self) -> list[dict[str, Any]]:
        """Return every service's stored definition, sorted by name."""
        rows = self._rows("SELECT name, definition FROM services ORDER BY name")
        return [merge_secrets(json.loads(definition), self._secrets.read(name)) for name, definition in rows]

    def delete_service(self, name: str) -> bool:
        """Delete a service and its job records; return False when it does not exist."""
        with self._lock:
            self._db.execute("BEGIN")
            cur = self._db.execute("DELETE FROM services WHERE name = ?", (name,))
            self._db.execute("DELETE FROM jobs WHERE service = ?", (name,))
            self._db.execute("COMMIT")
        self._secrets.delete(name)
        return cur.rowcount > 0

    # jobs ---------------------------------------------------------------------------------------
    def add_job(self, name: str, service: str, owner: str | None = None, created: float | None = None) -> JobRow:
        """Record a new Pending job (``owner``: its ``oscar.grycap/job-owner`` label, if any).

        Raises:
            DuplicateJobError: a job with that name exists.
        """
        stamp = time.time() if created is None else created
        try:
            self._run(
                "INSERT INTO jobs (name, service, status, creation_time, owner) VALUES (?, ?, ?, ?, ?)",
                (name, service, PENDING, stamp, owner),
            )
        except sqlite3.IntegrityError as exc:
            raise DuplicateJobError(name) from exc
        return JobRow(name, service, PENDING, stamp, None, None, None, None, owner)

    def set_running(self, name: str, stamp: float) -> None:
        """Mark a job Running."""
        self._run("UPDATE jobs SET status = ?, start_time = ? WHERE name = ?", (RUNNING, stamp, name))

    def finish_job(self, name: str, status: str, stamp: float, exit_code: int | None, reason: str | None) -> None:
        """Mark a job Succeeded or Failed (no-op when the job was deleted meanwhile)."""
        self._run(
            "UPDATE jobs SET status = ?, finish_time = ?, exit_code = ?, reason = ? WHERE name = ?",
            (status, stamp, exit_code, reason, name),
        )

    # usage (what Prometheus keeps on a real cluster: it outlives deleted jobs) ----------------------
    def record_usage(self, service: str, start: float, finish: float, cpu: float, gpu: int) -> None:
        """Record that an execution of ``service`` held ``cpu`` cores (and ``gpu`` GPUs) from start to finish."""
        self._run("INSERT INTO usage (service, start, finish, cpu, gpu) VALUES (?, ?, ?, ?, ?)",
                  (service, start, finish, cpu, gpu))

    def usage_hours(self, service: str, start: float, end: float) -> tuple[float, float]:
        """CPU-hours and GPU-hours of ``service``'s executions inside ``[start, end]`` (overlaps prorated)."""
        rows = self._rows(
            "SELECT SUM((MIN(finish, ?) - MAX(start, ?)) * cpu), SUM((MIN(finish, ?) - MAX(start, ?)) * gpu) "
            "FROM usage WHERE service = ? AND finish > ? AND start < ?",
            (end, start, end, start, service, start, end))
        cpu, gpu = rows[0] if rows else (None, None)
        return float(cpu or 0.0) / 3600.0, float(gpu or 0.0) / 3600.0

    def get_job(self, service: str, name: str) -> JobRow | None:
        """Return one job of a service, or None."""
        rows = self._rows(_SELECT_JOBS + "WHERE service = ? AND name = ?", (service, name))
        return JobRow(*rows[0]) if rows else None

    def job_exists(self, name: str) -> bool:
        """Whether a job of any service has this name."""
        return bool(self._rows("SELECT 1 FROM jobs WHERE name = ?", (name,)))

    def page_jobs(self, service: str, after: str | None, limit: int, *, owner: str | None = None,
                  created_before: float | None = None) -> tuple[list[JobRow], int]:
        """Up to ``limit`` jobs of ``service`` named after ``after``, and how many remain after them.

        Args:
            owner: only jobs with this ``oscar.grycap/job-owner`` label (an OIDC caller's listing).
            created_before: only jobs that existed then (a listing's snapshot).
        """
        where = "WHERE service = ? AND name > ?"
        params: list[Any] = [service, after or ""]
        if owner is not None:
            where += " AND owner = ?"
            params.append(owner)
        if created_before is not None:
            where += " AND creation_time <= ?"
            params.append(created_before)
        jobs = [JobRow(*row) for row in self._rows(_SELECT_JOBS + where + " ORDER BY name LIMIT ?", (*params, limit))]
        if len(jobs) < limit:
            return jobs, 0
        params[1] = jobs[-1].name
        count = self._rows("SELECT COUNT(*) FROM jobs " + where, params)[0][0]  # noqa: S608 - only "?" marks
        return jobs, int(count)

    def job_names(self, service: str, statuses: Iterable[str] | None = None) -> list[str]:
        """Names of a service's jobs, optionally only those in ``statuses``."""
        if statuses is None:
            return [r[0] for r in self._rows("SELECT name FROM jobs WHERE service = ?", (service,))]
        wanted = tuple(statuses)
        marks = ",".join("?" * len(wanted))
        sql = f"SELECT name FROM jobs WHERE service = ? AND status IN ({marks})"  # noqa: S608 - only "?" marks
        return [r[0] for r in self._rows(sql, (service, *wanted))]

    def delete_jobs(self, names: Iterable[str]) -> None:
        """Delete job records."""
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM jobs WHERE name = ?", [(n,) for n in names])
            self._db.execute("COMMIT")

    def fail_unfinished(self, reason: str) -> list[tuple[str, str]]:
        """Mark every Pending or Running job Failed (after a restart); return their (service, name)."""
        stamp = time.time()
        with self._lock:
            self._db.execute("BEGIN")
            rows = self._db.execute(
                "SELECT service, name FROM jobs WHERE status IN (?, ?)", (PENDING, RUNNING)
            ).fetchall()
            self._db.execute(
                "UPDATE jobs SET status = ?, finish_time = ?, reason = ? WHERE status IN (?, ?)",
                (FAILED, stamp, reason, PENDING, RUNNING),
            )
            self._db.execute("COMMIT")
        return [(str(s), str(n)) for s, n in rows]

    def expired_jobs(self, older_than: float) -> list[tuple[str, str]]:
        """(service, name) of finished jobs that finished before ``older_than``."""
        rows = self._rows(
            "SELECT service, name FROM jobs WHERE status IN (?, ?) AND finish_time < ?",
            (*FINISHED, older_than),
        )
        return [(str(s), str(n)) for s, n in rows]

    def count_by_status(self) -> dict[str, int]:
        """How many jobs are in each status."""
        return {str(s): int(c) for s, c in self._rows("SELECT status, COUNT(*) FROM jobs GROUP BY status")}
