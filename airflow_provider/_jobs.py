"""Pure pieces of the provider: job names, state summaries, trigger events, error classes.

Nothing here does I/O or imports Airflow, so it is unit-tested directly.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from oscar_plugins import (
    AuthenticationError,
    BadRequest,
    ConfigError,
    InputNotFound,
    JobState,
    NotFound,
    OscarError,
    OutputExists,
    name_clock,
)

__all__ = [
    "ACTIVE",
    "FAILED",
    "SUCCEEDED",
    "event",
    "is_retryable",
    "job_names",
    "summary",
]

SUCCEEDED = "Succeeded"
FAILED = "Failed"
ACTIVE = "Running"
_SLUG = re.compile(r"[^a-z0-9-]+")


def job_names(service: str, *, dag_id: str, task_id: str, run_id: str, map_index: int, try_number: int,
              count: int, nonce: str | None = None) -> list[str]:
    """Valid OSCAR job names for the jobs of one task try, chosen before submitting.

    ``<service, 16 chars>-<11 hex: the core's count-down clock><4 hex nonce>-<8 hex of dag/run/task/map
    index/try>-<i>``: a DNS-1123 label of at most 48 characters plus the index. The clock makes newer
    jobs sort first in OSCAR's name-ordered listing, so the core's pager stops at the first pages (as for
    :func:`oscar_plugins.new_job_name`); the hash lets a person find a task's jobs; clock and nonce keep
    names unique when Airflow repeats a try number (a cleared run, ``dag.test()``), so a new submit never
    lands on an old job of the same name. Names are fixed before the first POST, so a resubmit after a
    lost response finds its job (idempotent submit). ``nonce`` fixes the clock and nonce part (tests).
    """
    key = "\0".join([dag_id, run_id, task_id, str(map_index), str(try_number)])
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    stem = name_clock() + secrets.token_hex(2) if nonce is None else nonce
    prefix = _SLUG.sub("-", service.lower()).strip("-")[:16].rstrip("-") or "job"
    return [f"{prefix}-{stem}-{digest}-{i}" for i in range(count)]


def summary(states: Mapping[str, JobState]) -> str:
    """One status for a set of jobs: ``Failed`` if any failed or vanished, ``Succeeded`` if all did."""
    values = list(states.values())
    if any(s in (JobState.FAILED, JobState.LOST) for s in values):
        return FAILED
    if values and all(s == JobState.SUCCEEDED for s in values):
        return SUCCEEDED
    return ACTIVE


def event(status: str, service: str, states: Mapping[str, JobState], message: str = "",
          **extra: Any) -> dict[str, Any]:
    """A trigger event payload: primitives only (it is stored in the metadata database)."""
    return {"status": status, "service": service, "jobs": {n: s.value for n, s in states.items()},
            "message": message, **extra}


def states_from_event(payload: Mapping[str, Any]) -> dict[str, JobState]:
    return {str(n): JobState.parse(s) for n, s in dict(payload.get("jobs") or {}).items()}


def is_retryable(exc: BaseException) -> bool:
    """Whether trying the task again may help: network and server trouble yes; bad input, no.

    Bad credentials, a missing service, an invalid FDL or input, and existing outputs need a person.
    A failed job (``JobFailed``) counts as retryable: the task's own ``retries`` decide.
    """
    if not isinstance(exc, OscarError):
        return True
    return not isinstance(exc, (ConfigError, AuthenticationError, NotFound, BadRequest, InputNotFound,
                                OutputExists))


def flatten(groups: Iterable[Iterable[str]]) -> list[str]:
    return [item for group in groups for item in group]
