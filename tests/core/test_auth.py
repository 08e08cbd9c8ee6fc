"""OIDC refresh-token auth against a real loopback token endpoint (the remote issuer is the one mock)."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from oscar_plugins import AuthenticationError, ConfigError
from oscar_plugins._auth import RefreshTokenCredentials, TokenCredentials, jwt_claims
from tests.servers import serve


def _jwt(claims: dict) -> str:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")  # noqa: E731
    return f"{enc({'alg': 'none'})}.{enc(claims)}.sig"


class Issuer:
    def __init__(self, lifetime: int) -> None:
        self.lifetime = lifetime
        self.exchanges = 0
        self.valid: set[str] = set()
        self.refresh = "SENTINEL-REFRESH-xyz"

    async def token(self, request: Request):
        form = await request.form()
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != self.refresh:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        self.exchanges += 1
        access = f"access-{self.exchanges}"
        self.valid = {access}
        return JSONResponse({"access_token": access, "expires_in": self.lifetime, "token_type": "Bearer"})

    async def api(self, request: Request):
        auth = request.headers.get("authorization", "")
        if auth.removeprefix("Bearer ") not in self.valid:
            return PlainTextResponse("Unauthorized", status_code=401)
        return PlainTextResponse("ok")

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/realms/x/protocol/openid-connect/token", self.token, methods=["POST"]),
                                 Route("/system/info", self.api)])


def test_refresh_token_exchange_and_renewal():
    issuer = Issuer(lifetime=30)  # shorter than the 60 s margin: every request refreshes
    with serve(issuer.app()) as url:
        creds = RefreshTokenCredentials(issuer.refresh, token_endpoint=f"{url}/realms/x/protocol/openid-connect/token")
        with httpx.Client(base_url=url, auth=creds.auth()) as client:
            assert client.get("/system/info").text == "ok"
            assert client.get("/system/info").text == "ok"
        assert issuer.exchanges == 2
        issuer.lifetime = 3600
        with httpx.Client(base_url=url, auth=creds.auth()) as client:
            for _ in range(3):
                assert client.get("/system/info").status_code == 200
        assert issuer.exchanges == 3  # one exchange, reused while fresh
        # A token revoked early: one new exchange and a retry.
        with httpx.Client(base_url=url, auth=creds.auth()) as client:
            client.get("/system/info")
            issuer.valid = set()
            assert client.get("/system/info").status_code == 200
        assert "SENTINEL" not in repr(creds)


def test_issuer_from_jwt_and_refused_token():
    issuer = Issuer(lifetime=3600)
    with serve(issuer.app()) as url:
        token = _jwt({"iss": f"{url}/realms/x", "exp": time.time() + 1e6})
        issuer.refresh = token
        creds = RefreshTokenCredentials(token)
        assert creds.resolved_token_endpoint() == f"{url}/realms/x/protocol/openid-connect/token"
        with httpx.Client(base_url=url, auth=creds.auth()) as client:
            assert client.get("/system/info").status_code == 200
        bad = RefreshTokenCredentials("SENTINEL-WRONG", token_endpoint=creds.resolved_token_endpoint())
        with httpx.Client(base_url=url, auth=bad.auth()) as client, pytest.raises(AuthenticationError) as err:
            client.get("/system/info")
        assert "SENTINEL" not in str(err.value) and "refresh token" in str(err.value)


def test_refresh_token_without_issuer():
    with pytest.raises(ConfigError, match="oidc_token_endpoint"):
        RefreshTokenCredentials("opaque").resolved_token_endpoint()


def test_jwt_claims_tolerant():
    assert jwt_claims("not-a-jwt") == {}
    assert jwt_claims(_jwt({"iss": "x"}))["iss"] == "x"
    assert "SENTINEL" not in repr(TokenCredentials("SENTINEL-T"))
