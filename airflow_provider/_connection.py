"""An Airflow ``oscar`` connection turned into connection settings: pure, no I/O, no Airflow import.

Fields of the connection (see ``get_provider_info.connection_fields`` for the form):

* ``host``: the endpoint, ``https://oscar.example.org`` (a bare host name gets ``https://``, or the
  scheme of the ``scheme`` extra / the connection's schema when that is ``http``/``https``); ``port``
  is appended when given and the host has none.
* credentials, first match wins: ``login`` + ``password`` (basic auth); extra ``oidc_token``;
  extra ``refresh_token`` (with optional ``token_endpoint``, ``client_id``, ``client_secret``).
* extras ``ssl_verify`` (default true), ``cluster_id``, ``dashboard_url``, and ``local: true`` for the
  embedded local cluster (then host and credentials are not needed; ``local_data_dir`` optional).

Extras may also carry the ``extra__oscar__`` prefix that older connection forms wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from oscar_plugins import (
    BasicCredentials,
    ConfigError,
    Credentials,
    RefreshTokenCredentials,
    TokenCredentials,
    credential_secrets,
)

__all__ = ["DEFAULT_DASHBOARD", "ConnectionSettings", "parse_bool", "settings_from_fields"]

#: The OSCAR dashboard's page for a service's jobs (inferred from the dashboard's routes).
DEFAULT_DASHBOARD = "{endpoint}/#/ui/services/{service}/logs"
_PREFIX = "extra__oscar__"
_EXAMPLE = ('AIRFLOW_CONN_{ID}=\'{{"conn_type": "oscar", "host": "https://oscar.example.org", '
            '"login": "oscar", "password": "..."}}\'')


def parse_bool(value: object, what: str) -> bool:
    """``true/false/1/0/yes/no/on/off`` (any case) or a bool; anything else is a ConfigError."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{what} must be true or false, not {value!r}")


@dataclass(frozen=True)
class ConnectionSettings:
    """What the hook needs from a connection. Secrets stay out of ``repr``."""

    conn_id: str
    endpoint: str | None
    credentials: Credentials | None = field(repr=False)
    ssl_verify: bool = True
    local: bool = False
    local_data_dir: str | None = None
    cluster_id: str | None = None
    dashboard_url: str = DEFAULT_DASHBOARD

    def secrets(self) -> list[str]:
        return credential_secrets(self.credentials)


def _extra(extra: Mapping[str, Any], key: str) -> Any:
    value = extra.get(key)
    if value is None or value == "":
        value = extra.get(_PREFIX + key)
    return None if value == "" else value


def _endpoint(conn_id: str, host: str | None, port: int | None, schema: str | None,
              extra: Mapping[str, Any]) -> str:
    host = (host or "").strip()
    if not host:
        env = conn_id.upper()
        raise ConfigError(
            f"Airflow connection {conn_id!r} has no endpoint: set its host to the OSCAR URL "
            f"(e.g. {_EXAMPLE.format(ID=env)}), or set the extra \"local\": true to use the embedded "
            "local cluster")
    if "://" not in host:
        scheme = str(_extra(extra, "scheme") or (schema if schema in {"http", "https"} else "https"))
        host = f"{scheme}://{host}"
    netloc = host.split("://", 1)[1].split("/", 1)[0]
    if port and ":" not in netloc.rsplit("]", 1)[-1]:
        scheme, rest = host.split("://", 1)
        tail = rest[len(netloc):]
        host = f"{scheme}://{netloc}:{port}{tail}"
    return host.rstrip("/")


def _credentials(conn_id: str, login: str | None, password: str | None,
                 extra: Mapping[str, Any]) -> Credentials:
    if login:
        if not password:
            raise ConfigError(f"Airflow connection {conn_id!r} has login {login!r} but no password: "
                              "add the password, or remove the login and give an oidc_token")
        return BasicCredentials(login, password)
    token = _extra(extra, "oidc_token")
    if token:
        return TokenCredentials(str(token))
    refresh = _extra(extra, "refresh_token")
    if refresh:
        kwargs: dict[str, Any] = {"token_endpoint": _extra(extra, "token_endpoint") or None,
                                  "client_secret": _extra(extra, "client_secret") or None,
                                  "scope": _extra(extra, "scope") or None}
        if _extra(extra, "client_id"):
            kwargs["client_id"] = str(_extra(extra, "client_id"))
        return RefreshTokenCredentials(str(refresh), **kwargs)
    raise ConfigError(f"Airflow connection {conn_id!r} has no credentials: set login and password, "
                      "or the extra oidc_token or refresh_token")


def settings_from_fields(conn_id: str, *, host: str | None = None, port: int | None = None,
                         schema: str | None = None, login: str | None = None, password: str | None = None,
                         extra: Mapping[str, Any] | None = None) -> ConnectionSettings:
    """Validate a connection's fields.

    Raises:
        ConfigError: no endpoint (and not local), no or half credentials, a malformed boolean.
    """
    extra = dict(extra or {})
    common: dict[str, Any] = {
        "cluster_id": _extra(extra, "cluster_id"),
        "dashboard_url": str(_extra(extra, "dashboard_url") or DEFAULT_DASHBOARD),
    }
    if parse_bool(_extra(extra, "local") or False, f"connection {conn_id!r}: extra 'local'"):
        return ConnectionSettings(conn_id, None, None, ssl_verify=False, local=True,
                                  local_data_dir=_extra(extra, "local_data_dir"), **common)
    ssl = _extra(extra, "ssl_verify")
    return ConnectionSettings(
        conn_id,
        _endpoint(conn_id, host, port, schema, extra),
        _credentials(conn_id, login, password, extra),
        ssl_verify=True if ssl is None else parse_bool(ssl, f"connection {conn_id!r}: extra 'ssl_verify'"),
        **common,
    )
