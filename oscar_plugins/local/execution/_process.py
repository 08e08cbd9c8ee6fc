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

__all__ = ["kill_group", "pump_output", "spawn", "wait_exit"]


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
