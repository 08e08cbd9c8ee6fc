"""A scatter of N branches through oscar-cwl (local cluster) beside ``cwltool --parallel``; same results?

    python tests/cwl/bench_scatter.py [--branches 200] [--cluster local]

Prints the wall time of each and exits 1 when the output objects differ (locations aside).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from conftest import normalize  # noqa: E402

BIN = Path(sys.executable).parent


def _timed(cmd: list[str]) -> tuple[float, object]:
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{cmd[0]} failed with exit code {proc.returncode}")
    return elapsed, json.loads(proc.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--branches", type=int, default=200)
    parser.add_argument("--cluster", default="local")
    parser.add_argument("--max-in-flight", type=int, default=64)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="oscar-cwl-bench-"))
    job = work / "job.json"
    job.write_text(json.dumps({"items": [f"word{i:04d}" for i in range(args.branches)]}))
    wf = str(HERE / "data" / "scatter-wf.cwl")
    ours, ours_out = _timed([str(BIN / "oscar-cwl"), "--quiet", "--oscar-cluster", args.cluster, "--max-in-flight",
                             str(args.max_in_flight), "--outdir", str(work / "oscar"), wf, str(job)])
    ref, ref_out = _timed([str(BIN / "cwltool"), "--quiet", "--parallel", "--no-container", "--outdir",
                           str(work / "cwltool"), wf, str(job)])
    same = normalize(ours_out) == normalize(ref_out)
    print(f"{args.branches}-branch scatter: oscar-cwl (cluster {args.cluster!r}) {ours:.1f} s, "
          f"cwltool --parallel {ref:.1f} s; outputs identical: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
