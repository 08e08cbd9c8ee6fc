"""Run the 3DGAN example end to end: ``.venv/bin/python examples/3dgan/run.py`` (from the repository root).

1. trains the generator for ~200 steps on CPU if there is no checkpoint yet (``training_pipeline``);
2. runs ``inference_pipeline`` with ``itwinai exec-pipeline``: its predictor runs on an OSCAR service
   (by default the embedded local cluster, started on demand; ``--cluster NAME`` for a real one);
3. runs ``inference_pipeline_local`` (the same predictor in-process) and compares the step times.

Outputs (showers, plots, sanity checks) go to ``examples/3dgan/gan3d-run/``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ITWINAI = Path(sys.executable).with_name("itwinai")
_EXECUTED = re.compile(r"'([^']+)' executed in ([0-9.]+)s")


def exec_pipeline(key: str, work_dir: Path, overrides: list[str]) -> dict[str, float]:
    """``itwinai exec-pipeline`` one pipeline of config.yaml; returns each step's time from its banners."""
    cmd = [str(ITWINAI), "exec-pipeline", "--config-path", str(HERE), "--config-name", "config",
           f"+pipe_key={key}", f"code_dir={HERE}", f"work_dir={work_dir}", *overrides]
    print(f"\n$ itwinai exec-pipeline ... +pipe_key={key}", flush=True)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, cwd=work_dir, env=env, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if not ln.startswith("#")]
    print("\n".join(lines[-12:]))
    if proc.returncode != 0:
        print(proc.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"pipeline {key} failed (exit code {proc.returncode})")
    return {name: float(sec) for name, sec in _EXECUTED.findall(proc.stdout)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cluster", help="oscar-cli profile of the cluster (default: env > profile > local)")
    parser.add_argument("--mode", default="auto", choices=["auto", "sync", "async"])
    parser.add_argument("--retrain", action="store_true", help="train even if a checkpoint exists")
    parser.add_argument("--work-dir", type=Path, default=HERE / "gan3d-run")
    args = parser.parse_args(argv)
    work_dir = args.work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    overrides = [f"mode={args.mode}"] + ([f"cluster={args.cluster}"] if args.cluster else [])

    if args.retrain or not (work_dir / "generator.pt").exists():
        start = time.perf_counter()
        exec_pipeline("training_pipeline", work_dir, overrides)
        print(f"training pipeline: {time.perf_counter() - start:.1f} s")
    remote = exec_pipeline("inference_pipeline", work_dir, overrides)
    local = exec_pipeline("inference_pipeline_local", work_dir, overrides)

    summary = json.loads((work_dir / "showers" / "summary.json").read_text())
    with np.load(work_dir / "showers" / "showers.npz") as a, np.load(work_dir / "showers-local" / "showers.npz") as b:
        same = bool(np.array_equal(a["showers"], b["showers"]))
    offloaded, in_process = remote.get("shower-generator@oscar"), local.get("shower-generator")
    print("\n== 3DGAN on OSCAR ==")
    print(f"showers: {summary['n_showers']} x {summary['shape']} -> {work_dir / 'showers'}")
    for png in sorted((work_dir / "showers").glob("*.png")):
        print(f"plot:    {png}")
    for check in summary["checks"]:
        print(f"{'PASS' if check['ok'] else 'FAIL'}  {check['what']}")
    print(f"{'PASS' if same else 'FAIL'}  offloaded showers are bit-identical to the in-process ones (same seed)")
    if offloaded is not None and in_process is not None:
        print(f"predictor step: offloaded {offloaded:.2f} s vs in-process {in_process:.2f} s")
    return 0 if summary["all_ok"] and same else 1


if __name__ == "__main__":
    sys.exit(main())
