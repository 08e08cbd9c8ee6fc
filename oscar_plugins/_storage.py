"""Staging data to and from the cluster's object store (MinIO / S3), with boto3.

* Uploads are content-addressed: ``oscar-plugins/cas/<sha256>`` in the service's bucket, so an
  unchanged input is never sent twice (a HEAD answers "already there"); file hashes are cached by
  (path, size, mtime, inode) so large unchanged files are not even re-read.
* Large files go multipart and parallel (boto3's transfer manager).
* Downloads land in a temporary file beside the target, are verified (size, sha256 when known) and
  only then renamed into place: a partial or corrupt download never replaces a good file.
* Plain GETs (status files, small outputs, the ranges of a large download) and presigned URLs are
  signed here (:mod:`oscar_plugins._sigv4`) and sent with httpx: botocore costs ~3 ms of CPU a request,
  which dominates collecting thousands of small outputs. Uploads, HEAD, listing stay on boto3.
* S3 error codes map through one table onto :class:`StorageError` subclasses.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote
from xml.sax.saxutils import escape

import httpx

from ._exceptions import ChecksumMismatch, ConnectionFailed, InputNotFound, OscarError, OutputExists, StorageError
from ._paths import cache_dir
from ._retry import Backoff, retry
from ._sigv4 import UNSIGNED, PostPolicy, host_header, object_path, post_policy, presign_url, sign_headers, wire_path

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["CAS_PREFIX", "ObjectInfo", "Storage", "sha256_file"]

CAS_PREFIX = "oscar-plugins/cas/"
#: Where a large file is uploaded while it is hashed (its key is not its hash; the hash cache maps them).
UPLOAD_PREFIX = "oscar-plugins/up/"
_CHUNK = 8 * 1024 * 1024
_PART = 8 * 1024 * 1024
_MAX_PART = 32 * 1024 * 1024
log = logging.getLogger("oscar_plugins")


_S3_ERRORS: Mapping[str, str] = {
    "NoSuchBucket": "bucket {bucket!r} does not exist: is the service deployed with that input/output path?",
    "NoSuchKey": "object {bucket}/{key} does not exist",
    "404": "object {bucket}/{key} does not exist",
    "AccessDenied": "access to {bucket}/{key} was denied: check the storage credentials of the cluster profile",
    "InvalidAccessKeyId": "the object store refused the access key: re-read /system/config credentials",
    "SignatureDoesNotMatch": "the object store refused the secret key: re-read /system/config credentials",
    "BadDigest": "the object store saw corrupted data for {bucket}/{key}; retry the upload",
    "InvalidDigest": "the object store saw corrupted data for {bucket}/{key}; retry the upload",
}


def delete_objects_body(keys: Sequence[str]) -> bytes:
    """The XML body of a quiet S3 DeleteObjects request for ``keys``."""
    objects = "".join(f"<Object><Key>{escape(k)}</Key></Object>" for k in keys)
    return f'<?xml version="1.0" encoding="UTF-8"?><Delete><Quiet>true</Quiet>{objects}</Delete>'.encode()


def _xml_code(body: str) -> str | None:
    match = re.search(r"<Code>([^<]{1,64})</Code>", body)
    return match.group(1) if match else None


def sha256_file(path: Path) -> str:
    """The sha256 of a file's content, hex (read in chunks: any size)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class _HashCache:
    """sha256 of files by (path, size, mtime_ns, inode), and where content was uploaded under a key that is
    not its hash (an upload that hashed as it went), in a small SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=30)
        self._db.execute("CREATE TABLE IF NOT EXISTS h (path TEXT PRIMARY KEY, size INT, mtime INT, "
                         "ino INT, sha TEXT)")
        self._db.execute("CREATE TABLE IF NOT EXISTS uploaded (endpoint TEXT, bucket TEXT, sha TEXT, key TEXT, "
                         "size INT, PRIMARY KEY (endpoint, bucket, sha))")
        self._lock = threading.Lock()

    def known(self, path: Path, st: os.stat_result | None = None) -> str | None:
        """The file's sha256 when it was hashed since it last changed, else None (nothing is read)."""
        st = st or path.stat()
        with self._lock:
            row = self._db.execute("SELECT size, mtime, ino, sha FROM h WHERE path=?",
                                   (str(path.resolve()),)).fetchone()
        if row and tuple(row[:3]) == (st.st_size, st.st_mtime_ns, st.st_ino):
            return str(row[3])
        return None

    def remember(self, path: Path, st: os.stat_result, sha: str) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO h VALUES (?,?,?,?,?)",
                             (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino, sha))

    def sha256(self, path: Path) -> str:
        st = path.stat()
        sha = self.known(path, st)
        if sha is None:
            sha = sha256_file(path)
            self.remember(path, st, sha)
        return sha

    def uploaded(self, endpoint: str, bucket: str, sha: str) -> tuple[str, int] | None:
        """(key, size) of content uploaded earlier under a key that is not its hash."""
        with self._lock:
            row = self._db.execute("SELECT key, size FROM uploaded WHERE endpoint=? AND bucket=? AND sha=?",
                                   (endpoint, bucket, sha)).fetchone()
        return (str(row[0]), int(row[1])) if row else None

    def record_upload(self, endpoint: str, bucket: str, sha: str, key: str, size: int) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO uploaded VALUES (?,?,?,?,?)", (endpoint, bucket, sha, key, size))


@dataclass(frozen=True)
class ObjectInfo:
    """One object of a listing: its key and size, and (when the store says) its ETag and Last-Modified
    time (RFC 3339, UTC)."""

    key: str
    size: int
    etag: str | None = None
    last_modified: str | None = None


@dataclass
class Storage:
    """A MinIO/S3 endpoint as ``/system/config`` reports it (``minio_provider``).

    Example:
        >>> st = Storage("http://127.0.0.1:9000", "key", "secret")  # doctest: +SKIP
        >>> key = st.stage("mybucket", Path("input.nc"))             # doctest: +SKIP
    """

    endpoint: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    region: str = "us-east-1"
    verify: bool = True
    max_concurrency: int = 8
    bytes_uploaded: int = field(default=0, init=False)
    #: Waits between attempts of a plain GET on a transient failure (boto3's budget: 8 attempts).
    get_backoff: Backoff = field(default_factory=lambda: Backoff(retries=7, first=0.1))
    _client: Any = field(default=None, init=False, repr=False)
    _http: httpx.Client | None = field(default=None, init=False, repr=False)
    _hashes: _HashCache | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    #: Held only while boto3's client is built (0.3 s and more): the signed GETs' client never waits for it.
    _boto_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def from_minio_provider(cls, provider: Mapping[str, Any]) -> Storage:
        endpoint = provider.get("endpoint") or ""
        if not isinstance(endpoint, str) or not endpoint:
            raise StorageError("the cluster's /system/config names no MinIO endpoint: staging is impossible")
        if "://" not in endpoint:
            endpoint = ("https://" if provider.get("verify", True) else "http://") + endpoint
        return cls(endpoint, str(provider.get("access_key") or ""), str(provider.get("secret_key") or ""),
                   str(provider.get("region") or "us-east-1"), bool(provider.get("verify", True)))

    @property
    def client(self) -> S3Client:
        if self._client is not None:  # built once: read without a lock
            return self._client  # type: ignore[no-any-return]
        with self._boto_lock:
            if self._client is None:
                import boto3  # lazy: boto3 takes ~0.3 s to import
                from botocore.config import Config

                self._client = boto3.session.Session().client(
                    "s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                    aws_secret_access_key=self.secret_key, region_name=self.region,
                    verify=self.verify,
                    config=Config(max_pool_connections=max(16, 2 * self.max_concurrency),
                                  retries={"max_attempts": 8, "mode": "adaptive"},
                                  s3={"addressing_style": "path"},
                                  signature_version="s3v4"),
                )
            return self._client  # type: ignore[no-any-return]

    @property
    def http(self) -> httpx.Client:
        """The httpx client of the signed plain GETs (keep-alive pool sized for parallel ranges)."""
        http = self._http
        if http is not None:  # every GET asks: no lock once it is built
            return http
        with self._lock:
            if self._http is None:
                n = max(16, 2 * self.max_concurrency)
                self._http = httpx.Client(verify=self.verify, timeout=httpx.Timeout(120.0, connect=15.0),
                                          limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
                                          headers={"User-Agent": "oscar-plugins/0.1"})
            return self._http

    def close(self) -> None:
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None

    def _get(self, bucket: str, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        """One signed GET of an object (or an inclusive byte range of it), retried like boto3 would."""
        path = object_path(bucket, key)
        host = host_header(self.endpoint)
        extra = {"range": f"bytes={byte_range[0]}-{byte_range[1]}"} if byte_range else {}
        url = self.endpoint.rstrip("/") + wire_path(path)

        def once() -> bytes:
            headers = sign_headers("GET", host, path, self.access_key, self.secret_key, self.region,
                                   headers=extra, payload_hash=UNSIGNED)
            try:
                response = self.http.get(url, headers=headers)
            except httpx.TransportError as exc:
                raise ConnectionFailed(f"cannot reach the object store at {self.endpoint} ({exc.__class__.__name__})"
                                       ": is the cluster up?") from None
            if response.status_code in (200, 206):
                return response.content
            code = _xml_code(response.text) or str(response.status_code)
            template = _S3_ERRORS.get(code, "object store error " + code + " on {bucket}/{key}")
            raise StorageError(template.format(bucket=bucket, key=key), code=code)

        return retry(once, self.get_backoff)

    def _transfer_config(self) -> Any:
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(multipart_threshold=16 * 1024 * 1024, multipart_chunksize=16 * 1024 * 1024,
                              max_concurrency=self.max_concurrency, use_threads=True)

    def _error(self, exc: Exception, bucket: str, key: str = "") -> StorageError | ConnectionFailed:
        if isinstance(exc, (StorageError, ConnectionFailed)):
            return exc
        from botocore.exceptions import ClientError, EndpointConnectionError

        if isinstance(exc, EndpointConnectionError):
            return ConnectionFailed(f"cannot reach the object store at {self.endpoint}: is the cluster up?")
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            template = _S3_ERRORS.get(code, "object store error " + code + " on {bucket}/{key}")
            return StorageError(template.format(bucket=bucket, key=key), code=code)
        return StorageError(f"object store error on {bucket}/{key}: {exc.__class__.__name__}: {exc}")

    # -- uploads ---------------------------------------------------------------------------------
    def _cache(self) -> _HashCache:
        with self._lock:
            if self._hashes is None:
                self._hashes = _HashCache(cache_dir() / "hashes.sqlite")
            return self._hashes

    def file_sha256(self, path: Path) -> str:
        return self._cache().sha256(path)

    def exists(self, bucket: str, key: str) -> int | None:
        """The object's size, or None when it does not exist."""
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise self._error(exc, bucket, key) from None
        except Exception as exc:
            raise self._error(exc, bucket, key) from None
        return int(head["ContentLength"])

    #: A file never hashed before and at least this large is uploaded while it is hashed (see :meth:`stage`).
    overlap_min: ClassVar[int] = 64 * 1024 * 1024

    def stage(self, bucket: str, path: Path) -> str:
        """Upload ``path`` once and return its key; content already on the store is not sent again.

        The key is the content's sha256 (under :data:`CAS_PREFIX`) when the hash is known before the upload:
        small files, and files hashed before (the hash cache answers from their size, mtime and inode without
        reading them). A large file never hashed before is not read twice: it is uploaded under a fresh key
        while another thread hashes it (the upload runs at the link's rate, the hash on another core), and
        the hash cache then remembers which key holds that content, so staging it again sends nothing.
        """
        if not path.is_file():
            raise InputNotFound(f"input file {path} does not exist (or is not a file): check the path")
        st = path.stat()
        size = st.st_size
        cache = self._cache()
        sha = cache.known(path, st)
        if sha is None and size >= self.overlap_min:
            return self._stage_hashing(bucket, path, st)
        if sha is None:
            sha = cache.sha256(path)
        earlier = cache.uploaded(self.endpoint, bucket, sha)
        if earlier is not None and earlier[1] == size and self.exists(bucket, earlier[0]) == size:
            return earlier[0]
        key = CAS_PREFIX + sha
        if self.exists(bucket, key) == size:
            return key
        self._whole(lambda: self.client.upload_file(str(path), bucket, key, Config=self._transfer_config()),
                    bucket, key)
        with self._lock:
            self.bytes_uploaded += size
        return key

    def _stage_hashing(self, bucket: str, path: Path, st: os.stat_result) -> str:
        """Upload under a fresh key while a thread hashes the file; remember the content's key."""
        key = UPLOAD_PREFIX + uuid.uuid4().hex
        digest: list[str | BaseException] = []

        def hash_it() -> None:
            try:
                digest.append(sha256_file(path))
            except BaseException as exc:  # handed to the caller below
                digest.append(exc)

        hasher = threading.Thread(target=hash_it, name="oscar-stage-hash", daemon=True)
        hasher.start()
        try:
            self._whole(lambda: self.client.upload_file(str(path), bucket, key, Config=self._transfer_config()),
                        bucket, key)
        finally:
            hasher.join()
        with self._lock:
            self.bytes_uploaded += st.st_size
        after = path.stat()
        if isinstance(digest[0], BaseException) or \
                (after.st_size, after.st_mtime_ns, after.st_ino) != (st.st_size, st.st_mtime_ns, st.st_ino):
            # changed while it was read (or unreadable for the hasher): the upload is what the job gets;
            # nothing is remembered, so the next stage reads it afresh
            log.warning("%s changed while it was uploaded; its next staging uploads it again", path)
            return key
        cache = self._cache()
        cache.remember(path, st, digest[0])
        cache.record_upload(self.endpoint, bucket, digest[0], key, st.st_size)
        return key

    def stage_bytes(self, bucket: str, data: bytes) -> str:
        key = CAS_PREFIX + hashlib.sha256(data).hexdigest()
        if self.exists(bucket, key) == len(data):
            return key
        self._whole(lambda: self.client.put_object(Bucket=bucket, Key=key, Body=data), bucket, key)
        with self._lock:
            self.bytes_uploaded += len(data)
        return key

    def put_bytes(self, bucket: str, key: str, data: bytes) -> None:
        """Write ``data`` as ``bucket/key`` (replacing it)."""
        self._whole(lambda: self.client.put_object(Bucket=bucket, Key=key, Body=data), bucket, key)
        with self._lock:
            self.bytes_uploaded += len(data)

    def upload(self, bucket: str, key: str, path: Path) -> None:
        self._whole(lambda: self.client.upload_file(str(path), bucket, key, Config=self._transfer_config()),
                    bucket, key)

    #: Waits before each new attempt of a whole upload (a restarting store takes seconds).
    whole_upload_backoff: ClassVar[Backoff] = Backoff.fixed(2.0, 5.0, 10.0)

    def _whole(self, upload: Callable[[], object], bucket: str, key: str) -> None:
        """Run an upload, and run it again whole when the store went away under it.

        boto3 retries each request; a store that restarts (OSCAR restarts MinIO on every service create,
        ``utils/minio.go`` RestartServer, then waits 6 s) can outlast those retries or forget a multipart
        upload in flight. Client errors (4xx other than a forgotten upload) fail at once.
        """
        def once() -> None:
            try:
                upload()
            except Exception as exc:
                raise self._error(exc, bucket, key) from None

        def say(error: OscarError, delay: float) -> None:
            log.warning("upload of %s/%s failed (%s); trying it again in %.0f s", bucket, key, error, delay)

        retry(once, self.whole_upload_backoff, on_retry=say)

    def presign_get(self, bucket: str, key: str, expires: int = 7 * 24 * 3600) -> str:
        """A URL that lets anyone GET the object for ``expires`` seconds (S3 allows at most 7 days)."""
        return presign_url(self.endpoint, host_header(self.endpoint), object_path(bucket, key),
                           self.access_key, self.secret_key, self.region, expires=min(expires, 7 * 24 * 3600))

    def presign_post(self, bucket: str, prefix: str, expires: int = 7 * 24 * 3600) -> PostPolicy:
        """A POST policy that lets anyone upload objects under ``bucket/prefix`` for ``expires`` seconds
        (at most 7 days), each up to 5 GiB (S3's limit for one POST)."""
        return post_policy(self.endpoint, bucket, prefix, self.access_key, self.secret_key, self.region,
                           expires=min(expires, 7 * 24 * 3600))

    # -- listing and downloads -------------------------------------------------------------------
    def list(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    modified = obj.get("LastModified")
                    yield ObjectInfo(obj["Key"], int(obj["Size"]), obj.get("ETag"),
                                     modified.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
                                     if isinstance(modified, datetime) else None)
        except Exception as exc:
            raise self._error(exc, bucket, prefix) from None

    def get_bytes(self, bucket: str, key: str) -> bytes:
        return self._get(bucket, key)

    def download(self, bucket: str, key: str, dest: Path, *, size: int | None = None,
                 sha256: str | None = None, overwrite: bool = False, inline: bytes | None = None) -> Path:
        """Download to ``dest`` atomically, verifying size and sha256 when given.

        ``inline``: the content as the job's status file carried it; written without a GET when it
        matches ``size`` and ``sha256``, else ignored (the object is downloaded).

        Raises:
            OutputExists: ``dest`` exists and ``overwrite`` is False.
            ChecksumMismatch: the bytes are not what the job recorded (``dest`` is left untouched).
        """
        if dest.exists() and not overwrite:
            if sha256 is not None and dest.is_file() and (size is None or dest.stat().st_size == size) \
                    and sha256_file(dest) == sha256:
                return dest  # already downloaded (a rerun after a crash): nothing to do
            raise OutputExists(f"{dest} already exists: remove it, choose another output directory, "
                               "or pass overwrite=True")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part-{os.getpid()}-{threading.get_ident()}")
        try:
            try:
                digest: str | None
                if inline is not None and sha256 is not None and len(inline) == size \
                        and hashlib.sha256(inline).hexdigest() == sha256:
                    tmp.write_bytes(inline)
                    digest = sha256
                elif size is not None:  # known size: ordered ranged GETs, hashed while they arrive
                    digest = self._fetch_ranges(bucket, key, size, tmp)
                else:
                    self.client.download_file(bucket, key, str(tmp), Config=self._transfer_config())
                    digest = sha256_file(tmp) if sha256 is not None else None
            except (StorageError, ConnectionFailed):  # already says what went wrong (incl. ChecksumMismatch)
                raise
            except OSError as exc:
                if not isinstance(exc, (ConnectionError, TimeoutError)) and exc.errno is not None:
                    raise StorageError(f"cannot write {dest}: {exc.strerror}: free disk space or choose another "
                                       "output directory (nothing was replaced)") from None
                raise self._error(exc, bucket, key) from None
            except Exception as exc:
                raise self._error(exc, bucket, key) from None
            got = tmp.stat().st_size
            if size is not None and got != size:
                raise ChecksumMismatch(f"{bucket}/{key}: got {got} bytes, the job wrote {size}; retry")
            if sha256 is not None and digest != sha256:
                raise ChecksumMismatch(f"{bucket}/{key}: sha256 differs from what the job wrote; retry")
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def _fetch_ranges(self, bucket: str, key: str, size: int, dest: Path) -> str:
        """Download ``size`` bytes with parallel ranged GETs, written and hashed in order.

        Hashing overlaps the transfer (hashlib releases the GIL), so verification costs little time;
        at most ``2 * max_concurrency`` parts (8 MiB; 32 MiB parts for big files, ``max_concurrency``
        of them) are held in memory.
        """
        from concurrent.futures import ThreadPoolExecutor

        digest = hashlib.sha256()
        part = min(_MAX_PART, max(_PART, -(-size // 32)))  # big files: fewer, larger ranged GETs
        starts = list(range(0, size, part)) or [0]

        def get(start: int) -> bytes:
            if size == 0:
                return b""
            end = min(start + part, size) - 1
            data = self._get(bucket, key, (start, end))
            if len(data) != end - start + 1:
                raise ChecksumMismatch(f"{bucket}/{key}: a part came back short ({len(data)} bytes); retry")
            return data

        if len(starts) == 1:  # one part: no pool
            data = get(0)
            digest.update(data)
            dest.write_bytes(data)
            return digest.hexdigest()
        window = self.max_concurrency if part > _PART else 2 * self.max_concurrency
        with ThreadPoolExecutor(self.max_concurrency) as pool, dest.open("wb") as fh:
            pending = [pool.submit(get, s) for s in starts[:window]]
            nxt = len(pending)
            while pending:
                data = pending.pop(0).result()
                if nxt < len(starts):
                    pending.append(pool.submit(get, starts[nxt]))
                    nxt += 1
                fh.write(data)
                digest.update(data)
        return digest.hexdigest()

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        return self.delete_keys(bucket, [o.key for o in self.list(bucket, prefix)])

    def delete_keys(self, bucket: str, keys: Sequence[str]) -> int:
        """Delete objects (missing ones are fine), 1,000 per signed request (S3's DeleteObjects, quiet).

        Signed here, not with boto3: a run that only submits and collects never builds boto3's client."""
        for start in range(0, len(keys), 1000):
            self._delete_batch(bucket, keys[start:start + 1000])
        return len(keys)

    def _delete_batch(self, bucket: str, keys: Sequence[str]) -> None:
        body = delete_objects_body(keys)
        path = "/" + quote(bucket, safe="")
        extra = {"content-md5": base64.b64encode(hashlib.md5(body).digest()).decode("ascii"),  # noqa: S324 - S3 asks
                 "content-type": "application/xml"}

        def once() -> None:
            headers = sign_headers("POST", host_header(self.endpoint), path, self.access_key, self.secret_key,
                                   self.region, query="delete=", headers=extra,
                                   payload_hash=hashlib.sha256(body).hexdigest())
            try:
                response = self.http.post(self.endpoint.rstrip("/") + path + "?delete=", content=body,
                                          headers=headers)
            except httpx.TransportError as exc:
                raise ConnectionFailed(f"cannot reach the object store at {self.endpoint} ({exc.__class__.__name__})"
                                       ": is the cluster up?") from None
            if response.status_code != 200:
                code = _xml_code(response.text) or str(response.status_code)
                template = _S3_ERRORS.get(code, "object store error " + code + " on {bucket}/{key}")
                raise StorageError(template.format(bucket=bucket, key=keys[0]), code=code)

        retry(once, self.get_backoff)
