"""The one retry policy of the core: a schedule of waits (sans-IO) and one predicate for what is worth
repeating unchanged. Every loop that repeats a call (REST requests, sync and async; creating a service;
submitting a named job; S3 GETs and whole uploads) takes its waits from a :class:`Backoff` and asks
:func:`transient`; only the I/O (``time.sleep`` or ``asyncio.sleep``) differs.

Why not tenacity or httpx's transport retries: several loops must do their own check between attempts
(a lost answer to a create or a named submit is looked up before repeating it, so nothing runs twice),
the same schedule serves sync and async code, and tests run schedules without sleeping. What remains is a
generator and a predicate, smaller than the adapters a library would need.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from ._exceptions import ConnectionFailed, OscarError, ServiceUnavailable, StorageError, TLSError

__all__ = ["IDEMPOTENT_METHODS", "Backoff", "aretry", "retry", "transient"]

T = TypeVar("T")

#: HTTP methods a client may repeat when the answer is lost (RFC 9110 9.2.2).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: S3 error codes of a store that was away or overloaded (a restart also forgets multipart uploads).
_TRANSIENT_S3 = frozenset({"", "NoSuchUpload", "InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout"})


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: wait ``first`` seconds, then ``factor`` times longer each time up to ``cap``,
    at most ``retries`` times (so ``retries + 1`` attempts in all)."""

    retries: int = 5
    first: float = 0.25
    factor: float = 2.0
    cap: float = 5.0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.first < 0 or self.factor < 1 or self.cap < 0:
            raise ValueError(f"{self!r}: retries, first and cap must be >= 0 and factor >= 1")

    def delays(self) -> Iterator[float]:
        """The waits before each repeat, in order."""
        delay = self.first
        for _ in range(self.retries):
            yield min(delay, self.cap)
            delay *= self.factor

    @classmethod
    def fixed(cls, *delays: float) -> Backoff:
        """A schedule of the given waits (each at most the largest)."""
        return _Fixed(retries=len(delays), cap=max(delays, default=0.0), waits=tuple(delays))


@dataclass(frozen=True)
class _Fixed(Backoff):
    waits: tuple[float, ...] = ()

    def delays(self) -> Iterator[float]:
        yield from self.waits


#: No repeat: for calls that must not run twice.
ONCE = Backoff(retries=0)


def transient(error: BaseException) -> bool:
    """Whether a failed call may work when repeated unchanged: the server or the store was unreachable,
    overloaded or restarting (connection failures other than TLS, 502/503/504, S3 5xx and a forgotten
    multipart upload). Refusals, bad requests and TLS failures are not."""
    if isinstance(error, TLSError):
        return False
    if isinstance(error, (ConnectionFailed, ServiceUnavailable)):
        return True
    if isinstance(error, StorageError):
        code = error.code or ""
        return code in _TRANSIENT_S3 or (code.isdigit() and int(code) >= 500)
    return False


def retry(call: Callable[[], T], backoff: Backoff, *, when: Callable[[BaseException], bool] = transient,
          sleep: Callable[[float], object] = time.sleep,
          on_retry: Callable[[OscarError, float], object] | None = None) -> T:
    """``call()``, repeated after each wait of ``backoff`` while it raises an :class:`OscarError` that
    ``when`` accepts; the last error is raised as it is."""
    waits = backoff.delays()
    while True:
        try:
            return call()
        except OscarError as exc:
            delay = next(waits, None) if when(exc) else None
            if delay is None:
                raise
            if on_retry is not None:
                on_retry(exc, delay)
            sleep(delay)


async def aretry(call: Callable[[], Awaitable[T]], backoff: Backoff, *,
                 when: Callable[[BaseException], bool] = transient,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> T:
    """:func:`retry` for coroutines."""
    waits = backoff.delays()
    while True:
        try:
            return await call()
        except OscarError as exc:
            delay = next(waits, None) if when(exc) else None
            if delay is None:
                raise
            await sleep(delay)
