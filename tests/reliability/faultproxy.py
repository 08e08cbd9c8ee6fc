"""A fault-injecting HTTP proxy on loopback (test code).

Each client connection carries one request (the proxy rewrites it to ``Connection: close``), so every
request gets its own draw of faults. Faults, each with its own rate:

* ``refuse``: 503 before the request reaches the server (nothing happened);
* ``reset_before``: the connection is reset before the request is forwarded (nothing happened);
* ``reset_after``: the request IS served, then the client's connection is reset (answer lost);
* ``bad_gateway_after``: the request IS served, the client gets a 502 instead of the answer;
* ``stall``: the answer is held back for ``stall_s`` seconds;
* ``truncate``: the answer is cut in the middle and the connection closed.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class FaultRates:
    refuse: float = 0.0
    reset_before: float = 0.0
    reset_after: float = 0.0
    bad_gateway_after: float = 0.0
    stall: float = 0.0
    truncate: float = 0.0
    stall_s: float = 1.0

    def draw(self, rng: random.Random) -> str | None:
        roll = rng.random()
        for name in ("refuse", "reset_before", "reset_after", "bad_gateway_after", "stall", "truncate"):
            rate = getattr(self, name)
            if roll < rate:
                return name
            roll -= rate
        return None


@dataclass
class FaultProxy:
    upstream_host: str
    upstream_port: int
    rates: FaultRates = field(default_factory=FaultRates)
    seed: int = 7
    injected: Counter[str] = field(default_factory=Counter)
    requests: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        fut.result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            if self._server:
                self._server.close()
            for _ in range(3):  # handlers spawn pumps: cancel until nothing is left
                tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                if not tasks:
                    break
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @staticmethod
    def _reset(writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        self.requests += 1
        fault = self.rates.draw(self._rng)
        if fault:
            self.injected[fault] += 1
        if fault == "refuse":
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 11\r\nConnection: close\r\n\r\n"
                         b"unavailable")
            await writer.drain()
            writer.close()
            return
        if fault == "reset_before":
            self._reset(writer)
            return
        lines = head.split(b"\r\n")
        kept = [ln for ln in lines[1:] if ln and not ln.lower().startswith(b"connection:")]
        head = b"\r\n".join([lines[0], *kept, b"Connection: close", b"", b""])
        try:
            up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        except OSError:
            self._reset(writer)
            return
        up_writer.write(head)

        async def pump_request() -> None:
            try:
                while chunk := await reader.read(65536):
                    up_writer.write(chunk)
                    await up_writer.drain()
            except ConnectionError:
                pass

        pump = asyncio.create_task(pump_request())
        response = bytearray()
        try:
            while chunk := await up_reader.read(65536):
                if fault in (None, "stall"):
                    if fault == "stall" and not response:
                        await asyncio.sleep(self.rates.stall_s)
                    writer.write(chunk)
                    await writer.drain()
                response += chunk
        except ConnectionError:
            pass
        finally:
            pump.cancel()
            up_writer.close()
        if fault == "reset_after":
            self._reset(writer)
            return
        if fault == "bad_gateway_after":
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 11\r\nConnection: close\r\n\r\nbad gateway")
        elif fault == "truncate":
            writer.write(bytes(response[: max(1, len(response) // 2)]))
        try:
            await writer.drain()
            writer.close()
        except ConnectionError:
            pass
