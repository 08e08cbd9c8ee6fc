"""The ASGI application: OSCAR's REST API (v4.1.2) on top of :class:`Runtime`.

Errors are plain text, as OSCAR's are. ``/health`` is the only route without authentication; the
``/system/*`` routes take HTTP basic auth, ``/run`` and ``/job`` only the service's bearer token.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import platform
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from botocore.exceptions import ClientError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from oscar_plugins import __version__
from oscar_plugins._validation import service_name_problem
from oscar_plugins.local._runtime import Conflict, Runtime
from oscar_plugins.local._services import ServiceError, public_view
from oscar_plugins.local._storage import REGION, bucket_name_problem

__all__ = ["create_app", "is_admin", "service_token_ok", "text"]

logger = logging.getLogger("oscar_plugins.local")
OSCAR_VERSION = "v4.1.2"
_MAX_JSON = 16 << 20
_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm"}


def text(message: str, status: int) -> PlainTextResponse:
    """A plain-text response (OSCAR's error format)."""
    return PlainTextResponse(message if message.endswith("\n") else message + "\n", status_code=status)


def _unauthorized(message: str = "Unauthorized: give the cluster's basic-auth user and password") -> Response:
    response = text(message, 401)
    response.headers["WWW-Authenticate"] = 'Basic realm="Authorization Required"'
    return response


def is_admin(request: Request) -> bool:
    """Whether the request carries the cluster's basic-auth credentials (constant-time comparison)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    creds = request.app.state.runtime.config.creds
    user_ok = hmac.compare_digest(user.encode(), creds.username.encode())
    password_ok = hmac.compare_digest(password.encode(), creds.password.encode())
    return user_ok and password_ok


def bearer(request: Request) -> str | None:
    """The bearer token of a request, if any."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def service_token_ok(request: Request, service: dict[str, Any] | None) -> bool:
    """Whether the request carries ``service``'s token as a bearer token."""
    token = bearer(request)
    expected = str((service or {}).get("token") or "")
    return bool(token and expected) and hmac.compare_digest(str(token).encode(), expected.encode())


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


# routes -----------------------------------------------------------------------------------------
async def health(request: Request) -> Response:
    return PlainTextResponse("Ok")


async def info(request: Request) -> Response:
    if not is_admin(request):
        return _unauthorized()
    machine = platform.machine().lower()
    return JSONResponse({
        "version": OSCAR_VERSION,
        "git_commit": f"oscar-plugins-{__version__}",
        "architecture": _GOARCH.get(machine, machine),
        "kubernetes_version": "local",
        "serverless_backend": {"name": "local", "version": __version__},
        "local_execution": _runtime(request).config.engine,
    })


async def config(request: Request) -> Response:
    if not is_admin(request):
        return _unauthorized()
    cfg = _runtime(request).config
    return JSONResponse({
        "config": {
            "name": "oscar", "namespace": "oscar", "services_namespace": "oscar-svc",
            "serverless_backend": "local", "gpu_available": False, "interLink_available": False,
            "kueue_enable": False, "yunikorn_enable": False, "volume_enable": False,
            "minio_quota_enabled": False, "oidc_groups": [], "controller_service_account": "oscar-sa",
        },
        "minio_provider": {
            "endpoint": cfg.s3_endpoint, "verify": False, "access_key": cfg.creds.s3_access_key,
            "secret_key": cfg.creds.s3_secret_key, "region": REGION,
        },
        "allowed_image_repositories": [],
    })


async def status(request: Request) -> Response:
    if not is_admin(request):
        return _unauthorized()
    return JSONResponse(await _runtime(request).status())


async def services(request: Request) -> Response:
    if not is_admin(request):
        return _unauthorized()
    runtime = _runtime(request)
    if request.method == "GET":
        endpoint = runtime.config.s3_endpoint
        return JSONResponse([public_view(s, endpoint) for s in runtime.store.list_services()])
    try:
        body = await read_json(request)
        if request.method == "POST":
            await runtime.create_service(body)
            return Response(status_code=201)
        if not await runtime.update_service(body):
            return text(f"the service {body.get('name')!r} does not exist", 404)
        return Response(status_code=204)
    except (ServiceError, ValueError) as exc:
        return text(str(exc), 400)
    except Conflict as exc:
        return text(str(exc), 409)


async def service(request: Request) -> Response:
    if not is_admin(request):
        return _unauthorized()
    runtime, name = _runtime(request), request.path_params["name"]
    found = None if service_name_problem(name) else runtime.store.get_service(name)
    if found is None:
        return text(f"the service {name!r} does not exist", 404)
    if request.method == "GET":
        return JSONResponse(public_view(found, runtime.config.s3_endpoint))
    await runtime.delete_service(name)
    return Response(status_code=204)


async def presign(request: Request) -> Response:
    if not is_admin(request):
        return _unauthorized()
    runtime, bucket = _runtime(request), request.path_params["bucket"]
    problem = bucket_name_problem(bucket)
    if problem:
        return text(problem, 400)
    try:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object {object_key, operation, expires_in}")
        await runtime.storage.call(lambda: runtime.storage.client.head_bucket(Bucket=bucket))
        return JSONResponse(runtime.storage.presign(bucket, body))
    except ValueError as exc:
        return text(str(exc), 400)
    except ClientError:
        return text(f"the bucket {bucket!r} does not exist", 404)


async def s3_events(request: Request) -> Response:
    """Webhook of the S3 child process (like MinIO's notification webhook)."""
    runtime = _runtime(request)
    token = bearer(request) or ""
    if not hmac.compare_digest(token.encode(), runtime.config.hook_secret.encode()):
        return _unauthorized("Unauthorized")
    try:
        body = await read_json(request)
        events = body["events"]
    except (ValueError, KeyError, TypeError) as exc:
        return text(f"malformed event batch: {exc}", 400)
    for event in events:
        if isinstance(event, dict) and str(event.get("event", "")).startswith("s3:ObjectCreated"):
            await runtime.object_created(str(event["bucket"]), str(event["key"]), str(event.get("id") or ""))
    return Response(status_code=204)


async def internal_error(request: Request, exc: Exception) -> Response:
    logger.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    return text("internal error of the local cluster: see its server log", 500)


def create_app(runtime: Runtime) -> Starlette:
    """Build the application for a runtime (started and stopped with the app's lifespan)."""
    from oscar_plugins.local._invoke import INVOKE_ROUTES

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.startup()
        try:
            yield
        finally:
            await runtime.shutdown()

    routes = [
        Route("/health", health, methods=["GET", "HEAD"]),
        Route("/system/info", info, methods=["GET"]),
        Route("/system/config", config, methods=["GET"]),
        Route("/system/status", status, methods=["GET"]),
        Route("/system/services", services, methods=["GET", "POST", "PUT"]),
        Route("/system/services/{name}", service, methods=["GET", "DELETE"]),
        Route("/system/buckets/{bucket}/presign", presign, methods=["POST"]),
        Route("/internal/s3-events", s3_events, methods=["POST"]),
        *INVOKE_ROUTES,
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={Exception: internal_error})
    app.state.runtime = runtime
    return app
