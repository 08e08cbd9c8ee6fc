"""Reading a service's job list, without I/O: the one pager and the one way to read a job's state from it.

``GET /system/logs/{service}`` answers 70 jobs a page in name order (``logs.go``; Kubernetes lists by
key). :class:`JobListWalk` is the walk over those pages: which page to ask for next, what an answer
means (a continued page whose token expired answers 500 and the walk starts again; an empty 200 is an
OIDC user who may not see the service; a repeated token would never end), and the early stop: with
``wanted`` names, the walk ends on the page where it has seen them all. Job names count time down
(:func:`new_job_name`), so the jobs still running are on the first pages. :func:`listed_state` reads one
job's state from a listing, with a grace period for a job not listed yet. The sync client, the async
client, :class:`~oscar_plugins.JobTracker`, the Airflow trigger, sensor and operators all use these two.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ._exceptions import AuthenticationError, OscarError, ServerError

__all__ = ["JobInfo", "JobListWalk", "JobState", "listed_state", "name_clock", "new_job_name", "parse_job_list"]

log = logging.getLogger("oscar_plugins")

JobInfo = dict[str, Any]


class JobState(str, Enum):
    """A job's state as OSCAR reports it (the Kubernetes pod phase), plus ``UNKNOWN`` and ``LOST``."""

    PENDING = "Pending"
    SUSPENDED = "Suspended"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"
    #: The job vanished from the cluster's list (deleted by someone, or expired).
    LOST = "Lost"

    @classmethod
    def parse(cls, value: object) -> JobState:
        for state in cls:
            if str(value).lower() == state.value.lower():
                return state
        return cls.UNKNOWN

    @property
    def terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.LOST)

#: Job names count milliseconds DOWN from here, so that newer names sort first (see new_job_name).
_NAME_EPOCH_MS = 16**11 - 1


def name_clock(now: float | None = None) -> str:
    """11 hex digits that count milliseconds down: a later time gives a name that sorts first."""
    ms = int((time.time() if now is None else now) * 1000)
    return f"{_NAME_EPOCH_MS - ms:011x}"


def new_job_name(service: str) -> str:
    """A unique, valid job name: ``<service>-<11 hex: time, descending><6 hex: random>`` (<= 57 characters).

    OSCAR lists a service's jobs in name order (Kubernetes lists by key; the local cluster does the same),
    70 a page. Names that sort newest first put the jobs still running on the first pages and the old,
    finished ones (kept 30 days) at the end, so the poller's early stop reads only the pages it needs.
    """
    return f"{service}-{name_clock()}{uuid.uuid4().hex[:6]}"


def parse_job_list(body: Any) -> tuple[dict[str, JobInfo], str | None]:
    """Parse ``GET /system/logs/{svc}``: the v3.6.4+ shape or the older bare map.

    Returns:
        The jobs by name and the next page token (None on the last page).

    Raises:
        OscarError: the body is not a job list.
    """
    if not isinstance(body, dict):
        raise OscarError(f"the job list is a {type(body).__name__}, not an object: the endpoint may not be an "
                         "OSCAR server, or a proxy answered instead")
    if isinstance(body.get("jobs"), dict) and ("next_page" in body or "remaining_jobs" in body
                                               or all(isinstance(v, dict) for v in body["jobs"].values())):
        token = body.get("next_page") or None
        jobs = {str(k): dict(v) if isinstance(v, dict) else {} for k, v in body["jobs"].items()}
        return jobs, (token if isinstance(token, str) else None)
    return {str(k): dict(v) for k, v in body.items() if isinstance(v, dict)}, None


@dataclass
class JobListWalk:
    """One walk over a service's job list. Drive it with any HTTP client::

        walk = JobListWalk("svc", cluster="prod", endpoint=url, wanted={"svc-1", "svc-2"})
        while not walk.done:
            try:
                body = GET(walk.path, params=walk.params())
            except ServerError as exc:
                walk.failed(exc)         # re-raises unless the walk can start again
                continue
            walk.take(body)              # the page's jobs, also gathered in walk.listing

    Args:
        service: the service.
        cluster: the cluster's name, for messages.
        endpoint: its URL, for messages.
        wanted: stop once every one of these jobs was seen (None: read every page).
    """

    service: str
    cluster: str = ""
    endpoint: str = ""
    wanted: set[str] | None = None
    #: Every job seen so far.
    listing: dict[str, JobInfo] = field(default_factory=dict)
    #: Pages read so far.
    pages: int = 0
    done: bool = False
    _token: str | None = None
    _tokens: set[str] = field(default_factory=set)
    _restarts: int = 0

    def __post_init__(self) -> None:
        if self.wanted is not None:
            self.wanted = set(self.wanted)

    @property
    def path(self) -> str:
        return f"/system/logs/{self.service}"

    @property
    def call(self) -> str:
        return f"GET {self.path}"

    def params(self) -> dict[str, str] | None:
        """The query of the next request."""
        return {"page": self._token} if self._token else None

    def failed(self, error: ServerError) -> None:
        """A request of the walk answered 500. On a continued page that is a continue token older than
        about 5 minutes (Kubernetes): the walk starts again from the first page (twice at most).

        Raises:
            ServerError: ``error``, when starting again cannot help.
        """
        if not self._token or self._restarts >= 2:
            raise error
        log.info("the job list of %s expired mid-walk (continue token too old); reading it again", self.service)
        self._token, self._restarts = None, self._restarts + 1
        self._tokens.clear()  # a new walk, over a new snapshot

    def take(self, body: bytes | str) -> dict[str, JobInfo]:
        """Read one answered page (its raw body); returns its jobs.

        Raises:
            AuthenticationError: an empty 200: OSCAR (v4.0+) answers that to an OIDC user who may not see
                the service.
            OscarError: not a job list, or a page token given before (the walk would never end).
        """
        if not body.strip():
            raise AuthenticationError(
                f"{self.call} on cluster {self.cluster!r} answered 200 with an empty body: OSCAR (v4.0+) does "
                f"this when the caller may not see service {self.service!r}; with an OIDC token, ask its owner to "
                "make it public or to add you to allowed_users", status=200, call=self.call)
        try:
            decoded = json.loads(body)
        except ValueError as exc:
            raise OscarError(f"{self.call} on {self.cluster!r} did not return JSON: is {self.endpoint} an OSCAR "
                             "endpoint?") from exc
        jobs, token = parse_job_list(decoded)
        self.listing.update(jobs)
        self.pages += 1
        if self.wanted is not None:
            self.wanted.difference_update(jobs)
        if not token or (self.wanted is not None and not self.wanted):
            self.done = True  # the last page, or every wanted job seen: later pages cannot tell more
        elif token in self._tokens:
            raise OscarError(f"{self.call} on cluster {self.cluster!r} gave a page token it gave before: the "
                             "listing would never end (a proxy caching the answer?); list the jobs again later")
        else:
            self._tokens.add(token)
            self._token = token
        return jobs


def listed_state(info: JobInfo | None, *, missing_for: float, lost_after: float) -> JobState | None:
    """What a job list says of one job: its state; ``LOST`` when it has not been listed for more than
    ``lost_after`` seconds (deleted, expired, or never created); None while it may simply not be listed
    yet (a listing can lag a submit)."""
    if info is None:
        return JobState.LOST if missing_for > lost_after else None
    return JobState.parse(info.get("status"))


def states_of(names: Iterable[str], listing: dict[str, JobInfo], *, missing_for: float,
              lost_after: float) -> dict[str, JobState | None]:
    """:func:`listed_state` of each name."""
    return {n: listed_state(listing.get(n), missing_for=missing_for, lost_after=lost_after) for n in names}
