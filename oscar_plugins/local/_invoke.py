"""Invocation and job routes: ``/run``, ``/job`` and ``/system/logs``."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from oscar_plugins._validation import job_name_problem, service_name_problem
from oscar_plugins.local._app import is_admin, service_token_ok, text
from oscar_plugins.local._execution import output_files
from oscar_plugins.local._joblog import read_log
from oscar_plugins.local._payload import BodyError, BodyTooLarge, b64_file_chunks, zip_files
from oscar_plugins.local._runner import Execution
from oscar_plugins.local._runtime import Runtime
from oscar_plugins.local._scheduler import Unschedulable
from oscar_plugins.local._store import FAILED, DuplicateJobError

__all__ = ["INVOKE_ROUTES", "JOB_BODY_LIMIT", "PAGE_SIZE"]

JOB_BODY_LIMIT = 1 << 20
PAGE_SIZE = 70
_TEXT = "text/plain; charset=utf-8"


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _service(request: Request) -> dict[str, Any] | None:
    name = request.path_params["service"]
    return None if service_name_problem(name) else _runtime(request).store.get_service(name)


def _invoker(request: Request) -> dict[str, Any] | Response:
    """The service of a ``/run`` or ``/job`` call, or a 401 (also for unknown services, like OSCAR)."""
    found = _service(request)
    if found is None or not service_token_ok(request, found):
        return text("Unauthorized: /run and /job take 'Authorization: Bearer <service token>'", 401)
    return found


def _logs_access(request: Request) -> dict[str, Any] | Response:
    """The service of a logs route for basic auth or that service's token; 401 or 404 otherwise."""
    found = _service(request)
    if not is_admin(request) and not service_token_ok(request, found):
        response = text("Unauthorized: give the cluster's basic-auth user and password", 401)
        response.headers["WWW-Authenticate"] = 'Basic realm="Authorization Required"'
        return response
    if found is None:
        return text(f"the service {request.path_params['service']!r} does not exist", 404)
    return found


async def _bytes_stream(data: bytes) -> AsyncIterator[bytes]:
    yield data


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
        yield from read_log(ex.work.log, skip_supervisor=True)


async def run(request: Request) -> Response:
    """``POST /run/{service}``: run the script synchronously and return its output."""
    found = _invoker(request)
    if isinstance(found, Response):
        return found
    runtime = _runtime(request)
    try:
        ex = await runtime.run_sync(found, request.stream())
    except BodyError as exc:
        return text(f"{exc}: the body must be base64 text or a JSON object", 400)
    except Unschedulable as exc:
        return text(f"exit status 1\n{exc}", 500)
    if ex.killed == "timeout":
        ex.work.remove()
        return text(f"{ex.reason}: use /job/{found['name']} for long work", 504)
    if ex.status == FAILED:
        ex.work.remove()
        return text(f"exit status 1\n{ex.reason}", 500)
    files = list(output_files(ex.work.output))
    if len(files) > 1:
        await asyncio.to_thread(zip_files, files, ex.work.root / "response.zip")
    return StreamingResponse(_run_body(ex), media_type=_TEXT, background=BackgroundTask(ex.work.remove))


async def job(request: Request) -> Response:
    """``POST /job/{service}``: queue a job; 201 with an empty body."""
    found = _invoker(request)
    if isinstance(found, Response):
        return found
    name = request.headers.get("x-delegated-job-id")
    if name is not None:
        problem = job_name_problem(name)
        if problem:
            return text(f"error creating the job: {problem}", 500)
    too_large = text(
        f"the body is larger than {JOB_BODY_LIMIT} bytes: stage large inputs through the service's input "
        "bucket (upload the file there; each object starts one job)", 413,
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > JOB_BODY_LIMIT:
        return too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > JOB_BODY_LIMIT:
            return too_large
        chunks.append(chunk)
    try:
        await _runtime(request).submit_job(found, name, body=_bytes_stream(b"".join(chunks)))
    except DuplicateJobError:
        return text(f"error creating the job: a job named {name!r} already exists", 500)
    except BodyTooLarge:
        return too_large
    except BodyError as exc:
        return text(f"{exc}: the body must be base64 text or a JSON object", 400)
    return Response(status_code=201)


def _page_token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")


def _page_after(token: str) -> str:
    padded = token + "=" * (-len(token) % 4)
    name = base64.urlsafe_b64decode(padded.encode()).decode()
    if job_name_problem(name):
        raise ValueError(token)
    return name


async def logs(request: Request) -> Response:
    """``GET /system/logs/{service}`` (70 jobs a page) and ``DELETE`` (finished, or ``?all=true``)."""
    found = _logs_access(request)
    if isinstance(found, Response):
        return found
    runtime = _runtime(request)
    if request.method == "DELETE":
        runtime.delete_jobs(found["name"], request.query_params.get("all", "").lower() == "true")
        return Response(status_code=204)
    token = request.query_params.get("page")
    try:
        after = _page_after(token) if token else None
    except (ValueError, UnicodeDecodeError):
        return text(f"invalid page token {token!r}: use the next_page value of the previous answer", 400)
    jobs, remaining = runtime.store.page_jobs(found["name"], after, PAGE_SIZE)
    body: dict[str, Any] = {"jobs": {j.name: j.info() for j in jobs}}
    if remaining:
        body["next_page"] = _page_token(jobs[-1].name)
        body["remaining_jobs"] = remaining
    return JSONResponse(body)


async def job_log(request: Request) -> Response:
    """``GET /system/logs/{service}/{job}`` (text) and ``DELETE`` (kill and delete the job)."""
    found = _logs_access(request)
    if isinstance(found, Response):
        return found
    runtime, name = _runtime(request), request.path_params["job"]
    row = None if job_name_problem(name) else runtime.store.get_job(found["name"], name)
    if row is None:
        return text(f"the job {name!r} of service {found['name']!r} does not exist", 404)
    if request.method == "DELETE":
        runtime.delete_job(found["name"], name)
        return Response(status_code=204)
    path = runtime.log_path(found["name"], name)
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
