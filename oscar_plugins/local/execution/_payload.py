"""Request bodies in, response bodies out, as streams.

``POST /run`` and ``POST /job`` bodies are base64 text or a JSON object. Base64 is decoded to the
input file incrementally (a 256 MiB body is never held whole); a JSON object is re-serialised to it.
Responses are base64-encoded in chunks for the same reason.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["Base64Decoder", "BodyError", "BodyTooLarge", "b64_file_chunks", "save_body", "zip_files"]

_WHITESPACE = b" \t\r\n\v\f"
_B64_BLOCK = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
_B64_CHARS = re.compile(rb"[A-Za-z0-9+/=]*")
_JSON_LIMIT = 64 << 20


class BodyError(ValueError):
    """The body is neither base64 text nor a JSON object."""


class BodyTooLarge(BodyError):
    """The body exceeds the size limit of the route."""


class Base64Decoder:
    """Incremental, strict base64 decoder writing to a binary file (whitespace is ignored)."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._carry = b""
        self._ended = False
        self.written = 0

    def feed(self, chunk: bytes) -> None:
        """Decode a chunk.

        Raises:
            BodyError: characters outside the base64 alphabet, or data after the padding.
        """
        chunk = chunk.translate(None, _WHITESPACE)
        if not chunk:
            return
        if self._ended:
            raise BodyError("the body has data after the base64 padding")
        data = self._carry + chunk
        cut = len(data) - len(data) % 4
        block, self._carry = data[:cut], data[cut:]
        valid = _B64_BLOCK.fullmatch(block) and _B64_CHARS.fullmatch(self._carry)
        if not valid or (b"=" in block and self._carry):
            raise BodyError("the body is neither a JSON object nor valid base64 text")
        if b"=" in block:
            self._ended = True
        try:
            decoded = binascii.a2b_base64(block)
        except binascii.Error as exc:
            raise BodyError(f"the body is not valid base64 text ({exc})") from exc
        self._out.write(decoded)
        self.written += len(decoded)

    def finish(self) -> None:
        """Check that nothing is left over.

        Raises:
            BodyError: the base64 text is truncated.
        """
        if self._carry:
            raise BodyError("the base64 body is truncated: its length (without whitespace) must be a multiple of 4")


async def save_body(
    stream: AsyncIterator[bytes], dest: Path, limit: int | None = None
) -> dict[str, Any] | None:
    """Write a request body to ``dest`` and return the JSON object when the body was one.

    Args:
        stream: the body's chunks.
        dest: the input file to create.
        limit: the largest accepted body in bytes (None = no limit).

    Raises:
        BodyTooLarge: the body is larger than ``limit``.
        BodyError: the body is neither base64 text nor a JSON object.
    """
    received = 0
    head = b""
    mode: str | None = None
    with open(dest, "wb") as out:
        decoder = Base64Decoder(out)
        async for chunk in stream:
            received += len(chunk)
            if limit is not None and received > limit:
                raise BodyTooLarge(f"the body is larger than {limit} bytes")
            if mode is None:
                head += chunk
                stripped = head.lstrip(_WHITESPACE)
                if not stripped:
                    continue
                mode = "json" if stripped[:1] in b'{["' else "base64"
                if mode == "base64":
                    decoder.feed(head)
                    head = b""
            elif mode == "json":
                head += chunk
            else:
                decoder.feed(chunk)
            if len(head) > _JSON_LIMIT:
                raise BodyTooLarge(f"JSON bodies are limited to {_JSON_LIMIT} bytes: send base64 instead")
        if mode != "json":
            decoder.finish()
            return None
        try:
            value = json.loads(head)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BodyError(f"the body is not valid JSON ({exc})") from exc
        if not isinstance(value, dict):
            raise BodyError("the body is JSON but not an object: send a JSON object or base64 text")
        out.write(json.dumps(value).encode())
        return value


def b64_file_chunks(path: Path, chunk_size: int = 3 << 18) -> Iterator[bytes]:
    """Yield the base64 encoding of a file in chunks (``chunk_size`` is a multiple of 3)."""
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            yield base64.b64encode(block)


def zip_files(files: list[tuple[Path, str]], dest: Path, compression: int = zipfile.ZIP_DEFLATED) -> None:
    """Write a zip archive of ``(path, name in the archive)`` pairs, streaming from disk."""
    with zipfile.ZipFile(dest, "w", compression=compression) as archive:
        for path, name in files:
            archive.write(path, name)
