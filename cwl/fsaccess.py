"""File-system access that also understands ``s3://<bucket>/<key>`` inputs in a cluster's object store.

cwltool asks its fs-access for sizes, existence and contents (``loadContents``, checksums) of inputs.
For ``s3://`` locations :class:`OscarFsAccess` answers from the default cluster's object store;
everything else is cwltool's :class:`~cwltool.stdfsaccess.StdFsAccess`. Offloaded steps then get such
inputs through presigned URLs, without the data passing through this machine.
"""

from __future__ import annotations

import io
from typing import IO, TYPE_CHECKING, Any

from cwltool.stdfsaccess import StdFsAccess

from .pathmapper import S3_SCHEME, split_s3

if TYPE_CHECKING:
    from .session import Sessions

__all__ = ["OscarFsAccess"]


class OscarFsAccess(StdFsAccess):
    """``StdFsAccess`` plus read-only ``s3://`` objects of the run's default cluster.

    Args:
        basedir: as for ``StdFsAccess``.
        sessions: the run's clusters (``s3://`` locations are answered by the default one).
    """

    def __init__(self, basedir: str, sessions: Sessions | None = None) -> None:
        super().__init__(basedir)
        self.sessions = sessions

    @classmethod
    def bound(cls, sessions: Sessions) -> type[OscarFsAccess]:
        """A class to use as ``RuntimeContext.make_fs_access`` (cwltool calls it with the basedir only)."""

        class _Bound(cls):  # type: ignore[valid-type,misc]
            def __init__(self, basedir: str) -> None:
                super().__init__(basedir, sessions)

        return _Bound

    def _size(self, location: str) -> int | None:
        if self.sessions is None:
            raise OSError(f"cannot read {location}: no OSCAR cluster is configured for s3:// inputs")
        bucket, key = split_s3(location)
        return self.sessions.get().client.storage.exists(bucket, key)

    def exists(self, fn: str) -> bool:
        return self._size(fn) is not None if fn.startswith(S3_SCHEME) else super().exists(fn)

    def isfile(self, fn: str) -> bool:
        return self.exists(fn) if fn.startswith(S3_SCHEME) else super().isfile(fn)

    def isdir(self, fn: str) -> bool:
        return False if fn.startswith(S3_SCHEME) else super().isdir(fn)

    def size(self, fn: str) -> int:
        if not fn.startswith(S3_SCHEME):
            return super().size(fn)
        size = self._size(fn)
        if size is None:
            raise FileNotFoundError(f"{fn} does not exist in the object store")
        return size

    def open(self, fn: str, mode: str) -> IO[Any]:
        if not fn.startswith(S3_SCHEME):
            return super().open(fn, mode)
        if any(m in mode for m in "wa+"):
            raise OSError(f"{fn} is read-only for oscar-cwl")
        if self.sessions is None:
            raise OSError(f"cannot read {fn}: no OSCAR cluster is configured for s3:// inputs")
        bucket, key = split_s3(fn)
        data = self.sessions.get().client.storage.get_bytes(bucket, key)
        return io.BytesIO(data) if "b" in mode else io.StringIO(data.decode("utf-8"))

    def realpath(self, path: str) -> str:
        return path if path.startswith(S3_SCHEME) else super().realpath(path)
