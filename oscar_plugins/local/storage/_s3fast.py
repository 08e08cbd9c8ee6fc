"""The local S3 server's hot paths, answered straight from moto's backend (runs in the S3 child process).

A short job costs the S3 server two browser-based uploads (the wrapper's outputs and status) and one GET
(the client reads the status). Through moto's Flask app each costs several milliseconds of CPU: the
multipart form is parsed twice (once for the policy check, once by moto, each compiling a regular
expression for its boundary), and moto builds a generic response object around a dictionary lookup.
Here the plain cases are served directly, with what moto itself does for them (``put_object`` through
the same hooks, so the disk mirror and bucket events are unchanged; ``key.response_dict`` and the
metadata for a GET); anything else (a redirect after upload, a range, conditions, versions, a missing
bucket or key, an archived object, CORS) returns None and goes to moto as before.
"""

from __future__ import annotations

import io
import ipaddress
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

from oscar_plugins.local.storage._sigv4 import SignatureProblem, verify_post

__all__ = ["FastPaths", "parse_form"]

#: Bodies up to this size are read into memory and served here; larger ones go to moto (spooled).
MAX_BODY = 8 << 20
_DISPOSITION = re.compile(rb';\s*(name|filename)="((?:[^"\\\r\n]|\\.)*)"', re.IGNORECASE)
_BOUNDARY = re.compile(r';\s*boundary=(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
#: Query parameters of a presigned GET; any other one (versionId, partNumber, response-*) goes to moto.
_SIGNING = {"x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-expires", "x-amz-signedheaders",
            "x-amz-signature", "x-amz-security-token"}
_CONDITIONS = ("HTTP_RANGE", "HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE",
               "HTTP_IF_UNMODIFIED_SINCE", "HTTP_ORIGIN", "HTTP_X_AMZ_CHECKSUM_MODE",
               "HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION_CUSTOMER_ALGORITHM")
Form = tuple[list[tuple[str, str]], str, bytes]


def parse_form(body: bytes, content_type: str) -> Form | None:
    """A ``multipart/form-data`` body: (fields in order, the file part's file name, its content); None
    when it is anything but plain fields and exactly one file part named ``file``, last."""
    match = _BOUNDARY.search(content_type)
    if match is None:
        return None
    delimiter = b"--" + (match.group(1) or match.group(2)).encode("latin-1")
    if not body.startswith(delimiter):
        return None
    fields: list[tuple[str, str]] = []
    upload: tuple[str, bytes] | None = None
    pos = len(delimiter)
    while not body.startswith(b"--", pos):
        if upload is not None or not body.startswith(b"\r\n", pos):
            return None  # a part after the file (S3 ignores them; moto does not), or a malformed body
        head_end = body.find(b"\r\n\r\n", pos + 2)
        end = body.find(b"\r\n" + delimiter, head_end + 4) if head_end >= 0 else -1
        if end < 0:
            return None
        params = _disposition(body[pos + 2:head_end])
        if params is None or "name" not in params:
            return None
        content = body[head_end + 4:end]
        if "filename" in params:
            if params["name"] != "file":
                return None
            upload = (params["filename"], content)
        else:
            fields.append((params["name"], content.decode("utf-8", "replace")))
        pos = end + 2 + len(delimiter)
    return (fields, upload[0], upload[1]) if upload is not None else None


def _disposition(head: bytes) -> dict[str, str] | None:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-disposition":
            if not value.strip().lower().startswith(b"form-data"):
                return None
            params = {m.group(1).lower().decode(): m.group(2).replace(b'\\"', b'"').decode("utf-8", "replace")
                      for m in _DISPOSITION.finditer(value)}
            if b"*=" in value:
                return None  # RFC 2231 parameters: moto's parser knows them
            return params
    return None


def _path_style(environ: dict[str, Any]) -> bool:
    """Whether moto reads the bucket from the path (an IP address or localhost as the host), as here."""
    host = str(environ.get("HTTP_HOST", ""))
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or not host.startswith("[") else host[1:host.find("]")]
    if name == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class FastPaths:
    """Plain uploads and downloads of the local S3 server against moto's backend."""

    def __init__(self, backend: Any, access_key: str, secret_key: str) -> None:
        from moto.s3.models import FakeKey
        from moto.s3.utils import ARCHIVE_STORAGE_CLASSES, metadata_from_headers
        from moto.utilities.aws_headers import gen_amzn_requestid_long

        self.backend, self.access_key, self.secret_key = backend, access_key, secret_key
        self._archived, self._key_type = set(ARCHIVE_STORAGE_CLASSES), FakeKey
        self._metadata = metadata_from_headers
        self._request_id = gen_amzn_requestid_long

    def _bucket(self, name: str) -> Any:
        bucket = self.backend.buckets.get(name)
        return None if bucket is None or getattr(bucket, "cors", None) else bucket

    def form_upload(self, environ: dict[str, Any], start_response: Callable[..., Any],
                    refuse: Callable[[SignatureProblem], Iterable[bytes]]) -> Iterable[bytes] | None:
        """``POST /<bucket>`` with a policy (its checks as ``verify_post``, then what moto's
        ``_bucket_response_post`` does); None, with the body put back, when moto is to answer it."""
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if not 0 < length <= MAX_BODY or not _path_style(environ):
            return None
        body = _read(environ, length)
        environ["wsgi.input"] = io.BytesIO(body)
        form = parse_form(body, str(environ.get("CONTENT_TYPE", "")))
        bucket_name = unquote(str(environ.get("PATH_INFO", "/")).strip("/"))
        if form is None or self._bucket(bucket_name) is None:
            return None
        fields, filename, content = form
        first: dict[str, str] = {}
        for name, value in fields:
            first.setdefault(name, value)
        status = first.get("success_action_status") or "204"
        if "key" not in first or "success_action_redirect" in first or "acl" in first or status not in _REASONS:
            return None
        problem = verify_post({k.lower(): v for k, v in first.items()}, bucket_name, len(content),
                              self.access_key, self.secret_key)
        if problem is not None:
            return refuse(problem)
        key_name = first["key"].replace("${filename}", filename.rsplit("/", 1)[-1])
        try:
            key = self.backend.put_object(bucket_name, key_name, content, request_method="POST")
        except Exception:
            return None  # moto says why (an invalid key, ...), with its error document
        key.set_metadata(self._metadata(first))
        headers = [("Content-Type", "text/html; charset=utf-8")]
        if status != "204":
            headers.append(("Content-Length", "0"))
        start_response(f"{status} {_REASONS.get(status, 'OK')}", headers + self._common())
        return []

    def get_object(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes] | None:
        """A plain ``GET /<bucket>/<key>`` (signature already checked); None when moto is to answer it."""
        if any(environ.get(name) for name in _CONDITIONS) or not _path_style(environ):
            return None
        query = str(environ.get("QUERY_STRING", ""))
        if query and any(part.split("=", 1)[0].lower() not in _SIGNING for part in query.split("&")):
            return None
        raw = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "").split("?", 1)[0]
        bucket_name, slash, key_name = unquote(raw).lstrip("/").partition("/")
        bucket = self._bucket(bucket_name) if slash and key_name else None
        key = bucket.keys.get(key_name) if bucket is not None else None
        if (not isinstance(key, self._key_type) or key.storage_class in self._archived
                or key.size > MAX_BODY or key.multipart):
            return None
        headers = {"x-amz-version-id": key.version_id} if key.version_id != "null" else {}
        headers.update(key.response_dict)
        headers.update(key.metadata)
        headers["Accept-Ranges"] = "bytes"
        value = key.value
        start_response("200 OK", [(k, str(v)) for k, v in headers.items()] + self._common())
        return [value]

    def _common(self) -> list[tuple[str, str]]:
        return [("x-amzn-requestid", self._request_id()), ("Access-Control-Allow-Origin", "*")]


_REASONS = {"200": "OK", "201": "Created", "204": "No Content"}


def _read(environ: dict[str, Any], length: int) -> bytes:
    stream = environ["wsgi.input"]
    chunks, remaining = [], length
    while remaining > 0:
        chunk = stream.read(min(remaining, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
