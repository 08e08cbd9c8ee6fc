"""The ASGI application: OSCAR's REST API (v4.1.2) on top of :class:`Runtime`.

Errors are plain text, as OSCAR's are. ``/health`` is the only route without authentication; the
``/system/*`` routes take HTTP basic auth, ``/run`` and ``/job`` only the service's bearer token.
"""

from __future__ import annotations

import hmac
import logging
import platform
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from botocore.exceptions import ClientError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from oscar_plugins import __version__
from oscar_plugins.local._runtime import Runtime
from oscar_plugins.local.api._definitions import HTTPError, view_json
from oscar_plugins.local.api._gotypes import dumps
from oscar_plugins.local.api._invoke import INVOKE_ROUTES
from oscar_plugins.local.api._metrics import metric_value
from oscar_plugins.local.api._web import authenticate, bearer, error, go_json, read_json, runtime_of, text
from oscar_plugins.local.storage._storage import REGION, bucket_name_problem

__all__ = ["create_app"]

logger = logging.getLogger("oscar_plugins.local")
OSCAR_VERSION = "v4.1.2"
_MAX_JSON = 16 << 20
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")  # IsValidLabelValue (<= 63)
_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm"}


# routes -----------------------------------------------------------------------------------------
async def health(request: Request) -> Response:
    return PlainTextResponse("Ok")


async def info(request: Request) -> Response:
    """``info.go`` MakeInfoHandler: the version without a leading ``v`` (it comes from the release tag)."""
    caller = await authenticate(request)
    if isinstance(caller, Response):
        return caller
    runtime = runtime_of(request)
    machine = platform.machine().lower()
    return go_json(dumps({
        "version": runtime.persona.version,
        "git_commit": f"oscar-plugins-{__version__}",
        "architecture": _GOARCH.get(machine, machine),
        "kubernetes_version": "v1.30.0+oscar-plugins-local",
        "serverless_backend": {"name": "local", "version": __version__},
        "local_execution": runtime.config.engine,
    }))


async def config(request: Request) -> Response:
    """``config.go`` MakeConfigHandler: ``types.Config``'s visible keys at this version, and MinIO's
    endpoint and keys (the same keys for every user here; OSCAR gives OIDC users their own)."""
    caller = await authenticate(request)
    if isinstance(caller, Response):
        return caller
    runtime = runtime_of(request)
    cfg, persona = runtime.config, runtime.persona
    values: dict[str, Any] = {
        "name": "oscar", "namespace": "oscar", "services_namespace": "oscar-svc",
        "controller_service_account": "oscar-sa", "gpu_available": False, "interLink_available": False,
        "serverless_backend": "knative", "yunikorn_enable": False, "oidc_groups": [], "kueue_enable": False,
        "volume_enable": False, "minio_quota_enabled": False,
    }
    body: dict[str, Any] = {
        "config": {k: values[k] for k in persona.config_keys},
        "minio_provider": {"endpoint": cfg.s3_endpoint, "verify": cfg.s3_verify, "access_key": cfg.creds.s3_access_key,
                           "secret_key": cfg.creds.s3_secret_key, "region": REGION},
    }
    if persona.allowed_image_repositories:
        body["allowed_image_repositories"] = []
    return go_json(dumps(body))


async def status(request: Request) -> Response:
    caller = await authenticate(request)
    if isinstance(caller, Response):
        return caller
    return go_json(dumps(await runtime_of(request).status(caller.admin)))


async def services(request: Request) -> Response:
    """``GET`` (list.go), ``POST`` (create.go) and ``PUT`` (update.go) ``/system/services``."""
    caller = await authenticate(request)
    if isinstance(caller, Response):
        return caller
    runtime = runtime_of(request)
    try:
        if request.method == "GET":
            found = runtime.store.list_services()
            return go_json(view_json(runtime.persona, [s for s in found if runtime.visible(s, caller)]))
        try:
            body = await read_json(request)
        except ValueError as exc:
            return text(f"The service specification is not valid: {exc}", 400)
        if request.method == "POST":
            await runtime.create_service(body, caller)
            return Response(status_code=201)
        await runtime.update_service(body, caller)
        return Response(status_code=204)
    except HTTPError as exc:
        return error(exc)


async def service(request: Request) -> Response:
    """``GET`` (read.go) and ``DELETE`` (delete.go) ``/system/services/{name}``."""
    caller = await authenticate(request)
    if isinstance(caller, Response):
        return caller
    runtime, name = runtime_of(request), request.path_params["name"]
    persona = runtime.persona
    try:
        if request.method == "DELETE":
            await runtime.delete_service(name, caller)
            return Response(status_code=204)
        if persona.version_tuple >= (4, 0, 0) and (not name.strip() or len(name) > 63 or not _LABEL_VALUE.match(name)):
            return text("invalid serviceName", 400)
        found = runtime.read_service(name)
        if found is None:
            return Response(status_code=404)
        if not runtime.visible(found, caller):
            if persona.version_tuple >= (4, 0, 0) or found.get("visibility") not in ("private", "restricted"):
                return text(f"User {caller.uid} doesn't have permision to get this service", 403)
            return Response(status_code=200)  # v3.x: the switch falls through without an answer
        return go_json(view_json(persona, found))
    except HTTPError as exc:
        return error(exc)


async def presign(request: Request) -> Response:
    caller = await authenticate(request)
    if isinstance(caller, Response):
        return caller
    runtime, bucket = runtime_of(request), request.path_params["bucket"]
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
    runtime = runtime_of(request)
    token = bearer(request) or ""
    if not hmac.compare_digest(token.encode(), runtime.config.hook_secret.encode()):
        return text("Unauthorized", 401)
    try:
        body = await read_json(request)
        events = body["events"]
    except (ValueError, KeyError, TypeError) as exc:
        return text(f"malformed event batch: {exc}", 400)
    created = [e for e in events if isinstance(e, dict) and str(e.get("event", "")).startswith("s3:ObjectCreated")]
    services = runtime.list_services() if created else []  # once a batch, not once an object
    for event in created:
        await runtime.object_created(str(event["bucket"]), str(event["key"]), str(event.get("id") or ""),
                                     int(event.get("size") or 0), str(event.get("etag") or ""), services)
    return Response(status_code=204)


async def internal_error(request: Request, exc: Exception) -> Response:
    logger.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    return text("internal error of the local cluster: see its server log", 500)


def create_app(runtime: Runtime) -> Starlette:
    """Build the application for a runtime (started and stopped with the app's lifespan)."""
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
        Route("/system/metrics/{name}", metric_value, methods=["GET"]),
        Route("/internal/s3-events", s3_events, methods=["POST"]),
        *INVOKE_ROUTES,
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={Exception: internal_error})
    app.state.runtime = runtime
    return app
