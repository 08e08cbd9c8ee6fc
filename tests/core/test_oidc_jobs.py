"""OIDC users on a cluster that answers as OSCAR's Go code does (job-owner labels, visibility, listings).

OSCAR lists to an OIDC user only the jobs labelled ``oscar.grycap/job-owner=<their uid>``, and ``/job``
sets that label only when the submit carries the user's own OIDC token (``job.go``, ``logs.go``): the
client must submit with it, not with the service token, or the user's jobs vanish from their listing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from oscar_plugins import AuthenticationError, Dispatcher, OscarClient, ServiceNotFound, service_from_dict
from oscar_plugins._auth import BasicCredentials, TokenCredentials
from oscar_plugins._profiles import ClusterProfile
from oscar_plugins.local import LocalCluster
from tests.servers import OidcIssuer, serve

SCRIPT = 'tr a-z A-Z < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/up.txt"'


@pytest.fixture(scope="module")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, OidcIssuer]]:
    issuer = OidcIssuer()
    with serve(issuer.app()) as url:
        issuer.url = url
        with LocalCluster(data_dir=tmp_path_factory.mktemp("oidc"), port=0, cpus=2, oidc_issuers=[url]) as lc:
            yield lc, issuer


def _user(lc: LocalCluster, token: str) -> OscarClient:
    return OscarClient(ClusterProfile("oidc", lc.endpoint, TokenCredentials(token), ssl_verify=False))


def test_an_oidc_users_jobs_are_theirs_and_visible_to_them(oidc, tmp_path: Path) -> None:
    lc, issuer = oidc
    with _user(lc, issuer.mint("0a1b2c3d@egi.eu")) as alice:
        svc = alice.ensure_service(service_from_dict({"name": "alice-svc", "image": "alpine", "script": SCRIPT,
                                                      "output": [{"path": "alice-svc/out"}]}))
        assert svc.owner == "0a1b2c3d@egi.eu" and svc.visibility == "private"
        (tmp_path / "in.txt").write_text("oidc")
        results = Dispatcher(alice).map("alice-svc", [[tmp_path / "in.txt"]] * 3, tmp_path / "out")
        assert all(r.ok for r in results), [r.error for r in results]
        assert {p.read_text() for r in results for p in r.outputs} == {"OIDC"}
        assert {r.job.name for r in results} <= set(alice.list_jobs("alice-svc"))

        # What happened before: the service token submits a job without the user's label ...
        with OscarClient(ClusterProfile("admin", lc.endpoint, BasicCredentials(lc.username, lc.password),
                                        ssl_verify=False)) as admin:
            before = set(admin.list_jobs("alice-svc"))
            token_job = httpx.post(f"{lc.endpoint}/job/alice-svc", content=b"eA==", timeout=30,
                                   headers={"Authorization": f"Bearer {svc.token}"})
            assert token_job.status_code == 201
            (by_token,) = set(admin.list_jobs("alice-svc")) - before  # the admin sees every job ...
        # ... but the user never sees it (from v3.6.5, when OSCAR began to label jobs with their owner)
        assert (by_token in alice.list_jobs("alice-svc")) == (not lc.persona.job_owner_label)


def test_another_user_is_told_what_oscar_means(oidc) -> None:
    lc, issuer = oidc
    v4 = lc.persona.version_tuple >= (4, 0, 0)  # read.go, logs.go changed their answers in v4.0
    with _user(lc, issuer.mint("bob")) as bob:
        # read.go: 403 from v4.0; before, the handler falls through and answers 200 with no body
        with pytest.raises(AuthenticationError, match="belongs to another user"):
            bob.ensure_service(service_from_dict({"name": "alice-svc", "image": "alpine", "script": "true"}))
        # logs.go: 200 with no body from v4.0; 403 with a text before
        with pytest.raises(AuthenticationError, match="empty body.*may not see service" if v4 else "another user"):
            bob.list_jobs("alice-svc")
        with pytest.raises(ServiceNotFound):
            bob.get_service("no-such-service")


def test_a_token_the_cluster_does_not_know_is_refused(oidc) -> None:
    lc, _ = oidc
    stranger = OidcIssuer()
    stranger.url = "https://issuer.example.org"
    with _user(lc, stranger.mint("mallory")) as mallory, pytest.raises(AuthenticationError):
        mallory.list_services()
