"""Path mapping for offloaded jobs: local inputs (and object-store inputs) to paths in the pod.

:class:`OscarPathMapper` is cwltool's :class:`~cwltool.pathmapper.PathMapper` with one addition:
inputs whose location is ``s3://<bucket>/<key>`` (an object already in the cluster's object store)
are mapped without being downloaded; the job fetches them in the pod through a presigned URL.
"""

from __future__ import annotations

from cwl_utils.types import CWLDirectoryType, CWLFileType, is_directory
from cwltool.pathmapper import MapperEnt, PathMapper

__all__ = ["S3_SCHEME", "OscarPathMapper", "split_s3"]

S3_SCHEME = "s3://"


def split_s3(location: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")``.

    Raises:
        ValueError: not an ``s3://bucket/key`` location.
    """
    rest = location[len(S3_SCHEME):] if location.startswith(S3_SCHEME) else ""
    bucket, _, key = rest.partition("/")
    if not bucket or not key:
        raise ValueError(f"{location!r} is not an s3://<bucket>/<key> location")
    return bucket, key


class OscarPathMapper(PathMapper):
    """cwltool's path mapper; ``s3://`` Files stay remote (``resolved`` is their location)."""

    def visit(self, obj: CWLFileType | CWLDirectoryType, stagedir: str, basedir: str, copy: bool = False,
              staged: bool = False) -> None:
        location = obj["location"]
        if not location.startswith(S3_SCHEME) or is_directory(obj):
            super().visit(obj, stagedir, basedir, copy=copy, staged=staged)
            return
        if location in self._pathmap:
            return
        split_s3(location)
        stagedir = obj.get("dirname") or stagedir
        target = f"{stagedir.rstrip('/')}/{obj['basename']}"
        self._pathmap[location] = MapperEnt(location, target, "WritableFile" if copy else "File", staged)
        if "secondaryFiles" in obj:
            self.visitlisting(obj["secondaryFiles"], stagedir, basedir, copy=copy, staged=staged)
