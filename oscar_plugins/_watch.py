"""Jobs of a service as they finish: ``oscar-plugins watch SERVICE`` and :func:`watch_jobs` in the library.

Any job counts, whoever started it: ``/job`` submits, bucket-triggered jobs (a file landing in the
service's input bucket), other users' jobs the caller may see. Each poll reads the whole job list with
the core's pager (:class:`~oscar_plugins.JobListWalk`; OSCAR names bucket-triggered jobs itself, so they
do not sort newest first) and reads states with :func:`~oscar_plugins.listed_state`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ._joblist import JobState, listed_state

if TYPE_CHECKING:
    from ._client import OscarClient

__all__ = ["JobEvent", "watch_jobs"]

_ENDED = (JobState.SUCCEEDED, JobState.FAILED)


@dataclass(frozen=True)
class JobEvent:
    """A job that finished: its service, name, status (``Succeeded`` or ``Failed``: the pod's phase) and
    times (RFC 3339, as the cluster gives them; None when it does not)."""

    service: str
    job: str
    status: str
    creation_time: str | None = None
    start_time: str | None = None
    finish_time: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def watch_jobs(client: OscarClient, service: str, *, interval: float = 2.0, existing: bool = False,
               timeout: float | None = None, sleep: Callable[[float], object] = time.sleep) -> Iterator[JobEvent]:
    """Yield each job of ``service`` once, when it has finished, in the order it finished.

    Args:
        interval: seconds between readings of the job list.
        existing: also the jobs that had finished before the watch started (first, oldest first).
        timeout: stop after this many seconds (None: never).

    Raises:
        ServiceNotFound: no such service (its job list answers 404).
        OscarError: the job list could not be read (after the client's retries).
    """
    if interval <= 0:
        raise ValueError(f"interval must be > 0 seconds, not {interval}")
    deadline = math.inf if timeout is None else time.monotonic() + timeout
    seen: set[str] = set()
    first = True
    while True:
        listing = client.read_job_list(service).listing
        ended = [(name, info) for name, info in listing.items() if name not in seen
                 and listed_state(info, missing_for=0.0, lost_after=math.inf) in _ENDED]
        for name, info in sorted(ended, key=lambda item: (str(item[1].get("finish_time") or ""), item[0])):
            seen.add(name)
            if first and not existing:
                continue
            yield JobEvent(service, name, str(info.get("status")), _text(info.get("creation_time")),
                           _text(info.get("start_time")), _text(info.get("finish_time")))
        first = False
        left = deadline - time.monotonic()
        if left <= 0:
            return
        sleep(min(interval, left))


def _text(value: object) -> str | None:
    return str(value) if value else None
