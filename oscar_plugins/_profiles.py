"""Cluster profiles: where a cluster is and how to authenticate to it.

Resolution order (first match wins), as :func:`resolve_profile` implements it:

1. Explicit arguments: ``endpoint=`` (with ``user``/``password``, ``token`` or ``refresh_token``),
   or a profile ``name=``.
2. Environment: ``OSCAR_ENDPOINT`` with ``OSCAR_USER``/``OSCAR_PASSWORD``, ``OSCAR_TOKEN``,
   ``OSCAR_REFRESH_TOKEN`` or ``OSCAR_OIDC_ACCOUNT`` (and ``OSCAR_SSL_VERIFY``); or ``OSCAR_CLUSTER``
   naming a profile.
3. The oscar-cli profile file (``OSCAR_CONFIG`` or ``~/.oscar-cli/config.yaml``): its ``default:``.
4. The embedded local cluster (profile name ``local``), started on demand.

Existing OSCAR users need no new configuration: the oscar-cli file is read in its own format.
Secrets never appear in a profile's ``repr``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ._auth import (
    DEFAULT_OIDC_CLIENT_ID,
    BasicCredentials,
    Credentials,
    OidcAgentCredentials,
    RefreshTokenCredentials,
    TokenCredentials,
)
from ._exceptions import ConfigError, ProfileNotFound

__all__ = ["LOCAL_PROFILE", "ClusterProfile", "config_path", "load_profiles", "resolve_profile", "save_profile"]

LOCAL_PROFILE = "local"


@dataclass(frozen=True)
class ClusterProfile:
    """One OSCAR cluster: an endpoint and one way to authenticate.

    Example:
        >>> p = ClusterProfile("prod", "https://oscar.example.org", BasicCredentials("oscar", "s3cret"))
        >>> "s3cret" in repr(p)
        False
    """

    name: str
    endpoint: str
    credentials: Credentials
    ssl_verify: bool = True
    source: str = field(default="argument", compare=False)
    #: For the embedded local cluster only: its object store, as /system/config would report it.
    local_data_dir: str | None = field(default=None, compare=False)

    @property
    def is_local(self) -> bool:
        return self.name == LOCAL_PROFILE and self.local_data_dir is not None

    def describe(self) -> dict[str, Any]:
        """A secret-free summary for CLI output."""
        return {"name": self.name, "endpoint": self.endpoint, "auth": self.credentials.kind,
                "user": getattr(self.credentials, "user", None), "ssl_verify": self.ssl_verify,
                "source": self.source}


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """The oscar-cli profile file: ``$OSCAR_CONFIG`` or ``~/.oscar-cli/config.yaml``."""
    env = os.environ if env is None else env
    return Path(env.get("OSCAR_CONFIG") or Path.home() / ".oscar-cli" / "config.yaml")


def _truthy(value: object, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{what} must be true or false, not {value!r}")


def _credentials(entry: Mapping[str, Any], where: str) -> Credentials:
    if entry.get("auth_user"):
        if not entry.get("auth_password"):
            raise ConfigError(f"{where}: auth_user is set but auth_password is missing: add the password")
        return BasicCredentials(str(entry["auth_user"]), str(entry["auth_password"]))
    if entry.get("oidc_token"):
        return TokenCredentials(str(entry["oidc_token"]))
    if entry.get("oidc_refresh_token"):
        return RefreshTokenCredentials(
            str(entry["oidc_refresh_token"]),
            token_endpoint=entry.get("oidc_token_endpoint") or None,
            client_id=str(entry.get("oidc_client_id") or DEFAULT_OIDC_CLIENT_ID),
            client_secret=entry.get("oidc_client_secret") or None,
            scope=entry.get("oidc_scopes") or None,
        )
    if entry.get("oidc_account_name"):
        return OidcAgentCredentials(str(entry["oidc_account_name"]))
    raise ConfigError(
        f"{where}: no credentials: set auth_user/auth_password, oidc_token, oidc_refresh_token "
        "or oidc_account_name"
    )


def _profile_from_entry(name: str, entry: Any, source: str) -> ClusterProfile:
    where = f"profile {name!r} in {source}"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} is not a mapping of endpoint and credentials")
    endpoint = entry.get("endpoint")
    if not endpoint or not isinstance(endpoint, str):
        raise ConfigError(f"{where} has no endpoint: add 'endpoint: https://...'")
    return ClusterProfile(
        name=name,
        endpoint=endpoint.rstrip("/"),
        credentials=_credentials(entry, where),
        ssl_verify=_truthy(entry.get("ssl_verify", True), f"{where}: ssl_verify"),
        source=source,
    )


def _read_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML ({exc}): fix it or move it away") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping with an 'oscar:' section, as oscar-cli writes it")
    return data


def load_profiles(path: Path | None = None) -> tuple[dict[str, ClusterProfile], str | None]:
    """Read every profile of the oscar-cli file and its ``default``.

    Returns:
        The profiles by name, and the default profile name (or None).
    """
    path = config_path() if path is None else path
    data = _read_file(path)
    section = data.get("oscar") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: 'oscar:' must map profile names to clusters")
    profiles = {str(n): _profile_from_entry(str(n), e, str(path)) for n, e in section.items()}
    default = data.get("default")
    return profiles, (str(default) if default else None)


def save_profile(name: str, entry: Mapping[str, Any], *, path: Path | None = None,
                 make_default: bool = False) -> Path:
    """Add or replace a profile in the oscar-cli file (created with mode 0600)."""
    path = config_path() if path is None else path
    _profile_from_entry(name, entry, str(path))  # validate before writing
    data = _read_file(path)
    data.setdefault("oscar", {})[name] = dict(entry)
    if make_default or not data.get("default"):
        data["default"] = name
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        yaml.safe_dump(data, fh, sort_keys=False)
    os.replace(tmp, path)
    return path


#: The environment variables that give credentials with ``OSCAR_ENDPOINT``.
_ENV_CREDENTIALS = ("OSCAR_USER", "OSCAR_TOKEN", "OSCAR_REFRESH_TOKEN", "OSCAR_OIDC_ACCOUNT")


def _env_profile(env: Mapping[str, str]) -> ClusterProfile | None:
    endpoint = env.get("OSCAR_ENDPOINT")
    if not endpoint:
        return None
    if env.get("OSCAR_USER") and not env.get("OSCAR_PASSWORD"):
        raise ConfigError(f"OSCAR_ENDPOINT={endpoint} and OSCAR_USER are set but OSCAR_PASSWORD is not: set "
                          "OSCAR_PASSWORD too (or unset OSCAR_ENDPOINT to use a profile)")
    if not any(env.get(var) for var in _ENV_CREDENTIALS):
        raise ConfigError(f"OSCAR_ENDPOINT={endpoint} is set without credentials: set OSCAR_USER and "
                          "OSCAR_PASSWORD, or OSCAR_TOKEN, OSCAR_REFRESH_TOKEN or OSCAR_OIDC_ACCOUNT (or unset "
                          "OSCAR_ENDPOINT to use a profile of ~/.oscar-cli/config.yaml)")
    entry = {
        "endpoint": endpoint,
        "auth_user": env.get("OSCAR_USER"),
        "auth_password": env.get("OSCAR_PASSWORD"),
        "oidc_token": env.get("OSCAR_TOKEN"),
        "oidc_refresh_token": env.get("OSCAR_REFRESH_TOKEN"),
        "oidc_token_endpoint": env.get("OSCAR_OIDC_TOKEN_ENDPOINT"),
        "oidc_client_id": env.get("OSCAR_OIDC_CLIENT_ID"),
        "oidc_account_name": env.get("OSCAR_OIDC_ACCOUNT"),
        "ssl_verify": env.get("OSCAR_SSL_VERIFY", "true"),
    }
    return _profile_from_entry(env.get("OSCAR_CLUSTER") or "env", entry, "environment")


#: The entry-point group of the cluster used when none is configured. The embedded local cluster
#: registers itself there (``oscar_plugins.local:fallback_profile``): the core does not import it.
FALLBACK_GROUP = "oscar_plugins.fallback_cluster"


def local_profile(data_dir: str | Path | None = None, *, quiet: bool = False) -> ClusterProfile:
    """The profile of the cluster used when none is configured: the embedded local cluster (started on
    demand, or reused), found through the :data:`FALLBACK_GROUP` entry point it registers.

    Raises:
        ConfigError: no such cluster is installed.
    """
    from importlib.metadata import entry_points

    found = sorted(entry_points(group=FALLBACK_GROUP), key=lambda ep: ep.name)
    if not found:
        raise ConfigError("no cluster is configured and no embedded local cluster is installed: configure one "
                          "(OSCAR_ENDPOINT and OSCAR_USER/OSCAR_PASSWORD or OSCAR_TOKEN, or oscar-plugins cluster "
                          "add), or reinstall oscar-plugins (pip install -e .), which registers the embedded cluster")
    provider: Any = found[0].load()
    profile = provider(Path(data_dir) if data_dir else None, quiet=quiet)
    if not isinstance(profile, ClusterProfile):
        raise ConfigError(f"the fallback cluster {found[0].value!r} did not give a cluster profile")
    return profile


def resolve_profile(
    name: str | None = None,
    *,
    endpoint: str | None = None,
    user: str | None = None,
    password: str | None = None,
    token: str | None = None,
    refresh_token: str | None = None,
    ssl_verify: bool | None = None,
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    quiet: bool = False,
) -> ClusterProfile:
    """Find the cluster to talk to (see the module docstring for the precedence).

    Raises:
        ProfileNotFound: ``name`` (or ``OSCAR_CLUSTER``) is not in the profile file.
        ConfigError: a profile is incomplete or the file is malformed.
    """
    env = os.environ if env is None else env
    if endpoint:
        entry = {"endpoint": endpoint, "auth_user": user, "auth_password": password, "oidc_token": token,
                 "oidc_refresh_token": refresh_token,
                 "ssl_verify": True if ssl_verify is None else ssl_verify}
        if not any((user, token, refresh_token)):  # credentials may still come from the environment
            for key, var in (("auth_user", "OSCAR_USER"), ("auth_password", "OSCAR_PASSWORD"),
                             ("oidc_token", "OSCAR_TOKEN"), ("oidc_refresh_token", "OSCAR_REFRESH_TOKEN")):
                entry[key] = env.get(var)
        return _profile_from_entry(name or "argument", entry, "arguments")
    if name is None:
        env_profile = _env_profile(env)
        if env_profile is not None:
            return env_profile
        name = env.get("OSCAR_CLUSTER") or None
    if name == LOCAL_PROFILE:
        return local_profile(quiet=quiet)
    file = path if path is not None else config_path(env)
    profiles, default = load_profiles(file)
    if name is None:
        name = default
        if name is None:
            return local_profile(quiet=quiet)
    if name not in profiles:
        known = ", ".join(sorted([*profiles, LOCAL_PROFILE]))
        raise ProfileNotFound(
            f"no cluster profile named {name!r} in {file}: known profiles are {known}. "
            f"Add one with 'oscar-plugins cluster add {name} --endpoint URL --user USER'"
        )
    profile = profiles[name]
    if ssl_verify is not None:
        profile = ClusterProfile(profile.name, profile.endpoint, profile.credentials, ssl_verify,
                                 profile.source)
    return profile
