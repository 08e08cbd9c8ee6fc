"""Run the CWL v1.2 conformance suite through ``oscar-cwl`` (``make conformance``).

Every CommandLineTool is offloaded (``--offload all``) to the cluster named by ``--cluster``
(default: the embedded local cluster). Prints cwltest's summary line, the tests that did not pass,
and a verdict: success when at least ``--min-pass`` tests pass and every ``required`` test passes.

    python tests/cwl/conformance.py [--tags required] [-j 2] [--min-pass 362]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

SUITE = Path(__file__).resolve().parents[3] / "shared" / "cwl-v1.2"
BIN = Path(sys.executable).parent


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


def read_junit(path: Path) -> Outcome:
    """Classify every test case of a cwltest JUnit file (``class`` holds the tags, ``file`` the id)."""
    outcome = Outcome()
    for case in ET.parse(path).iter("testcase"):
        test_id = case.get("file") or case.get("name") or "?"
        tags = {t.strip() for t in (case.get("class") or "").split(",")}
        kinds = {child.tag for child in case}
        outcome.total += 1
        if "skipped" in kinds:
            outcome.unsupported.append(test_id)
        elif kinds & {"failure", "error"}:
            outcome.failed.append(test_id)
        else:
            outcome.passed.append(test_id)
            continue
        if "required" in tags:
            outcome.required_failed.append(test_id)
    return outcome


def run_suite(junit: Path, *, jobs: int = 2, tags: str | None = None, cluster: str | None = "local",
              suite: Path = SUITE, env: dict[str, str] | None = None, timeout: float | None = None) -> Outcome:
    """Run cwltest with ``oscar-cwl --offload all`` and read the outcome."""
    cmd = [str(BIN / "cwltest"), "--test", str(suite / "conformance_tests.yaml"), "--tool", str(BIN / "oscar-cwl"),
           "-j", str(jobs), "--junit-xml", str(junit), "--timeout", "600"]
    if tags:
        cmd += ["--tags", tags]
    cmd += ["--", "--offload", "all"]
    if cluster:
        cmd += ["--oscar-cluster", cluster]
    subprocess.run(cmd, cwd=suite, env=env, timeout=timeout, check=False)
    return read_junit(junit)


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
    args = parser.parse_args(argv)
    junit = args.junit_xml or Path(tempfile.mkdtemp(prefix="oscar-cwl-conformance-")) / "junit.xml"
    outcome = run_suite(junit, jobs=args.jobs, tags=args.tags, cluster=args.cluster, suite=args.suite)
    print(f"\noscar-cwl conformance: {outcome.summary()}")
    for label, ids in (("failed", outcome.failed), ("unsupported", outcome.unsupported)):
        if ids:
            print(f"  {label}: {', '.join(ids)}")
    required_ok = not outcome.required_failed
    print("  required tests: " + ("all passed" if required_ok else f"FAILED {', '.join(outcome.required_failed)}"))
    min_pass = min(args.min_pass, outcome.total)
    return 0 if required_ok and len(outcome.passed) >= min_pass else 1


if __name__ == "__main__":
    sys.exit(main())
