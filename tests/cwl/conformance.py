"""Run the CWL v1.2 conformance suite through ``oscar-cwl`` (``make conformance``).

Every CommandLineTool is offloaded (``--offload all``) to the cluster named by ``--cluster``
(default: the embedded local cluster). Prints cwltest's summary line, the tests that did not pass,
and a verdict: success when at least ``--min-pass`` tests pass and every ``required`` test passes.

With ``--engine podman`` the jobs run in their images: a local cluster with that engine is started for
the run, the images the suite names are built offline and tagged under those names (``tests/engines.py``:
this shadows them in the engine's storage, so use it on test machines), tools without
``DockerRequirement`` get ``--default-container`` (python:3-slim's stand-in), and ``--compare`` runs
``cwltool --podman`` on the same images in the same run.

    python tests/cwl/conformance.py [--tags required] [-j 2] [--min-pass 362]
    python tests/cwl/conformance.py --engine podman --compare
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

SUITE = Path(__file__).resolve().parents[3] / "shared" / "cwl-v1.2"
BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
#: The image of tools without DockerRequirement in a run with containers (cwltool's and oscar-cwl's).
DEFAULT_CONTAINER = "docker.io/library/python:3-slim"


@dataclass
class Outcome:
    """What a cwltest run gave, read from its JUnit file."""

    total: int = 0
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    required_failed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{len(self.passed)} tests passed, {len(self.failed)} failures, "
                f"{len(self.unsupported)} unsupported features (of {self.total})")


def read_junit(path: Path, also_failed: Collection[str] = ()) -> Outcome:
    """Classify every test case of a cwltest JUnit file (``class`` holds the tags, ``file`` the id).

    ``also_failed``: ids cwltest's log says failed. Its JUnit file records a ``should_fail`` test that
    returned zero as passed (cwltool's ``timelimit`` tests with podman as docker showed it)."""
    outcome = Outcome()
    for case in ET.parse(path).iter("testcase"):
        test_id = case.get("file") or case.get("name") or "?"
        tags = {t.strip() for t in (case.get("class") or "").split(",")}
        kinds = {child.tag for child in case}
        outcome.total += 1
        if "skipped" in kinds:
            outcome.unsupported.append(test_id)
        elif kinds & {"failure", "error"} or test_id in also_failed:
            outcome.failed.append(test_id)
        else:
            outcome.passed.append(test_id)
            continue
        if "required" in tags:
            outcome.required_failed.append(test_id)
    return outcome


def run_suite(junit: Path, *, jobs: int = 2, tags: str | None = None, cluster: str | None = "local",
              suite: Path = SUITE, env: dict[str, str] | None = None, timeout: float | None = None,
              tool_args: list[str] | None = None, tool: str = "oscar-cwl") -> Outcome:
    """Run cwltest with ``oscar-cwl --offload all`` (or ``tool`` with ``tool_args``) and read the outcome."""
    cmd = [str(BIN / "cwltest"), "--test", str(suite / "conformance_tests.yaml"), "--tool", str(BIN / tool),
           "-j", str(jobs), "--junit-xml", str(junit), "--timeout", "600"]
    if tags:
        cmd += ["--tags", tags]
    if tool == "oscar-cwl":
        cmd += ["--", "--offload", "all", *(tool_args or [])]
        if cluster:
            cmd += ["--oscar-cluster", cluster]
    elif tool_args:
        cmd += ["--", *tool_args]
    return read_junit(junit, also_failed=_run_echoing(cmd, suite, env, timeout))


_NUMBERED = re.compile(r"^Test \[(\d+)/\d+\] ([^:\s]+)")
_FAILED = re.compile(r"^Test (\d+) failed: ")


def _run_echoing(cmd: list[str], cwd: Path, env: dict[str, str] | None, timeout: float | None) -> set[str]:
    """Run cwltest, echoing its log; the ids of the tests its log says failed."""
    names: dict[str, str] = {}
    failed: set[str] = set()
    with subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout if timeout else None
        for line in proc.stdout:
            sys.stdout.write(line)
            if m := _NUMBERED.match(line):
                names[m.group(1)] = m.group(2)
            elif m := _FAILED.match(line):
                failed.add(m.group(1))
            if deadline is not None and time.monotonic() > deadline:
                proc.kill()
                raise subprocess.TimeoutExpired(cmd, timeout or 0)
        proc.wait()
    sys.stdout.flush()
    return {names.get(n, n) for n in failed}


def report(label: str, outcome: Outcome, seconds: float) -> None:
    print(f"\n{label}: {outcome.summary()} in {seconds / 60:.1f} min")
    for kind, ids in (("failed", outcome.failed), ("unsupported", outcome.unsupported)):
        if ids:
            print(f"  {kind}: {', '.join(ids)}")


def with_engine(engine: str, junit: Path, *, jobs: int = 2, tags: str | None = None, suite: Path = SUITE,
                timeout: float | None = None) -> tuple[Outcome, float]:
    """The run with containers: a local cluster with ``engine``, the suite's images built offline.

    Raises:
        SystemExit: no container can run here (the reason).
    """
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from oscar_plugins.local import LocalCluster
    from tests import engines

    problem = engines.reason("busybox", engine, aliases=True)
    if problem:
        raise SystemExit(f"no container can run here: {problem}")
    with LocalCluster(data_dir=Path(tempfile.mkdtemp(prefix="oscar-cwl-conformance-cluster-")), port=0,
                      engine=engine) as lc:
        env = dict(os.environ, OSCAR_ENDPOINT=lc.endpoint, OSCAR_USER=lc.username, OSCAR_PASSWORD=lc.password,
                   OSCAR_SSL_VERIFY="false")
        start = time.monotonic()
        outcome = run_suite(junit, jobs=jobs, tags=tags, cluster=None, suite=suite, env=env, timeout=timeout,
                            tool_args=["--default-container", DEFAULT_CONTAINER])
        return outcome, time.monotonic() - start


def reference_env(engine: str) -> tuple[dict[str, str], str]:
    """cwltool's docker code path run by ``engine``: ``cwltool --podman`` adds ``--userns=keep-id``, which
    podman refuses to root ("keep-id is only supported in rootless mode"), so as root a ``docker`` that is
    podman (what Debian's podman-docker package installs) stands in."""
    env = dict(os.environ)
    if engine == "podman":
        shim = Path(tempfile.mkdtemp(prefix="oscar-cwl-docker-is-podman-"))
        (shim / "docker").write_text('#!/bin/sh\nexec podman "$@"\n')
        (shim / "docker").chmod(0o755)
        env["PATH"] = f"{shim}{os.pathsep}{env.get('PATH', '')}"
        return env, "cwltool (docker = podman)"
    return env, "cwltool --docker"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-j", "--jobs", type=int, default=2, help="tests run at once (default: 2)")
    parser.add_argument("--tags", help="only tests with these tags, e.g. 'required'")
    parser.add_argument("--min-pass", type=int, default=362, help="tests that must pass (default: 362, what "
                        "plain 'cwltool --no-container' passes on a 2-core machine)")
    parser.add_argument("--cluster", default=os.environ.get("OSCAR_CWL_CONFORMANCE_CLUSTER", "local"),
                        help="cluster profile (default: local, the embedded local cluster)")
    parser.add_argument("--suite", type=Path, default=SUITE, help=f"the suite's folder (default: {SUITE})")
    parser.add_argument("--junit-xml", type=Path, help="keep cwltest's JUnit report here")
    parser.add_argument("--engine", choices=("podman", "docker"), help="run the jobs in their images with this "
                        "engine (a local cluster started for the run; the suite's images built offline)")
    parser.add_argument("--compare", action="store_true", help="with --engine: also run 'cwltool --ENGINE' on "
                        "the same images and print both")
    args = parser.parse_args(argv)
    junit = args.junit_xml or Path(tempfile.mkdtemp(prefix="oscar-cwl-conformance-")) / "junit.xml"
    if args.engine:
        outcome, seconds = with_engine(args.engine, junit, jobs=args.jobs, tags=args.tags, suite=args.suite)
    else:
        start = time.monotonic()
        outcome = run_suite(junit, jobs=args.jobs, tags=args.tags, cluster=args.cluster, suite=args.suite)
        seconds = time.monotonic() - start
    report("oscar-cwl conformance" + (f" with {args.engine}" if args.engine else ""), outcome, seconds)
    if args.engine and args.compare:
        start = time.monotonic()
        ref_env, label = reference_env(args.engine)
        ref = run_suite(junit.with_name("cwltool.xml"), jobs=args.jobs, tags=args.tags, suite=args.suite,
                        env=ref_env, tool="cwltool", tool_args=["--default-container", DEFAULT_CONTAINER])
        report(f"{label}, same images", ref, time.monotonic() - start)
        only_ref = sorted(set(ref.passed) - set(outcome.passed))
        print(f"  passed by cwltool only: {', '.join(only_ref) or 'none'}")
    required_ok = not outcome.required_failed
    print("  required tests: " + ("all passed" if required_ok else f"FAILED {', '.join(outcome.required_failed)}"))
    min_pass = min(args.min_pass, outcome.total)
    return 0 if required_ok and len(outcome.passed) >= min_pass else 1


if __name__ == "__main__":
    sys.exit(main())
