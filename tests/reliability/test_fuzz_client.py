"""Property-based fuzzing of the client with server answers (hypothesis).

Every call the client makes to a server gets generated answers: bodies built from OSCAR v4.1.2's Go types
(``types.Service``, the job list, info, config, status) with zero values, ``null``\\ s, missing and extra
fields and wrong types, plus truncated bodies, text where JSON is due, empty bodies and every status. The
client must use each answer or report it as an :class:`OscarError` (the CLI prints those as one line);
any other exception is a traceback a user would see. The answers are served through httpx's transport
seam: the client's real code runs, only the socket is left out.
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oscar_plugins import OscarClient, OscarError, free_capacity, service_from_dict
from oscar_plugins._auth import BasicCredentials
from oscar_plugins._profiles import ClusterProfile
from oscar_plugins.local.api._gotypes import Bool, ListOf, MapOf, Ptr, Str, Struct, encode, zero
from oscar_plugins.local.api._persona import persona

EXAMPLES = int(os.environ.get("OSCAR_FUZZ_CLIENT_EXAMPLES", "400"))
SERVICE = persona("4.1.2").service
JOB_INFO = Struct("JobInfo", ())
CASES = {"tried": 0, "used": 0, "reported": 0}

_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 2**40), st.floats(allow_nan=False),
                     st.text(max_size=12), st.just([]), st.just({}))


def _value(gotype: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """A JSON value for a Go type: a valid one, its zero value, null, or one of the wrong type."""
    if isinstance(gotype, Struct):
        valid: st.SearchStrategy[Any] = _struct(gotype, depth + 1) if depth < 3 else st.just({})
    elif isinstance(gotype, Ptr):
        valid = _struct(gotype.target, depth + 1) if depth < 3 else st.just({})
    elif isinstance(gotype, MapOf):
        valid = st.dictionaries(st.text(max_size=6), _value(gotype.value, depth + 1), max_size=3)
    elif isinstance(gotype, ListOf):
        valid = st.lists(_value(gotype.item, depth + 1), max_size=3)
    elif gotype is Str:
        valid = st.one_of(st.text(max_size=20), st.sampled_from(["hidden", "minio.default", "svc/out", "0.5", ""]))
    elif gotype is Bool:
        valid = st.booleans()
    else:
        valid = st.integers(0, 100)
    return st.one_of(valid, valid, st.just(zero(gotype)), st.none(), _SCALARS)


def _struct(gotype: Struct, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    fields = {f.key: _value(f.type, depth) for f in gotype.fields}
    missing = st.sets(st.sampled_from([f.key for f in gotype.fields] or ["-"]), max_size=4)
    extra = st.dictionaries(st.text(min_size=1, max_size=8), _SCALARS, max_size=2)
    return st.tuples(st.fixed_dictionaries(fields), missing, extra).map(
        lambda t: {**{k: v for k, v in t[0].items() if k not in t[1]}, **t[2]})


WELL_FORMED = encode(SERVICE, {**zero(SERVICE), "name": "svc", "image": "img", "script": "echo"})


def _service() -> st.SearchStrategy[Any]:
    return st.one_of(st.just(WELL_FORMED), _struct(SERVICE), _SCALARS)


def _job_list() -> st.SearchStrategy[Any]:
    info = st.one_of(st.fixed_dictionaries({"status": st.sampled_from(["Pending", "Running", "Succeeded", "Failed",
                                                                        "Suspended", "Unknown", "", "odd"])}),
                     _SCALARS)
    jobs = st.dictionaries(st.text(min_size=1, max_size=10), info, max_size=4)
    paged = st.fixed_dictionaries({"jobs": st.one_of(jobs, _SCALARS)},
                                  optional={"next_page": st.one_of(st.none(), st.just(""), st.text(max_size=8)),
                                            "remaining_jobs": _SCALARS})
    return st.one_of(paged, jobs, _SCALARS)


def _status() -> st.SearchStrategy[Any]:
    metrics = st.fixed_dictionaries({"cpu": st.one_of(st.dictionaries(st.sampled_from(
        ["total_free_cores", "total_schedulable_cores"]), _SCALARS), _SCALARS),
        "memory": st.one_of(st.dictionaries(st.sampled_from(["total_free_bytes", "total_schedulable_bytes"]),
                                            _SCALARS), _SCALARS)})
    nested = st.fixed_dictionaries({"cluster": st.one_of(st.fixed_dictionaries({"metrics": metrics}), _SCALARS)})
    flat = st.fixed_dictionaries({"cpuFreeTotal": _SCALARS, "memoryFreeTotal": _SCALARS})
    return st.one_of(nested, flat, _SCALARS)


def _encode(value: Any, how: str) -> bytes:
    text = json.dumps(value)
    if how == "truncated":
        return text[: max(1, len(text) // 2)].encode()
    if how == "text":
        return b"404 page not found"
    if how == "empty":
        return b""
    return text.encode()


CALLS = {
    "list_services": (lambda c: c.list_services(), st.lists(_service(), max_size=3)),
    "get_service": (lambda c: c.get_service("svc"), _service()),
    "info": (lambda c: c.info() and c.version, st.fixed_dictionaries(
        {}, optional={"version": st.one_of(st.text(max_size=8), _SCALARS), "git_commit": _SCALARS})),
    "config_storage": (lambda c: c.storage, st.fixed_dictionaries(
        {}, optional={"minio_provider": st.one_of(st.fixed_dictionaries(
            {}, optional={"endpoint": st.one_of(st.just("http://127.0.0.1:9"), _SCALARS), "verify": _SCALARS,
                          "access_key": _SCALARS, "secret_key": _SCALARS}), _SCALARS)})),
    "status": (lambda c: free_capacity(c.status()), _status()),
    "list_jobs": (lambda c: c.list_jobs("svc"), _job_list()),
    "job_log": (lambda c: c.job_log("svc", "job"), st.one_of(st.text(max_size=30), _SCALARS)),
    "create_service": (lambda c: c.create_service(service_from_dict({"name": "svc", "image": "i", "script": "s"})),
                       st.one_of(st.text(max_size=30), _SCALARS)),
    "submit_job": (lambda c: c.submit_job("svc", b"eA==", name="svc-job-1"), _job_list()),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_every_answer_is_used_or_reported(call: str) -> None:
    action, bodies = CALLS[call]
    outcomes = {"used": 0, "reported": 0}

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(body=bodies, how=st.sampled_from(["json", "json", "json", "truncated", "text", "empty"]),
           status=st.sampled_from([200, 200, 200, 200, 201, 204, 400, 401, 403, 404, 409, 500, 502]))
    def check(body: Any, how: str, status: int) -> None:
        payload = _encode(body, how)

        def answer(request: httpx.Request) -> httpx.Response:
            if request.url.path == "/system/info" and call != "info":
                return httpx.Response(200, json={"version": "4.1.2"})
            if call == "submit_job" and request.url.path == "/system/services/svc":  # the token to submit with
                return httpx.Response(200, json={**WELL_FORMED, "token": "t" * 64})
            return httpx.Response(status, content=payload)

        profile = ClusterProfile("fuzz", "http://oscar.invalid", BasicCredentials("u", "p"), ssl_verify=False)
        with OscarClient(profile, retries=0, transport=httpx.MockTransport(answer)) as client:
            CASES["tried"] += 1
            try:
                action(client)
            except OscarError as exc:
                assert str(exc).strip(), "an error without a message"
                outcomes["reported"] += 1
            else:
                outcomes["used"] += 1

    check()
    assert outcomes["used"] and outcomes["reported"], outcomes  # both kinds of answers were generated
    for kind, count in outcomes.items():
        CASES[kind] += count


def test_cases_tried() -> None:
    # docs/RELIABILITY.md quotes this figure (OSCAR_FUZZ_CLIENT_EXAMPLES answers for each call).
    assert CASES["tried"] == CASES["used"] + CASES["reported"]
    print(f"\nclient fuzzing: {CASES['tried']} generated server answers to {len(CALLS)} calls: "
          f"{CASES['used']} used, {CASES['reported']} reported as OscarError, 0 other exceptions")
