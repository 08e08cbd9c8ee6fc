"""The API's round trip under a latency model (benchmarks only; ``oscar_plugins.local._latency``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["RoundTrip"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
#: Not a user's request: the cluster's own health probe and the S3 server's webhook (both in-cluster).
_EXEMPT = ("/health", "/internal/")


class RoundTrip:
    """ASGI middleware: each HTTP request to the API waits ``rtt`` seconds before it is served, as a
    request to a remote cluster arrives half a round trip late and its answer half a round trip later.

    Args:
        app: the ASGI application.
        rtt: seconds per request.
    """

    def __init__(self, app: ASGIApp, rtt: float) -> None:
        self.app, self.rtt = app, rtt
        #: Requests delayed so far (tests read it).
        self.delayed = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.rtt > 0 and not str(scope.get("path", "")).startswith(_EXEMPT):
            self.delayed += 1
            await asyncio.sleep(self.rtt)
        await self.app(scope, receive, send)
