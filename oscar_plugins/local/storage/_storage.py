"""Parent side of the local S3 server: the child process, and boto3 access to it.

Blocking boto3 calls run in a small bounded thread pool (:meth:`Storage.call`), never one thread per job.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import boto3
import httpx
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from oscar_plugins._sigv4 import host_header, object_path, sign_headers, wire_path
from oscar_plugins.local._config import Credentials, LocalClusterError
from oscar_plugins.local.storage._tls import TlsFiles

__all__ = ["REGION", "S3Process", "Storage", "bucket_name_problem", "split_path"]

REGION = "us-east-1"
T = TypeVar("T")
_TRANSFER = TransferConfig(multipart_threshold=64 << 20, multipart_chunksize=32 << 20, max_concurrency=4)


def split_path(path: str) -> tuple[str, str]:
    """Split an OSCAR storage path ``bucket/folder/...`` into (bucket, folder without slashes)."""
    bucket, _, folder = path.strip().strip("/").partition("/")
    return bucket, folder.strip("/")


def bucket_name_problem(name: str) -> str | None:
    """Return why ``name`` is not a valid S3 bucket name, or None."""
    ok_chars = all(c.islower() or c.isdigit() or c in ".-" for c in name) and name.isascii()
    if not 3 <= len(name) <= 63 or not ok_chars or not name[0].isalnum() or not name[-1].isalnum():
        return (
            f"bucket name {name!r} is not valid: use 3-63 lowercase letters, digits, '.' or '-', "
            "starting and ending with a letter or digit"
        )
    return None


class S3Process:
    """The S3 child process (``python -m oscar_plugins.local.storage._s3``)."""

    def __init__(
        self, data_dir: Path, host: str, port: int, creds: Credentials, hook_url: str, hook_secret: str, poll: bool,
        tls: TlsFiles | None = None,
    ) -> None:
        self._args = [sys.executable, "-m", "oscar_plugins.local.storage._s3", "--data-dir", str(data_dir)]
        self._args += ["--host", host, "--port", str(port)] + (["--poll"] if poll else [])
        if tls is not None:
            self._args += ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
        self._secrets = {
            "access_key": creds.s3_access_key,
            "secret_key": creds.s3_secret_key,
            "hook_url": hook_url,
            "hook_secret": hook_secret,
            "hook_ca": str(tls.ca) if tls is not None else "",
        }
        self.scheme = "https" if tls is not None else "http"
        self.host = host
        self.port = 0
        self.events = "webhook"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """``http://host:port`` of the S3 server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        """Start the child and wait until it listens (:meth:`launch` then :meth:`wait_ready`)."""
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the child and hand it its secrets; do not wait."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
        self._proc = subprocess.Popen(self._args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        assert self._proc.stdin is not None
        self._proc.stdin.write((json.dumps(self._secrets) + "\n").encode())
        self._proc.stdin.flush()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the launched child listens.

        Raises:
            LocalClusterError: it exited or did not answer in time.
        """
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + timeout
        fd = self._proc.stdout.fileno()
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                line = self._proc.stdout.readline()
                if line:
                    info = json.loads(line)
                    self.port, self.events = int(info["port"]), str(info["events"])
                    return
            if self._proc.poll() is not None:
                break
        code = self._proc.poll()
        self.stop()
        why = f"exited with code {code}" if code is not None else f"did not start within {timeout:.0f} s"
        raise LocalClusterError(f"the local S3 server {why}: see the messages above or in server.log")

    def restart(self, timeout: float = 60.0) -> None:
        """Stop the child and start it again on the same port (objects come back from the disk mirror);
        transfers in flight are cut, as when OSCAR restarts MinIO."""
        port = self.port
        self.stop()
        self._args[self._args.index("--port") + 1] = str(port)
        self.start(timeout)

    def alive(self) -> bool:
        """Whether the child still runs."""
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """Ask the child to stop (end of stdin), then terminate or kill it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def warm_session() -> boto3.session.Session:
    """A boto3 session whose S3 model is already loaded (clients made from it start fast)."""
    session = boto3.session.Session()
    make_client("http://127.0.0.1:9", "warm", "warm", session=session)
    return session


#: Files up to this size go up in one PutObject; boto3's transfer manager (threads, futures) costs more
#: than the transfer for the small outputs most jobs write.
SINGLE_PUT_LIMIT = 8 * 1024 * 1024


def upload_file(client: Any, path: str, bucket: str, key: str) -> None:
    """Upload one file: a single PutObject when small, boto3's multipart transfer otherwise."""
    if os.path.getsize(path) <= SINGLE_PUT_LIMIT:
        with open(path, "rb") as fh:
            client.put_object(Bucket=bucket, Key=key, Body=fh.read())
    else:
        client.upload_file(path, bucket, key)


def make_client(
    endpoint: str | None, access_key: str, secret_key: str, region: str = REGION,
    session: boto3.session.Session | None = None, verify: bool | str = True,
) -> Any:
    """A boto3 S3 client (path-style, no proxies from the environment for loopback endpoints)."""
    loopback = endpoint is not None and ("127.0.0.1" in endpoint or "localhost" in endpoint or "[::1]" in endpoint)
    config = Config(
        s3={"addressing_style": "path"},
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=16,
        proxies={} if loopback else None,
        signature_version="s3v4",
    )
    return (session or boto3.session.Session()).client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=region or REGION,
        config=config,
        verify=verify,
    )


class Storage:
    """boto3 access to the local S3 server, through a bounded thread pool."""

    def __init__(
        self, endpoint: str, access_key: str, secret_key: str, workers: int = 8,
        session: boto3.session.Session | None = None, ca: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.verify: bool | str = ca or True
        self.client = make_client(endpoint, access_key, secret_key, session=session, verify=self.verify)
        self._keys = (access_key, secret_key)
        self.access_key = access_key
        self._http: httpx.Client | None = None
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3-transfer")
        self._clients: dict[tuple[str | None, str, str, str], Any] = {}

    async def call(self, func: Callable[..., T], *args: Any) -> T:
        """Run a blocking function in the transfer pool."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, func, *args)

    def close(self) -> None:
        """Stop the transfer pool."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._http is not None:
            self._http.close()

    def put_file(self, path: str, bucket: str, key: str) -> None:
        """Upload a job's output to the local S3 server: a small file with one signed PUT (botocore costs
        ~3 ms of CPU a request, more than the transfer), a large one through boto3's multipart transfer."""
        if os.path.getsize(path) > SINGLE_PUT_LIMIT:
            self.client.upload_file(path, bucket, key)
            return
        with open(path, "rb") as fh:
            data = fh.read()
        if self._http is None:
            self._http = httpx.Client(timeout=httpx.Timeout(120.0, connect=10.0), trust_env=False, verify=self.verify)
        target = object_path(bucket, key)
        digest = hashlib.sha256(data).hexdigest()
        status, text = 0, ""
        for attempt in range(3):
            headers = sign_headers("PUT", host_header(self.endpoint), target, *self._keys, REGION,
                                   payload_hash=digest)
            try:
                response = self._http.put(self.endpoint.rstrip("/") + wire_path(target), content=data,
                                            headers=headers)
            except httpx.TransportError as exc:
                status, text = 0, f"{exc.__class__.__name__}: {exc}"
            else:
                if response.status_code == 200:
                    return
                status, text = response.status_code, response.text[:300]
                if status < 500:
                    break
            time.sleep(0.2 * (attempt + 1))
        raise LocalClusterError(f"the local S3 server refused PUT {bucket}/{key} ({status or 'no answer'}): {text}")

    def client_for(self, provider: dict[str, Any] | None) -> Any:
        """The client of a service's storage provider (None = the local MinIO-like server)."""
        if provider is None:
            return self.client
        endpoint = provider.get("endpoint") or None
        key = (endpoint, str(provider.get("access_key", "")), str(provider.get("secret_key", "")),
               str(provider.get("region") or REGION))
        if key not in self._clients:
            self._clients[key] = make_client(*key)
        return self._clients[key]

    def ensure_bucket(self, bucket: str, folder: str = "") -> None:
        """Create a bucket if missing and, like OSCAR, a ``folder/`` marker object inside it."""
        try:
            self.client.create_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
        if folder:
            self.client.put_object(Bucket=bucket, Key=folder + "/", Body=b"")

    def delete_bucket(self, bucket: str) -> None:
        """Delete every object of a bucket, then the bucket; a missing bucket is not an error."""
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket):
                keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
                if keys:
                    self.client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            self.client.delete_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchBucket":
                raise

    def download(self, bucket: str, key: str, dest: Path) -> None:
        """Download an object to a file."""
        self.client.download_file(bucket, key, str(dest), Config=_TRANSFER)

    def list_keys(self, bucket: str, prefix: str) -> dict[str, str]:
        """Every key under ``prefix`` with its ETag (used by the polling fallback)."""
        out: dict[str, str] = {}
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                out.update({o["Key"]: str(o.get("ETag", "")) for o in page.get("Contents", [])})
        except ClientError:
            pass
        return out

    def counts(self) -> tuple[int, int]:
        """(number of buckets, number of objects)."""
        buckets = [b["Name"] for b in self.client.list_buckets().get("Buckets", [])]
        objects = 0
        for bucket in buckets:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                objects += int(page.get("KeyCount", 0))
        return len(buckets), objects

    def presign(self, bucket: str, request: dict[str, Any]) -> dict[str, Any]:
        """Presign an upload or download as ``POST /system/buckets/{b}/presign`` does.

        Raises:
            ValueError: the request is invalid (the message says why).
        """
        key, operation = request.get("object_key"), str(request.get("operation", "")).lower()
        if not isinstance(key, str) or not key or key.startswith("/"):
            raise ValueError("object_key is required: give the object's key inside the bucket")
        if operation not in ("upload", "download"):
            raise ValueError("operation must be 'upload' or 'download'")
        expires = request.get("expires_in") or 900
        if not isinstance(expires, int) or not 1 <= expires <= 7 * 24 * 3600:
            raise ValueError("expires_in must be a number of seconds between 1 and 604800")
        params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        headers: dict[str, str] = {}
        if operation == "upload" and request.get("content_type"):
            params["ContentType"] = headers["Content-Type"] = str(request["content_type"])
        method = "put_object" if operation == "upload" else "get_object"
        url = self.client.generate_presigned_url(method, Params=params, ExpiresIn=expires)
        headers.update({str(k): str(v) for k, v in (request.get("extra_headers") or {}).items()})
        expires_at = datetime.now(timezone.utc) + timedelta(seconds=expires)
        return {
            "object_key": key,
            "operation": operation,
            "method": "PUT" if operation == "upload" else "GET",
            "url": url,
            "expires_at": expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "headers": headers,
        }
