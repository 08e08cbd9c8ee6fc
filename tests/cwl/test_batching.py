"""Short steps batched: several scatter branches in one OSCAR job (``--oscar-batch`` / ``oscar:Offload batch``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import normalize

pytestmark = pytest.mark.slow
_SUBMITTED = re.compile(r"\[job (\S+)\] submitted to OSCAR cluster '[^']*' as (\S+)/(\S+) \(command (\d+) of (\d+)")


def _batches(stderr: str) -> dict[str, list[str]]:
    """OSCAR job -> the CWL jobs (branches) it ran."""
    jobs: dict[str, list[str]] = {}
    for branch, _svc, job, _i, _n in _SUBMITTED.findall(stderr):
        jobs.setdefault(job, []).append(branch)
    return jobs


def test_ten_branches_run_in_three_jobs_with_the_same_results_as_cwltool(oscar_cwl, cwltool):
    words = [f"w{i}x" for i in range(10)]
    args = ["scatter-wf.cwl", *[a for w in words for a in ("--items", w)]]
    ours = oscar_cwl("--oscar-batch", "4", *args)
    ref = cwltool(*args)
    assert ours.code == 0, ours.stderr
    assert normalize(ours.out) == normalize(ref.out)
    assert [Path(f["path"]).read_text() for f in ours.out["results"]] == [w.upper() + "\n" for w in words]
    batches = _batches(ours.stderr)
    assert sorted(len(b) for b in batches.values()) == [2, 4, 4], batches  # 10 branches, 3 pod starts
    assert sum(len(b) for b in batches.values()) == 10


def test_a_failed_branch_is_reported_as_that_branch_and_the_others_are_kept(oscar_cwl):
    run = oscar_cwl("scatter-batch-wf.cwl", "--items", "one", "--items", "bad", "--items", "three",
                    "--items", "four")
    assert run.code != 0
    batches = _batches(run.stderr)
    assert sorted(len(b) for b in batches.values()) == [1, 3]  # the hint's batch: 3
    failed = re.findall(r"\[job (\S+)\] completed permanentFail", run.stderr)
    ok = re.findall(r"\[job (\S+)\] completed success", run.stderr)
    assert len(failed) == 1 and len(ok) == 3, run.stderr[-3000:]
    assert re.search(rf"\[job {re.escape(failed[0])}\] exited with status: 3", run.stderr)
    assert "bad word" in run.stderr  # the failed branch's own stderr, not the others'
