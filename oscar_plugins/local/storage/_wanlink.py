"""A WAN link in front of the S3 server, for the latency model (benchmarks only; ``local._latency``).

A TCP relay: bytes pass unchanged (S3's semantics, signatures and keep-alive are the server's own), each
chunk arrives half a round trip after it was sent, a new connection's first bytes one round trip later
(the TCP handshake), and each direction's bytes share one bandwidth, as a link does (netem's ``delay`` and
``rate``). It runs its own event loop in a thread of the API process.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time

__all__ = ["WanLink"]

_CHUNK = 64 << 10
_QUEUE = 64  # chunks buffered per direction and connection (4 MiB): the sender waits beyond


class _Direction:
    """One direction's bandwidth, shared by every connection: when the link is next free."""

    def __init__(self, bandwidth: float | None) -> None:
        self.bandwidth, self.free_at = bandwidth, 0.0

    def send(self, now: float, size: int) -> float:
        """When a chunk of ``size`` bytes handed over at ``now`` has left (the delay aside)."""
        if not self.bandwidth:
            return now
        self.free_at = max(self.free_at, now) + size / self.bandwidth
        return self.free_at


class WanLink:
    """Relay ``host:port`` -> ``target`` with a round trip and a bandwidth.

    Example:
        >>> link = WanLink("127.0.0.1", ("127.0.0.1", 9000), rtt=0.03, bandwidth=25 << 20).start()  # doctest: +SKIP
        >>> link.endpoint("http")                                                          # doctest: +SKIP
        'http://127.0.0.1:41234'

    Args:
        host: interface to listen on (a free port is chosen).
        target: (host, port) of the server behind the link.
        rtt: round trip in seconds.
        bandwidth: bytes per second each way (None: no cap).
    """

    def __init__(self, host: str, target: tuple[str, int], rtt: float, bandwidth: float | None) -> None:
        self.host, self.target, self.rtt = host, target, rtt
        self._up, self._down = _Direction(bandwidth), _Direction(bandwidth)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        #: Connections relayed so far.
        self.connections = 0

    def endpoint(self, scheme: str) -> str:
        """``scheme://host:port`` of the link."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def start(self) -> WanLink:
        """Listen and relay in a background thread."""
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        async def listen() -> None:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            self._server = await asyncio.start_server(self._relay, self.host, 0, family=family, backlog=2048)
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(listen())
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="oscar-local-wanlink", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        """Stop relaying (open connections are dropped)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        server = self._server

        def close() -> None:
            if server is not None:
                server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.call_soon(loop.stop)

        loop.call_soon_threadsafe(close)
        thread.join(10)
        with contextlib.suppress(RuntimeError):
            loop.close()
        self._loop = self._thread = None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        connected = time.monotonic() + self.rtt  # the handshake's round trip
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        with contextlib.suppress(OSError):
            for sock in (writer.get_extra_info("socket"), up_writer.get_extra_info("socket")):
                if sock is not None:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(self._pump(reader, up_writer, self._up, connected),
                             self._pump(up_reader, writer, self._down, connected), return_exceptions=True)
        for end in (writer, up_writer):
            with contextlib.suppress(OSError, RuntimeError):
                end.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Direction,
                    earliest: float) -> None:
        """Read as bytes come, deliver each chunk when the link has carried it (pipelined, so a stream
        pays the delay once, not once per chunk)."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(_QUEUE)
        half = self.rtt / 2

        async def deliver() -> None:
            while True:
                at, data = await queue.get()
                if not data:
                    break
                wait = at - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            with contextlib.suppress(OSError):
                if writer.can_write_eof():
                    writer.write_eof()

        sender = asyncio.get_running_loop().create_task(deliver())
        try:
            while data := await reader.read(_CHUNK):
                now = time.monotonic()
                await queue.put((max(earliest, link.send(now, len(data)) + half), data))
            await queue.put((0.0, b""))
            await sender
        except (OSError, asyncio.IncompleteReadError):
            sender.cancel()
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()  # a reset: the other direction ends too
