"""Authentication for OSCAR clusters, as ``httpx.Auth`` flows that work for sync and async clients.

Four kinds, one per profile: basic user/password, a static OIDC access token, an OIDC refresh token
(exchanged at the issuer's token endpoint and refreshed before expiry), and an oidc-agent account.
The refresh exchange is yielded from the auth flow itself (sans-IO), so the same code serves
``httpx.Client`` and ``httpx.AsyncClient``. No class here shows a secret in its ``repr``.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import httpx

from ._exceptions import AuthenticationError, ConfigError

__all__ = [
    "SECRET_FIELDS",
    "BasicCredentials",
    "Credentials",
    "OidcAgentCredentials",
    "RefreshTokenCredentials",
    "TokenCredentials",
    "credential_secrets",
    "jwt_claims",
    "mask_secrets",
]

#: The one list of secrets: the names of the fields that hold one wherever they appear (credentials,
#: oscar-cli profiles, Airflow connections, FDL storage providers, a service's token, the local cluster's
#: stored definitions). Everything under an ``environment.secrets`` mapping is secret too.
SECRET_FIELDS = frozenset({"password", "token", "refresh_token", "client_secret", "secret_key", "auth_password"})

#: EGI Check-in's public client, which oscar-cli and the OSCAR dashboard use for refresh tokens.
DEFAULT_OIDC_CLIENT_ID = "token-portal"
_REFRESH_MARGIN_S = 60.0


def jwt_claims(token: str) -> dict[str, Any]:
    """Decode a JWT's payload WITHOUT verifying it (only to read ``iss`` and ``exp``).

    Returns an empty dict when the token is not a JWT (opaque tokens are valid too).
    """
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, UnicodeDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


@dataclass(frozen=True)
class BasicCredentials:
    """HTTP basic auth (OSCAR's admin user)."""

    user: str
    password: str = field(repr=False)
    kind: str = field(default="basic", init=False)

    def auth(self) -> httpx.Auth:
        return httpx.BasicAuth(self.user, self.password)


@dataclass(frozen=True)
class TokenCredentials:
    """A ready OIDC access token (sent as ``Authorization: Bearer``)."""

    token: str = field(repr=False)
    kind: str = field(default="token", init=False)

    def auth(self) -> httpx.Auth:
        return _BearerAuth(lambda: self.token)


@dataclass(frozen=True)
class RefreshTokenCredentials:
    """An OIDC refresh token, exchanged for access tokens at the issuer's token endpoint.

    The token endpoint defaults to ``<iss>/protocol/openid-connect/token`` (Keycloak / EGI Check-in),
    with ``iss`` read from the refresh token when it is a JWT.
    """

    refresh_token: str = field(repr=False)
    token_endpoint: str | None = None
    client_id: str = DEFAULT_OIDC_CLIENT_ID
    client_secret: str | None = field(default=None, repr=False)
    scope: str | None = None
    kind: str = field(default="refresh_token", init=False)

    def resolved_token_endpoint(self) -> str:
        if self.token_endpoint:
            return self.token_endpoint
        issuer = jwt_claims(self.refresh_token).get("iss")
        if not isinstance(issuer, str) or not issuer:
            raise ConfigError(
                "cannot tell where to exchange the OIDC refresh token: it names no issuer. "
                "Set 'oidc_token_endpoint' in the profile or OSCAR_OIDC_TOKEN_ENDPOINT."
            )
        return issuer.rstrip("/") + "/protocol/openid-connect/token"

    def auth(self) -> httpx.Auth:
        return _RefreshTokenAuth(self)


@dataclass(frozen=True)
class OidcAgentCredentials:
    """An oidc-agent account; access tokens come from ``oidc-token <account>``."""

    account: str
    kind: str = field(default="oidc_agent", init=False)

    def auth(self) -> httpx.Auth:
        return _BearerAuth(_OidcAgentSource(self.account))


Credentials = BasicCredentials | TokenCredentials | RefreshTokenCredentials | OidcAgentCredentials


def credential_secrets(credentials: object) -> list[str]:
    """The secret values ``credentials`` holds (to redact them from messages); none for None."""
    found = (getattr(credentials, name, None) for name in sorted(SECRET_FIELDS))
    return [value for value in found if isinstance(value, str) and value]


def mask_secrets(data: Any, *, under_secrets: bool = False, mask: str = "***") -> Any:
    """A copy of a JSON-like value with every secret (:data:`SECRET_FIELDS`, and everything under a
    ``secrets`` mapping) replaced by ``mask``."""
    if isinstance(data, dict):
        return {k: (mask if (under_secrets or k in SECRET_FIELDS) and isinstance(v, str) and v else
                    mask_secrets(v, under_secrets=under_secrets or k == "secrets", mask=mask))
                for k, v in data.items()}
    if isinstance(data, list):
        return [mask_secrets(v, under_secrets=under_secrets, mask=mask) for v in data]
    return data


class _BearerAuth(httpx.Auth):
    def __init__(self, source: Any) -> None:
        self._source = source

    def __repr__(self) -> str:
        return "<BearerAuth>"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if "Authorization" not in request.headers:
            request.headers["Authorization"] = f"Bearer {self._source()}"
        yield request


class _OidcAgentSource:
    """Calls ``oidc-token`` and caches the access token until shortly before it expires."""

    def __init__(self, account: str) -> None:
        self._account = account
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if self._token is None or time.time() > self._expires - _REFRESH_MARGIN_S:
                self._token = self._fetch()
                exp = jwt_claims(self._token).get("exp")
                self._expires = float(exp) if isinstance(exp, (int, float)) else time.time() + 300
            return self._token

    def _fetch(self) -> str:
        exe = shutil.which("oidc-token")
        if exe is None:
            raise ConfigError(
                f"profile uses oidc-agent account {self._account!r} but 'oidc-token' is not on PATH: "
                "install oidc-agent and start it (eval $(oidc-agent-service use)), or use another auth"
            )
        proc = subprocess.run(
            [exe, "--time=120", self._account], capture_output=True, text=True, timeout=60, check=False
        )
        token = proc.stdout.strip()
        if proc.returncode != 0 or not token:
            raise ConfigError(
                f"oidc-agent could not give a token for account {self._account!r} "
                f"(oidc-token exited {proc.returncode}): run 'oidc-add {self._account}' and retry"
            )
        return token


class _RefreshTokenAuth(httpx.Auth):
    """Yields the token exchange before the real request when the access token is missing or old."""

    requires_response_body = True

    def __init__(self, creds: RefreshTokenCredentials) -> None:
        self._creds = creds
        self._access: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "<RefreshTokenAuth>"

    def _fresh(self) -> bool:
        return self._access is not None and time.time() < self._expires - _REFRESH_MARGIN_S

    def _exchange_request(self) -> httpx.Request:
        data = {"grant_type": "refresh_token", "refresh_token": self._creds.refresh_token,
                "client_id": self._creds.client_id}
        if self._creds.client_secret:
            data["client_secret"] = self._creds.client_secret
        if self._creds.scope:
            data["scope"] = self._creds.scope
        return httpx.Request("POST", self._creds.resolved_token_endpoint(), data=data,
                             headers={"Accept": "application/json"})

    def _accept(self, response: httpx.Response) -> None:
        endpoint = self._creds.resolved_token_endpoint()
        if response.status_code != 200:
            raise AuthenticationError(
                f"the OIDC issuer refused the refresh token ({response.status_code} from {endpoint}): "
                "get a new refresh token (for EGI: https://aai.egi.eu/token) and update the profile",
                status=response.status_code, call=f"POST {endpoint}",
            )
        try:
            body = response.json()
            token = body["access_token"]
        except (ValueError, KeyError, TypeError) as exc:
            raise AuthenticationError(
                f"the OIDC token endpoint {endpoint} returned no access_token: check oidc_token_endpoint",
                status=response.status_code, call=f"POST {endpoint}",
            ) from exc
        expires_in = body.get("expires_in")
        exp = jwt_claims(token).get("exp")
        if isinstance(expires_in, (int, float)):
            self._expires = time.time() + float(expires_in)
        elif isinstance(exp, (int, float)):
            self._expires = float(exp)
        else:
            self._expires = time.time() + 300
        self._access = str(token)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if not self._fresh():
            response = yield self._exchange_request()
            with self._lock:
                self._accept(response)
        request.headers["Authorization"] = f"Bearer {self._access}"
        response = yield request
        if response.status_code == 401:
            # The token may have been revoked early: exchange once more and retry once.
            exchange = yield self._exchange_request()
            with self._lock:
                self._accept(exchange)
            request.headers["Authorization"] = f"Bearer {self._access}"
            yield request
