"""Profiles: the oscar-cli file format, precedence, and secrets kept out of reprs and errors."""

from __future__ import annotations

import pytest
import yaml

from oscar_plugins import ConfigError, ProfileNotFound, resolve_profile
from oscar_plugins._auth import BasicCredentials, OidcAgentCredentials, RefreshTokenCredentials, TokenCredentials
from oscar_plugins._profiles import load_profiles, save_profile

CONFIG = {
    "oscar": {
        "prod": {"endpoint": "https://prod.example.org/", "auth_user": "oscar", "auth_password": "SENTINEL-P1",
                 "ssl_verify": True},
        "egi": {"endpoint": "https://egi.example.org", "oidc_refresh_token": "SENTINEL-R2"},
        "agent": {"endpoint": "https://agent.example.org", "oidc_account_name": "egi"},
        "tok": {"endpoint": "https://tok.example.org", "oidc_token": "SENTINEL-T3", "ssl_verify": False},
    },
    "default": "prod",
}


@pytest.fixture
def cfg(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


def test_reads_oscar_cli_file(cfg):
    profiles, default = load_profiles(cfg)
    assert default == "prod"
    assert profiles["prod"].endpoint == "https://prod.example.org"
    assert isinstance(profiles["prod"].credentials, BasicCredentials)
    assert isinstance(profiles["egi"].credentials, RefreshTokenCredentials)
    assert isinstance(profiles["agent"].credentials, OidcAgentCredentials)
    assert isinstance(profiles["tok"].credentials, TokenCredentials)
    assert profiles["tok"].ssl_verify is False
    assert "SENTINEL" not in repr(profiles) + str(profiles)


def test_precedence(cfg):
    env = {"OSCAR_CONFIG": str(cfg)}
    assert resolve_profile(env=env).name == "prod"  # the file's default
    assert resolve_profile("egi", env=env).name == "egi"  # explicit name
    assert resolve_profile(env={**env, "OSCAR_CLUSTER": "tok"}).name == "tok"  # environment names one
    from_env = resolve_profile(env={**env, "OSCAR_ENDPOINT": "https://env.example.org", "OSCAR_USER": "u",
                                    "OSCAR_PASSWORD": "SENTINEL-E4"})
    assert from_env.endpoint == "https://env.example.org" and from_env.source == "environment"
    explicit = resolve_profile(endpoint="https://arg.example.org", user="a", password="b",
                               env={**env, "OSCAR_ENDPOINT": "https://env.example.org"})
    assert explicit.endpoint == "https://arg.example.org"  # argument beats environment


def test_unknown_profile_lists_known(cfg):
    with pytest.raises(ProfileNotFound) as err:
        resolve_profile("nope", env={"OSCAR_CONFIG": str(cfg)})
    assert "prod" in str(err.value) and "cluster add" in str(err.value)


def test_incomplete_profiles(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"oscar": {"x": {"endpoint": "https://x", "auth_user": "u"}}}))
    with pytest.raises(ConfigError, match="auth_password is missing"):
        load_profiles(path)
    path.write_text(yaml.safe_dump({"oscar": {"x": {"auth_user": "u", "auth_password": "p"}}}))
    with pytest.raises(ConfigError, match="no endpoint"):
        load_profiles(path)
    path.write_text(yaml.safe_dump({"oscar": {"x": {"endpoint": "https://x"}}}))
    with pytest.raises(ConfigError, match="no credentials"):
        load_profiles(path)
    path.write_text("oscar: [broken")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_profiles(path)


def test_save_profile_private_and_compatible(tmp_path):
    path = tmp_path / "sub" / "config.yaml"
    save_profile("new", {"endpoint": "https://n", "auth_user": "u", "auth_password": "SENTINEL-5"}, path=path)
    assert path.stat().st_mode & 0o777 == 0o600
    data = yaml.safe_load(path.read_text())
    assert data["default"] == "new" and data["oscar"]["new"]["auth_user"] == "u"
