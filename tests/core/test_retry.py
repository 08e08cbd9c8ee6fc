"""The one retry policy: its schedule, its predicate, and the sync and async loops (no real sleeping)."""

from __future__ import annotations

import asyncio

import pytest

from oscar_plugins._exceptions import (
    AuthenticationError,
    BadRequest,
    ConnectionFailed,
    OscarError,
    ServerError,
    ServiceUnavailable,
    StorageError,
    TLSError,
)
from oscar_plugins._retry import ONCE, Backoff, aretry, retry, transient


def test_the_schedule_doubles_up_to_its_cap() -> None:
    assert list(Backoff(retries=6, first=0.25, cap=5.0).delays()) == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0]
    assert list(Backoff(retries=0).delays()) == [] == list(ONCE.delays())
    assert list(Backoff.fixed(2.0, 5.0, 10.0).delays()) == [2.0, 5.0, 10.0]
    with pytest.raises(ValueError, match="factor >= 1"):
        Backoff(factor=0.5)


@pytest.mark.parametrize(("error", "worth"), [
    (ConnectionFailed("refused"), True),
    (ServiceUnavailable("503", status=503, call="GET /x"), True),
    (StorageError("restarting", code="NoSuchUpload"), True),
    (StorageError("5xx", code="503"), True),
    (StorageError("slow", code="SlowDown"), True),
    (TLSError("bad certificate"), False),
    (AuthenticationError("401", status=401, call="GET /x"), False),
    (BadRequest("400", status=400, call="GET /x"), False),
    (ServerError("500", status=500, call="GET /x"), False),
    (StorageError("denied", code="AccessDenied"), False),
    (ValueError("not ours"), False),
])
def test_what_is_worth_repeating(error: BaseException, worth: bool) -> None:
    assert transient(error) is worth


def test_retry_repeats_transient_failures_then_gives_the_last_one() -> None:
    slept: list[float] = []
    calls = iter([ConnectionFailed("1"), ServiceUnavailable("2", status=503, call="GET /x"), "ok"])

    def call() -> str:
        item = next(calls)
        if isinstance(item, BaseException):
            raise item
        return item

    assert retry(call, Backoff(retries=5, first=0.1), sleep=slept.append) == "ok"
    assert slept == [0.1, 0.2]

    def never() -> str:
        raise ConnectionFailed("down")

    slept.clear()
    with pytest.raises(ConnectionFailed, match="down"):
        retry(never, Backoff(retries=3, first=1.0), sleep=slept.append)
    assert slept == [1.0, 2.0, 4.0]  # retries + 1 attempts


def test_retry_gives_a_refusal_at_once_and_tells_each_repeat() -> None:
    slept: list[float] = []

    def refused() -> None:
        raise AuthenticationError("401", status=401, call="GET /x")

    with pytest.raises(AuthenticationError):
        retry(refused, Backoff(), sleep=slept.append)
    assert slept == []
    told: list[tuple[str, float]] = []
    attempts = iter([ConnectionFailed("x"), None])

    def flaky() -> None:
        if (error := next(attempts)) is not None:
            raise error

    retry(flaky, Backoff(first=0.5), sleep=lambda _s: None, on_retry=lambda e, d: told.append((str(e), d)))
    assert told == [("x", 0.5)]


def test_the_async_loop_follows_the_same_schedule() -> None:
    slept: list[float] = []
    attempts = iter([ServiceUnavailable("a", status=502, call="GET /x"),
                     ServiceUnavailable("b", status=504, call="GET /x"), 7])

    async def call() -> int:
        item = next(attempts)
        if isinstance(item, BaseException):
            raise item
        return int(item)

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    assert asyncio.run(aretry(call, Backoff(first=0.25), sleep=sleep)) == 7
    assert slept == [0.25, 0.5]

    async def broken() -> int:
        raise OscarError("not transient")

    with pytest.raises(OscarError, match="not transient"):
        asyncio.run(aretry(broken, Backoff(), sleep=sleep))
