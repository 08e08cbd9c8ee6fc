"""An asyncio client for the calls a waiting process needs (Airflow triggers, notebooks).

It shares the request building, response parsing and error mapping of the sync client; only the I/O
differs. Tracking stays one listing per service per poll, as in :class:`oscar_plugins.JobTracker`.

Example:
    >>> async with AsyncOscarClient(profile) as client:                 # doctest: +SKIP
    ...     state = await client.wait_job("svc", "svc-1a2b3c", poll_interval=2)
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from ._auth import credential_secrets
from ._client import JobInfo, parse_job_list
from ._exceptions import JobTimeout, OscarError
from ._http import error_for_response, error_for_transport
from ._jobs import JobState
from ._profiles import ClusterProfile
from ._retry import IDEMPOTENT_METHODS, ONCE, Backoff, aretry

__all__ = ["AsyncOscarClient"]


class AsyncOscarClient:
    """Async counterpart of :class:`oscar_plugins.OscarClient` for services, job lists, logs and cancel."""

    def __init__(self, profile: ClusterProfile, *, timeout: float = 60.0, retries: int = 5,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.profile = profile
        self.retries = retries
        self.backoff = Backoff(retries)
        self.requests_sent = 0
        self._http = httpx.AsyncClient(base_url=profile.endpoint, auth=profile.credentials.auth(),
                                       verify=profile.ssl_verify, timeout=httpx.Timeout(timeout, connect=15.0),
                                       transport=transport, headers={"User-Agent": "oscar-plugins/0.1"})

    def __repr__(self) -> str:
        return f"AsyncOscarClient({self.profile.name!r}, endpoint={self.profile.endpoint!r})"

    async def __aenter__(self) -> AsyncOscarClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(self, method: str, path: str, *, service: str | None = None, job: str | None = None,
                      **kwargs: Any) -> httpx.Response:
        call = f"{method} {path}"

        async def once() -> httpx.Response:
            self.requests_sent += 1
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                raise error_for_transport(exc, call, self.profile.endpoint) from None
            if response.status_code < 400:
                return response
            raise error_for_response(response.status_code, call, response.text, cluster=self.profile.name,
                                     service=service, job=job, secrets=credential_secrets(self.profile.credentials))

        return await aretry(once, self.backoff if method in IDEMPOTENT_METHODS else ONCE)

    async def info(self) -> dict[str, Any]:
        return dict((await self.request("GET", "/system/info")).json())

    async def get_service(self, name: str) -> dict[str, Any]:
        return dict((await self.request("GET", f"/system/services/{name}", service=name)).json())

    async def list_jobs(self, service: str) -> dict[str, JobInfo]:
        jobs: dict[str, JobInfo] = {}
        page: str | None = None
        while True:
            params = {"page": page} if page else None
            response = await self.request("GET", f"/system/logs/{service}", params=params, service=service)
            try:
                found, page = parse_job_list(response.json())
            except ValueError as exc:
                raise OscarError(f"the job list of {service!r} is not JSON") from exc
            jobs.update(found)
            if not page:
                return jobs

    async def job_log(self, service: str, job: str) -> str:
        return (await self.request("GET", f"/system/logs/{service}/{job}", service=service, job=job)).text

    async def delete_job(self, service: str, job: str) -> None:
        try:
            await self.request("DELETE", f"/system/logs/{service}/{job}", service=service, job=job)
        except OscarError as exc:
            if getattr(exc, "status", None) != 404:
                raise

    async def job_state(self, service: str, job: str) -> tuple[JobState, JobInfo]:
        info = (await self.list_jobs(service)).get(job)
        if info is None:
            return JobState.LOST, {}
        return JobState.parse(info.get("status")), info

    async def wait_job(self, service: str, job: str, *, poll_interval: float = 5.0,
                       timeout: float | None = None, lost_after: float = 60.0) -> tuple[JobState, JobInfo]:
        """Poll until the job is terminal; a job missing for ``lost_after`` seconds is ``LOST``."""
        start = time.monotonic()
        while True:
            state, info = await self.job_state(service, job)
            if state.terminal and (state != JobState.LOST or time.monotonic() - start > lost_after):
                return state, info
            if timeout is not None and time.monotonic() - start > timeout:
                raise JobTimeout(f"job {job} of {service!r} still {state.value} after {timeout} s; it keeps "
                                 "running: wait again or cancel it")
            await asyncio.sleep(poll_interval)
