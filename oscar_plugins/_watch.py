"""Things that happen on a cluster, each told once: finished jobs and new objects.

``oscar-plugins watch SERVICE`` and :func:`watch_jobs` in the library; :class:`Watermark` is the
sans-IO record of what has been told, shared by them and by the Airflow event triggers (which keep it
in the asset's state store, so a restart neither repeats nor skips an event).

Any job counts, whoever started it: ``/job`` submits, bucket-triggered jobs (a file landing in the
service's input bucket), other users' jobs the caller may see. Each poll reads the whole job list with
the core's pager (:class:`~oscar_plugins.JobListWalk`; OSCAR names bucket-triggered jobs itself, so they
do not sort newest first) and reads states with :func:`~oscar_plugins.listed_state`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._exceptions import ConfigError
from ._joblist import JobState, listed_state

if TYPE_CHECKING:
    from ._client import OscarClient
    from ._storage import ObjectInfo

__all__ = ["JobEvent", "ObjectEvent", "Watermark", "WatermarkMismatch", "finished_jobs", "watch_jobs"]

_ENDED = (JobState.SUCCEEDED, JobState.FAILED)
#: How long after an event's own time it may still first appear in a listing (a pod's status reaches the
#: API late; an object's Last-Modified is its upload's start). Events older than the newest one told minus
#: this are never told again; newer ones are remembered by name.
LOOKBACK = 600.0
WATERMARK_VERSION = 1


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


@dataclass(frozen=True)
class ObjectEvent:
    """An object that appeared (or was replaced) under a watched bucket path.

    ``etag`` is the store's ETag without quotes; ``md5`` is set when the ETag is the content's MD5
    (a single-part upload), None otherwise (multipart ETags are not checksums of the content).
    """

    bucket: str
    key: str
    size: int
    last_modified: str | None = None
    etag: str | None = None
    md5: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class WatermarkMismatch(ConfigError):
    """A stored watermark belongs to another cluster or source than the watcher reading it."""


def event_time(text: object) -> float | None:
    """An RFC 3339 time (as OSCAR and S3 give them) as a Unix time; None when absent or unreadable."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class Watermark:
    """What a watcher has already told, for one source on one cluster (sans-IO, JSON-able).

    Everything that happened before ``cutoff`` (a Unix time) has been told; of what happened at or after
    it, the ids in ``seen`` (with their times) have. ``cutoff`` trails the newest told time by
    :data:`LOOKBACK` seconds, so a late-listed event is still told, and ``seen`` stays as small as what
    happens in that window. Ids without a time (a job with no finish time) stay in ``untimed`` while
    they are listed.

    ``cluster`` is the endpoint (never credentials) and ``source`` what is watched (``service:NAME``,
    ``bucket:BUCKET/PREFIX``): :meth:`from_json` refuses a watermark of another cluster or source.
    """

    cluster: str
    source: str
    cutoff: float = -math.inf
    seen: Mapping[str, float] = field(default_factory=dict)
    untimed: frozenset[str] = field(default_factory=frozenset)

    def news(self, items: Iterable[tuple[str, float | None]]) -> list[str]:
        """The ids among ``(id, time)`` not told yet, oldest first (ties by id)."""
        fresh = [(t if t is not None else math.inf, i) for i, t in items
                 if i not in self.seen and i not in self.untimed and (t is None or t >= self.cutoff)]
        return [i for _, i in sorted(fresh)]

    def told(self, items: Iterable[tuple[str, float | None]], *, lookback: float = LOOKBACK) -> Watermark:
        """This watermark after every id of ``items`` (the whole current listing) was told.

        Timed ids at or after the new cutoff are remembered (so none is told again); older ones need
        not be (their time is below the cutoff). Untimed ids no longer listed are forgotten.
        """
        items = list(items)
        times = [t for _, t in items if t is not None]
        cutoff = max(self.cutoff, max(times) - lookback) if times else self.cutoff
        seen = {i: t for i, t in self.seen.items() if t >= cutoff}
        seen.update((i, t) for i, t in items if t is not None and t >= cutoff)
        untimed = frozenset(i for i, t in items if t is None)
        return Watermark(self.cluster, self.source, cutoff, seen, untimed)

    def to_json(self) -> dict[str, Any]:
        return {"version": WATERMARK_VERSION, "cluster": self.cluster, "source": self.source,
                "cutoff": None if self.cutoff == -math.inf else self.cutoff,
                "seen": dict(sorted(self.seen.items())), "untimed": sorted(self.untimed)}

    @classmethod
    def from_json(cls, data: object, *, cluster: str, source: str, where: str = "the stored watermark") -> Watermark:
        """Read a stored watermark, checking it is this cluster's and this source's.

        Raises:
            WatermarkMismatch: it is another cluster's or source's, or not a watermark at all. The
                message names both and how to start afresh (the watcher never guesses: it would repeat
                or skip events).
        """
        fix = (f"clear {where} to start from now (past events are then not told), or watch with a new "
               "asset name")
        if not isinstance(data, Mapping) or data.get("version") != WATERMARK_VERSION:
            raise WatermarkMismatch(f"{where} is not an oscar-plugins watermark (version "
                                    f"{WATERMARK_VERSION}): {str(data)[:120]!r}; {fix}")
        if data.get("cluster") != cluster or data.get("source") != source:
            raise WatermarkMismatch(f"{where} is for {data.get('source')!r} on {data.get('cluster')!r}, not "
                                    f"{source!r} on {cluster!r}: a watcher reading another's watermark would "
                                    f"repeat or skip events; {fix}")
        try:
            cutoff = data.get("cutoff")
            seen = {str(i): float(t) for i, t in (data.get("seen") or {}).items()}
            return cls(cluster, source, -math.inf if cutoff is None else float(cutoff), seen,
                       frozenset(str(i) for i in data.get("untimed") or ()))
        except (TypeError, ValueError, AttributeError) as exc:
            raise WatermarkMismatch(f"{where} is damaged ({exc}); {fix}") from None


def finished_jobs(service: str, listing: Mapping[str, dict[str, Any]]) -> dict[str, JobEvent]:
    """The finished (Succeeded or Failed) jobs of one job listing, as events by name."""
    out = {}
    for name, info in listing.items():
        state = listed_state(info, missing_for=0.0, lost_after=math.inf)
        if state is not None and state in _ENDED:
            out[name] = JobEvent(service, name, str(info.get("status")), _text(info.get("creation_time")),
                                 _text(info.get("start_time")), _text(info.get("finish_time")))
    return out


def job_times(events: Mapping[str, JobEvent]) -> list[tuple[str, float | None]]:
    """``(name, finish time)`` of finished jobs, for a :class:`Watermark`."""
    return [(name, event_time(e.finish_time)) for name, e in events.items()]


def object_events(bucket: str, objects: Iterable[ObjectInfo]) -> dict[str, ObjectEvent]:
    """Objects of a listing as events, by id (the key and its ETag: a replaced object is news)."""
    out = {}
    for obj in objects:
        etag = (obj.etag or "").strip('"') or None
        md5 = etag if etag and len(etag) == 32 and all(c in "0123456789abcdef" for c in etag.lower()) else None
        out[f"{obj.key}#{etag or obj.size}"] = ObjectEvent(bucket, obj.key, obj.size, obj.last_modified, etag, md5)
    return out


def object_times(events: Mapping[str, ObjectEvent]) -> list[tuple[str, float | None]]:
    return [(i, event_time(e.last_modified)) for i, e in events.items()]


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
    mark = Watermark(client.profile.endpoint, f"service:{service}")
    first = True
    while True:
        ended = finished_jobs(service, client.read_job_list(service).listing)
        items = job_times(ended)
        if not (first and not existing):
            for name in mark.news(items):
                yield ended[name]
        mark = mark.told(items)
        first = False
        left = deadline - time.monotonic()
        if left <= 0:
            return
        sleep(min(interval, left))


def _text(value: object) -> str | None:
    return str(value) if value else None
