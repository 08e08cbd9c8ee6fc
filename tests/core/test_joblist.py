"""The one pager and the one state reading of a job list (pure), and both clients driving them for real."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from oscar_plugins import (
    AsyncOscarClient,
    AuthenticationError,
    JobListWalk,
    JobState,
    OscarError,
    ServerError,
    listed_state,
    service_from_dict,
)


def page(jobs: dict[str, str], token: str | None = None) -> bytes:
    return json.dumps({"jobs": {n: {"status": s} for n, s in jobs.items()}, "next_page": token or "",
                       "remaining_jobs": 0}).encode()


def test_the_walk_reads_page_after_page_and_stops_where_every_wanted_job_was_seen() -> None:
    walk = JobListWalk("svc", "c", "https://x", wanted={"a", "c"})
    assert walk.params() is None
    assert walk.take(page({"a": "Running", "b": "Succeeded"}, "t1")) == {"a": {"status": "Running"},
                                                                        "b": {"status": "Succeeded"}}
    assert walk.params() == {"page": "t1"} and not walk.done
    walk.take(page({"c": "Pending"}, "t2"))  # c seen: the pages after t2 cannot tell more
    assert walk.done and walk.pages == 2 and set(walk.listing) == {"a", "b", "c"}

    everything = JobListWalk("svc")
    everything.take(page({"a": "Running"}, "t1"))
    everything.take(page({"b": "Running"}))
    assert everything.done and everything.pages == 2


def test_an_expired_continue_token_starts_the_walk_again_twice_at_most() -> None:
    walk = JobListWalk("svc")
    error = ServerError("500", status=500, call="GET /system/logs/svc")
    with pytest.raises(ServerError):
        walk.failed(error)  # on the first page a 500 is the server's, not an old token
    for _ in range(2):
        walk.take(page({"a": "Running"}, "t1"))
        walk.failed(error)
        assert walk.params() is None
    walk.take(page({"a": "Running"}, "t1"))
    with pytest.raises(ServerError):
        walk.failed(error)


def test_answers_the_walk_cannot_use_are_named() -> None:
    with pytest.raises(AuthenticationError, match="may not see service 'svc'"):
        JobListWalk("svc", "prod").take(b"  ")
    with pytest.raises(OscarError, match="did not return JSON: is https://x an OSCAR endpoint"):
        JobListWalk("svc", "prod", "https://x").take(b"<html>login</html>")
    walk = JobListWalk("svc")
    walk.take(page({"a": "Running"}, "t1"))
    with pytest.raises(OscarError, match="gave a page token it gave before"):
        walk.take(page({"b": "Running"}, "t1"))


def test_listed_state_gives_a_new_job_time_to_be_listed() -> None:
    assert listed_state({"status": "Succeeded"}, missing_for=0, lost_after=60) == JobState.SUCCEEDED
    assert listed_state({"status": "Weird"}, missing_for=0, lost_after=60) == JobState.UNKNOWN
    assert listed_state(None, missing_for=5, lost_after=60) is None
    assert listed_state(None, missing_for=61, lost_after=60) == JobState.LOST
    assert listed_state(None, missing_for=math.inf, lost_after=0) == JobState.LOST


def test_both_clients_walk_a_real_job_list_the_same_way(client, local_cluster) -> None:
    client.ensure_service(service_from_dict({"name": "walked", "image": "alpine", "script": "true"}))
    names = [client.submit_job("walked", b"") for _ in range(3)]
    sync = client.read_job_list("walked", wanted=names[-1:])  # the newest job: on the first page
    assert sync.pages == 1 and names[-1] in sync.listing

    async def read() -> JobListWalk:
        async with AsyncOscarClient(client.profile) as aclient:
            return await aclient.read_job_list("walked", wanted=set(names))

    walk = asyncio.run(read())
    assert set(names) <= set(walk.listing) and walk.done
