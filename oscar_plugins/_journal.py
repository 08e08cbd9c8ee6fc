"""A small journal of submitted jobs, so a restarted process reattaches instead of resubmitting.

Each batch (a ``map`` call, a CLI ``job`` command) has a key derived from what it does. Job names are
written BEFORE the submit (write-ahead): after a crash, a name in the journal is either on the cluster
(reattach) or not (submit it now, under the same name). A completed batch is forgotten, so running
the same command again later starts a fresh batch.

A batched ``map`` (several specs in one OSCAR job) records each spec's job name AND its member number in
that job, so a rerun reattaches to the job and collects only the members not collected yet.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

from ._paths import state_dir

__all__ = ["Batch", "Journal"]


class Journal:
    """The journal file (SQLite, WAL), safe to share between threads and processes."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or state_dir() / "journal.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS batch (key TEXT PRIMARY KEY, cluster TEXT, service TEXT, "
                         "created REAL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS job (key TEXT, idx INT, name TEXT, collected INT DEFAULT 0,"
                         " outputs TEXT, PRIMARY KEY (key, idx))")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(job)")}
        if "member" not in columns:  # a journal written before batches: its jobs have no members
            self._db.execute("ALTER TABLE job ADD COLUMN member INT")
        self._lock = threading.Lock()

    def batch(self, key: str, cluster: str, service: str) -> Batch:
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO batch VALUES (?,?,?,?)", (key, cluster, service, time.time()))
        return Batch(self, key)

    def close(self) -> None:
        self._db.close()


class Batch:
    """One batch's entries in the journal."""

    def __init__(self, journal: Journal, key: str) -> None:
        self.journal = journal
        self.key = key

    def _exec(self, sql: str, args: tuple[object, ...]) -> list[tuple[object, ...]]:
        with self.journal._lock:
            return list(self.journal._db.execute(sql, args).fetchall())

    def names(self) -> dict[int, str]:
        rows = self._exec("SELECT idx, name FROM job WHERE key=?", (self.key,))
        return {int(str(i)): str(n) for i, n in rows}

    def members(self) -> dict[int, tuple[str, int | None]]:
        """Each recorded spec's (job name, member number in that job: None for a job of its own)."""
        rows = self._exec("SELECT idx, name, member FROM job WHERE key=?", (self.key,))
        return {int(str(i)): (str(n), None if m is None else int(str(m))) for i, n, m in rows}

    def collected(self) -> dict[int, list[str]]:
        rows = self._exec("SELECT idx, outputs FROM job WHERE key=? AND collected=1", (self.key,))
        return {int(str(i)): list(json.loads(str(o) or "[]")) for i, o in rows}

    def record(self, idx: int, name: str, member: int | None = None) -> None:
        """Spec ``idx`` runs as job ``name`` (as its batch member ``member``), before the job is submitted."""
        self._exec("INSERT OR REPLACE INTO job (key, idx, name, collected, member) VALUES (?,?,?,0,?)",
                   (self.key, idx, name, member))

    def mark_collected(self, idx: int, outputs: list[str]) -> None:
        self._exec("UPDATE job SET collected=1, outputs=? WHERE key=? AND idx=?",
                   (json.dumps(outputs), self.key, idx))

    def forget(self, idx: int) -> None:
        """Forget job ``idx``: it failed for good, so a rerun submits it again instead of reattaching."""
        self._exec("DELETE FROM job WHERE key=? AND idx=?", (self.key, idx))

    def complete(self) -> None:
        """Forget the batch: it is done."""
        self._exec("DELETE FROM job WHERE key=?", (self.key,))
        self._exec("DELETE FROM batch WHERE key=?", (self.key,))
