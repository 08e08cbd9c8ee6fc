"""Every core case of the bad-input catalogue: a message naming the problem and the fix, no traceback,
non-zero exit from the CLI, and nothing lost. The adapters' cases run in their own suites; a test here
checks that each of them is used there."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest
import yaml

from oscar_plugins import Dispatcher, Job, JobSpec, OscarClient, OscarError, service_from_dict
from oscar_plugins._auth import OidcAgentCredentials, RefreshTokenCredentials
from oscar_plugins._sync import _unzip
from tests.reliability.catalogue import ADAPTER_CASES, CASES, CORE, CORE_CASES, counts, expect, markdown

ROOT = Path(__file__).resolve().parents[2]
GOOD_SVC = {"name": "bad-in", "image": "alpine", "script": 'cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/out"',
            "output": [{"storage_provider": "minio.default", "path": "bad-in/out"}]}


@pytest.fixture(scope="module")
def cfg(local_cluster, tmp_path_factory):
    d = tmp_path_factory.mktemp("badcfg")
    path = d / "config.yaml"
    path.write_text(yaml.safe_dump({"oscar": {"t": {"endpoint": local_cluster.endpoint,
                                                    "auth_user": local_cluster.username,
                                                    "auth_password": local_cluster.password,
                                                    "ssl_verify": False}}, "default": "t"}))
    return path


def cli(cfg: Path, *args: str, env: dict | None = None) -> tuple[int, str]:
    full = {**os.environ, "OSCAR_CONFIG": str(cfg), **(env or {})}
    out = subprocess.run([sys.executable, "-m", "oscar_plugins.cli", "-q", *args], capture_output=True, text=True,
                         env=full, timeout=120)
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode != 0
    return out.returncode, out.stderr


def fdl(tmp: Path, service: dict | str) -> Path:
    path = tmp / "fdl.yaml"
    text = service if isinstance(service, str) else yaml.safe_dump({"functions": {"oscar": [{"t": service}]}})
    path.write_text(text)
    return path


def svc(**changes):
    data = {"name": "bad-svc", "image": "alpine", "script": "true", **changes}
    return {k: v for k, v in data.items() if v is not None}


def library_error(fn) -> str:
    with pytest.raises((OscarError, ValueError)) as err:
        fn()
    return str(err.value)


def run_case(case_id: str, cfg: Path, tmp: Path, client: OscarClient, lc) -> str:
    if case_id == "fdl-yaml":
        return cli(cfg, "service", "apply", str(fdl(tmp, "functions: [broken")))[1]
    if case_id == "fdl-shape":
        return cli(cfg, "service", "apply", str(fdl(tmp, "services: []\n")))[1]
    if case_id == "fdl-name":
        return cli(cfg, "service", "apply", str(fdl(tmp, svc(name="Bad_Name"))))[1]
    if case_id == "fdl-name-long":
        return cli(cfg, "service", "apply", str(fdl(tmp, svc(name="a" * 40))))[1]
    if case_id == "fdl-image":
        return cli(cfg, "service", "apply", str(fdl(tmp, svc(image=None))))[1]
    if case_id == "fdl-script-file":
        return cli(cfg, "service", "apply", str(fdl(tmp, svc(script="scripts/missing.sh"))))[1]
    if case_id == "fdl-script-empty":
        return library_error(lambda: service_from_dict(svc(script="  ")))
    if case_id == "fdl-memory":
        return cli(cfg, "service", "apply", str(fdl(tmp, svc(memory="lots"))))[1]
    if case_id == "fdl-cpu":
        return library_error(lambda: service_from_dict(svc(cpu="abc")))
    if case_id == "fdl-missing-file":
        return cli(cfg, "service", "apply", str(tmp / "nope.yaml"))[1]
    if case_id == "profile-unknown":
        return cli(cfg, "--cluster", "nope", "service", "list")[1]
    if case_id == "profile-no-password":
        bad = tmp / "c.yaml"
        bad.write_text(yaml.safe_dump({"oscar": {"x": {"endpoint": lc.endpoint, "auth_user": "u"}}, "default": "x"}))
        return cli(bad, "service", "list")[1]
    if case_id == "profile-yaml":
        bad = tmp / "c.yaml"
        bad.write_text("oscar: [broken")
        return cli(bad, "service", "list")[1]
    if case_id == "cred-wrong":
        return cli(cfg, "service", "list", env={"OSCAR_ENDPOINT": lc.endpoint, "OSCAR_USER": "oscar",
                                                "OSCAR_PASSWORD": "wrong-password", "OSCAR_SSL_VERIFY": "false"})[1]
    if case_id == "cred-expired-token":
        return cli(cfg, "service", "list", env={"OSCAR_ENDPOINT": lc.endpoint, "OSCAR_TOKEN": "expired.jwt.token",
                                                "OSCAR_SSL_VERIFY": "false"})[1]
    if case_id == "cred-refresh-no-issuer":
        return library_error(lambda: RefreshTokenCredentials("opaque").resolved_token_endpoint())
    if case_id == "cred-oidc-agent":
        def call():
            with httpx.Client(auth=OidcAgentCredentials("egi").auth(), transport=httpx.MockTransport(
                    lambda r: httpx.Response(200))) as http:
                http.get("http://x/")
        old = os.environ.get("PATH", "")
        os.environ["PATH"] = "/nonexistent"
        try:
            return library_error(call)
        finally:
            os.environ["PATH"] = old
    if case_id == "endpoint-unreachable":
        return cli(cfg, "service", "list", env={"OSCAR_ENDPOINT": "http://127.0.0.1:9", "OSCAR_USER": "u",
                                                "OSCAR_PASSWORD": "p"})[1]
    if case_id == "endpoint-tls":
        https = lc.endpoint.replace("http://", "https://")
        return cli(cfg, "service", "list", env={"OSCAR_ENDPOINT": https, "OSCAR_USER": "u", "OSCAR_PASSWORD": "p"})[1]
    if case_id == "service-missing-run":
        return cli(cfg, "run", "nope-svc", str(ROOT / "README.md"))[1]
    if case_id == "service-missing-get":
        return cli(cfg, "service", "get", "nope-svc")[1]
    if case_id == "input-missing-run":
        client.ensure_service(service_from_dict(GOOD_SVC))
        return cli(cfg, "run", "bad-in", str(tmp / "missing.txt"))[1]
    if case_id == "input-missing-job":
        return cli(cfg, "job", "bad-in", str(tmp / "missing.txt"), "--wait")[1]
    if case_id == "output-exists":
        client.ensure_service(service_from_dict(GOOD_SVC))
        target = tmp / "exists.txt"
        target.write_text("keep me")
        msg = cli(cfg, "run", "bad-in", str(ROOT / "README.md"), "-o", str(target))[1]
        assert target.read_text() == "keep me"  # nothing lost
        return msg
    if case_id == "json-invalid":
        return cli(cfg, "run", "bad-in", "--json", "{not json")[1]
    if case_id == "env-malformed":
        return cli(cfg, "job", "bad-in", str(ROOT / "README.md"), "--env", "NOEQUALS")[1]
    if case_id == "inputs-collide":
        a, b = tmp / "a" / "same.txt", tmp / "b" / "same.txt"
        for p in (a, b):
            p.parent.mkdir()
            p.write_text("x")
        client.ensure_service(service_from_dict(GOOD_SVC))
        return library_error(lambda: Dispatcher(client).submit("bad-in", [a, b]))
    if case_id == "payload-too-large":
        client.ensure_service(service_from_dict({**GOOD_SVC, "name": "bad-raw"}), wrap=False)
        return library_error(lambda: Dispatcher(client).submit("bad-raw", payload=b"x" * (8 << 20)))
    if case_id == "job-body-oversized":
        client.ensure_service(service_from_dict(GOOD_SVC))
        r = httpx.post(f"{lc.endpoint}/job/bad-in", content=b"QUFB" * (300_000), timeout=60,
                       headers={"Authorization": f"Bearer {client.service_token('bad-in')}",
                                "X-Delegated-Job-ID": "bad-in-oversized"})
        assert r.status_code == 201  # job.go reads any body; the kernel refuses it when the pod starts
        dispatcher = Dispatcher(client)
        (job,) = dispatcher.tracker.wait([Job("bad-in", "bad-in-oversized")], timeout=60)
        return library_error(lambda: dispatcher.collect(job, tmp / "never"))
    if case_id in ("reserved-json", "non-utf8"):
        client.ensure_service(service_from_dict(GOOD_SVC))
        data = {"Records": [1], "event": "x"} if case_id == "reserved-json" else bytes(range(256)) * 3
        got = client.run("bad-in", data).data
        expected = b'{"Records": [1], "event": "x"}' if case_id == "reserved-json" else data
        assert got == expected
        return "delivered unchanged"
    if case_id == "empty-input":
        client.ensure_service(service_from_dict(GOOD_SVC))
        empty = tmp / "empty.txt"
        empty.write_bytes(b"")
        (res,) = Dispatcher(client).map("bad-in", [JobSpec([empty])], tmp / "out")
        assert res.ok and res.outputs[0].read_bytes() == b""
        return "delivered unchanged"
    if case_id == "key-traversal":
        r = httpx.get(f"{lc.endpoint}/system/services/..%2Fetc", auth=(lc.username, lc.password))
        r2 = httpx.get(f"{lc.endpoint}/system/logs/..%2F..%2Fetc/passwd", auth=(lc.username, lc.password))
        assert r.status_code in (400, 404) and r2.status_code in (400, 404)
        return "rejected"
    if case_id == "zip-traversal":
        archive = tmp / "evil.zip"
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("../evil", "x")
        archive.write_bytes(buf.getvalue())
        msg = library_error(lambda: _unzip(archive, tmp / "dest", False))
        assert not (tmp / "evil").exists()
        return msg
    if case_id == "disk-full":
        code = (
            "import resource, signal, sys\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "from oscar_plugins import OscarClient, OscarError\n"
            "from oscar_plugins._profiles import resolve_profile\n"
            "c = OscarClient(resolve_profile())\n"
            "c.storage.client.put_object(Bucket='bad-in', Key='out/big', Body=b'x' * (2 << 20))\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n"
            "try:\n"
            f"    dest = __import__('pathlib').Path({str(tmp)!r}) / 'big'\n"
            "    c.storage.download('bad-in', 'out/big', dest, size=2 << 20)\n"
            "except OscarError as e:\n"
            "    print(e); sys.exit(1)\n"
        )
        client.ensure_service(service_from_dict(GOOD_SVC))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "OSCAR_CONFIG": str(cfg)})
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        assert not list(tmp.glob("*big*"))  # no partial file left
        return out.stdout
    if case_id == "script-terminator":
        return library_error(lambda: client.ensure_service(service_from_dict(
            svc(script="echo\n__OSCAR_PLUGINS_USER_SCRIPT_END__\n"))))
    if case_id == "expect-mismatch":
        client.ensure_service(service_from_dict({**GOOD_SVC, "name": "bad-text", "script": "echo hello"}))
        return library_error(lambda: client.run("bad-text", b"x", expect="zip"))
    raise AssertionError(f"no runner for case {case_id}")


@pytest.mark.parametrize("case", CORE_CASES, ids=[c.id for c in CORE_CASES])
def test_bad_input(case, cfg, tmp_path, client, local_cluster):
    message = run_case(case.id, cfg, tmp_path, client, local_cluster)
    assert case.expect in message, f"{case.id}: {message!r}"
    assert local_cluster.password not in message


def test_catalogue_is_large_and_documented():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES), "duplicate case ids"
    assert all(n >= 8 for suite, n in counts().items() if suite != CORE), counts()
    doc = (ROOT / "docs" / "RELIABILITY.md").read_text()
    missing = [c.id for c in CASES if f"`{c.id}`" not in doc]
    assert not missing, f"docs/RELIABILITY.md lacks {missing}: paste `python -m tests.reliability.catalogue`"
    assert markdown() in doc, "docs/RELIABILITY.md's table is stale: paste `python -m tests.reliability.catalogue`"
    n = counts()
    figures = [f"**{len(CASES)} cases**", f"{n[CORE]} of the core", f"{n['tests/cwl']} of `oscar-cwl`",
               f"{n['tests/airflow']} of the Airflow operators", f"{n['tests/itwinai']} of the itwinai"]
    prose = " ".join(doc.split())
    assert all(f in prose for f in figures), f"update the counts in docs/RELIABILITY.md: {figures}"


def _uses(source: str, case_id: str) -> bool:
    """The source takes the case's words from the catalogue: ``expect("<id>")``."""
    return re.search(rf"""\bexpect\(\s*["']{re.escape(case_id)}["']\s*\)""", source) is not None


def test_every_adapter_case_is_exercised_by_a_test_of_its_suite():
    """A case cannot sit in the table untested: some test module of its suite asserts ``expect(id)``."""
    missing = []
    for case in ADAPTER_CASES:
        sources = [p.read_text() for p in (ROOT / case.suite).rglob("test_*.py")]
        assert sources, f"no test modules in {case.suite}"
        if not any(_uses(src, case.id) for src in sources):
            missing.append(f"{case.id} ({case.suite})")
    assert not missing, f"catalogue cases no test uses with expect(id): {missing}"


def test_coverage_check_can_fail():
    assert _uses('assert expect("cwl-dockerfile") in run.stderr', "cwl-dockerfile")
    assert not _uses('assert "cwl-dockerfile" in run.stderr', "cwl-dockerfile")
    assert not _uses('expect("cwl-dockerfile-x")', "cwl-dockerfile")
    assert expect("fdl-yaml") == "not valid YAML at line"
    with pytest.raises(KeyError):
        expect("no-such-case")
