"""Invocation and job routes: ``/run``, ``/job`` and ``/system/logs``, answering as OSCAR's handlers do.

Sources (grycap/oscar ``pkg/handlers``): ``run.go`` MakeRunHandler, ``job.go`` MakeJobHandler,
``logs.go`` MakeJobsInfoHandler, MakeGetLogsHandler, MakeDeleteJobHandler, MakeDeleteJobsHandler.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from oscar_plugins._validation import job_name_problem
from oscar_plugins.local._runtime import Runtime, event_owner
from oscar_plugins.local._store import FAILED, DuplicateJobError
from oscar_plugins.local.api._callers import Caller, job_owner_label
from oscar_plugins.local.api._definitions import UNREADABLE, HTTPError, format_uid
from oscar_plugins.local.api._gotypes import dumps
from oscar_plugins.local.api._web import authenticate, error, go_json, runtime_of, text
from oscar_plugins.local.execution._execution import output_files
from oscar_plugins.local.execution._joblog import read_log
from oscar_plugins.local.execution._payload import BodyError, b64_file_chunks, zip_files
from oscar_plugins.local.execution._runner import Execution, file_chunks
from oscar_plugins.local.execution._scheduler import Unschedulable

__all__ = ["ETCD_LIMIT", "INVOKE_ROUTES", "PAGE_SIZE"]

#: ``JOB_LISTING_LIMIT`` (default 70).
PAGE_SIZE = 70
#: Kubernetes refuses objects larger than etcd's request limit (1.5 MiB): the body is in the Job object.
ETCD_LIMIT = 3 << 19
_TEXT = "text/plain; charset=utf-8"
_TOKEN_LENGTH = 64
_EXPIRED = ("The provided continue parameter is too old to display a consistent list result. You can start a new "
            "list without the continue parameter, or use the continue token in this response to retrieve the "
            "remainder of the results. Continuing with the provided token results in an inconsistent list - "
            "objects that were created, modified, or deleted between the time the first chunk was returned and now "
            "may show up in the list.")


@dataclass(frozen=True)
class Invoker:
    """Who may run a service: its token's holder, or an OIDC user who may see it."""

    service: dict[str, Any]
    caller: Caller


def _service(runtime: Runtime, name: str) -> dict[str, Any] | None:
    found = runtime.read_service(name)
    return None if found is None or UNREADABLE in found else found


async def _invoker(request: Request, route: str) -> Invoker | Response:
    """``run.go``/``job.go``: a 64-character bearer is a service token; anything else must be an OIDC
    token of a user who may see the service."""
    runtime = runtime_of(request)
    parts = request.headers.get("authorization", "").split("Bearer ")
    if len(parts) != 2:
        return Response(status_code=401)
    token = parts[1].strip()
    found = _service(runtime, request.path_params["service"])
    if len(token) == _TOKEN_LENGTH:
        if found is None or not hmac.compare_digest(token.encode(), str(found.get("token", "")).encode()):
            return Response(status_code=401)
        return Invoker(found, Caller())
    if not runtime.oidc.enabled:
        return text("Error getting oidc manager for issuer ''", 400)
    try:
        uid = await runtime.oidc.subject(token)
    except HTTPError as exc:
        return error(exc)
    if found is None or not runtime.visible(found, Caller(uid)):
        return Response(status_code=404)
    if route == "job" and runtime.persona.version_tuple >= (4, 1, 0) and uid not in runtime.oidc.provisioned:
        return text(f"MinIO user not provisioned for {uid}; submit a direct request first", 403)
    return Invoker(found, Caller(uid))


def _run_body(ex: Execution) -> Iterator[bytes]:
    header = "".join(line + "\n" for line in ex.supervisor_lines).encode()
    if header:
        yield header
    files = list(output_files(ex.work.output))
    if len(files) == 1:
        yield from b64_file_chunks(files[0][0])
    elif files:
        yield from b64_file_chunks(ex.work.root / "response.zip")
    else:
        yield from file_chunks(ex.work.captured)


async def run(request: Request) -> Response:
    """``POST /run/{service}``: run the script synchronously and return its output."""
    found = await _invoker(request, "run")
    if isinstance(found, Response):
        return found
    runtime = runtime_of(request)
    try:
        ex = await runtime.run_sync(found.service, request.stream())
    except BodyError as exc:
        return text(f"{exc}: the body must be base64 text or a JSON object", 400)
    except Unschedulable as exc:
        return text(f"exit status 1\n{exc}", 500)
    if ex.killed == "timeout":
        ex.work.remove()
        return text(f"{ex.reason}: use /job/{found.service['name']} for long work", 504)
    if ex.status == FAILED:
        ex.work.remove()
        return text(f"exit status 1\n{ex.reason}", 500)
    files = list(output_files(ex.work.output))
    if len(files) > 1:
        await asyncio.to_thread(zip_files, files, ex.work.root / "response.zip")
    return StreamingResponse(_run_body(ex), media_type=_TEXT, background=BackgroundTask(ex.work.remove))


def _job_name_problem(name: str) -> str | None:
    if job_name_problem(name) is None:
        return None
    return (f'Job.batch "{name}" is invalid: metadata.name: Invalid value: "{name}": a lowercase RFC 1123 label '
            "must consist of lower case alphanumeric characters or '-', and must start and end with an "
            "alphanumeric character")


async def job(request: Request) -> Response:
    """``POST /job/{service}``: 201 with an empty body; the name comes from ``X-Delegated-Job-ID`` (v4.1+)."""
    found = await _invoker(request, "job")
    if isinstance(found, Response):
        return found
    runtime = runtime_of(request)
    name = request.headers.get("x-delegated-job-id") if runtime.persona.delegated_job_id else None
    if name is not None:
        problem = _job_name_problem(name)
        if problem:
            return text(problem, 500)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > ETCD_LIMIT:
            return text("etcdserver: request is too large", 500)
        chunks.append(chunk)
    body = b"".join(chunks)
    owner = None
    if runtime.persona.job_owner_label:
        principal = event_owner(body)
        if principal is not None:
            owner = format_uid(principal)[:62]
        elif found.caller.uid is not None:
            owner = job_owner_label(found.caller.uid)
    try:
        await runtime.submit_job(found.service, name, body=body, owner_label=owner)
    except DuplicateJobError:
        return text(f'jobs.batch "{name}" already exists', 500)
    except BodyError as exc:
        return text(f"{exc}: the body must be base64 text or a JSON object", 400)
    return Response(status_code=201)


async def _logs_service(request: Request) -> tuple[dict[str, Any], Caller] | Response:
    """``logs.go`` getAuthorizedService: the service (404, empty, when unknown) and the caller."""
    caller = await authenticate(request)
    if isinstance(caller, Response):
        return caller
    found = _service(runtime_of(request), request.path_params["service"])
    if found is None:
        return Response(status_code=404)
    return found, caller


def _page_token(after: str, snapshot: float) -> str:
    raw = json.dumps({"after": after, "snapshot": snapshot}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_token(token: str) -> tuple[str, float]:
    """(last name seen, time of the first page) of a continue token.

    Raises:
        ValueError: not a token of this server.
    """
    data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    after, snapshot = str(data["after"]), float(data["snapshot"])
    if job_name_problem(after):
        raise ValueError(token)
    return after, snapshot


def _listing(runtime: Runtime, service: str, token: str | None, owner: str | None) -> Response:
    """A page of ``{"jobs": ..., "next_page"}``: later pages show the jobs as they were when the first page
    was read (its snapshot), and a token older than the cluster's ``continue_ttl`` is refused with 500."""
    after, snapshot = None, None
    if token:
        try:
            after, snapshot = _read_token(token)
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
            return text(f'continue key is not valid: illegal base64 data at input byte 0: "{token}"', 500)
        if time.time() - snapshot > runtime.config.continue_ttl:
            return text(_EXPIRED, 500)
    first = snapshot is None
    taken = time.time() if first else snapshot
    jobs, remaining = runtime.store.page_jobs(service, after, PAGE_SIZE, owner=owner,
                                              created_before=None if first else snapshot)
    body: dict[str, Any] = {"jobs": {j.name: j.info(None if first else snapshot) for j in jobs}}
    if remaining:
        body["next_page"] = _page_token(jobs[-1].name, float(taken or 0))
    return go_json(dumps(body))


async def logs(request: Request) -> Response:
    """``GET /system/logs/{service}`` (70 jobs a page) and ``DELETE`` (Succeeded jobs, or ``?all=true``)."""
    found = await _logs_service(request)
    if isinstance(found, Response):
        return found
    service, caller = found
    runtime, persona = runtime_of(request), runtime_of(request).persona
    denied = not runtime.visible(service, caller)
    if denied and persona.oidc_unauthorised_listing == "empty200":
        return Response(status_code=200)  # v4: authorizeRequest returns false without writing anything
    if denied and persona.oidc_unauthorised_listing == "403":
        return text(f"User {caller.uid} doesn't have permision to get this service", 403)
    if request.method == "DELETE":
        runtime.delete_jobs(service["name"], request.query_params.get("all", "").lower() == "true")
        return Response(status_code=204)
    owner = job_owner_label(caller.uid) if caller.uid is not None and persona.job_owner_label else None
    if persona.paged_job_list:
        return _listing(runtime, service["name"], request.query_params.get("page"), owner)
    jobs, _ = runtime.store.page_jobs(service["name"], None, 1 << 30, owner=owner)
    listing = go_json(dumps({j.name: j.info() for j in jobs}))
    if denied:  # before v3.6.5: 403 written, then the JSON appended
        denial = f"User {caller.uid} doesn't have permision to get this service".encode()
        return Response(denial + bytes(listing.body), status_code=403, media_type=_TEXT)
    return listing


async def job_log(request: Request) -> Response:
    """``GET /system/logs/{service}/{job}`` (text; 500 with an empty body for an unknown job, a nil
    dereference in OSCAR) and ``DELETE`` (kill and delete the job; 404 when unknown)."""
    found = await _logs_service(request)
    if isinstance(found, Response):
        return found
    service, caller = found
    runtime, name = runtime_of(request), request.path_params["job"]
    if request.method == "DELETE" and not runtime.visible(service, caller):
        return text("You do not have permission to access this service", 403)
    if request.method == "GET" and not runtime.visible(service, caller):
        return Response(status_code=200)
    row = None if job_name_problem(name) else runtime.store.get_job(service["name"], name)
    if row is None:
        return Response(status_code=404 if request.method == "DELETE" else 500)
    if request.method == "DELETE":
        runtime.delete_job(service["name"], name)
        return Response(status_code=204)
    path = runtime.log_path(service["name"], name)
    if not path.exists():
        return Response(b"", media_type=_TEXT)
    stamps = request.query_params.get("timestamps", "").lower() == "true"
    return StreamingResponse(read_log(path, timestamps=stamps), media_type=_TEXT)


INVOKE_ROUTES = [
    Route("/run/{service}", run, methods=["POST"]),
    Route("/job/{service}", job, methods=["POST"]),
    Route("/system/logs/{service}", logs, methods=["GET", "DELETE"]),
    Route("/system/logs/{service}/{job}", job_log, methods=["GET", "DELETE"]),
]
