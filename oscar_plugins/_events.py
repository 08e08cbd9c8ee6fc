"""OSCAR's storage events, as MinIO's webhook posts them to ``/job/<service>``.

faas-supervisor (``faassupervisor/events``) reads a body whose ``Records[0].eventSource`` is ``minio:s3``
as a MinIO event and downloads ``s3.bucket.name``/``unquote_plus(s3.object.key)`` into the pod's input
folder with the service's ``minio`` credentials before the script runs (``storage/config.py``
``download_input``). The client uses that to hand a job an input that is too large for the ``EVENT``
variable, without any download tool in the image; the local cluster's MinIO posts the same bodies.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote_plus

__all__ = ["minio_event"]


def minio_event(bucket: str, key: str, principal: str, size: int = 0, etag: str = "",
                name: str = "s3:ObjectCreated:Put") -> dict[str, Any]:
    """The body MinIO's webhook posts to ``/job/<service>`` for an object created (one record)."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    record = {
        "eventVersion": "2.0", "eventSource": "minio:s3", "awsRegion": "", "eventTime": now,
        "eventName": name, "userIdentity": {"principalId": principal},
        "requestParameters": {"principalId": principal, "region": "", "sourceIPAddress": "127.0.0.1"},
        "responseElements": {},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "Config",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": principal}, "arn": f"arn:aws:s3:::{bucket}"},
               "object": {"key": quote_plus(key, safe=""), "size": size, "eTag": etag,
                          "contentType": "application/octet-stream", "sequencer": "0"}},
        "source": {"host": "127.0.0.1", "port": "", "userAgent": "oscar-plugins"},
    }
    return {"EventName": name, "Key": f"{bucket}/{key}", "Records": [record]}
