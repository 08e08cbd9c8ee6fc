"""The embedded local OSCAR-compatible cluster.

An OSCAR REST API (v4.1.2) server, a local S3 server standing in for MinIO, and a scheduler that runs
service scripts the way OSCAR's faas-supervisor does, so workflows run on one machine with no set-up::

    from oscar_plugins.local import LocalCluster, ensure_local_cluster

    with LocalCluster(data_dir=tmp_path, port=0) as lc:      # in-process, for tests
        print(lc.endpoint, lc.username, lc.s3_endpoint)

    info = ensure_local_cluster()                              # a background daemon, started on demand

From the shell: ``python -m oscar_plugins.local up|status|down|serve``. Exports are imported lazily,
so the S3 child process (``oscar_plugins.local.storage._s3``) does not load the API server's dependencies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from oscar_plugins._lazy import lazy_exports

__all__ = [
    "LatencyModel",
    "LocalCluster",
    "LocalClusterError",
    "LocalClusterInfo",
    "default_data_dir",
    "down",
    "ensure_local_cluster",
    "fallback_profile",
    "ideal_makespan",
    "load_latency_model",
    "read_pod_records",
    "status",
    "up",
]

_EXPORTS = {
    "LatencyModel": "._latency",
    "ideal_makespan": "._latency",
    "load_latency_model": "._latency",
    "read_pod_records": "._latency",
    "LocalCluster": "._cluster",
    "LocalClusterError": "._config",
    "LocalClusterInfo": "._config",
    "default_data_dir": "._config",
    "down": "._daemon",
    "ensure_local_cluster": "._daemon",
    "fallback_profile": "._daemon",
    "status": "._daemon",
    "up": "._daemon",
}

if TYPE_CHECKING:
    from ._cluster import LocalCluster
    from ._config import LocalClusterError, LocalClusterInfo, default_data_dir
    from ._daemon import down, ensure_local_cluster, fallback_profile, status, up
    from ._latency import LatencyModel, ideal_makespan, load_latency_model, read_pod_records


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
