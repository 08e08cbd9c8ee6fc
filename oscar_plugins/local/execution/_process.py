"""Child processes driven from the event loop without blocking it and without a thread per process.

``fork``/``exec`` runs in a worker thread (the parent waits for the exec to succeed, which would stall
the loop); the output pipe is read by the loop's selector; the exit is noticed through a pidfd
(Linux >= 5.3), with a waiting thread only where pidfds do not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil

__all__ = ["kill_group", "pump_output", "resident", "spawn", "wait_exit"]


async def spawn(cmd: Sequence[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a new session (its own process group) with stdout and stderr on one pipe."""
    return await asyncio.to_thread(
        subprocess.Popen, list(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, cwd=cwd, env=env, start_new_session=True,
    )


def kill_group(process: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL the process group of a process started by :func:`spawn`."""
    if process is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


async def wait_exit(process: subprocess.Popen[bytes], timeout: float | None = None) -> int:
    """Wait for a process to end and return its exit code.

    Raises:
        TimeoutError: it still runs after ``timeout`` seconds (it is left running).
    """
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[None] = loop.create_future()

    def mark() -> None:
        if not ended.done():
            ended.set_result(None)

    pidfd: int | None = None
    with contextlib.suppress(AttributeError, OSError):
        pidfd = os.pidfd_open(process.pid)
    if pidfd is not None:
        loop.add_reader(pidfd, mark)
    else:
        _wait_in_thread(process, lambda: loop.call_soon_threadsafe(mark))
    try:
        await asyncio.wait_for(asyncio.shield(ended), timeout)
    except asyncio.TimeoutError as exc:
        raise TimeoutError(f"process {process.pid} still runs after {timeout} s") from exc
    finally:
        if pidfd is not None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
    return process.wait()


def _wait_in_thread(process: subprocess.Popen[bytes], done: Callable[[], object]) -> None:
    def run() -> None:
        process.wait()
        done()

    threading.Thread(target=run, name=f"wait-{process.pid}", daemon=True).start()


async def pump_output(process: subprocess.Popen[bytes], sink: Callable[[bytes], None]) -> None:
    """Feed everything the process writes to its output pipe to ``sink``, until end of file."""
    assert process.stdout is not None
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), process.stdout)
    try:
        while chunk := await reader.read(65536):
            sink(chunk)
    finally:
        transport.close()


#: Whether this kernel lists a task's children in /proc (CONFIG_PROC_CHILDREN, Linux >= 3.5).
_PROC_CHILDREN = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def resident(roots: Sequence[int]) -> dict[int, int]:
    """Resident memory (bytes) of each root process together with all its descendants.

    Linux lists each task's children in ``/proc/<pid>/task/<tid>/children``: a few small reads per process
    of the jobs watched, where a scan of the whole process table costs milliseconds of CPU each time (the
    memory monitor asks twice a second while jobs run). Without that file, one scan per call.
    """
    if not _PROC_CHILDREN:
        return _resident_by_scan(roots)
    page = os.sysconf("SC_PAGE_SIZE")
    usage = {}
    for root in roots:
        total, todo = 0, [root]
        while todo:
            pid = todo.pop()
            try:
                with open(f"/proc/{pid}/statm", "rb") as handle:
                    total += int(handle.read().split()[1]) * page
                for tid in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{tid}/children", "rb") as handle:
                        todo.extend(int(child) for child in handle.read().split())
            except (OSError, ValueError, IndexError):
                continue  # it ended meanwhile
        usage[root] = total
    return usage


def _resident_by_scan(roots: Sequence[int]) -> dict[int, int]:
    children: dict[int, list[int]] = {}
    for proc in psutil.process_iter(["ppid"]):
        children.setdefault(proc.info["ppid"] or 0, []).append(proc.pid)
    usage = {}
    for root in roots:
        total, todo = 0, [root]
        while todo:
            pid = todo.pop()
            todo.extend(children.get(pid, ()))
            with contextlib.suppress(psutil.Error):
                total += psutil.Process(pid).memory_info().rss
        usage[root] = total
    return usage
