"""HTTP helpers shared by the local cluster's routes: answers shaped as gin writes them, and authentication."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from oscar_plugins.local._runtime import Runtime
from oscar_plugins.local.api._callers import Caller, basic_ok
from oscar_plugins.local.api._definitions import HTTPError

__all__ = ["authenticate", "bearer", "error", "go_json", "read_json", "runtime_of", "text", "unauthorized"]

_MAX_JSON = 16 << 20


def runtime_of(request: Request) -> Runtime:
    """The runtime behind the application."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def text(message: str, status: int) -> Response:
    """A plain-text answer as gin's ``c.String`` writes it; an empty message is ``c.Status`` (no body)."""
    if not message:
        return Response(status_code=status)
    return PlainTextResponse(message, status_code=status)


def error(exc: HTTPError) -> Response:
    """The answer for an :class:`HTTPError`."""
    return text(exc.body, exc.status)


def go_json(body: bytes, status: int = 200) -> Response:
    """A JSON answer as gin's ``c.JSON`` writes it (the bytes come from :func:`_gotypes.dumps`)."""
    return Response(body, status_code=status, media_type="application/json; charset=utf-8")


def unauthorized() -> Response:
    """gin.BasicAuth's refusal: 401, no body, a ``WWW-Authenticate`` challenge."""
    response = Response(status_code=401)
    response.headers["WWW-Authenticate"] = 'Basic realm="Authorization Required"'
    return response


def bearer(request: Request) -> str | None:
    """The bearer token of a request, if any."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def authenticate(request: Request) -> Caller | Response:
    """``/system/*`` authentication (``auth.GetAuthMiddleware``): basic auth, or an OIDC bearer token when
    the cluster has issuers. The first OIDC call of a user provisions their MinIO account."""
    runtime = runtime_of(request)
    header = request.headers.get("authorization", "")
    if runtime.oidc.enabled and header.startswith("Bearer "):
        try:
            uid = await runtime.oidc.subject(header[7:].strip())
        except HTTPError as exc:
            return error(exc)
        runtime.oidc.provisioned.add(uid)
        return Caller(uid)
    creds = runtime.config.creds
    return Caller() if basic_ok(header, creds.username, creds.password) else unauthorized()


async def read_json(request: Request) -> Any:
    """Decode a JSON body.

    Raises:
        ValueError: the body is too large or not JSON; the message says so.
    """
    body = await request.body()
    if len(body) > _MAX_JSON:
        raise ValueError(f"the body is larger than {_MAX_JSON} bytes")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed JSON body: {exc}") from exc


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


