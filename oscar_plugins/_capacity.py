"""Choosing among several clusters by free capacity (``GET /system/status``).

Example:
    >>> free_capacity({"cluster": {"metrics": {"cpu": {"total_free_cores": 3},
    ...                                        "memory": {"total_free_bytes": 2048}}}})
    (3.0, 2048)
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


def free_capacity(status: Mapping[str, Any]) -> tuple[float, int]:
    """Free (cores, memory bytes) from a status body: the v3.6.5+ nested shape or the older flat one."""
    metrics = ((status.get("cluster") or {}).get("metrics") or {}) if isinstance(status, Mapping) else {}
    if metrics:
        cores = _num((metrics.get("cpu") or {}).get("total_free_cores"))
        memory = int(_num((metrics.get("memory") or {}).get("total_free_bytes")))
        return cores, memory
    # Before v3.6.5: flat camelCase, CPU in millicores.
    cores = _num(status.get("cpuFreeTotal")) / 1000.0
    memory = int(_num(status.get("memoryFreeTotal")))
    return cores, memory


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
