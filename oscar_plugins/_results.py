"""What a job gets (:class:`JobSpec`) and what came of it (:class:`JobResult`), shared by ``Dispatcher``
(``_dispatch``) and its batches (``_members``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._exceptions import OscarError
from ._jobs import Job

__all__ = ["JobResult", "JobSpec"]


@dataclass
class JobSpec:
    """What one job gets: input files (names must be unique), a payload, extra environment variables."""

    inputs: Sequence[Path] = ()
    payload: bytes | str | Mapping[str, Any] | None = None
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class JobResult:
    """The outcome of one job: its outputs on disk, or the error."""

    index: int
    job: Job | None
    outputs: list[Path] = field(default_factory=list)
    exit_code: int | None = None
    error: OscarError | None = None
    #: Keys the job wrote in its service's output bucket (its status file and outputs), for cleaning up.
    objects: list[str] = field(default_factory=list)
    #: The job's log as the cluster gives it, when asked for (``collect_all(..., logs=True)``); "" if unreadable.
    log: str | None = None
    #: The spec's member number in its batch job (``map(..., batch=N)``), None for a job of its own.
    member: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
