"""``GET /system/metrics/{serviceName}``: a service's usage figures, as OSCAR v4.0+ answers them.

OSCAR's handler is ``pkg/handlers/metrics.go`` MakeMetricValueHandler (routes in ``main.go``, the
``/system/metrics`` group), its figures come from ``pkg/metrics/aggregators.go`` Aggregator.MetricValue and
the shapes from ``pkg/types/metrics.go`` (MetricValueResponse, ServiceMetricsResponse, SourceStatus). CPU- and
GPU-hours come from a usage source (Prometheus on a real cluster; none configured: value 0 and a source
``usage-metrics`` with status ``missing``, ``sources.go`` NoopUsageMetricsSource). Here the usage source is
the cluster's own ledger of executions (cores held x time, ``Store.usage_hours``), so it answers ``ok``;
request counts need Loki or the pods' logs, which the local cluster does not keep: they answer ``missing``.
The summary (``/system/metrics``) and the breakdown (``/system/metrics/breakdown``) are not reproduced.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from oscar_plugins.local.api._gotypes import dumps
from oscar_plugins.local.api._web import authenticate, bearer, go_json, runtime_of, text

__all__ = ["metric_value"]

#: ``loadAllServiceMetrics``: the figures of a call without ``metric``, in this order.
_ALL = ("cpu-hours", "gpu-hours", "requests-sync-per-service", "requests-async-per-service",
        "requests-exposed-per-service", "users-per-service")
#: ``types.MetricKeySet``: keys that are valid but not per-service values answer "unsupported metric".
_VALID = (*_ALL, "services-count", "requests-per-user", "countries-count", "countries-list")
_REQUEST_SOURCE = {"requests-exposed-per-service": "exposed-request-logs"}


def _bad(message: str) -> Response:
    return go_json(dumps({"error": message}), 400)


def _parse(raw: str) -> datetime:
    """``time.Parse(time.RFC3339, raw)``; the offset is kept (Go marshals it back as given)."""
    if len(raw) < 20 or raw[10] not in "Tt" or not (raw[-1] in "Zz" or raw[-6] in "+-"):
        raise ValueError(raw)
    return datetime.fromisoformat(raw[:-1] + "+00:00" if raw[-1] in "Zz" else raw)


def _go_time(stamp: datetime) -> str:
    """``time.Time``'s MarshalJSON (RFC 3339 with nanoseconds, trailing zeros dropped; ``Z`` for UTC)."""
    text_ = stamp.strftime("%Y-%m-%dT%H:%M:%S")
    if stamp.microsecond:
        text_ += f".{stamp.microsecond:06d}".rstrip("0")
    offset = stamp.utcoffset() or timedelta(0)
    if offset == timedelta(0):
        return text_ + "Z"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return text_ + f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _go_float(value: float) -> Any:
    """``encoding/json``'s float64: integral values without a point."""
    return int(value) if value.is_integer() and abs(value) < 1e21 else value


def _time_range(request: Request) -> tuple[datetime, datetime] | Response:
    """``metrics.go`` parseTimeRange: end defaults to now (UTC), start to end - 24 h; end before start is a 400."""
    end = datetime.now(timezone.utc)
    end_raw, start_raw = request.query_params.get("end", "").strip(), request.query_params.get("start", "").strip()
    try:
        end = _parse(end_raw) if end_raw else end
    except ValueError:
        return _bad("invalid end timestamp")
    try:
        start = _parse(start_raw) if start_raw else end - timedelta(hours=24)
    except ValueError:
        return _bad("invalid start timestamp")
    if end < start:
        return _bad("end must be after start")
    return start, end


def _value(request: Request, service: str, metric: str, start: datetime, end: datetime) -> dict[str, Any]:
    """``Aggregator.MetricValue`` for one per-service key: value, unit and the sources it came from."""
    if metric in ("cpu-hours", "gpu-hours"):
        cpu, gpu = runtime_of(request).store.usage_hours(service, start.timestamp(), end.timestamp())
        return {"value": _go_float(cpu if metric == "cpu-hours" else gpu), "unit": "hours",
                "sources": [{"name": "prometheus", "status": "ok"}]}
    source = _REQUEST_SOURCE.get(metric, "request-logs")
    return {"value": 0, "sources": [{"name": source, "status": "missing",
                                     "notes": "request log source not configured"}]}


async def metric_value(request: Request) -> Response:
    """``MakeMetricValueHandler``: one figure (``?metric=``) or all of ``loadAllServiceMetrics``."""
    caller = await authenticate(request)
    if isinstance(caller, Response):
        return caller
    runtime = runtime_of(request)
    if not runtime.persona.metrics:  # before v4.0.0 there is no such route: gin's own 404
        return text("404 page not found", 404)
    name = request.path_params["name"].strip()
    if not name:
        return _bad("serviceName is required")
    # v4.1.0+ checks the service only for bearer callers (getAuthorizedServiceForMetrics); v4.0.0 for all.
    if bearer(request) is not None or runtime.persona.version_tuple < (4, 1, 0):
        found = runtime.read_service(name)
        if found is None:
            return text("", 404)
        if not runtime.visible(found, caller):
            return text("", 403)
    span = _time_range(request)
    if isinstance(span, Response):
        return span
    start, end = span
    metric = request.query_params.get("metric", "").strip()
    if not metric:
        items = [{"metric": key, **_value(request, name, key, start, end)} for key in _ALL]
        return go_json(dumps({"service_name": name, "start": _go_time(start), "end": _go_time(end),
                              "metrics": items}))
    if metric not in _VALID:
        return _bad("invalid metric key")
    if metric not in _ALL:
        return _bad("unsupported metric for value query")
    one = _value(request, name, metric, start, end)
    body = {"service_id": name, "metric": metric, "start": _go_time(start), "end": _go_time(end),
            "value": one["value"], **({"unit": one["unit"]} if "unit" in one else {}), "sources": one["sources"]}
    return go_json(dumps(body))
