"""``OscarHook``: the provider's only door to an OSCAR cluster.

Every network call of the operators, sensors and triggers goes through this hook, which builds the
core's clients (``OscarClient``, ``Dispatcher``, ``AsyncOscarClient``) from an Airflow connection of
type ``oscar`` and turns core errors into Airflow errors that name the connection and the fix.

Example:
    >>> hook = OscarHook("oscar_default")                         # doctest: +SKIP
    >>> hook.deploy(hook.load_services("services.yaml"))          # doctest: +SKIP
    >>> names = hook.submit_jobs("spi", [JobSpec([Path("tile.npy")])], ["spi-1"])  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from oscar_plugins import (
    RESERVED_FILES,
    AsyncOscarClient,
    AuthenticationError,
    ClusterProfile,
    ConfigError,
    ConnectionFailed,
    Dispatcher,
    Job,
    JobRecord,
    JobSpec,
    JobState,
    JobTracker,
    OscarClient,
    OscarError,
    RunResult,
    Service,
    file_hashes,
    listed_state,
    load_fdl,
    parse_time,
    service_from_dict,
)

from ._compat import (
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
    BaseHook,
    get_async_connection,
    get_async_extra,
    mask_secret,
)
from ._connection import ConnectionSettings, settings_from_fields
from ._jobs import is_retryable

__all__ = ["OscarHook"]



def _settings(conn: Any, extra: Mapping[str, Any]) -> ConnectionSettings:
    return settings_from_fields(conn.conn_id, host=conn.host, port=conn.port, schema=conn.schema,
                                login=conn.login, password=conn.password, extra=extra)


def _profile(settings: ConnectionSettings) -> ClusterProfile:
    """The core's cluster profile; the ``local`` kind starts (or reuses) the embedded cluster."""
    if settings.local:
        from oscar_plugins import local_profile

        return local_profile(settings.local_data_dir, quiet=True)
    assert settings.endpoint is not None and settings.credentials is not None
    return ClusterProfile(settings.conn_id, settings.endpoint, settings.credentials, settings.ssl_verify,
                          source=f"airflow connection {settings.conn_id!r}")


class OscarHook(BaseHook):
    """Talks to the OSCAR cluster of an Airflow connection.

    Args:
        oscar_conn_id: an Airflow connection of type ``oscar`` (see the README for its fields).
        timeout: seconds for ordinary API calls.
    """

    conn_name_attr = "oscar_conn_id"
    default_conn_name = "oscar_default"
    conn_type = "oscar"
    hook_name = "OSCAR"

    def __init__(self, oscar_conn_id: str = default_conn_name, *, timeout: float = 60.0) -> None:
        super().__init__()
        self.oscar_conn_id = oscar_conn_id
        self.timeout = timeout
        #: Register secrets with Airflow's log masker (off in triggerer threads, where it would block).
        self.mask_secrets = True

    def _mask(self, value: str | None) -> None:
        if self.mask_secrets:
            mask_secret(value)

    # -- connection --------------------------------------------------------------------------------
    def _not_found(self) -> AirflowFailException:
        env = "AIRFLOW_CONN_" + self.oscar_conn_id.upper()
        return AirflowFailException(
            f"Airflow connection {self.oscar_conn_id!r} is not defined: create it (UI, 'airflow connections "
            f"add', or {env}='{{\"conn_type\": \"oscar\", \"host\": \"https://...\", \"login\": \"...\", "
            "\"password\": \"...\"}'), or set oscar_conn_id to an existing connection")

    @cached_property
    def settings(self) -> ConnectionSettings:
        """The connection's settings, validated; its secrets are masked in every log from here on."""
        try:
            conn = self.get_connection(self.oscar_conn_id)
        except AirflowNotFoundException:
            raise self._not_found() from None
        with self.errors("reading the connection"):
            settings = _settings(conn, conn.extra_dejson)
        for secret in settings.secrets():
            self._mask(secret)
        return settings

    async def asettings(self) -> ConnectionSettings:
        """:attr:`settings` for the triggerer: no sync connection lookup on the event loop."""
        try:
            conn = await get_async_connection(self.oscar_conn_id, hook=type(self))
        except AirflowNotFoundException:
            raise self._not_found() from None
        extra = await get_async_extra(conn)
        with self.errors("reading the connection"):
            settings = _settings(conn, extra)
        self.__dict__.setdefault("settings", settings)  # for messages; nothing to mask in the triggerer
        return settings

    @cached_property
    def profile(self) -> ClusterProfile:
        with self.errors("connecting"):
            return _profile(self.settings)

    @cached_property
    def client(self) -> OscarClient:
        return OscarClient(self.profile, timeout=self.timeout)

    def get_conn(self) -> OscarClient:
        """The core's synchronous client for this connection."""
        return self.client

    @cached_property
    def dispatcher(self) -> Dispatcher:
        return Dispatcher(self.client)

    @contextlib.asynccontextmanager
    async def async_client(self) -> AsyncIterator[AsyncOscarClient]:
        """The core's asyncio client, for triggers (one per ``async with``)."""
        settings = await self.asettings()
        with self.errors("connecting"):
            profile = await asyncio.to_thread(_profile, settings) if settings.local else _profile(settings)
        client = AsyncOscarClient(profile, timeout=self.timeout)
        try:
            yield client
        finally:
            await client.aclose()

    def close(self) -> None:
        if "dispatcher" in self.__dict__:
            self.dispatcher.tracker.close()
        if "client" in self.__dict__:
            self.client.close()

    # -- errors ------------------------------------------------------------------------------------
    def describe(self, exc: BaseException, doing: str) -> str:
        """A message naming the connection, what failed and how to fix it (no secrets)."""
        where = f"OSCAR connection {self.oscar_conn_id!r}"
        settings = self.__dict__.get("settings")
        if settings is not None:
            where += " (embedded local cluster)" if settings.local else f" ({settings.endpoint})"
        hint = ""
        if isinstance(exc, AuthenticationError) and "service token" not in str(exc):
            hint = f" Fix the login/password or token of Airflow connection {self.oscar_conn_id!r}."
        elif isinstance(exc, ConnectionFailed):
            hint = f" Check the host of Airflow connection {self.oscar_conn_id!r} and that the cluster is up."
        text = str(exc).rstrip()
        if hint and not text.endswith((".", ":")):
            text += "."
        return f"{where}: {doing} failed: {text}{hint}"

    def translate(self, exc: OscarError, doing: str) -> AirflowException:
        """``AirflowFailException`` (no retry) for bad input, ``AirflowException`` otherwise."""
        cls = AirflowException if is_retryable(exc) else AirflowFailException
        return cls(self.describe(exc, doing))

    @contextlib.contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """Turn core errors raised inside the block into Airflow errors."""
        try:
            yield
        except OscarError as exc:
            raise self.translate(exc, doing) from exc

    def _mask_service(self, name: str) -> None:
        with contextlib.suppress(OscarError):
            self._mask(self.client.get_service(name, refresh=False).token)

    def test_connection(self) -> tuple[bool, str]:
        """The connection form's *Test* button: reach the cluster and list services."""
        try:
            with self.errors("testing the connection"):
                info = self.client.info()
                self.client.list_services()
        except Exception as exc:
            return False, str(exc)
        return True, f"Connected to OSCAR {info.get('version', '?')} at {self.profile.endpoint}"

    # -- services ----------------------------------------------------------------------------------
    def load_services(self, fdl: str | Path | Mapping[str, Any], *, cluster_id: str | None = None,
                      names: Sequence[str] | None = None,
                      environment: Mapping[str, str] | None = None) -> list[Service]:
        """The services an FDL file (or dict, or a single service dict) defines for this cluster.

        ``cluster_id`` (else the connection's ``cluster_id``) picks the services of a multi-cluster
        FDL; a file naming one cluster id needs none. ``environment`` is merged into each
        service's ``environment.variables``.
        """
        with self.errors("loading the FDL"):
            if isinstance(fdl, Mapping) and "functions" not in fdl:
                services = [service_from_dict(fdl)]
            else:
                services = self._pick(load_fdl(fdl), cluster_id or self.settings.cluster_id)
            if names:
                found = {s.name: s for s in services}
                missing = [n for n in names if n not in found]
                if missing:
                    raise ConfigError(f"the FDL defines no service {missing} for this cluster; it has "
                                      f"{sorted(found)}: fix service_names")
                services = [found[n] for n in names]
            if environment:
                services = [self._with_env(s, environment) for s in services]
        return services

    @staticmethod
    def _pick(fdl: Any, cluster_id: str | None) -> list[Service]:
        ids = list(dict.fromkeys(item.cluster_id for item in fdl.services))
        if cluster_id is None:
            if len(ids) > 1:
                raise ConfigError(f"{fdl.source} defines services for several clusters ({', '.join(ids)}): set "
                                  "cluster_id on the operator or the extra cluster_id of the connection")
            return [item.service for item in fdl.services]
        services: list[Service] = fdl.for_cluster(cluster_id)
        if not services:
            raise ConfigError(f"{fdl.source} has no service for cluster id {cluster_id!r}; its cluster ids are "
                              f"{', '.join(ids)}: fix cluster_id")
        return services

    @staticmethod
    def _with_env(svc: Service, environment: Mapping[str, str]) -> Service:
        data = svc.api_dict()
        env = dict(data.get("environment") or {})
        env["variables"] = {**dict(env.get("variables") or {}), **{str(k): str(v) for k, v in environment.items()}}
        data["environment"] = env
        return service_from_dict(data, source=f"service {svc.name!r} with environment")

    def deploy(self, services: Sequence[Service], *, wrap: bool = True) -> list[Service]:
        """Create or update services idempotently (unchanged ones are left alone)."""
        deployed = []
        for svc in services:
            with self.errors(f"deploying service {svc.name!r}"):
                done = self.client.ensure_service(svc, wrap=wrap)
            self._mask(done.token)
            deployed.append(done)
        return deployed

    def get_service(self, name: str) -> Service:
        with self.errors(f"reading service {name!r}"):
            svc = self.client.get_service(name)
        self._mask(svc.token)
        return svc

    # -- synchronous runs --------------------------------------------------------------------------
    def run_service(self, service: str, data: Any = None, *, output: Path | None = None, expect: str = "auto",
                    timeout: float | None = None) -> RunResult:
        """``POST /run``: the service's answer (bytes, text, or files under ``output``)."""
        with self.errors(f"running service {service!r} synchronously"):
            self._mask_service(service)
            return self.client.run(service, data, output=output, expect=expect, overwrite=True,
                                   timeout=timeout)

    # -- jobs --------------------------------------------------------------------------------------
    def submit_jobs(self, service: str, specs: Sequence[JobSpec], names: Sequence[str]) -> list[str]:
        """Stage inputs and submit one job per spec under the given names (idempotent per name).

        If one submit fails, the jobs already submitted are cancelled before the error is raised.
        """
        with self.errors(f"submitting jobs to service {service!r}"):
            self.client.get_service(service)  # fails early and clearly when the service is missing
            self._mask_service(service)
            return [job.name for job in self.dispatcher.submit_all(service, specs, names, track=False)]

    def job_states(self, service: str, names: Sequence[str]) -> dict[str, JobState]:
        """The jobs' states from one walk of the job list (the core's: it stops at the page where every
        job was seen); a job not listed is ``LOST``."""
        with self.errors(f"listing the jobs of service {service!r}"):
            walk = self.client.read_job_list(service, wanted=names)
        return {n: listed_state(walk.listing.get(n), missing_for=math.inf, lost_after=0.0) or JobState.LOST
                for n in names}

    def wait_jobs(self, service: str, names: Sequence[str], *, timeout: float | None = None,
                  poll_interval: float = 5.0) -> dict[str, JobState]:
        """Block until every job is terminal (one poller, one listing per interval)."""
        jobs = [Job(service, n) for n in names]
        tracker = JobTracker(self.client, interval=min(1.0, poll_interval), max_interval=poll_interval)
        try:
            with self.errors(f"waiting for jobs of service {service!r}"):
                tracker.wait(jobs, timeout=timeout)
        finally:
            tracker.close()
        return {j.name: j.state for j in jobs}

    def collect(self, service: str, name: str, state: JobState, dest: Path) -> list[Path]:
        """Download a finished job's verified outputs into ``dest`` (replacing older copies).

        Raises:
            AirflowException: the job failed; the message carries its log tail.
        """
        with self.errors(f"collecting job {name}"):
            return self.dispatcher.collect(Job(service, name, state=state), dest, overwrite=True).outputs

    def collect_all(self, service: str, states: Mapping[str, JobState], dests: Sequence[Path], *,
                    logs: bool = True) -> list[tuple[str, list[Path], str]]:
        """Collect finished jobs, several at once (the core's ``Dispatcher.collect_all``): for each job,
        its log (when ``logs``), its verified outputs, and the error message when it failed ("" if not)."""
        jobs = [Job(service, name, state=state) for name, state in states.items()]
        results = self.dispatcher.collect_all(jobs, dests, overwrite=True, logs=logs)
        return [(r.log or "", r.outputs, str(self.translate(r.error, f"collecting job {job.name}")) if r.error else "")
                for job, r in zip(jobs, results, strict=True)]

    def job_failure(self, service: str, name: str, state: JobState) -> AirflowException:
        """The error for a failed or vanished job, with the tail of its log."""
        reason = ("it disappeared from the cluster (deleted, expired, or never submitted)" if state == JobState.LOST
                  else f"the cluster reports it {state.value}")
        return self.translate(self.dispatcher.failure(Job(service, name, state=state), reason), f"job {name}")

    def job_log(self, service: str, name: str) -> str:
        """The job's log, or an empty string when the cluster cannot give it."""
        try:
            return self.client.job_log(service, name)
        except OscarError as exc:
            self.log.warning("could not read the log of job %s: %s", name, exc)
            return ""

    def cancel_jobs(self, service: str, names: Sequence[str]) -> None:
        """Delete (cancel) jobs; failures are logged, not raised (this runs on kill paths)."""
        for name in names:
            try:
                self.client.delete_job(service, name)
                self.log.info("cancelled OSCAR job %s", name)
            except OscarError as exc:
                self.log.warning("could not cancel job %s: %s", name, exc)

    def list_outputs(self, service: str, prefix: str = "") -> list[str]:
        """Objects under the service's first MinIO output path (and ``prefix``), as ``bucket/key``."""
        svc = self.get_service(service)
        outputs = [o for o in svc.output if o.storage_provider.split(".", 1)[0] == "minio"]
        if not outputs:
            raise AirflowFailException(self.describe(ConfigError(
                f"service {service!r} has no MinIO output path to watch: add one to its FDL"), "listing outputs"))
        out = outputs[0]
        key_prefix = "/".join(p for p in (out.folder, prefix.lstrip("/")) if p)
        with self.errors(f"listing the outputs of service {service!r}"):
            storage = self.client.storage
            self._mask(storage.secret_key)
            keys = [o.key for o in storage.list(out.bucket, key_prefix)]
        return [f"{out.bucket}/{k}" for k in keys if k.rsplit("/", 1)[-1] not in RESERVED_FILES]

    # -- records (what ran where, for OscarRunReportOperator) ------------------------------------------
    def job_records(self, service: str, states: Mapping[str, JobState], dests: Sequence[Path],
                    outputs: Mapping[str, Sequence[str]], *, submitted: float | None, collected: float,
                    inputs: Sequence[Sequence[Mapping[str, Any]]] = ()) -> list[dict[str, Any]]:
        """Secret-free records (:meth:`oscar_plugins.JobRecord.as_dict`) of collected jobs: the service's image
        and resources, the cluster's start and finish times (one walk of its job list; the submit time is the
        cluster's creation time when ``submitted`` is unknown), and the sha256 of each output under its
        ``dests`` folder. Jobs missing from ``outputs`` failed."""
        names = list(states)
        svc = self.client.get_service(service)
        listing = self.client.read_job_list(service, wanted=names).listing
        records = []
        for i, (name, dest) in enumerate(zip(names, dests, strict=True)):
            info = dict(listing.get(name) or {})
            job = Job(service, name, state=states[name], info=info)
            when = submitted if submitted is not None else parse_time(info.get("creation_time"))
            ok = name in outputs
            records.append(JobRecord.of(
                job, svc, cluster=self.oscar_conn_id, endpoint=self.profile.endpoint, submitted=when,
                collected=collected if ok else None, status="succeeded" if ok else "failed",
                inputs=inputs[i] if i < len(inputs) else (),
                outputs=file_hashes(outputs.get(name, []), root=dest)).as_dict())
        return records

    def run_record(self, service: str, *, started: float, finished: float, ok: bool,
                   inputs: Sequence[Mapping[str, Any]], outputs: Sequence[Path]) -> dict[str, Any]:
        """The secret-free record of a synchronous run (``POST /run`` has no job: times are the client's)."""
        svc = self.client.get_service(service)
        return JobRecord.of(None, svc, cluster=self.oscar_conn_id, endpoint=self.profile.endpoint,
                            submitted=started, started=started, finished=finished, collected=finished if ok else None,
                            status="succeeded" if ok else "failed", inputs=inputs,
                            outputs=file_hashes(outputs)).as_dict()

    def dashboard_url(self, service: str, job: str | None = None) -> str:
        """The OSCAR dashboard page of the service's jobs (template from the connection)."""
        return self.settings.dashboard_url.format(endpoint=self.profile.endpoint.rstrip("/"), service=service,
                                                  job=job or "")

    # -- async (triggers) --------------------------------------------------------------------------
    async def ajob_states(self, client: AsyncOscarClient, service: str, names: Sequence[str], *,
                          missing_for: float, lost_after: float) -> dict[str, JobState | None]:
        """The jobs' states from one walk of the job list, as the core's poller reads them
        (:func:`oscar_plugins.listed_state`): ``LOST`` for a job missing for more than ``lost_after``
        seconds, None for one that may not be listed yet."""
        walk = await client.read_job_list(service, wanted=names)
        return {n: listed_state(walk.listing.get(n), missing_for=missing_for, lost_after=lost_after) for n in names}

    async def athread_hook(self) -> OscarHook:
        """A sync hook for worker threads of the triggerer (object store calls have no asyncio client).

        The connection is read asynchronously here; the returned hook never looks it up again and
        does not call Airflow's log masker (a sync call that must not run beside the event loop).
        Close it when done.
        """
        settings = await self.asettings()
        profile = await asyncio.to_thread(_profile, settings)
        hook = OscarHook(self.oscar_conn_id, timeout=self.timeout)
        hook.mask_secrets = False
        hook.__dict__.update(settings=settings, profile=profile)
        return hook
