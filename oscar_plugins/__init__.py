"""oscar-plugins: offload workflow steps to OSCAR clusters.

The core API, imported lazily so ``import oscar_plugins`` stays fast::

    from oscar_plugins import OscarClient, Dispatcher, Service, load_fdl

    client = OscarClient.connect()            # argument > environment > ~/.oscar-cli > local cluster
    client.ensure_service(load_fdl("svc.yaml").services[0].service)
    result = client.run("svc", Path("input.txt"))

Adapters live in ``oscar_plugins.cwl``, ``oscar_plugins.airflow`` and ``oscar_plugins.itwinai``;
the embedded local cluster in ``oscar_plugins.local``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "OscarClient": "._client",
    "AsyncOscarClient": "._async",
    "parse_version": "._client",
    "Dispatcher": "._dispatch",
    "AGAIN": "._batch",
    "Batch": "._batch",
    "ImageBuilder": "._images",
    "ImageInspector": "._images",
    "JobResult": "._dispatch",
    "job_output_prefix": "._dispatch",
    "output_location": "._dispatch",
    "JobSpec": "._dispatch",
    "Job": "._jobs",
    "JobState": "._joblist",
    "JobListWalk": "._joblist",
    "listed_state": "._joblist",
    "name_clock": "._joblist",
    "new_job_name": "._joblist",
    "JobTracker": "._jobs",
    "Journal": "._journal",
    "JobEvent": "._watch",
    "output_path_problem": "._validation",
    "ObjectEvent": "._watch",
    "Watermark": "._watch",
    "WatermarkMismatch": "._watch",
    "finished_jobs": "._watch",
    "job_times": "._watch",
    "object_events": "._watch",
    "object_times": "._watch",
    "event_time": "._watch",
    "watch_jobs": "._watch",
    "TimelineRow": "._timeline",
    "TimelineTotals": "._timeline",
    "check_timeline_path": "._timeline",
    "job_row": "._timeline",
    "parse_time": "._timeline",
    "server_cpu_hours": "._timeline",
    "timeline_totals": "._timeline",
    "write_timeline": "._timeline",
    "NAMESPACE": "._provenance",
    "JobRecord": "._provenance",
    "StepRun": "._provenance",
    "file_hashes": "._provenance",
    "iso_time": "._provenance",
    "public_endpoint": "._provenance",
    "run_rows": "._provenance",
    "tree_hashes": "._provenance",
    "CRATE_TERMS": "._crate",
    "add_file_hashes": "._crate",
    "add_oscar_job": "._crate",
    "check_crate_path": "._crate",
    "define_crate_terms": "._crate",
    "write_run_crate": "._crate",
    "FDL": "._fdl",
    "Service": "._fdl",
    "StorageIO": "._fdl",
    "load_fdl": "._fdl",
    "service_from_dict": "._fdl",
    "ClusterProfile": "._profiles",
    "resolve_profile": "._profiles",
    "load_profiles": "._profiles",
    "local_profile": "._profiles",
    "BasicCredentials": "._auth",
    "Credentials": "._auth",
    "OidcAgentCredentials": "._auth",
    "RefreshTokenCredentials": "._auth",
    "TokenCredentials": "._auth",
    "SECRET_FIELDS": "._auth",
    "credential_secrets": "._auth",
    "mask_secrets": "._auth",
    "Storage": "._storage",
    "sha256_file": "._storage",
    "pick_cluster": "._capacity",
    "free_capacity": "._capacity",
    "RunResult": "._sync",
    "wrap_script": "._wrapper",
    "LOG_FILE": "._wrapper",
    "RESERVED_FILES": "._wrapper",
    "STATUS_FILE": "._wrapper",
    "service_from_api": "._fdl",
}
_EXCEPTIONS = [
    "APIError", "AuthenticationError", "BadRequest", "ChecksumMismatch", "ConfigError", "Conflict",
    "ConnectionFailed", "FDLError", "InputNotFound", "JobFailed", "JobNotFound", "JobTimeout", "NotFound",
    "OscarError", "OutputExists", "ProfileNotFound", "ServerError", "ServiceNotFound", "ServiceUnavailable",
    "StorageError", "TLSError",
]
_EXPORTS.update({name: "._exceptions" for name in _EXCEPTIONS})

__all__ = [
    "AGAIN",
    "CRATE_TERMS",
    "FDL",
    "LOG_FILE",
    "NAMESPACE",
    "RESERVED_FILES",
    "SECRET_FIELDS",
    "STATUS_FILE",
    "APIError",
    "AsyncOscarClient",
    "AuthenticationError",
    "BadRequest",
    "BasicCredentials",
    "Batch",
    "ChecksumMismatch",
    "ClusterProfile",
    "ConfigError",
    "Conflict",
    "ConnectionFailed",
    "Credentials",
    "Dispatcher",
    "FDLError",
    "ImageBuilder",
    "ImageInspector",
    "InputNotFound",
    "Job",
    "JobEvent",
    "JobFailed",
    "JobListWalk",
    "JobNotFound",
    "JobRecord",
    "JobResult",
    "JobSpec",
    "JobState",
    "JobTimeout",
    "JobTracker",
    "Journal",
    "NotFound",
    "ObjectEvent",
    "OidcAgentCredentials",
    "OscarClient",
    "OscarError",
    "OutputExists",
    "ProfileNotFound",
    "RefreshTokenCredentials",
    "RunResult",
    "ServerError",
    "Service",
    "ServiceNotFound",
    "ServiceUnavailable",
    "StepRun",
    "Storage",
    "StorageError",
    "StorageIO",
    "TLSError",
    "TimelineRow",
    "TimelineTotals",
    "TokenCredentials",
    "Watermark",
    "WatermarkMismatch",
    "add_file_hashes",
    "add_oscar_job",
    "check_crate_path",
    "check_timeline_path",
    "credential_secrets",
    "define_crate_terms",
    "event_time",
    "file_hashes",
    "finished_jobs",
    "free_capacity",
    "iso_time",
    "job_output_prefix",
    "job_row",
    "job_times",
    "lazy_exports",
    "listed_state",
    "load_fdl",
    "load_profiles",
    "local_profile",
    "mask_secrets",
    "name_clock",
    "new_job_name",
    "object_events",
    "object_times",
    "output_location",
    "output_path_problem",
    "parse_time",
    "parse_version",
    "pick_cluster",
    "public_endpoint",
    "resolve_profile",
    "run_rows",
    "server_cpu_hours",
    "service_from_api",
    "service_from_dict",
    "sha256_file",
    "timeline_totals",
    "tree_hashes",
    "watch_jobs",
    "wrap_script",
    "write_run_crate",
    "write_timeline",
]

if TYPE_CHECKING:
    from ._async import AsyncOscarClient
    from ._auth import (
        SECRET_FIELDS,
        BasicCredentials,
        Credentials,
        OidcAgentCredentials,
        RefreshTokenCredentials,
        TokenCredentials,
        credential_secrets,
        mask_secrets,
    )
    from ._batch import AGAIN, Batch
    from ._capacity import free_capacity, pick_cluster
    from ._client import OscarClient, parse_version
    from ._crate import (
        CRATE_TERMS,
        add_file_hashes,
        add_oscar_job,
        check_crate_path,
        define_crate_terms,
        write_run_crate,
    )
    from ._dispatch import Dispatcher, JobResult, JobSpec, job_output_prefix, output_location
    from ._exceptions import (
        APIError,
        AuthenticationError,
        BadRequest,
        ChecksumMismatch,
        ConfigError,
        Conflict,
        ConnectionFailed,
        FDLError,
        InputNotFound,
        JobFailed,
        JobNotFound,
        JobTimeout,
        NotFound,
        OscarError,
        OutputExists,
        ProfileNotFound,
        ServerError,
        ServiceNotFound,
        ServiceUnavailable,
        StorageError,
        TLSError,
    )
    from ._fdl import FDL, Service, StorageIO, load_fdl, service_from_api, service_from_dict
    from ._images import ImageBuilder, ImageInspector
    from ._joblist import JobListWalk, JobState, listed_state, name_clock, new_job_name
    from ._jobs import Job, JobTracker
    from ._journal import Journal
    from ._profiles import ClusterProfile, load_profiles, local_profile, resolve_profile
    from ._provenance import (
        NAMESPACE,
        JobRecord,
        StepRun,
        file_hashes,
        iso_time,
        public_endpoint,
        run_rows,
        tree_hashes,
    )
    from ._storage import Storage, sha256_file
    from ._sync import RunResult
    from ._timeline import (
        TimelineRow,
        TimelineTotals,
        check_timeline_path,
        job_row,
        parse_time,
        server_cpu_hours,
        timeline_totals,
        write_timeline,
    )
    from ._validation import output_path_problem
    from ._watch import (
        JobEvent,
        ObjectEvent,
        Watermark,
        WatermarkMismatch,
        event_time,
        finished_jobs,
        job_times,
        object_events,
        object_times,
        watch_jobs,
    )
    from ._wrapper import LOG_FILE, RESERVED_FILES, STATUS_FILE, wrap_script


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
