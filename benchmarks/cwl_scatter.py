"""Figure 6: a scatter of N short branches through oscar-cwl beside ``cwltool --parallel``; same results?

    python -m benchmarks.cwl_scatter [--branches 200] [--cluster local]

Prints the wall time of each and exits 1 when the output objects differ (locations aside). ``make bench``
runs it against the benchmark's own local cluster (passed through the OSCAR_* environment variables).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from tests.cwl.conftest import normalize

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "tests" / "cwl" / "data" / "scatter-wf.cwl"
BIN = Path(sys.executable).parent


def _timed(cmd: list[str], env: Mapping[str, str] | None) -> tuple[float, object]:
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{cmd[0]} failed with exit code {proc.returncode}")
    return elapsed, json.loads(proc.stdout)


def scatter(branches: int, work: Path, *, cluster: str | None = None, env: Mapping[str, str] | None = None,
            max_in_flight: int = 64, batch: int = 1) -> tuple[float, float, bool]:
    """Run the scatter both ways; returns (oscar-cwl seconds, cwltool --parallel seconds, outputs identical).

    ``batch``: oscar-cwl's ``--oscar-batch`` (branches per OSCAR job)."""
    work.mkdir(parents=True, exist_ok=True)
    job = work / "job.json"
    job.write_text(json.dumps({"items": [f"word{i:04d}" for i in range(branches)]}))
    full_env = {**os.environ, **(env or {})}
    target = ["--oscar-cluster", cluster] if cluster else []
    ours, ours_out = _timed([str(BIN / "oscar-cwl"), "--quiet", *target, "--max-in-flight", str(max_in_flight),
                             "--oscar-batch", str(batch), "--outdir", str(work / "oscar"), str(WORKFLOW), str(job)],
                            full_env)
    ref, ref_out = _timed([str(BIN / "cwltool"), "--quiet", "--parallel", "--no-container", "--outdir",
                           str(work / "cwltool"), str(WORKFLOW), str(job)], full_env)
    return ours, ref, normalize(ours_out) == normalize(ref_out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--branches", type=int, default=200)
    parser.add_argument("--cluster", default="local")
    parser.add_argument("--max-in-flight", type=int, default=64)
    parser.add_argument("--oscar-batch", type=int, default=1, help="branches per OSCAR job (oscar-cwl --oscar-batch)")
    args = parser.parse_args(argv)
    ours, ref, same = scatter(args.branches, Path(tempfile.mkdtemp(prefix="oscar-cwl-bench-")), cluster=args.cluster,
                              max_in_flight=args.max_in_flight, batch=args.oscar_batch)
    print(f"{args.branches}-branch scatter: oscar-cwl (cluster {args.cluster!r}, --oscar-batch {args.oscar_batch}) "
          f"{ours:.1f} s, "
          f"cwltool --parallel {ref:.1f} s; outputs identical: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
