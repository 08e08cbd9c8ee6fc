"""AWS Signature Version 4 verification for the local S3 server (pure functions).

moto accepts any credentials; MinIO does not. The local cluster puts this check in front of moto so
that a wrong access key or secret fails with 403 as it would against a real OSCAR's MinIO, and so that
only holders of the cluster's S3 credentials (or of a presigned URL) can read or write objects.
Header-signed requests and presigned (query-signed) URLs are supported; Signature Version 2 is not.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import unquote

from ..._sigv4 import ALGORITHM, EMPTY_SHA256, canonical_query, canonical_uris, policy_signature
from ..._sigv4 import signature as _signature

__all__ = ["SignatureProblem", "canonical_query", "canonical_uris", "verify", "verify_post"]

_MAX_SKEW = timedelta(minutes=15)
_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+),\s*SignedHeaders=(?P<headers>[^,\s]+),"
    r"\s*Signature=(?P<sig>[0-9a-f]{64})\s*$"
)


@dataclass(frozen=True)
class SignatureProblem:
    """Why a request is refused: an S3 error code and message."""

    code: str
    message: str


def _parse_time(amz_date: str) -> datetime | None:
    try:
        return datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def verify(
    method: str,
    raw_path: str,
    query_string: str,
    headers: Mapping[str, str],
    access_key: str,
    secret_key: str,
    now: datetime | None = None,
) -> SignatureProblem | None:
    """Check a request's SigV4 signature; return None when it is valid.

    Args:
        method: HTTP method.
        raw_path: the request path exactly as sent (still percent-encoded).
        query_string: the raw query string.
        headers: request headers with lowercase names.
        access_key: the only accepted access key id.
        secret_key: its secret.
        now: the current time (for tests).
    """
    now = now or datetime.now(timezone.utc)
    params = {unquote(k): unquote(v) for k, _, v in (p.partition("=") for p in query_string.split("&") if p)}
    if "X-Amz-Signature" in params:
        if params.get("X-Amz-Algorithm") != ALGORITHM:
            return SignatureProblem("AuthorizationQueryParametersError", "only AWS4-HMAC-SHA256 is supported")
        credential, signed, signature = (
            params.get("X-Amz-Credential", ""),
            params.get("X-Amz-SignedHeaders", ""),
            params["X-Amz-Signature"],
        )
        amz_date, payload_hash = params.get("X-Amz-Date", ""), "UNSIGNED-PAYLOAD"
        query = canonical_query(query_string, drop="X-Amz-Signature")
        when = _parse_time(amz_date)
        try:
            expires = int(params.get("X-Amz-Expires", "0"))
        except ValueError:
            expires = -1
        if when is None or expires < 0:
            return SignatureProblem("AuthorizationQueryParametersError", "X-Amz-Date or X-Amz-Expires is invalid")
        if now > when + timedelta(seconds=expires):
            return SignatureProblem("AccessDenied", "Request has expired")
    else:
        match = _AUTH_RE.match(headers.get("authorization", ""))
        if not match:
            if "authorization" in headers:
                return SignatureProblem("AccessDenied", "only AWS Signature Version 4 is supported")
            return SignatureProblem("AccessDenied", "Access Denied: the request is not signed")
        credential, signed, signature = match["cred"], match["headers"], match["sig"]
        amz_date = headers.get("x-amz-date", "")
        payload_hash = headers.get("x-amz-content-sha256", EMPTY_SHA256)
        query = canonical_query(query_string)
        when = _parse_time(amz_date)
        if when is None or abs(now - when) > _MAX_SKEW:
            return SignatureProblem("RequestTimeTooSkewed", "the request time differs too much from the server time")
    scope = credential.split("/")
    if len(scope) != 5 or scope[-1] != "aws4_request":
        return SignatureProblem("AuthorizationHeaderMalformed", "the credential scope is malformed")
    if not hmac.compare_digest(scope[0], access_key):
        return SignatureProblem("InvalidAccessKeyId", "The Access Key Id you provided does not exist in our records.")
    names = signed.split(";")
    canonical_headers = "".join(f"{n}:{' '.join(headers.get(n, '').split())}\n" for n in names)
    for uri in canonical_uris(raw_path):
        request = "\n".join([method.upper(), uri, query, canonical_headers, signed, payload_hash])
        if hmac.compare_digest(_signature(secret_key, scope[1:], amz_date, request), signature):
            return None
    return SignatureProblem(
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. Check your key and "
        "signing method.",
    )


def _condition_problem(condition: object, fields: Mapping[str, str], bucket: str, size: int) -> str | None:
    if isinstance(condition, dict):
        for name, wanted in condition.items():
            given = bucket if name == "bucket" else fields.get(str(name).lower(), "")
            if given != wanted:
                return f"Policy Condition failed: [\"eq\", \"${name}\", \"{wanted}\"]"
        return None
    if isinstance(condition, list) and len(condition) == 3:
        op, name, value = condition
        if op == "starts-with":
            field = str(name).lstrip("$").lower()
            if not fields.get(field, "").startswith(str(value)):
                return f"Policy Condition failed: [\"starts-with\", \"{name}\", \"{value}\"]"
            return None
        if op == "content-length-range":
            if not int(name) <= size <= int(value):
                return "Your proposed upload exceeds the maximum allowed size"
            return None
        if op == "eq":
            field = str(name).lstrip("$").lower()
            if fields.get(field, bucket if field == "bucket" else "") != value:
                return f"Policy Condition failed: [\"eq\", \"{name}\", \"{value}\"]"
            return None
    return "Invalid Policy: malformed condition"


def verify_post(fields: Mapping[str, str], bucket: str, size: int, access_key: str, secret_key: str,
                now: datetime | None = None) -> SignatureProblem | None:
    """Check a browser-based (POST policy) upload, as S3 and MinIO do; return None when it is allowed.

    Args:
        fields: the form fields (lowercase names) other than the file.
        bucket: the bucket of the request path.
        size: the file's size in bytes.
    """
    now = now or datetime.now(timezone.utc)
    if fields.get("x-amz-algorithm") != ALGORITHM:
        return SignatureProblem("InvalidRequest", "only AWS4-HMAC-SHA256 POST policies are supported")
    encoded, credential = fields.get("policy", ""), fields.get("x-amz-credential", "")
    scope = credential.split("/")
    if len(scope) != 5 or scope[-1] != "aws4_request":
        return SignatureProblem("AuthorizationQueryParametersError", "the credential scope is malformed")
    if not hmac.compare_digest(scope[0], access_key):
        return SignatureProblem("InvalidAccessKeyId", "The Access Key Id you provided does not exist in our records.")
    expected = policy_signature(secret_key, scope[1], scope[2], encoded)
    if not hmac.compare_digest(expected, fields.get("x-amz-signature", "")):
        return SignatureProblem("SignatureDoesNotMatch", "The request signature we calculated does not match the "
                                "signature you provided. Check your key and signing method.")
    try:
        policy = json.loads(base64.b64decode(encoded, validate=True))
        expiration = datetime.strptime(policy["expiration"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
        conditions = list(policy["conditions"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        return SignatureProblem("MalformedPOSTRequest", "Invalid Policy: the policy is not a base64 JSON document")
    if now > expiration:
        return SignatureProblem("AccessDenied", "Invalid according to Policy: Policy expired.")
    for condition in conditions:
        problem = _condition_problem(condition, fields, bucket, size)
        if problem:
            return SignatureProblem("AccessDenied", problem)
    return None
