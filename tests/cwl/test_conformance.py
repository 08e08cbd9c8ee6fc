"""CI gate: the ``required`` CWL v1.2 conformance tests pass with every CommandLineTool on OSCAR."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conformance import SUITE, read_junit, run_suite, with_engine

pytestmark = pytest.mark.slow


def test_read_junit_classifies_cases(tmp_path: Path):
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite name="c">'
        '<testcase name="a" class="required, command_line_tool" file="t1"/>'
        '<testcase name="b" class="required" file="t2"><failure message="x"/></testcase>'
        '<testcase name="c" class="docker" file="t3"><skipped message="unsupported"/></testcase>'
        '<testcase name="d" class="workflow" file="t4"><failure message="y"/></testcase>'
        "</testsuite></testsuites>")
    outcome = read_junit(junit)
    assert outcome.passed == ["t1"] and outcome.failed == ["t2", "t4"] and outcome.unsupported == ["t3"]
    assert outcome.required_failed == ["t2"]
    assert outcome.summary() == "1 tests passed, 2 failures, 1 unsupported features (of 4)"


@pytest.mark.skipif(not (SUITE / "conformance_tests.yaml").is_file(), reason=f"no CWL suite at {SUITE}")
@pytest.mark.timeout(1800)
def test_required_conformance_tests_pass_through_oscar(cluster_env: dict[str, str], tmp_path: Path):
    outcome = run_suite(tmp_path / "junit.xml", tags="required", cluster=None, env=cluster_env, timeout=1700)
    assert outcome.total >= 80, outcome.summary()
    assert not outcome.required_failed, outcome.summary()


@pytest.mark.skipif(not (SUITE / "conformance_tests.yaml").is_file(), reason=f"no CWL suite at {SUITE}")
@pytest.mark.timeout(2400)
def test_required_and_docker_conformance_tests_pass_in_containers(tmp_path: Path):
    """The same through a local cluster that runs every job in its image (podman; images built offline)."""
    from tests import engines

    problem = engines.reason("busybox", "podman", aliases=True)
    if problem:
        pytest.skip(f"no container can run here: {problem}")
    outcome, _ = with_engine("podman", tmp_path / "junit.xml", tags="required,docker", timeout=2200)
    assert outcome.total >= 90, outcome.summary()
    assert not outcome.required_failed, outcome.summary()
    assert not outcome.failed, outcome.summary()  # docker_entrypoint included
