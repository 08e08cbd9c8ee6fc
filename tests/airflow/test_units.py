"""Pure pieces: connection fields -> settings, job names, state summaries, error classes."""

from __future__ import annotations

import time

import pytest

from oscar_plugins import (
    AuthenticationError,
    ConfigError,
    ConnectionFailed,
    FDLError,
    JobFailed,
    JobState,
    ServiceNotFound,
    ServiceUnavailable,
)
from oscar_plugins._auth import BasicCredentials, RefreshTokenCredentials, TokenCredentials
from oscar_plugins.airflow._connection import settings_from_fields
from oscar_plugins.airflow._jobs import is_retryable, job_names, summary


def _from_uri(uri: str, conn_id: str = "oscar_test"):
    from airflow.sdk import Connection

    conn = Connection.from_uri(uri, conn_id=conn_id)
    return settings_from_fields(conn_id, host=conn.host, port=conn.port, schema=conn.schema, login=conn.login,
                                password=conn.password, extra=conn.extra_dejson)


def _from_json(text: str, conn_id: str = "oscar_test"):
    from airflow.sdk import Connection

    conn = Connection.from_json(text, conn_id=conn_id)
    return settings_from_fields(conn_id, host=conn.host, port=conn.port, schema=conn.schema, login=conn.login,
                                password=conn.password, extra=conn.extra_dejson)


def test_uri_connection_with_basic_auth():
    s = _from_uri("oscar://oscar:p%40ss@oscar.example.org:8443?ssl_verify=false&cluster_id=egi")
    assert s.endpoint == "https://oscar.example.org:8443"
    assert s.credentials == BasicCredentials("oscar", "p@ss")
    assert (s.ssl_verify, s.cluster_id, s.local) == (False, "egi", False)
    assert "p@ss" not in repr(s)


def test_uri_connection_http_scheme_and_token():
    s = _from_uri("oscar://127.0.0.1:8080/http?oidc_token=tok-123")
    assert s.endpoint == "http://127.0.0.1:8080"
    assert s.credentials == TokenCredentials("tok-123")
    assert s.ssl_verify is True
    assert s.secrets() == ["tok-123"]


def test_json_connection_with_full_url_and_refresh_token():
    s = _from_json('{"conn_type": "oscar", "host": "https://oscar.example.org/", '
                   '"extra": {"extra__oscar__refresh_token": "r-1", "token_endpoint": "https://aai/token"}}')
    assert s.endpoint == "https://oscar.example.org"
    assert isinstance(s.credentials, RefreshTokenCredentials)
    assert (s.credentials.refresh_token, s.credentials.token_endpoint) == ("r-1", "https://aai/token")


def test_local_connection_needs_no_host():
    s = _from_json('{"conn_type": "oscar", "extra": {"local": "true"}}')
    assert s.local and s.endpoint is None and s.credentials is None


@pytest.mark.parametrize(("fields", "needles"), [
    ({"login": "oscar", "password": "x"}, ["'oscar_test' has no endpoint", "AIRFLOW_CONN_OSCAR_TEST", '"local": true']),
    ({"host": "oscar.example.org"}, ["'oscar_test' has no credentials", "oidc_token"]),
    ({"host": "h", "login": "oscar"}, ["has login 'oscar' but no password"]),
    ({"host": "h", "login": "a", "password": "b", "extra": {"ssl_verify": "maybe"}}, ["ssl_verify", "true or false"]),
])
def test_incomplete_connections_say_what_to_fix(fields, needles):
    with pytest.raises(ConfigError) as info:
        settings_from_fields("oscar_test", **fields)
    for needle in needles:
        assert needle in str(info.value)


def test_job_names_are_valid_traceable_and_never_reused():
    kw = {"dag_id": "d", "task_id": "t", "run_id": "manual__2026-01-01T00:00:00+00:00", "map_index": -1}
    svc = "Drought_SPI.service-with-a-long-name"
    first = job_names(svc, try_number=1, count=3, nonce="abcd", **kw)
    assert first == job_names(svc, try_number=1, count=3, nonce="abcd", **kw)
    assert first[0].startswith("drought-spi-serv-abcd-") and first[0].endswith("-0")
    assert first != job_names(svc, try_number=2, count=3, nonce="abcd", **kw)
    again = job_names(svc, try_number=1, count=3, **kw)  # a repeated try number gets fresh names
    assert again[0].rsplit("-", 2)[1] == first[0].rsplit("-", 2)[1] and again != first  # same task hash
    time.sleep(0.003)
    later = job_names(svc, try_number=1, count=1, **kw)
    assert later[0] < again[0]  # the core's count-down clock: a later submit sorts first in OSCAR's job list
    assert len(set(first)) == 3
    from oscar_plugins._validation import job_name_problem

    assert all(job_name_problem(n) is None and len(n) <= 63 for n in first), first


def test_summary_of_job_states():
    S, R, F, L = JobState.SUCCEEDED, JobState.RUNNING, JobState.FAILED, JobState.LOST
    assert summary({"a": S, "b": S}) == "Succeeded"
    assert summary({"a": S, "b": R}) == "Running"
    assert summary({"a": F, "b": R}) == "Failed"
    assert summary({"a": L}) == "Failed"


def test_bad_input_is_not_retried_but_trouble_on_the_way_is():
    def api(cls):
        return cls("x", status=400, call="GET /")

    assert not is_retryable(ConfigError("x"))
    assert not is_retryable(FDLError("x"))
    assert not is_retryable(api(AuthenticationError))
    assert not is_retryable(api(ServiceNotFound))
    assert is_retryable(ConnectionFailed("x"))
    assert is_retryable(api(ServiceUnavailable))
    assert is_retryable(JobFailed("x", service="s"))
