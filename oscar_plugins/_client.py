"""The OSCAR REST client: one pooled HTTP session per cluster, every call of OSCAR's REST API (docs/FIDELITY.md).

Example:
    >>> from oscar_plugins import OscarClient, Service
    >>> client = OscarClient.connect()                      # doctest: +SKIP  (profile precedence)
    >>> client.ensure_service(Service(name="hello", image="alpine", script="cat $INPUT_FILE_PATH"))
    ...                                                     # doctest: +SKIP
    >>> client.run("hello", b"hi").text                     # doctest: +SKIP
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from ._auth import credential_secrets
from ._exceptions import (
    AuthenticationError,
    ConfigError,
    Conflict,
    ConnectionFailed,
    OscarError,
    ServerError,
    ServiceNotFound,
)
from ._fdl import SPEC_HASH_ANNOTATION, Service, service_from_api, service_from_dict
from ._http import error_for_response, error_for_transport
from ._joblist import JobInfo, JobListWalk, new_job_name, parse_job_list
from ._profiles import ClusterProfile, resolve_profile
from ._retry import IDEMPOTENT_METHODS, ONCE, Backoff, transient
from ._retry import retry as retry_call
from ._storage import Storage
from ._validation import job_name_problem
from ._wrapper import is_wrapped, wrap_script, wrapped_outputs

if TYPE_CHECKING:  # _sync imports this module's client type; the run itself is imported on use
    from ._sync import RunResult

__all__ = ["JobInfo", "OscarClient", "new_job_name", "parse_job_list", "parse_version"]

log = logging.getLogger("oscar_plugins")


def parse_version(text: str | None) -> tuple[int, int, int]:
    """``"v4.1.2"`` -> ``(4, 1, 2)``; unknown or dev versions count as the newest."""
    if not text:
        return (99, 0, 0)
    core = text.strip().lstrip("vV").split("-", 1)[0].split("+", 1)[0]
    parts = core.split(".")
    try:
        nums = [int(p) for p in parts[:3]]
    except ValueError:
        return (99, 0, 0)
    padded = [*nums, 0, 0, 0]
    return padded[0], padded[1], padded[2]


class OscarClient:
    """A client for one OSCAR cluster.

    Args:
        profile: the cluster (see :func:`oscar_plugins.resolve_profile` for how one is chosen).
        timeout: seconds for ordinary calls; synchronous runs use ``run_timeout``.
        retries: attempts for calls that are safe to retry (reads, deletes, named job submits).
        transport: an ``httpx`` transport (tests, proxies).
    """

    def __init__(self, profile: ClusterProfile, *, timeout: float = 60.0, run_timeout: float = 310.0,
                 retries: int = 5, transport: httpx.BaseTransport | None = None) -> None:
        self.profile = profile
        self.run_timeout = run_timeout
        self.retries = retries
        self.backoff = Backoff(retries)
        self.requests_sent = 0
        self._http = httpx.Client(
            base_url=profile.endpoint, auth=profile.credentials.auth(), verify=profile.ssl_verify,
            timeout=httpx.Timeout(timeout, connect=15.0), transport=transport,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
            headers={"User-Agent": "oscar-plugins/0.1"},
        )
        self._lock = threading.Lock()
        self._info: dict[str, Any] | None = None
        self._config: dict[str, Any] | None = None
        self._storage: Storage | None = None
        self._services: dict[str, Service] = {}
        self._submit_locks: dict[str, threading.Lock] = {}

    @classmethod
    def connect(cls, cluster: str | None = None, **kwargs: Any) -> OscarClient:
        """Resolve a profile (argument > environment > oscar-cli file > local cluster) and connect."""
        profile_keys = {"endpoint", "user", "password", "token", "refresh_token", "ssl_verify", "path", "quiet"}
        profile = resolve_profile(cluster, **{k: v for k, v in kwargs.items() if k in profile_keys})
        return cls(profile, **{k: v for k, v in kwargs.items() if k not in profile_keys})

    def __repr__(self) -> str:
        return f"OscarClient({self.profile.name!r}, endpoint={self.profile.endpoint!r})"

    def __enter__(self) -> OscarClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()
        if self._storage is not None:
            self._storage.close()

    # -- transport ---------------------------------------------------------------------------------
    def _secrets(self) -> list[str]:
        return credential_secrets(self.profile.credentials) + [s.token for s in self._services.values() if s.token]

    def request(self, method: str, path: str, *, service: str | None = None, job: str | None = None,
                retry: bool | None = None, ok: tuple[int, ...] = (200, 201, 204),
                bearer: str | None = None, **kwargs: Any) -> httpx.Response:
        """Send one call; repeat it on a transient failure (:func:`oscar_plugins._retry.transient`: the cluster
        unreachable, 502/503/504) when it is safe to repeat (an idempotent method, or ``retry=True``)."""
        call = f"{method} {path}"
        repeat = method in IDEMPOTENT_METHODS if retry is None else retry
        if bearer is not None:
            kwargs["headers"] = {**kwargs.get("headers", {}), "Authorization": f"Bearer {bearer}"}
            kwargs["auth"] = None

        def once() -> httpx.Response:
            self.requests_sent += 1
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                raise error_for_transport(exc, call, self.profile.endpoint) from None
            if response.status_code in ok:
                return response
            raise error_for_response(response.status_code, call, response.text, cluster=self.profile.name,
                                     service=service, job=job, bearer=bearer is not None, secrets=self._secrets())

        return retry_call(once, self.backoff if repeat else ONCE)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise OscarError(f"{method} {path} on {self.profile.name!r} did not return JSON: is "
                             f"{self.profile.endpoint} an OSCAR endpoint?") from exc

    # -- system ------------------------------------------------------------------------------------
    def health(self) -> bool:
        try:
            return self.request("GET", "/health", retry=False).text.strip().lower() == "ok"
        except OscarError:
            return False

    def _object(self, path: str) -> dict[str, Any]:
        """``GET path`` answered with a JSON object.

        Raises:
            OscarError: the answer is not a JSON object (the call and what came back are named).
        """
        body = self._json("GET", path)
        if not isinstance(body, dict):
            raise OscarError(f"GET {path} on {self.profile.name!r} answered a {type(body).__name__}, not a JSON "
                             f"object: is {self.profile.endpoint} an OSCAR endpoint, and not a proxy or a login page?")
        return body

    def info(self) -> dict[str, Any]:
        if self._info is None:
            self._info = self._object("/system/info")
        return self._info

    @property
    def version(self) -> tuple[int, int, int]:
        version = self.info().get("version")
        return parse_version(version if isinstance(version, str) else "")

    def config(self) -> dict[str, Any]:
        if self._config is None:
            self._config = self._object("/system/config")
        return self._config

    def status(self) -> dict[str, Any]:
        return self._object("/system/status")

    def service_metric(self, service: str, metric: str = "cpu-hours", *, start: float, end: float) -> float | None:
        """One usage figure of a service between two UNIX times, as the server counts it, or None.

        ``GET /system/metrics/{service}?metric=&start=&end=`` (OSCAR v4.0+, ``handlers/metrics.go``
        MakeMetricValueHandler) answers ``value`` with the ``sources`` it came from; a cluster without a
        usage source (Prometheus) answers 0 with a source whose ``status`` is ``missing``. None then, and
        when the server has no such route (404 before v4.0) or refuses: the caller derives the figure.
        """
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(start)))
        until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(end) + 1))
        try:
            body = self._json("GET", f"/system/metrics/{service}", service=service, retry=False,
                              params={"metric": metric, "start": stamp, "end": until})
        except OscarError as exc:
            log.debug("no %s figure for %s from the server: %s", metric, service, exc)
            return None
        sources = body.get("sources") if isinstance(body, dict) else None
        value = body.get("value") if isinstance(body, dict) else None
        if not isinstance(value, (int, float)) or not isinstance(sources, list) or not sources or \
                not all(isinstance(s, dict) and s.get("status") == "ok" for s in sources):
            return None
        return float(value)

    @property
    def storage(self) -> Storage:
        """The cluster's MinIO, with the credentials ``/system/config`` gives this user."""
        storage = self._storage
        if storage is not None:  # asked for every transfer: no lock once it is known
            return storage
        with self._lock:
            if self._storage is None:
                provider = self.config().get("minio_provider") or {}
                if not isinstance(provider, dict):
                    raise OscarError(f"GET /system/config on {self.profile.name!r} gave minio_provider as a "
                                     f"{type(provider).__name__}, not an object: the cluster's storage is unknown")
                if not self.profile.ssl_verify:  # the profile's ssl_verify: false holds for its MinIO too
                    provider = {**provider, "verify": False}
                self._storage = Storage.from_minio_provider(provider)
            return self._storage

    # -- services ----------------------------------------------------------------------------------
    def list_services(self) -> list[Service]:
        """Every service the caller may see (``GET /system/services``), read tolerantly."""
        call = f"GET /system/services on cluster {self.profile.name!r}"
        body = self._json("GET", "/system/services")
        if body is None:
            return []
        if not isinstance(body, list):
            raise OscarError(f"{call} answered a {type(body).__name__}, not a list of services: the endpoint may "
                             "not be an OSCAR server")
        return [service_from_api(item, source=call) for item in body]

    def get_service(self, name: str, *, refresh: bool = True) -> Service:
        """A service as the server stores it, with its token (read tolerantly; cached when ``refresh`` is off).

        Raises:
            ServiceNotFound: no such service.
            AuthenticationError: this (OIDC) user may not see it.
        """
        if not refresh and name in self._services:
            return self._services[name]
        call = f"GET /system/services/{name}"
        response = self.request("GET", f"/system/services/{name}", service=name)
        if not response.content.strip():
            # v3.x answers 200 and no body when an OIDC user may not see the service (read.go falls through)
            raise AuthenticationError(
                f"{call} on cluster {self.profile.name!r} answered 200 with an empty body: this user may not see "
                f"service {name!r}, which belongs to another user (ask its owner to make it public or to list you "
                "in allowed_users), or the server (v3.6.0-3.6.2) cannot show services", status=200, call=call)
        svc = service_from_api(self._decode(response, call), source=f"{call} on cluster {self.profile.name!r}")
        self._services[name] = svc
        return svc

    def _decode(self, response: httpx.Response, call: str) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise OscarError(f"{call} on {self.profile.name!r} did not return JSON: is {self.profile.endpoint} an "
                             "OSCAR endpoint?") from exc

    def create_service(self, service: Service) -> None:
        """``POST /system/services`` with the user's definition (see :meth:`Service.api_dict`)."""
        self.request("POST", "/system/services", json=service.api_dict(self.version), service=None, retry=False)
        self._services.pop(service.name, None)

    def update_service(self, service: Service, *, owner: str | None = None) -> None:
        """``PUT /system/services``: the whole definition replaces the stored one.

        OSCAR stores the body's ``owner`` on a basic-auth update (``update.go``; an absent one becomes ``""``,
        and on clusters with Kueue the service's jobs then stay ``Suspended``), so the current owner is sent
        back: ``owner`` when given, else the one the server shows.
        """
        body = service.api_dict(self.version)
        if owner is None:
            try:
                owner = self.get_service(service.name).owner
            except ServiceNotFound:
                owner = None
        if owner:
            body["owner"] = owner
        self.request("PUT", "/system/services", json=body, service=service.name)
        self._services.pop(service.name, None)

    def delete_service(self, name: str) -> None:
        self.request("DELETE", f"/system/services/{name}", service=name)
        self._services.pop(name, None)

    def ensure_service(self, service: Service | Mapping[str, Any], *, wrap: bool = True) -> Service:
        """Deploy idempotently: create if missing, update only when the definition changed.

        With ``wrap`` (the default) the script is embedded in the oscar-plugins wrapper (exit codes,
        per-job outputs, staged inputs, direct uploads; see :mod:`oscar_plugins._wrapper`) and
        ``log_level`` defaults to ``CRITICAL`` so that sync responses carry only the output. Returns the
        deployed service, with its token.
        """
        svc = service if isinstance(service, Service) else service_from_dict(service)
        if wrap and not is_wrapped(svc.script):
            primary = next((o for o in svc.output if o.kind == "minio"), None)
            script = wrap_script(svc.script, primary.prefix if primary else (), primary.suffix if primary else ())
            svc = svc.model_copy(update={"script": script, "log_level": svc.log_level or "CRITICAL",
                                         "output": wrapped_outputs(svc.name, svc.output)})
        svc = svc.with_spec_hash()
        wanted = svc.annotations[SPEC_HASH_ANNOTATION]
        try:
            current = self.get_service(svc.name)
        except ServiceNotFound:
            if self._create_once(svc):
                log.info("created service %s on %s", svc.name, self.profile.name)
            current = self._wait_service(svc.name)  # created by us, or by a concurrent caller
        if current.annotations.get(SPEC_HASH_ANNOTATION) == wanted:
            return current
        self.update_service(svc, owner=current.owner)
        log.info("updated service %s on %s", svc.name, self.profile.name)
        return self.get_service(svc.name)  # re-read: servers before v4.0 rotate the token on update

    def _create_once(self, svc: Service) -> bool:
        """Create, retrying a lost answer only after checking the service is still missing.

        Returns:
            False when the name was taken meanwhile (an earlier attempt of ours, or a concurrent caller:
            OSCAR answers 400 from v4.1, 409 before); the caller re-reads the service.
        """
        for delay in (*self.backoff.delays(), None):
            try:
                self.create_service(svc)
                return True
            except Conflict:
                return False
            except OscarError as exc:
                if delay is None or not transient(exc):
                    raise
            time.sleep(delay)
            try:
                self.get_service(svc.name)
                return True  # the lost answer was a success
            except ServiceNotFound:
                continue
        raise AssertionError("unreachable")

    def _wait_service(self, name: str, timeout: float = 120.0) -> Service:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.get_service(name)
            except ServiceNotFound:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def service_token(self, name: str) -> str:
        svc = self.get_service(name, refresh=False)
        if not svc.token:
            raise ConfigError(f"service {name!r} has no token in its definition: the cluster hides it from "
                              "this user; use an account that owns the service")
        return svc.token

    def is_wrapped(self, name: str) -> bool:
        return is_wrapped(self.get_service(name, refresh=False).script)

    # -- jobs ----------------------------------------------------------------------------------------
    def submit_job(self, service: str, body: bytes | str, *, name: str | None = None) -> str:
        """``POST /job/{service}`` with a body already encoded; returns the job's name.

        On v4.1+ the name is chosen here (``X-Delegated-Job-ID``), which makes the submit idempotent:
        a retry after a lost response finds the job instead of starting it twice. On older servers
        the name is found by listing the service's jobs before and after (one submit at a time).
        """
        token = self.job_bearer(service)
        if self.version >= (4, 1, 0):
            name = name or new_job_name(service)
            problem = job_name_problem(name)
            if problem:
                raise ConfigError(problem)
            return self._submit_named(service, body, name, token)
        if name is not None:
            log.debug("server %s predates X-Delegated-Job-ID: it names job %s itself", self.info().get("version"),
                      name)
        lock = self._submit_locks.setdefault(service, threading.Lock())
        with lock:
            before = set(self.list_jobs(service))
            self.request("POST", f"/job/{service}", content=body, bearer=token, service=service, retry=False,
                         ok=(200, 201))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                new = set(self.list_jobs(service)) - before
                if len(new) == 1:
                    return new.pop()
                time.sleep(0.2)
        raise OscarError(f"submitted a job to {service!r} but could not tell its name (server "
                         f"{self.info().get('version')} predates X-Delegated-Job-ID); check the job list")

    @property
    def oidc(self) -> bool:
        """Whether this profile authenticates with an OIDC token (rather than OSCAR's basic-auth user)."""
        return self.profile.credentials.kind in ("token", "refresh_token", "oidc_agent")

    def job_bearer(self, service: str) -> str | None:
        """The bearer for ``POST /job``: the service's token, or None for the profile's own OIDC token.

        OSCAR labels a job with its owner (``oscar.grycap/job-owner``) only when the submit carries the
        user's OIDC token, and lists to an OIDC user only the jobs with their label (``job.go``,
        ``logs.go``): a job an OIDC user submits with the service token never shows in their listing.
        """
        return None if self.oidc else self.service_token(service)

    def _submit_named(self, service: str, body: bytes | str, name: str, token: str | None) -> str:
        headers = {"X-Delegated-Job-ID": name}
        lost = False  # did an earlier attempt possibly reach the server (answer lost)?
        for delay in (*self.backoff.delays(), None):
            try:
                self.request("POST", f"/job/{service}", content=body, bearer=token, service=service,
                             retry=False, ok=(200, 201), headers=headers)
                return name
            except OscarError as exc:
                status = getattr(exc, "status", None)
                if status == 500 and self.job_exists(service, name):
                    if lost:
                        return name  # our earlier attempt went through; its answer was lost
                    raise Conflict(f"a job named {name!r} already exists in service {service!r}: choose another "
                                   "job name", status=500, call=f"POST /job/{service}") from None
                # a 500 without the job: OSCAR failed to create it (e.g. a Kubernetes hiccup); the name is free
                if delay is None or not (transient(exc) or status == 500):
                    raise
                lost = lost or transient(exc)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def job_exists(self, service: str, name: str) -> bool:
        return name in self.list_jobs(service)

    def iter_job_pages(self, service: str, *, wanted: Iterable[str] | None = None) -> Iterator[dict[str, JobInfo]]:
        """The pages of a service's job list, 70 jobs each (:class:`~oscar_plugins._joblist.JobListWalk`):
        with ``wanted``, up to the page where every one of those jobs was seen.

        Pages after the first show the jobs as they were when the first was read (Kubernetes serves a
        continued list from its first snapshot): a caller that needs fresh states reads again. A continue
        token older than about 5 minutes makes OSCAR answer 500: the walk restarts from the first page
        (a caller that already saw a page may see its jobs again).

        Raises:
            AuthenticationError: an OIDC user who may not see the service (OSCAR answers 200, no body).
        """
        yield from self._walk(self._job_list_walk(service, wanted))

    def _job_list_walk(self, service: str, wanted: Iterable[str] | None) -> JobListWalk:
        return JobListWalk(service, self.profile.name, self.profile.endpoint,
                           wanted=set(wanted) if wanted is not None else None)

    def _walk(self, walk: JobListWalk) -> Iterator[dict[str, JobInfo]]:
        while not walk.done:
            try:
                response = self.request("GET", walk.path, params=walk.params(), service=walk.service)
            except ServerError as exc:
                walk.failed(exc)
                continue
            yield walk.take(response.content)

    def read_job_list(self, service: str, *, wanted: Iterable[str] | None = None) -> JobListWalk:
        """Walk a service's job list (up to the page where every ``wanted`` job was seen); the walk holds
        the jobs (``.listing``) and the pages it read."""
        walk = self._job_list_walk(service, wanted)
        for _ in self._walk(walk):
            pass
        return walk

    def list_jobs(self, service: str) -> dict[str, JobInfo]:
        """All jobs of a service (every page)."""
        return self.read_job_list(service).listing

    def job_log(self, service: str, job: str, *, timestamps: bool = False) -> str:
        params = {"timestamps": "true"} if timestamps else None
        return self.request("GET", f"/system/logs/{service}/{job}", params=params, service=service,
                            job=job).text

    def delete_job(self, service: str, job: str) -> None:
        """Cancel (delete) a job; deleting a job that is already gone is not an error."""
        try:
            self.request("DELETE", f"/system/logs/{service}/{job}", service=service, job=job)
        except OscarError as exc:
            if getattr(exc, "status", None) != 404:
                raise

    def delete_jobs(self, service: str, *, all_jobs: bool = False) -> None:
        """``DELETE /system/logs/{service}``: the service's *Succeeded* jobs (OSCAR selects
        ``status.successful!=0``; Failed ones stay), or with ``all_jobs`` every job, running ones included."""
        params = {"all": "true"} if all_jobs else None
        self.request("DELETE", f"/system/logs/{service}", params=params, service=service)

    # -- sync ----------------------------------------------------------------------------------------
    def run(self, service: str, data: Any = None, *, output: Path | None = None, expect: str = "auto",
            overwrite: bool = False, timeout: float | None = None) -> RunResult:
        """Run a service synchronously (``POST /run``); see :func:`oscar_plugins._sync.run`."""
        from ._sync import run

        return run(self, service, data, output=output, expect=expect, overwrite=overwrite, timeout=timeout)

    def stream_post(self, path: str, content: Any, *, bearer: str, service: str,
                    timeout: float | None) -> Any:
        """Open a streamed POST (used by synchronous runs); the caller closes the response."""
        request = self._http.build_request(
            "POST", path, content=content,
            headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/octet-stream"},
            timeout=httpx.Timeout(timeout or self.run_timeout, connect=15.0))
        call = f"POST {path}"
        try:
            self.requests_sent += 1
            response = self._http.send(request, stream=True, auth=None)
        except httpx.TimeoutException:
            raise ConnectionFailed(
                f"the synchronous run of {service!r} got no answer within {timeout or self.run_timeout:.0f} s: "
                "OSCAR stops synchronous runs after 300 s; submit long work as an async job "
                "(oscar-plugins job / Dispatcher.submit)") from None
        except httpx.TransportError as exc:
            raise error_for_transport(exc, call, self.profile.endpoint) from None
        if response.status_code != 200:
            body = response.read().decode("utf-8", "replace")
            response.close()
            if response.status_code == 500 and body.startswith("exit status"):
                raise ServerError(f"{call} on cluster {self.profile.name!r}: the service's supervisor failed "
                                  f"({body.strip()[:200]}); read its logs or redeploy the service",
                                  status=500, call=call, body=body[:300])
            raise error_for_response(response.status_code, call, body, cluster=self.profile.name,
                                     service=service, bearer=True, secrets=self._secrets())
        return response


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


ProgressCallback = Callable[[int, int], None]
