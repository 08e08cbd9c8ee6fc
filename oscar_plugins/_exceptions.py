"""The one exception tree of oscar-plugins.

Every error the library raises derives from :class:`OscarError`. Each message names the problem and
says what to do; subclasses carry the data a caller may act on (HTTP status, call, job name, log tail).
Secrets never appear in messages: bodies are excerpted only after redaction.
"""

from __future__ import annotations

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequest",
    "ChecksumMismatch",
    "ConfigError",
    "Conflict",
    "ConnectionFailed",
    "FDLError",
    "InputNotFound",
    "JobFailed",
    "JobNotFound",
    "JobTimeout",
    "NotFound",
    "OscarError",
    "OutputExists",
    "ProfileNotFound",
    "ServerError",
    "ServiceNotFound",
    "ServiceUnavailable",
    "StorageError",
    "TLSError",
]


class OscarError(Exception):
    """Root of every error raised by oscar-plugins."""


class ConfigError(OscarError):
    """Configuration is missing or invalid (profiles, credentials, arguments)."""


class ProfileNotFound(ConfigError):
    """A named cluster profile does not exist."""


class FDLError(ConfigError):
    """An FDL (service definition) file or dict is malformed or invalid.

    Attributes:
        source: the file (or "<dict>") the definition came from.
        service: the service name, when known.
        field: the offending field path, when known.
    """

    def __init__(self, message: str, *, source: str = "<dict>", service: str | None = None,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.source = source
        self.service = service
        self.field = field


class InputNotFound(OscarError, FileNotFoundError):
    """An input file given by the user does not exist."""


class OutputExists(OscarError, FileExistsError):
    """A download target exists and overwriting was not allowed."""


class ConnectionFailed(OscarError):
    """The cluster (or its object store) could not be reached."""


class TLSError(ConnectionFailed):
    """TLS verification failed."""


class APIError(OscarError):
    """The OSCAR API answered with an error status.

    Attributes:
        status: HTTP status code.
        call: what was called, e.g. ``"GET /system/services/foo"``.
        body: a short, redacted excerpt of the response body.
    """

    def __init__(self, message: str, *, status: int, call: str, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.call = call
        self.body = body


class BadRequest(APIError):
    """400: the server rejected the request's content."""


class AuthenticationError(APIError):
    """401/403: missing, wrong or expired credentials."""


class NotFound(APIError):
    """404: the thing asked for does not exist."""


class ServiceNotFound(NotFound):
    """The service does not exist on the cluster."""


class JobNotFound(NotFound):
    """The job does not exist (never submitted, deleted, or expired after OSCAR's 30-day TTL)."""


class Conflict(APIError):
    """409: the thing already exists."""


class ServerError(APIError):
    """5xx: the server failed."""


class ServiceUnavailable(ServerError):
    """502/503/504: the service's pod or the cluster is not ready; retrying later may work."""


class StorageError(OscarError):
    """Object storage (MinIO/S3) failed; ``code`` is the S3 error code when known."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class ChecksumMismatch(StorageError):
    """Downloaded bytes do not match the size or checksum the job recorded."""


class JobFailed(OscarError):
    """A job (or synchronous run) failed.

    Attributes:
        service: the service name.
        job: the job name (None for synchronous runs).
        exit_code: the script's exit code when known.
        log_tail: the last lines of the job's log.
    """

    def __init__(self, message: str, *, service: str, job: str | None = None,
                 exit_code: int | None = None, log_tail: str = "") -> None:
        super().__init__(message)
        self.service = service
        self.job = job
        self.exit_code = exit_code
        self.log_tail = log_tail


class JobTimeout(OscarError, TimeoutError):
    """Waiting for jobs took longer than the timeout; the jobs keep running unless cancelled."""
