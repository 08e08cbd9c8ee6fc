"""An asyncio client for the calls a waiting process needs (Airflow triggers, notebooks).

It shares the request building, response parsing and error mapping of the sync client; only the I/O
differs. Tracking stays one listing per service per poll, as in :class:`oscar_plugins.JobTracker`.

Example:
    >>> async with AsyncOscarClient(profile) as client:                 # doctest: +SKIP
    ...     walk = await client.read_job_list("svc", wanted={"svc-1a2b3c"})
    ...     state = listed_state(walk.listing.get("svc-1a2b3c"), missing_for=0, lost_after=60)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx

from ._auth import credential_secrets
from ._exceptions import OscarError, ServerError
from ._http import error_for_response, error_for_transport
from ._joblist import JobInfo, JobListWalk
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

    async def read_job_list(self, service: str, *, wanted: Iterable[str] | None = None) -> JobListWalk:
        """:meth:`OscarClient.read_job_list`: the same walk (early stop, expired tokens), awaited."""
        walk = JobListWalk(service, self.profile.name, self.profile.endpoint,
                           wanted=set(wanted) if wanted is not None else None)
        while not walk.done:
            try:
                response = await self.request("GET", walk.path, params=walk.params(), service=service)
            except ServerError as exc:
                walk.failed(exc)
                continue
            walk.take(response.content)
        return walk

    async def list_jobs(self, service: str) -> dict[str, JobInfo]:
        """All jobs of a service (every page)."""
        return (await self.read_job_list(service)).listing

    async def job_log(self, service: str, job: str) -> str:
        return (await self.request("GET", f"/system/logs/{service}/{job}", service=service, job=job)).text

    async def delete_job(self, service: str, job: str) -> None:
        try:
            await self.request("DELETE", f"/system/logs/{service}/{job}", service=service, job=job)
        except OscarError as exc:
            if getattr(exc, "status", None) != 404:
                raise
