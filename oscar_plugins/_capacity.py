"""Choosing among several clusters by free capacity (``GET /system/status``).

OSCAR's ``*_cores`` figures are millicores (``status.go``: ``Quantity.MilliValue()``), whatever their names.

Example:
    >>> free_capacity({"cluster": {"metrics": {"cpu": {"total_free_cores": 3500},
    ...                                        "memory": {"total_free_bytes": 2048}}}})
    (3.5, 2048)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from ._client import OscarClient
from ._exceptions import ConfigError, OscarError
from ._profiles import resolve_profile

__all__ = ["free_capacity", "pick_cluster"]

log = logging.getLogger("oscar_plugins")


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def free_capacity(status: Mapping[str, Any]) -> tuple[float, int]:
    """Room for new jobs, (cores, memory bytes), from a ``GET /system/status`` body.

    v4.0+: the schedulable figures (allocatable minus the requests of running pods, what Kubernetes
    schedules by); v3.6.5-3.7: free = allocatable minus live usage (metrics-server); before v3.6.5 the flat
    camelCase shape (``cpuFreeTotal``, ``memoryFreeTotal``). CPU comes in millicores in every shape.
    """
    if not isinstance(status, Mapping):
        return 0.0, 0
    cluster = status.get("cluster")
    metrics = _mapping(cluster.get("metrics")) if isinstance(cluster, Mapping) else {}
    if metrics:
        cpu, memory = _mapping(metrics.get("cpu")), _mapping(metrics.get("memory"))
        if "total_schedulable_cores" in cpu:
            return _num(cpu.get("total_schedulable_cores")) / 1000.0, int(_num(memory.get("total_schedulable_bytes")))
        return _num(cpu.get("total_free_cores")) / 1000.0, int(_num(memory.get("total_free_bytes")))
    return _num(status.get("cpuFreeTotal")) / 1000.0, int(_num(status.get("memoryFreeTotal")))


def pick_cluster(names: Sequence[str], *, min_cores: float = 0.0) -> OscarClient:
    """Connect to the cluster (by profile name) with the most free CPU, then memory.

    Clusters that cannot be reached are skipped with a warning.

    Raises:
        ConfigError: no name given, or none reachable with ``min_cores`` free.
    """
    if not names:
        raise ConfigError("pick_cluster needs at least one profile name")
    best: tuple[float, int, OscarClient] | None = None
    for name in names:
        client = OscarClient(resolve_profile(name, quiet=True))
        try:
            cores, memory = free_capacity(client.status())
        except OscarError as exc:
            log.warning("skipping cluster %s: %s", name, exc)
            client.close()
            continue
        if cores < min_cores:
            client.close()
            continue
        if best is None or (cores, memory) > best[:2]:
            if best is not None:
                best[2].close()
            best = (cores, memory, client)
        else:
            client.close()
    if best is None:
        raise ConfigError(f"none of the clusters {list(names)} is reachable with {min_cores} free cores")
    return best[2]
