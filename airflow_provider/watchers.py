"""Event triggers for Airflow 3 asset watchers: a DAG runs when OSCAR jobs finish or objects land.

Use them in ``Asset(..., watchers=[AssetWatcher(name, trigger)])`` and schedule a DAG on the asset::

    from airflow.sdk import DAG, Asset, AssetWatcher
    from oscar_plugins.airflow.watchers import OscarJobsFinishedTrigger, OscarNewObjectsTrigger

    indices = Asset("drought-indices", watchers=[AssetWatcher(
        name="drought-jobs", trigger=OscarJobsFinishedTrigger(service_name="drought-indices"))])
    with DAG("warning_map", schedule=[indices]): ...

Each event is one finished job (service, job, status, times, its output keys) or one new object (bucket,
key, size, ETag, MD5 when the ETag is one), with the cluster's endpoint.

**One listing per poll for N watchers.** Triggers of the same connection, service (or bucket path) and
interval share one poll loop in the triggerer (Airflow 3.3's shared streams): the listing is read once
and every trigger filters it against its own watermark.

**Nothing lost; told twice only what Airflow had not confirmed.** Each trigger keeps a
:class:`oscar_plugins.Watermark` (what it has told) in its asset's state store, under :data:`STATE_KEY`.
The stream runs in Airflow's *ack mode*: the watermark is written only after the triggerer confirmed that
the events it covers were stored in Airflow's database, so a restart re-reads from the last stored
watermark: events fired but not yet stored are fired again (they were never stored), events stored are
not. One window remains, inherent in how the triggerer confirms: if the triggerer stops in the second
between Airflow storing an event and the confirmation reaching the trigger (a SIGTERM does: the
supervisor stores the runner's last events and never confirms them), that event is told again after the
restart. Every event carries ``event_id`` (cluster, source and job/object), the same both times, for
consumers that must be strictly idempotent. A watermark of another cluster or source is refused with
the fix.

With no stored watermark a trigger starts from now (``existing=True``: it first tells what is already
there), and stores that starting point before telling anything.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent
from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome, SharedStreamProducer

from oscar_plugins import (
    RESERVED_FILES,
    OscarError,
    ServiceNotFound,
    StorageError,
    Watermark,
    finished_jobs,
    job_output_prefix,
    job_times,
    object_events,
    object_times,
    output_location,
    service_from_api,
)

from ._compat import AirflowException
from ._jobs import is_retryable
from .hook import OscarHook

__all__ = ["STATE_KEY", "OscarJobsFinishedTrigger", "OscarNewObjectsTrigger"]

log = logging.getLogger(__name__)

#: The key of the watermark in each watched asset's state store.
STATE_KEY = "oscar_plugins.watermark"

#: Producer token -> the subscribers' flushes: called by :meth:`_ListingProducer.advance` with the highest
#: listing sequence number whose derived events every subscriber still in the stream has had stored by
#: Airflow. In-process: the producer and its subscribers run in the same triggerer event loop.
_FLUSHES: dict[str, dict[int, Callable[[int], Awaitable[None]]]] = {}
#: Missing buckets, unknown services, bad credentials: errors no later poll fixes.
_NO_BUCKET = {"NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}


def _permanent(exc: BaseException) -> bool:
    if isinstance(exc, StorageError):
        return getattr(exc, "code", "") in _NO_BUCKET
    return isinstance(exc, AirflowException) or not is_retryable(exc)


class _Listing:
    """One poll's reading, broadcast to every trigger of the stream (in-process, never serialized)."""

    __slots__ = ("cluster", "events", "outputs", "seq", "source", "times", "token")

    def __init__(self, token: str, seq: int, cluster: str, source: str, events: Mapping[str, Any],
                 times: list[tuple[str, float | None]], outputs: Callable[[str], Awaitable[list[str]]] | None):
        self.token, self.seq, self.cluster, self.source = token, seq, cluster, source
        self.events, self.times, self.outputs = events, times, outputs


class _ListingProducer(SharedStreamProducer):
    """Reads the listing every ``poll_interval`` seconds for all triggers of one stream key."""

    def __init__(self, trigger_cls: type[_OscarWatcher], kwargs: dict[str, Any]) -> None:
        self.trigger = trigger_cls(**kwargs)
        self.token = uuid.uuid4().hex

    async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
        trigger = self.trigger
        hook = OscarHook(trigger.oscar_conn_id)
        worker = await hook.athread_hook()
        failures = 0
        try:
            async with hook.async_client() as client:
                cluster = client.profile.endpoint
                reader = trigger._reader(client, worker)
                log.info("oscar-plugins: one listing of %s on %s every %s s for every watcher of it (stream %s)",
                         trigger.source, cluster, trigger.poll_interval, self.token[:8])
                for seq in itertools.count(1):
                    try:
                        events, times, outputs = await reader()
                        failures = 0
                    except (OscarError, AirflowException) as exc:
                        message = hook.describe(exc, f"watching {trigger.source}") \
                            if isinstance(exc, OscarError) else str(exc)
                        if _permanent(exc):
                            raise AirflowException(message) from exc
                        failures += 1  # the cluster is down or busy: nothing is lost, the next poll catches up
                        log.warning("%s (poll %d failed in a row; retrying in %.0f s)", message, failures,
                                    trigger.poll_interval)
                        await asyncio.sleep(trigger.poll_interval)
                        continue
                    yield _Listing(self.token, seq, cluster, trigger.source, events, times, outputs), seq
                    await asyncio.sleep(trigger.poll_interval)
        finally:
            worker.close()

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        # Every subscriber still in the stream moved past these listings and Airflow stored the events it
        # derived from them (a subscriber that failed has left: its trigger restarts from its own watermark).
        # Each subscriber stores its watermark now: the sooner, the smaller a restart's window of repeats.
        seq = max(int(item.broker_payload) for item in batch)
        for flush in list(_FLUSHES.get(self.token, {}).values()):
            try:
                await flush(seq)
            except Exception as exc:  # the subscriber tries again at its next listing; the stream goes on
                log.warning("oscar-plugins: could not store a watcher's watermark yet: %s", exc)

    async def aclose(self) -> None:
        _FLUSHES.pop(self.token, None)


class _OscarWatcher(BaseEventTrigger):
    """The part both watchers share: the stream, the watermark in the state store, the filter."""

    source: str

    def __init__(self, *, oscar_conn_id: str, poll_interval: float, existing: bool) -> None:
        super().__init__()
        if not poll_interval > 0:
            raise ValueError(f"poll_interval must be > 0 seconds, not {poll_interval!r}")
        self.oscar_conn_id = oscar_conn_id
        self.poll_interval = float(poll_interval)
        self.existing = bool(existing)

    # -- what a subclass provides ------------------------------------------------------------------------
    def _reader(self, client: Any, worker: OscarHook) -> Callable[[], Awaitable[tuple[
            Mapping[str, Any], list[tuple[str, float | None]], Callable[[str], Awaitable[list[str]]] | None]]]:
        raise NotImplementedError

    def _payload(self, listing: _Listing, event_id: str, event: Any, outputs: list[str] | None) -> dict[str, Any]:
        """The event: its id (cluster, source, event), the cluster and the event's own fields."""
        return {"event_id": f"{listing.cluster}#{listing.source}#{event_id}", "cluster": listing.cluster,
                **event.as_dict()}

    # -- Airflow's shared stream ---------------------------------------------------------------------------
    def shared_stream_key(self) -> Hashable | None:
        return (type(self).__qualname__, self.oscar_conn_id, self.source, self.poll_interval)

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> SharedStreamProducer:
        return _ListingProducer(cls, kwargs)

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        mark: Watermark | None = None
        written: list[dict[str, Any] | None] = [None]
        pending: deque[tuple[int, Watermark]] = deque()  # listings told, not yet stored by Airflow
        lock = asyncio.Lock()
        stored = [0]

        async def flush(seq: int) -> None:
            """Store the watermark of the listings up to ``seq``, whose events Airflow has stored."""
            async with lock:
                stored[0] = max(stored[0], seq)
                ready = None
                while pending and pending[0][0] <= stored[0]:
                    ready = pending.popleft()[1]
                if ready is not None:
                    written[0] = await self._store(ready, written[0])

        key = id(self)
        token = None
        try:
            async for listing in shared_stream:
                if mark is None:
                    token = listing.token
                    _FLUSHES.setdefault(token, {})[key] = flush
                    mark = await self._load(listing.cluster, listing.source)
                    if mark is None:  # first start: from now on (or everything), stored before anything is told
                        mark = Watermark(listing.cluster, listing.source)
                        if not self.existing:
                            mark = mark.told(listing.times)
                        written[0] = await self._store(mark, None)
                await flush(0)  # catch up on a flush that failed
                for event_id in mark.news(listing.times):
                    event = listing.events[event_id]
                    outputs = await listing.outputs(event_id) if listing.outputs is not None else None
                    yield TriggerEvent(self._payload(listing, event_id, event, outputs))
                mark = mark.told(listing.times)
                pending.append((listing.seq, mark))
        finally:
            if token is not None:
                _FLUSHES.get(token, {}).pop(key, None)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Without the triggerer's shared streams (an older Airflow, a test): one poll loop of its own.

        No confirmation that Airflow stored the events arrives here, so the watermark is stored one
        listing later, when the loop has moved past them.
        """
        producer = _ListingProducer(type(self), self.serialize()[1])

        async def listings() -> AsyncIterator[Any]:
            async for listing, seq in producer.open_stream():
                yield listing
                await producer.advance([AdvanceItem(seq, AdvanceOutcome(acked=1, failed=0))])

        try:
            async for event in self.filter_shared_stream(listings()):
                yield event
        finally:
            await producer.aclose()

    # -- the watermark in the asset state store ----------------------------------------------------------
    def _accessors(self) -> list[Any]:
        store = self.asset_state_store
        if store is None:
            return []
        # One trigger may watch several assets (the same trigger in two AssetWatchers): keep the
        # watermark in each. Airflow 3.3 has no public way to list them; fall back to the one accessor.
        by_name = dict(getattr(store, "_by_name", {}) or {})
        by_uri = dict(getattr(store, "_by_uri", {}) or {})
        accessors = [*by_name.values(), *by_uri.values()]
        return accessors or [store]

    async def _load(self, cluster: str, source: str) -> Watermark | None:
        """The least advanced watermark of the watched assets (none lost), or None when there is none."""
        marks = []
        for accessor in self._accessors():
            data = await accessor.aget(STATE_KEY)
            if data is not None:
                marks.append(Watermark.from_json(data, cluster=cluster, source=source,
                                                 where=f"the state {STATE_KEY!r} of {accessor!r}"))
        if not marks:
            return None
        return min(marks, key=lambda m: (m.cutoff, len(m.seen)))

    async def _store(self, mark: Watermark, written: dict[str, Any] | None) -> dict[str, Any]:
        data = mark.to_json()
        if data != written:
            for accessor in self._accessors():
                await accessor.aset(STATE_KEY, data)
        return data


class OscarJobsFinishedTrigger(_OscarWatcher):
    """Fires once per job of ``service_name`` that finishes (Succeeded or Failed), whoever started it.

    The event: ``{"event_id", "cluster", "service", "job", "status", "creation_time", "start_time",
    "finish_time", "output_keys"}``. ``output_keys`` (``bucket/key``) are the objects under the job's own
    folder of the service's first MinIO output path: where jobs submitted through oscar-plugins write.
    OSCAR's bucket-triggered jobs write their outputs beside each other's; watch the output path with
    :class:`OscarNewObjectsTrigger` for those.

    Args:
        service_name: the OSCAR service.
        oscar_conn_id: the Airflow connection.
        poll_interval: seconds between readings of the job list (shared by the triggers of this service).
        statuses: which endings fire (default both ``Succeeded`` and ``Failed``).
        existing: with no stored watermark, first fire for the jobs that had already finished.
    """

    def __init__(self, *, service_name: str, oscar_conn_id: str = OscarHook.default_conn_name,
                 poll_interval: float = 10.0, statuses: Sequence[str] = ("Succeeded", "Failed"),
                 existing: bool = False) -> None:
        super().__init__(oscar_conn_id=oscar_conn_id, poll_interval=poll_interval, existing=existing)
        if not service_name:
            raise ValueError("service_name is empty: name the OSCAR service whose jobs to watch")
        unknown = set(statuses) - {"Succeeded", "Failed"}
        if unknown or not statuses:
            raise ValueError(f"statuses must be 'Succeeded' and/or 'Failed', not {list(statuses)!r}")
        self.service_name = service_name
        self.statuses = sorted(statuses)
        self.source = f"service:{service_name}"

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "service_name": self.service_name, "oscar_conn_id": self.oscar_conn_id,
            "poll_interval": self.poll_interval, "statuses": list(self.statuses), "existing": self.existing})

    def shared_stream_key(self) -> Hashable | None:
        # ``statuses`` and ``existing`` are per trigger: triggers differing only in them share the listing
        return (type(self).__qualname__, self.oscar_conn_id, self.source, self.poll_interval)

    def _reader(self, client: Any, worker: OscarHook) -> Callable[[], Awaitable[Any]]:
        service = self.service_name
        cache: dict[str, list[str]] = {}
        out_path: list[Any] = []

        async def outputs(job: str) -> list[str]:
            if job not in cache:
                if not out_path:
                    out_path.append(output_location(service_from_api(
                        await client.get_service(service), source=f"GET /system/services/{service}")))
                out = out_path[0]
                if out is None:
                    cache[job] = []
                else:
                    objects = await asyncio.to_thread(
                        lambda: list(worker.client.storage.list(out.bucket, job_output_prefix(out, job))))
                    cache[job] = [f"{out.bucket}/{o.key}" for o in objects
                                  if o.key.rsplit("/", 1)[-1] not in RESERVED_FILES]
                    if len(cache) > 10_000:
                        cache.pop(next(iter(cache)))
            return cache[job]

        async def read() -> Any:
            try:
                walk = await client.read_job_list(service)
            except ServiceNotFound as exc:
                raise AirflowException(f"OSCAR connection {self.oscar_conn_id!r} has no service {service!r} "
                                       f"to watch: deploy it, or fix service_name ({exc})") from exc
            ended = finished_jobs(service, walk.listing)
            return ended, job_times(ended), outputs

        return read

    def _payload(self, listing: _Listing, event_id: str, event: Any, outputs: list[str] | None) -> dict[str, Any]:
        return {**super()._payload(listing, event_id, event, outputs), "output_keys": outputs or []}

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        async for event in super().filter_shared_stream(shared_stream):
            if event.payload["status"] in self.statuses:
                yield event


class OscarNewObjectsTrigger(_OscarWatcher):
    """Fires once per object that appears (or is replaced) under ``path`` (``bucket/prefix``) in the
    cluster's MinIO, as OSCAR's own bucket trigger sees uploads.

    The event: ``{"event_id", "cluster", "bucket", "key", "size", "last_modified", "etag", "md5"}``
    (``md5`` only where the ETag is the content's MD5: single-part uploads). The oscar-plugins wrapper's
    own status files and folder markers are not objects of interest and never fire.

    Args:
        path: ``bucket`` or ``bucket/prefix`` (e.g. a service's input path ``drought/in``).
        oscar_conn_id: the Airflow connection.
        poll_interval: seconds between listings (shared by the triggers of this path).
        suffixes: fire only for keys ending with one of these (e.g. ``[".nc"]``); empty: every key.
        existing: with no stored watermark, first fire for the objects already there.
    """

    def __init__(self, *, path: str, oscar_conn_id: str = OscarHook.default_conn_name, poll_interval: float = 10.0,
                 suffixes: Sequence[str] = (), existing: bool = False) -> None:
        super().__init__(oscar_conn_id=oscar_conn_id, poll_interval=poll_interval, existing=existing)
        bucket, _, prefix = path.strip("/").partition("/")
        if not bucket or any(c in bucket for c in " \\:"):
            raise ValueError(f"path must be 'bucket' or 'bucket/prefix' of the cluster's MinIO, not {path!r}")
        self.path = path
        self.bucket = bucket
        self.prefix = f"{prefix.rstrip('/')}/" if prefix else ""
        self.suffixes = list(suffixes)
        self.source = f"bucket:{bucket}/{self.prefix}"

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "path": self.path, "oscar_conn_id": self.oscar_conn_id, "poll_interval": self.poll_interval,
            "suffixes": list(self.suffixes), "existing": self.existing})

    def _reader(self, client: Any, worker: OscarHook) -> Callable[[], Awaitable[Any]]:
        bucket, prefix = self.bucket, self.prefix

        def listing() -> list[Any]:
            return [o for o in worker.client.storage.list(bucket, prefix)
                    if not o.key.endswith("/") and o.key.rsplit("/", 1)[-1] not in RESERVED_FILES]

        async def read() -> Any:
            try:
                objects = await asyncio.to_thread(listing)
            except StorageError as exc:
                if getattr(exc, "code", "") == "NoSuchBucket":
                    raise AirflowException(
                        f"OSCAR connection {self.oscar_conn_id!r}: bucket {bucket!r} does not exist on the "
                        f"cluster's MinIO: fix path={self.path!r}, or deploy the service that creates it") from exc
                raise
            events = object_events(bucket, objects)
            return events, object_times(events), None

        return read

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        async for event in super().filter_shared_stream(shared_stream):
            if not self.suffixes or event.payload["key"].endswith(tuple(self.suffixes)):
                yield event

