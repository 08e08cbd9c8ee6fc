"""The local S3 server: moto in its own process, made durable and wired to bucket notifications.

Run as ``python -m oscar_plugins.local.storage._s3 --data-dir DIR --host 127.0.0.1 --port 0``. The parent
writes one JSON line to stdin with the secrets (never on the command line)::

    {"access_key": ..., "secret_key": ..., "hook_url": ..., "hook_secret": ...}

and keeps stdin open: end of file on stdin (the parent stopped or died) shuts the server down. When it
listens, the child prints one JSON line ``{"port": N, "events": "webhook"|"poll"}`` to stdout.

Inside, moto's S3 backend is patched so that every object created (PutObject, multipart completion,
CopyObject) is written to the disk mirror and announced to the API server's webhook
(``POST <hook_url>`` with ``{"events": [{id, event, bucket, key, size, etag}]}``), like MinIO's
webhook notifications; deletions remove the file. Requests must carry a valid SigV4 signature for the
cluster's access key (see ``_sigv4``). Plain POST-policy uploads and GETs, most of a short job's requests,
are answered straight from the backend (``_s3fast``); everything else goes through moto's app.
"""

from __future__ import annotations

import argparse
import http.client
import inspect
import json
import logging
import os
import queue
import shutil
import signal
import ssl
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, unquote

from oscar_plugins._events import minio_event
from oscar_plugins.local.storage._listen import EventHub, listen_stream
from oscar_plugins.local.storage._s3fast import FastPaths
from oscar_plugins.local.storage._s3persist import DiskMirror
from oscar_plugins.local.storage._sigv4 import SignatureProblem, verify, verify_post

__all__ = ["main"]

log = logging.getLogger("oscar_plugins.local.s3")
REGION = "us-east-1"
_HOOKED = ("put_object", "complete_multipart_upload", "copy_object", "delete_object", "create_bucket", "delete_bucket")


class WebhookSender:
    """Send object-created events to the API server in batches, retrying while it is unreachable."""

    def __init__(self, url: str, secret: str, ca: str = "") -> None:
        self._url, self._secret = url, secret
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        handlers: list[Any] = [urllib.request.ProxyHandler({})]
        if ca:
            handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=ca)))
        self._opener = urllib.request.build_opener(*handlers)
        self._thread = threading.Thread(target=self._loop, name="s3-webhook", daemon=True)
        self._thread.start()

    def send(self, event: dict[str, Any]) -> None:
        """Queue one event."""
        self._queue.put(event)

    def close(self, timeout: float = 5.0) -> None:
        """Flush queued events (waiting at most ``timeout`` seconds) and stop."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _loop(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            batch: list[dict[str, Any]] = []
            if first is None:
                stop = True
            else:
                batch.append(first)
            while len(batch) < 500:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                else:
                    batch.append(item)
            if batch:
                self._post(batch)

    def _post(self, batch: list[dict[str, Any]]) -> None:
        body = json.dumps({"events": batch}).encode()
        delay = 0.05
        deadline = time.monotonic() + 60
        while True:
            request = urllib.request.Request(self._url, data=body, method="POST")  # noqa: S310 - our http URL
            request.add_header("Content-Type", "application/json")
            request.add_header("Authorization", f"Bearer {self._secret}")
            try:
                with self._opener.open(request, timeout=30) as response:
                    response.read()
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    log.error("dropping %d bucket events: the API server did not accept them (%s)", len(batch), exc)
                    return
                time.sleep(delay)
                delay = min(delay * 2, 2.0)


def _naive_utc(stamp: float) -> datetime:
    return datetime.fromtimestamp(stamp, tz=timezone.utc).replace(tzinfo=None)


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, datetime):
        return None
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()


def _copy_value(key: Any) -> Callable[[IO[bytes]], None]:
    def copy_into(handle: IO[bytes]) -> None:
        buffer = getattr(key, "_value_buffer", None)
        if buffer is None:
            handle.write(key.value)
            return
        with key.lock:
            buffer.seek(0)
            shutil.copyfileobj(buffer, handle, 1 << 20)

    return copy_into


def reload_objects(backend: Any, mirror: DiskMirror) -> int:
    """Load every bucket and object from the disk mirror into moto; return the number of objects."""
    count = 0
    for bucket in mirror.buckets():
        try:
            backend.create_bucket(bucket, REGION)
        except Exception as exc:
            log.warning("cannot restore bucket %r: %s", bucket, exc)
            continue
        for obj in mirror.objects(bucket):
            key = backend.put_object(bucket, obj.key, b"", disable_notification=True)
            with obj.path.open("rb") as handle:
                buffer = getattr(key, "_value_buffer", None)
                if buffer is None:
                    key.value = handle.read()
                else:
                    shutil.copyfileobj(handle, buffer, 1 << 20)
                    key.contentsize = buffer.tell()
            key._etag = obj.etag.strip('"') if obj.etag else None
            key.set_metadata(dict(obj.metadata))
            if obj.last_modified is not None:
                key.last_modified = _naive_utc(obj.last_modified)
            key._oscar_mirrored = True
            count += 1
    return count


class Hooks:
    """Patches of moto's S3 backend that mirror objects to disk and emit bucket events."""

    def __init__(self, mirror: DiskMirror, sender: WebhookSender | None, hub: EventHub, principal: str) -> None:
        self.mirror, self.sender, self.hub, self.principal = mirror, sender, hub, principal
        self._locks = [threading.RLock() for _ in range(64)]

    def _lock(self, bucket: str, key: str) -> threading.RLock:
        return self._locks[hash((bucket, key)) % len(self._locks)]

    def created(self, key: Any, bucket: str, event: str) -> None:
        """Persist a created object and announce it."""
        self.mirror.object_written(
            bucket, key.name, _copy_value(key), key.etag, dict(key.metadata), _timestamp(key.last_modified)
        )
        key._oscar_mirrored = True
        etag = key.etag.strip('"')
        if self.sender is not None:
            payload = {"id": uuid.uuid4().hex, "event": event, "bucket": bucket, "key": key.name}
            self.sender.send({**payload, "size": int(key.size), "etag": etag})
        self.announce(bucket, key.name, event, int(key.size), etag)

    def announce(self, bucket: str, key: str, event: str, size: int = 0, etag: str = "") -> None:
        """Tell the open listening requests (MinIO's listen API) about an object event."""
        if not self.hub.listening():
            return
        record = minio_event(bucket, key, self.principal, size, etag, event)["Records"][0]
        self.hub.publish(bucket, key, event, record)

    def install(self, backend_cls: Any, key_cls: Any) -> None:
        """Wrap the backend's object and bucket methods."""
        hooks = self
        originals = {name: getattr(backend_cls, name) for name in _HOOKED}
        put_params = list(inspect.signature(originals["put_object"]).parameters)[1:]

        def put_object(self: Any, *args: Any, **kwargs: Any) -> Any:
            # what signature.bind gives, at a tenth of its cost
            arguments = dict(zip(put_params, args, strict=False), **kwargs)
            bucket, name = arguments["bucket_name"], arguments["key_name"]
            notify = arguments.get("multipart") is None and not arguments.get("disable_notification")
            with hooks._lock(bucket, name):
                key = originals["put_object"](self, *args, **kwargs)
                if notify:
                    hooks.created(key, bucket, "s3:ObjectCreated:Put")
            return key

        def complete_multipart_upload(self: Any, bucket_name: str, multipart_id: str, body: Iterable[Any]) -> Any:
            key = originals["complete_multipart_upload"](self, bucket_name, multipart_id, body)
            if key is not None:
                with hooks._lock(bucket_name, key.name):
                    hooks.created(key, bucket_name, "s3:ObjectCreated:CompleteMultipartUpload")
            return key

        def copy_object(self: Any, src_key: Any, dest_bucket_name: str, dest_key_name: str, *a: Any, **kw: Any) -> Any:
            with hooks._lock(dest_bucket_name, dest_key_name):
                result = originals["copy_object"](self, src_key, dest_bucket_name, dest_key_name, *a, **kw)
                key = self.get_object(dest_bucket_name, dest_key_name)
                if key is not None:
                    hooks.created(key, dest_bucket_name, "s3:ObjectCreated:Copy")
            return result

        def delete_object(self: Any, bucket_name: str, key_name: str, *a: Any, **kw: Any) -> Any:
            with hooks._lock(bucket_name, key_name):
                result = originals["delete_object"](self, bucket_name, key_name, *a, **kw)
                if type(self.get_bucket(bucket_name).keys.get(key_name)).__name__ != "FakeKey":
                    hooks.mirror.object_deleted(bucket_name, key_name)
                    hooks.announce(bucket_name, key_name, "s3:ObjectRemoved:Delete")
            return result

        def create_bucket(self: Any, bucket_name: str, *a: Any, **kw: Any) -> Any:
            result = originals["create_bucket"](self, bucket_name, *a, **kw)
            hooks.mirror.bucket_created(bucket_name)
            return result

        def delete_bucket(self: Any, bucket_name: str) -> Any:
            result = originals["delete_bucket"](self, bucket_name)
            if result is not None:
                hooks.mirror.bucket_deleted(bucket_name)
            return result

        original_set_metadata = key_cls.set_metadata

        def set_metadata(self: Any, metadata: Any, replace: bool = False) -> None:
            original_set_metadata(self, metadata, replace)
            if getattr(self, "_oscar_mirrored", False) and self.bucket_name:
                hooks.mirror.metadata_changed(self.bucket_name, self.name, dict(self.metadata))

        for name, func in [
            ("put_object", put_object),
            ("complete_multipart_upload", complete_multipart_upload),
            ("copy_object", copy_object),
            ("delete_object", delete_object),
            ("create_bucket", create_bucket),
            ("delete_bucket", delete_bucket),
        ]:
            setattr(backend_cls, name, func)
        key_cls.set_metadata = set_metadata


class SigV4Middleware:
    """WSGI middleware refusing requests not signed with the cluster's S3 credentials; it also answers
    MinIO's listening requests (``GET /<bucket>?events=...``), which moto does not know."""

    def __init__(self, app: Any, access_key: str, secret_key: str, hub: EventHub | None = None,
                 fast: FastPaths | None = None) -> None:
        self.app, self.access_key, self.secret_key, self.hub = app, access_key, secret_key, hub
        #: Plain uploads and downloads answered without moto's Flask app (``_s3fast``).
        self.fast = fast

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if _is_form_upload(environ):
            if self.fast is not None:
                answer = self.fast.form_upload(environ, start_response,
                                               lambda problem: _refuse(problem, environ, start_response))
                if answer is not None:
                    return answer
            problem = self._check_form(environ)
            if problem is None:
                return self.app(environ, start_response)  # type: ignore[no-any-return]
            return _refuse(problem, environ, start_response)
        headers = {k[5:].replace("_", "-").lower(): str(v) for k, v in environ.items() if k.startswith("HTTP_")}
        for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(name):
                headers[name.replace("_", "-").lower()] = str(environ[name])
        raw_uri = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/"))
        raw_path = raw_uri.split("?", 1)[0]
        problem = verify(
            str(environ.get("REQUEST_METHOD", "GET")),
            raw_path,
            str(environ.get("QUERY_STRING", "")),
            headers,
            self.access_key,
            self.secret_key,
        )
        if problem is None:
            listening = self._listen(environ, start_response)
            if listening is not None:
                return listening
            if self.fast is not None and environ.get("REQUEST_METHOD") == "GET":
                answer = self.fast.get_object(environ, start_response)
                if answer is not None:
                    return answer
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        return _refuse(problem, environ, start_response)

    def _listen(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes] | None:
        path = str(environ.get("PATH_INFO", "/")).strip("/")
        query = parse_qs(str(environ.get("QUERY_STRING", "")), keep_blank_values=True)
        bucket_get = environ.get("REQUEST_METHOD") == "GET" and bool(path) and "/" not in path
        if self.hub is None or not bucket_get or "events" not in query:
            return None
        try:
            ping = float(query["ping"][0]) if query.get("ping") else None
        except ValueError:
            ping = None
        listener = self.hub.subscribe(unquote(path), query)
        start_response("200 OK", [("Content-Type", "application/json"), ("Cache-Control", "no-cache")])
        return listen_stream(self.hub, listener, ping)

    def _check_form(self, environ: dict[str, Any]) -> SignatureProblem | None:
        """A browser-based upload (``POST /<bucket>``, multipart form): its policy decides. The body is
        buffered (to disk when large) so that moto reads it again."""
        from werkzeug.formparser import parse_form_data

        remaining = int(environ.get("CONTENT_LENGTH") or 0)
        spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)
        while remaining > 0:
            chunk = environ["wsgi.input"].read(min(remaining, 1 << 20))
            if not chunk:
                break
            spool.write(chunk)
            remaining -= len(chunk)
        spool.seek(0)
        probe = {**environ, "wsgi.input": spool}
        _, form, files = parse_form_data(probe)
        size = 0
        for upload in files.values():
            upload.stream.seek(0, os.SEEK_END)
            size = upload.stream.tell()
        spool.seek(0)
        environ["wsgi.input"] = spool
        fields = {k.lower(): v for k, v in form.items()}
        bucket = unquote(str(environ.get("PATH_INFO", "/")).strip("/"))
        return verify_post(fields, bucket, size, self.access_key, self.secret_key)


def _is_form_upload(environ: Mapping[str, Any]) -> bool:
    path = str(environ.get("PATH_INFO", "/")).strip("/")
    return (environ.get("REQUEST_METHOD") == "POST" and bool(path) and "/" not in path
            and str(environ.get("CONTENT_TYPE", "")).startswith("multipart/form-data")
            and not str(environ.get("QUERY_STRING", "")))


def _refuse(problem: SignatureProblem, environ: Mapping[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{problem.code}</Code><Message>{problem.message}</Message></Error>"
    ).encode()
    status = "400 Bad Request" if "Malformed" in problem.code or "Parameters" in problem.code else "403 Forbidden"
    start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


class _RequestHeaders(http.client.HTTPMessage):
    """A request's headers as ``http.server`` reads them, with the ``email`` parser it uses: told that
    their (empty) body is not multipart, the parser does not compile a regular expression for the boundary
    of every form upload's ``Content-Type`` (a tenth of the S3 server's CPU per job). Values are unchanged."""

    def get_content_maintype(self) -> str:
        return "text"


def _handler() -> Any:
    from werkzeug.serving import WSGIRequestHandler

    class Handler(WSGIRequestHandler):
        MessageClass = _RequestHeaders

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            """Not logged (the werkzeug logger shows errors only): skip formatting a line per request."""

    return Handler


def _serve(args: argparse.Namespace, config: dict[str, str]) -> None:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.moto_server.werkzeug_app import create_backend_app
    from moto.s3 import models
    from werkzeug.serving import make_server

    mirror = DiskMirror(Path(args.data_dir) / "s3")
    backend = models.s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    restored = reload_objects(backend, mirror)
    hookable = all(hasattr(models.S3Backend, n) for n in _HOOKED) and not args.poll
    sender = WebhookSender(config["hook_url"], config["hook_secret"], config.get("hook_ca", "")) if hookable else None
    hub = EventHub()
    if hookable:
        Hooks(mirror, sender, hub, config["access_key"]).install(models.S3Backend, models.FakeKey)
    else:
        log.warning("moto's S3 backend cannot be hooked: bucket triggers fall back to polling")
    fast = FastPaths(backend, config["access_key"], config["secret_key"])
    app = SigV4Middleware(create_backend_app("s3"), config["access_key"], config["secret_key"], hub, fast)
    tls = (args.tls_cert, args.tls_key) if args.tls_cert else None
    server = make_server(args.host, args.port, app, threaded=True, ssl_context=tls, request_handler=_handler())
    thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05), name="s3-server", daemon=True)
    thread.start()
    ready = {"port": server.server_address[1], "events": "webhook" if hookable else "poll", "objects": restored}
    sys.stdout.write(json.dumps(ready) + "\n")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not fill an unread pipe
    try:
        sys.stdin.buffer.read()  # returns at end of file: the parent is gone or wants us to stop
    finally:
        server.shutdown()
        thread.join(10)
        if sender is not None:
            sender.close()
        mirror.close()


def _on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the S3 child process."""
    parser = argparse.ArgumentParser(prog="python -m oscar_plugins.local.storage._s3")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--poll", action="store_true", help="do not hook moto; the API server polls")
    parser.add_argument("--tls-cert", default="", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", default="", help="and this key (PEM)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    signal.signal(signal.SIGTERM, _on_sigterm)
    line = sys.stdin.readline()
    try:
        config = json.loads(line)
    except ValueError:
        sys.stderr.write("oscar_plugins.local.storage._s3: expected one JSON line with the secrets on stdin\n")
        return 2
    _serve(args, config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
