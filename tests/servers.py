"""Small real HTTP servers on loopback for tests (an OIDC issuer stand-in; nothing here fakes OSCAR)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve an ASGI app on 127.0.0.1 in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class OidcIssuer:
    """A loopback OIDC issuer (the one mock: a remote issuer cannot run here): discovery and userinfo.

    Example:
        >>> issuer = OidcIssuer()
        >>> with serve(issuer.app()) as url:                 # doctest: +SKIP
        ...     token = issuer.mint("alice@egi.eu")
    """

    def __init__(self) -> None:
        self.url = ""
        self.subjects: dict[str, str] = {}

    def mint(self, sub: str, lifetime: int = 3600) -> str:
        """A JWT access token for ``sub`` issued by this issuer (accepted by its userinfo endpoint)."""
        import base64
        import json

        def enc(data: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

        claims = {"iss": self.url, "sub": sub, "exp": int(time.time()) + lifetime}
        token = f"{enc({'alg': 'none', 'typ': 'JWT'})}.{enc(claims)}.sig"
        self.subjects[token] = sub
        return token

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route

        async def discovery(request: Request) -> Response:
            self.url = self.url or str(request.base_url).rstrip("/")
            return JSONResponse({"issuer": self.url, "userinfo_endpoint": f"{self.url}/userinfo"})

        async def userinfo(request: Request) -> Response:
            token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if token not in self.subjects:
                return JSONResponse({"error": "invalid_token"}, status_code=401)
            return JSONResponse({"sub": self.subjects[token], "eduperson_entitlement": []})

        return Starlette(routes=[Route("/.well-known/openid-configuration", discovery),
                                 Route("/userinfo", userinfo)])
