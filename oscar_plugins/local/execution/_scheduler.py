"""The one scheduler of the local cluster: a FIFO queue against the machine's CPU and memory.

Executions wait ``Pending`` while their service's ``cpu``/``memory`` do not fit in what is left, so a
burst of 1,000 jobs queues instead of forking 1,000 processes. One asyncio task per running execution,
no thread per job; one monitor task samples the resident memory of every running script and kills
those over their limit (reported as ``OOMKilled``, as Kubernetes does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING

from oscar_plugins.local._store import FAILED
from oscar_plugins.local.execution._process import kill_group, resident
from oscar_plugins.local.execution._runner import Execution, Runner

if TYPE_CHECKING:
    from oscar_plugins.local._latency import PodGate

__all__ = ["Scheduler", "Unschedulable"]

logger = logging.getLogger("oscar_plugins.local")
_MONITOR_INTERVAL = 0.5


class Unschedulable(Exception):
    """The execution asks for more CPU or memory than the whole local cluster has."""


def _millicores(cores: float) -> int:
    return round(cores * 1000)


class Scheduler:
    """FIFO admission of executions against a CPU and memory capacity.

    Args:
        cpus: cores the cluster may hand out.
        memory: bytes the cluster may hand out.
        runner: executes admitted executions.
        pods: a latency model's pod capacity and pod start-up (benchmarks only; ``_latency``).
    """

    def __init__(self, cpus: float, memory: int, runner: Runner, pods: PodGate | None = None) -> None:
        self.capacity_m, self.capacity_mem = _millicores(cpus), memory
        self.used_m, self.used_mem = 0, 0
        self.runner, self.pods = runner, pods
        self._queue: deque[Execution] = deque()
        self.pending: dict[str, Execution] = {}
        self.running: dict[str, Execution] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._monitor: asyncio.Task[None] | None = None

    @property
    def used_cpus(self) -> float:
        """Cores reserved by running executions."""
        return self.used_m / 1000

    def start(self) -> None:
        """Start the memory monitor (call from the event loop)."""
        self._monitor = asyncio.get_running_loop().create_task(self._watch_memory())

    def submit(self, ex: Execution) -> None:
        """Queue an execution; it starts at once when capacity is free.

        Raises:
            Unschedulable: it can never fit.
        """
        if _millicores(ex.cpu) > self.capacity_m or ex.memory > self.capacity_mem:
            raise Unschedulable(
                f"the service asks for cpu {ex.cpu:g} and memory {ex.memory} bytes but the local cluster has "
                f"{self.capacity_m / 1000:g} cores and {self.capacity_mem} bytes: lower the service's cpu/memory "
                "or start the cluster with more (--cpus, --memory)"
            )
        self.pending[ex.name] = ex
        self._queue.append(ex)
        self._dispatch()

    def _fits(self, ex: Execution) -> bool:
        return (self.used_m + _millicores(ex.cpu) <= self.capacity_m
                and self.used_mem + ex.memory <= self.capacity_mem
                and (self.pods is None or self.pods.has_room(len(self.running))))

    def _dispatch(self) -> None:
        while self._queue:
            ex = self._queue[0]
            if ex.name not in self.pending or self.pending[ex.name] is not ex:
                self._queue.popleft()  # cancelled while pending
                continue
            if not self._fits(ex):
                return
            self._queue.popleft()
            del self.pending[ex.name]
            self.used_m += _millicores(ex.cpu)
            self.used_mem += ex.memory
            self.running[ex.name] = ex
            task = asyncio.get_running_loop().create_task(self._run(ex))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, ex: Execution) -> None:
        pod = None
        try:
            if self.pods is not None:  # the job stays Pending while its pod starts
                pod = await self.pods.start(ex.name, str(ex.service.get("name") or ""), ex.sync)
            await self.runner.execute(ex)
        finally:
            if pod is not None and self.pods is not None:
                self.pods.ended(pod)
            self.used_m -= _millicores(ex.cpu)
            self.used_mem -= ex.memory
            self.running.pop(ex.name, None)
            ex.done.set()
            self._dispatch()

    def cancel(self, name: str, reason: str = "deleted") -> Execution | None:
        """Kill a running execution or drop a pending one; return it (None when unknown)."""
        ex = self.pending.pop(name, None)
        if ex is not None:
            ex.killed, ex.status, ex.reason = reason, FAILED, reason
            ex.work.remove()
            ex.done.set()
            return ex
        ex = self.running.get(name)
        if ex is not None:
            ex.killed = reason
            self._kill(ex)
        return ex

    def _kill(self, ex: Execution) -> None:
        kill_group(ex.process)
        engine = self.runner.engine
        if ex.container and engine in ("docker", "podman"):
            loop = asyncio.get_running_loop()
            task = loop.create_task(self._kill_container(engine, ex.container))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _kill_container(engine: str, name: str) -> None:
        with contextlib.suppress(OSError):
            proc = await asyncio.create_subprocess_exec(
                engine, "kill", name, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
            )
            await proc.wait()

    async def _watch_memory(self) -> None:
        while True:
            await asyncio.sleep(_MONITOR_INTERVAL)
            if self.runner.engine != "host":
                continue  # the container engine enforces --memory itself
            watched = {ex.process.pid: ex for ex in self.running.values() if ex.process is not None and not ex.killed}
            if not watched:
                continue
            usage = await asyncio.to_thread(resident, list(watched))
            for pid, rss in usage.items():
                ex = watched[pid]
                if rss > ex.memory and not ex.killed and ex.process is not None and ex.process.pid == pid:
                    logger.info("job %s exceeded its memory limit of %d bytes: killed", ex.name, ex.memory)
                    ex.killed = "OOMKilled"
                    self._kill(ex)

    async def shutdown(self, timeout: float = 20.0) -> None:
        """Drop pending executions, kill running ones and wait for them to end.

        Job records are left as they are: the next start marks them ``Failed``.
        """
        if self._monitor is not None:
            self._monitor.cancel()
        for ex in list(self.pending.values()) + list(self.running.values()):
            ex.finalize = False
            self.cancel(ex.name, "shutdown")
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
