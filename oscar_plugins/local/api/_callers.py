"""Who is calling: the cluster's basic-auth admin, or an OIDC user (as OSCAR's auth middleware decides).

OSCAR (``pkg/utils/auth/auth.go`` GetAuthMiddleware, ``oidc.go``) treats a request whose
``Authorization`` header contains ``Bearer`` as OIDC, anything else as basic auth. An OIDC token is
accepted when its (unverified) ``iss`` is one of the cluster's issuers and the issuer's userinfo
endpoint accepts it; the user is its ``sub``. The first ``/system/*`` call of a user provisions their
MinIO account, which ``/job`` requires from v4.1.0 (``job.go``: ``MinIO user not provisioned``).

The issuer is reached over HTTP (discovery, then userinfo), so tests run a real issuer on loopback.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from oscar_plugins.local.api._definitions import HTTPError, format_uid

__all__ = ["Caller", "OidcVerifier", "basic_ok", "job_owner_label"]

_CACHE_S = 60.0


@dataclass(frozen=True)
class Caller:
    """The identity of a request: ``uid`` None for the basic-auth admin, else the OIDC subject."""

    uid: str | None = None

    @property
    def admin(self) -> bool:
        return self.uid is None


def job_owner_label(uid: str) -> str:
    """The ``oscar.grycap/job-owner`` label value ``job.go`` sets for a user (``FormatUID``, 62 characters)."""
    return format_uid(uid)[:62]


def basic_ok(header: str, username: str, password: str) -> bool:
    """Whether an ``Authorization: Basic`` header carries these credentials (constant-time comparison)."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, given = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    user_ok = hmac.compare_digest(user.encode(), username.encode())
    return hmac.compare_digest(given.encode(), password.encode()) and user_ok


def _issuer(token: str) -> str:
    parts = token.split(".")
    if len(parts) != 3:
        raise HTTPError(400, "token is malformed: token contains an invalid number of segments")
    try:
        claims: Any = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise HTTPError(400, "token is malformed: could not JSON decode claim") from None
    return str(claims.get("iss") or "") if isinstance(claims, dict) else ""


class OidcVerifier:
    """Checks OIDC access tokens against the cluster's issuers (discovery + userinfo, cached 60 s)."""

    def __init__(self, issuers: list[str]) -> None:
        self.issuers = [i.rstrip("/") for i in issuers]
        self.provisioned: set[str] = set()
        self._cache: dict[str, tuple[float, str]] = {}
        self._userinfo: dict[str, str] = {}
        self._lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.issuers)

    async def subject(self, token: str) -> str:
        """The ``sub`` of a valid token.

        Raises:
            HTTPError: 400 malformed, 401 unknown issuer or refused token (OSCAR's statuses).
        """
        cached = self._cache.get(token)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        issuer = _issuer(token).rstrip("/")
        if issuer not in self.issuers:
            raise HTTPError(401, f"'{issuer}' is not listed as an authorized issuer")
        async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
            try:
                endpoint = await self._userinfo_endpoint(http, issuer)
                response = await http.get(endpoint, headers={"Authorization": f"Bearer {token}"})
            except httpx.HTTPError as exc:
                raise HTTPError(500, f"error getting the user info from {issuer}: {exc}") from None
        if response.status_code != 200:
            raise HTTPError(401)
        try:
            sub = str(response.json()["sub"])
        except (ValueError, KeyError, TypeError):
            raise HTTPError(401) from None
        self._cache[token] = (time.monotonic() + _CACHE_S, sub)
        return sub

    async def _userinfo_endpoint(self, http: httpx.AsyncClient, issuer: str) -> str:
        async with self._lock:
            if issuer not in self._userinfo:
                found = await http.get(f"{issuer}/.well-known/openid-configuration")
                found.raise_for_status()
                self._userinfo[issuer] = str(found.json()["userinfo_endpoint"])
            return self._userinfo[issuer]
