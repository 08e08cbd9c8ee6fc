"""The one place that turns HTTP outcomes into oscar-plugins exceptions, and the retry policy.

Pure functions: they look at a status code, a call and a body, never at the network.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable

import httpx

from ._exceptions import (
    APIError,
    AuthenticationError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    JobNotFound,
    NotFound,
    ServerError,
    ServiceNotFound,
    ServiceUnavailable,
    TLSError,
)

__all__ = ["RETRYABLE_STATUS", "error_for_response", "error_for_transport", "excerpt", "redact"]

RETRYABLE_STATUS = frozenset({502, 503, 504})
_DUPLICATE = "A service with the provided name already exists"
_EXCERPT = 300


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each (non-trivial) secret by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def excerpt(body: str, secrets: Iterable[str] = ()) -> str:
    text = redact(body.strip(), secrets)
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "..."


def error_for_response(status: int, call: str, body: str, *, cluster: str, service: str | None = None,
                       job: str | None = None, bearer: bool = False,
                       secrets: Iterable[str] = ()) -> APIError:
    """Map an error status to the exception tree, with a message that says what to do."""
    text = excerpt(body, secrets)
    detail = f" Server said: {text}" if text else ""
    where = f"{call} on cluster {cluster!r} answered {status}."
    if status == 403 and ("permision" in body or "permission" in body):  # read.go, update.go, delete.go, logs.go
        what = f"service {service!r}" if service else "this resource"
        return AuthenticationError(
            f"{where} This user may not use {what}: it belongs to another user and is not public (OSCAR's "
            "visibility: private, or restricted to allowed_users); ask its owner, or choose another name."
            + detail, status=status, call=call, body=text)
    if status in (401, 403):
        if bearer:
            hint = (f" The service token was refused: the service {service!r} may not exist, or it was "
                    "redeployed; re-read the service (oscar-plugins service get) and retry.")
        else:
            hint = " The credentials were refused: check the user/password or token of this profile."
        return AuthenticationError(where + hint + detail, status=status, call=call, body=text)
    if status == 404:
        if job is not None:
            return JobNotFound(f"{where} Job {job!r} of service {service!r} does not exist (deleted, or "
                               "expired after 30 days).", status=status, call=call, body=text)
        if service is not None:
            return ServiceNotFound(f"{where} Service {service!r} does not exist: deploy it first "
                                   "(oscar-plugins service apply FDL).", status=status, call=call, body=text)
        return NotFound(where + detail, status=status, call=call, body=text)
    if status == 400 and _DUPLICATE in body:  # create.go (v4.1+): a duplicate name is a 400, not a 409
        return Conflict(where + " It already exists." + detail, status=status, call=call, body=text)
    if status == 400:
        return BadRequest(where + " The request was rejected." + detail, status=status, call=call, body=text)
    if status == 409:
        return Conflict(where + " It already exists." + detail, status=status, call=call, body=text)
    if status == 413:
        return BadRequest(where + " The body is too large: stage big inputs through the service's bucket."
                          + detail, status=status, call=call, body=text)
    if status in RETRYABLE_STATUS:
        return ServiceUnavailable(where + " The cluster or the service's pod is not ready; retry later."
                                  + detail, status=status, call=call, body=text)
    if status >= 500:
        return ServerError(where + " The server failed." + detail, status=status, call=call, body=text)
    return APIError(where + detail, status=status, call=call, body=text)


def error_for_transport(exc: httpx.TransportError, call: str, endpoint: str) -> ConnectionFailed:
    """Map a transport failure (DNS, refused, TLS, timeout) to a clear error."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return TLSError(
                f"TLS failed for {endpoint} ({cause.__class__.__name__}: {getattr(cause, 'reason', cause)}) "
                "during " + call + ": fix the server certificate, or set ssl_verify: false for a test "
                "cluster you trust"
            )
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.TimeoutException):
        return ConnectionFailed(f"{call} to {endpoint} timed out: the cluster is slow or unreachable; "
                                "retry, or raise the timeout")
    return ConnectionFailed(f"cannot reach {endpoint} ({exc.__class__.__name__}: {exc}) during {call}: "
                            "check the endpoint URL and that the cluster is up")
