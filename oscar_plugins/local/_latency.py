"""A latency model of a real OSCAR cluster, for benchmarks: pod start, WAN round trips, capacity.

On this machine a job's pod "starts" in milliseconds and every request is a loopback call, so the local
cluster flatters whatever talks to it. With a model, the local cluster behaves as a remote cluster does:

- each job's pod takes a drawn time to start (the job stays ``Pending`` meanwhile, as a Kubernetes pod in
  ``ContainerCreating`` does), and at most ``max_pods`` executions hold a pod at once (the cluster's
  capacity; the cpu/memory admission still applies);
- every API request costs one round trip (``api_rtt``), and the S3 endpoint the cluster gives its users is a
  link with a round trip (``s3_rtt``) and a bandwidth (``s3_bandwidth``) in front of the S3 server.

Off unless asked for: ``LocalCluster(latency=...)`` > ``$OSCAR_PLUGINS_LOCAL_LATENCY`` > none. A model is
a preset name (``cloud``, ``lan``) or a YAML/JSON file of the fields of :class:`LatencyModel`, optionally
``preset: NAME`` plus overrides. Defaults and their sources: docs/PERFORMANCE.md, "The latency model".

Example:
    >>> model = load_latency_model("cloud")
    >>> model.pod_start.median, model.max_pods
    (2.0, 32)
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import math
import os
import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Union

import yaml

from oscar_plugins._validation import parse_memory

__all__ = ["ENV_LATENCY", "POD_RECORDS", "PRESETS", "LatencyModel", "PodGate", "PodRecord", "PodStart",
           "ideal_makespan", "load_latency_model", "model_json", "read_pod_records", "resolve_latency_model"]
Spec = Union[str, "os.PathLike[str]", Mapping[str, Any], "LatencyModel", None]

ENV_LATENCY = "OSCAR_PLUGINS_LOCAL_LATENCY"
#: Where a cluster with a model records each execution's pod (one JSON object a line).
POD_RECORDS = "latency-pods.jsonl"


@dataclass(frozen=True)
class PodStart:
    """How long a pod takes to start: ``constant`` (``median`` seconds) or ``lognormal`` (``median``,
    ``sigma`` of the log), draws capped at ``max`` seconds."""

    distribution: str = "lognormal"
    median: float = 2.0
    sigma: float = 0.4
    max: float = 30.0

    def __post_init__(self) -> None:
        if self.distribution not in ("constant", "lognormal"):
            raise ValueError(f"pod_start distribution {self.distribution!r} is not one of constant, lognormal")
        if self.median < 0 or self.sigma < 0 or self.max < 0:
            raise ValueError("pod_start median, sigma and max must be >= 0")

    def draw(self, rng: random.Random) -> float:
        """One pod's start-up time in seconds."""
        if self.distribution == "constant" or self.median == 0:
            return min(self.median, self.max)
        return min(rng.lognormvariate(math.log(self.median), self.sigma), self.max)

    def mean(self) -> float:
        """The distribution's mean (the cap ignored), for expected makespans."""
        if self.distribution == "constant":
            return self.median
        return self.median * math.exp(self.sigma ** 2 / 2)


@dataclass(frozen=True)
class LatencyModel:
    """What a remote cluster adds: pod start, round trips, S3 bandwidth, capacity.

    Args:
        pod_start: the distribution of a job pod's start-up time.
        api_rtt: seconds each OSCAR API request waits (one round trip).
        s3_rtt: round trip of the link in front of the S3 server (half each way, one more to connect).
        s3_bandwidth: bytes per second of that link, each direction, shared by all connections (None: no cap).
        max_pods: executions that hold a pod at once (None: only cpu/memory admission).
        seed: seed of the pod start draws (the k-th admitted job gets the k-th draw); None: random.
        name: the preset it came from, or the file.
    """

    pod_start: PodStart = field(default_factory=PodStart)
    api_rtt: float = 0.0
    s3_rtt: float = 0.0
    s3_bandwidth: float | None = None
    max_pods: int | None = None
    seed: int | None = None
    name: str = "custom"

    def __post_init__(self) -> None:
        if self.api_rtt < 0 or self.s3_rtt < 0:
            raise ValueError("api_rtt and s3_rtt must be >= 0 seconds")
        if self.s3_bandwidth is not None and self.s3_bandwidth <= 0:
            raise ValueError("s3_bandwidth must be > 0 bytes per second (or null: no cap)")
        if self.max_pods is not None and self.max_pods < 1:
            raise ValueError("max_pods must be >= 1 (or null: no cap)")

    @property
    def s3_link(self) -> bool:
        """Whether the S3 endpoint needs a link in front of it."""
        return self.s3_rtt > 0 or self.s3_bandwidth is not None

    def draws(self, n: int) -> list[float]:
        """The first ``n`` pod start times a cluster with this model (and a seed) draws."""
        rng = random.Random(self.seed)  # noqa: S311 - a simulation, not a secret
        return [self.pod_start.draw(rng) for _ in range(n)]

    def describe(self) -> str:
        """One line for logs and ``local status``."""
        pod = (f"{self.pod_start.median:g} s" if self.pod_start.distribution == "constant" else
               f"lognormal median {self.pod_start.median:g} s sigma {self.pod_start.sigma:g}")
        bw = f"{self.s3_bandwidth / 2**20:g} MiB/s" if self.s3_bandwidth else "uncapped"
        return (f"{self.name}: pod start {pod}, max pods {self.max_pods or 'unlimited'}, API RTT "
                f"{1000 * self.api_rtt:g} ms, S3 RTT {1000 * self.s3_rtt:g} ms, S3 {bw}")


#: ``cloud``: a Kubernetes cluster in a cloud region reached over a WAN (sources: docs/PERFORMANCE.md).
#: ``lan``: the same cluster on the user's campus network.
PRESETS: dict[str, LatencyModel] = {
    "cloud": LatencyModel(PodStart("lognormal", 2.0, 0.4, 30.0), api_rtt=0.03, s3_rtt=0.03,
                          s3_bandwidth=25 * 2**20, max_pods=32, seed=17, name="cloud"),
    "lan": LatencyModel(PodStart("lognormal", 2.0, 0.4, 30.0), api_rtt=0.001, s3_rtt=0.001,
                        s3_bandwidth=None, max_pods=32, seed=17, name="lan"),
}


def _from_mapping(raw: Mapping[str, Any], name: str) -> LatencyModel:
    known = {f.name for f in fields(LatencyModel)} | {"preset"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown latency model field(s) {', '.join(unknown)}: use {', '.join(sorted(known))}")
    base = PRESETS[_preset_name(str(raw["preset"]))] if "preset" in raw else LatencyModel()
    values: dict[str, Any] = {k: v for k, v in raw.items() if k not in ("preset", "pod_start")}
    name = str(values.pop("name", name))
    if "s3_bandwidth" in values and values["s3_bandwidth"] is not None:
        values["s3_bandwidth"] = float(parse_memory(values["s3_bandwidth"]))
    for key in ("api_rtt", "s3_rtt"):
        if key in values:
            values[key] = float(values[key])
    pod = raw.get("pod_start", None)
    if isinstance(pod, (int, float)) and not isinstance(pod, bool):
        values["pod_start"] = PodStart("constant", float(pod), 0.0, max(float(pod), base.pod_start.max))
    elif isinstance(pod, Mapping):
        given: dict[str, Any] = {str(k): (str(v) if k == "distribution" else float(v)) for k, v in pod.items()}
        values["pod_start"] = replace(base.pod_start, **given)
    elif pod is not None:
        raise ValueError("pod_start must be seconds or {distribution, median, sigma, max}")
    return replace(base, **values, name=name)


def _preset_name(text: str) -> str:
    if text not in PRESETS:
        raise ValueError(f"no latency preset {text!r}: use one of {', '.join(PRESETS)} or a YAML/JSON file")
    return text


def load_latency_model(spec: Spec) -> LatencyModel | None:
    """A model from a preset name, a YAML/JSON file, a mapping or a model; None for None, ``""``, ``none``.

    Raises:
        ValueError: no such preset or file, or a bad field (the message says which).
    """
    if spec is None or isinstance(spec, LatencyModel):
        return spec
    if isinstance(spec, Mapping):
        return _from_mapping(spec, "custom")
    text = os.fspath(spec)
    if text.strip().lower() in ("", "none", "off"):
        return None
    if text in PRESETS:
        return PRESETS[text]
    path = Path(text).expanduser()
    if not path.is_file():
        _preset_name(text)  # says which presets exist
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read the latency model {path}: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise ValueError(f"the latency model {path} must be a mapping of fields")
    try:
        return _from_mapping(raw, path.name)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"latency model {path}: {exc}") from exc


def resolve_latency_model(argument: Spec) -> LatencyModel | None:
    """The argument when given, else ``$OSCAR_PLUGINS_LOCAL_LATENCY`` (read at call time), else None."""
    if argument is not None:
        return load_latency_model(argument)
    return load_latency_model(os.environ.get(ENV_LATENCY) or None)


def model_json(model: LatencyModel) -> str:
    """The model as JSON (what a daemon is started with)."""
    return json.dumps(asdict(model))


def ideal_makespan(durations: Iterable[float], capacity: int) -> float:
    """When the last of jobs submitted all at once ends, each taking its duration, ``capacity`` at a time in
    order (a FIFO scheduler with no overhead: every slot starts its next job the moment it frees)."""
    slots = [0.0] * max(1, capacity)
    end = 0.0
    for d in durations:
        start = heapq.heappop(slots)
        end = max(end, start + d)
        heapq.heappush(slots, start + d)
    return end


@dataclass
class PodRecord:
    """One execution's pod: when it was admitted, how long it took to start, when it ran and ended."""

    job: str
    service: str
    sync: bool
    admitted: float
    delay: float
    running: float = 0.0
    ended: float = 0.0


class PodGate:
    """The scheduler's hook: the pod capacity, each job pod's start-up, and a record of every pod.

    Args:
        model: the latency model.
        records: a JSON-lines file each ended pod is appended to (None: kept in :attr:`records` only).
    """

    def __init__(self, model: LatencyModel, records: Path | None = None) -> None:
        self.model, self.path = model, records
        self._rng = random.Random(model.seed)  # noqa: S311 - a simulation, not a secret
        self.records: list[PodRecord] = []

    def has_room(self, running: int) -> bool:
        """Whether one more execution may hold a pod while ``running`` do."""
        return self.model.max_pods is None or running < self.model.max_pods

    async def start(self, job: str, service: str, sync: bool) -> PodRecord:
        """Wait out a job pod's start-up (synchronous calls go to warm pods: no wait) and record it."""
        delay = 0.0 if sync else self.model.pod_start.draw(self._rng)
        record = PodRecord(job, service, sync, time.time(), delay)
        if delay:
            await asyncio.sleep(delay)
        record.running = time.time()
        return record

    def ended(self, record: PodRecord) -> None:
        """Note a pod's end (appended to the records file)."""
        record.ended = time.time()
        self.records.append(record)
        if self.path is not None:
            with contextlib.suppress(OSError), self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(asdict(record)) + "\n")


def read_pod_records(data_dir: str | os.PathLike[str]) -> list[PodRecord]:
    """The pods a cluster with a model recorded in its data directory (oldest first)."""
    path = Path(data_dir) / POD_RECORDS
    out: list[PodRecord] = []
    with contextlib.suppress(FileNotFoundError), path.open(encoding="utf-8") as handle:
        for line in handle:
            with contextlib.suppress(ValueError, TypeError):
                out.append(PodRecord(**json.loads(line)))
    return out
