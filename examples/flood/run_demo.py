"""The DT-Flood example end to end: ``python examples/flood/run_demo.py`` (what ``make demo`` runs).

Runs ``flood.cwl`` (one 1-in-100-year scenario) and then ``flood_scatter.cwl`` (several return periods
in parallel plus a comparison) through ``oscar-cwl``: the flood model step on OSCAR, the light steps
locally. With no cluster configured that is the embedded local cluster; ``--cluster PROFILE`` (an
oscar-cli profile) or ``OSCAR_ENDPOINT``/``OSCAR_USER``/``OSCAR_PASSWORD`` point it at a real one.
Shows one progress line per step, checks the physics (``checks.py``), and prints where the maps are.
Exit code 0 when the workflows succeeded and every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checks import Check, monotonic_checks, scenario_checks  # next to this script, which Python puts on sys.path

HERE = Path(__file__).resolve().parent
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SUBMITTED = re.compile(r"\[job (\S+)\] submitted to OSCAR cluster '([^']*)' as (\S+)")
_JOB_DONE = re.compile(r"\[job (\S+)\] completed (\w+)")
_STEP = re.compile(r"\[step (\S+)\] (start|completed \w+)")
_STEP_OUTPUT = re.compile(r"^(prepare|model|impact|compare): (?!\s*\d+% of)")


@dataclass
class Run:
    """One workflow run: its output object, wall time and the time any offloaded job was in flight."""

    name: str
    code: int = 1
    output: dict[str, Any] = field(default_factory=dict)
    wall: float = 0.0
    offloaded: list[tuple[float, float]] = field(default_factory=list)

    def offload_seconds(self) -> float:
        """Length of the union of the offloaded jobs' [submitted, completed] intervals."""
        total, end = 0.0, float("-inf")
        for a, b in sorted(self.offloaded):
            if b > end:
                total += b - max(a, end)
                end = b
        return total


def runner_command(args: argparse.Namespace) -> list[str]:
    """``oscar-cwl`` (or plain ``cwltool`` with ``--runner cwltool``) from this interpreter's environment."""
    bindir = Path(sys.executable).parent
    name = "oscar-cwl" if args.runner == "oscar-cwl" else "cwltool"
    exe = shutil.which(name, path=str(bindir)) or shutil.which(name)
    if exe is None:
        sys.exit(f"{name} not found: install the CWL runner with `pip install -e '.[cwl,examples]'` (or `make demo`)")
    cmd = [exe, "--no-container", "--parallel"]
    if args.runner == "oscar-cwl":
        cmd += ["--offload", "hinted"]
        if args.cluster:
            cmd += ["--oscar-cluster", args.cluster]
        if args.image:
            cmd += ["--overrides", str(image_overrides(args.image, args.output.resolve()))]
    return cmd


def image_overrides(image: str, out: Path) -> Path:
    """A cwltool overrides file that runs the model step in ``image`` instead of its DockerRequirement's
    (a mirror in a registry the cluster reaches, or an image built for an offline local cluster)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "image-overrides.json"
    model = (HERE / "tools" / "model.cwl").as_uri()
    path.write_text(json.dumps({"cwltool:overrides": {model: {"requirements": {
        "DockerRequirement": {"dockerPull": image}}}}}, indent=2) + "\n")
    return path


def run_workflow(name: str, cwl: str, params: list[str], outdir: Path, args: argparse.Namespace,
                 started: float) -> Run:
    """Run one workflow, echoing a progress line per step; the full log goes to ``<outdir>.log``."""
    run = Run(name)
    env = dict(os.environ)
    # Local steps run `python3`: make it this interpreter (numpy and matplotlib), as the local cluster does.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    cmd = [*runner_command(args), "--outdir", str(outdir), str(HERE / cwl), *params]
    outdir.parent.mkdir(parents=True, exist_ok=True)
    log_path = outdir.with_suffix(".log")
    submitted: dict[str, float] = {}
    t0 = time.monotonic()
    with log_path.open("w") as log, subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                                      stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None and proc.stdout is not None
        for raw in proc.stderr:
            line = _ANSI.sub("", raw.rstrip())
            log.write(line + "\n")
            now = time.monotonic()
            stamp = f"  [{now - started:6.1f}s]"
            if m := _SUBMITTED.search(line):
                submitted[m.group(1)] = now
                print(f"{stamp} {m.group(1)}: submitted to OSCAR cluster '{m.group(2)}' as {m.group(3)}", flush=True)
            elif (m := _JOB_DONE.search(line)) and m.group(1) in submitted:
                run.offloaded.append((submitted.pop(m.group(1)), now))
                print(f"{stamp} {m.group(1)}: OSCAR job {m.group(2)}", flush=True)
            elif m := _STEP.search(line):
                print(f"{stamp} step {m.group(1)}: {m.group(2)}", flush=True)
            elif args.verbose or _STEP_OUTPUT.match(line) or "ERROR" in line or "Traceback" in line:
                print(f"{stamp}   {line}", flush=True)
        stdout = proc.stdout.read()
        run.code = proc.wait()
    run.wall = time.monotonic() - t0
    try:
        run.output = json.loads(stdout) if stdout.strip() else {}
    except json.JSONDecodeError:
        run.output = {}
    if run.code != 0:
        print(f"  {name} failed (exit {run.code}); full log: {log_path}", flush=True)
    return run


def _paths(value: Any) -> list[Path]:
    items = value if isinstance(value, list) else [value]
    return [Path(item["path"]) for item in items]


def check(single: Run | None, scatter: Run | None) -> list[Check]:
    checks: list[Check] = []
    for run, keys in ((single, ("scenario", "flood", "model_summary")), (scatter, ("scenarios", "floods",
                                                                                    "model_summaries"))):
        if run is None or run.code != 0:
            continue
        for scenario, flood, summary in zip(*(_paths(run.output[k]) for k in keys), strict=True):
            checks += [dataclasses.replace(c, name=f"{run.name} {c.name}")
                       for c in scenario_checks(scenario, flood, summary)]
    if scatter is not None and scatter.code == 0:
        checks += monotonic_checks(_paths(scatter.output["impacts"]))
    return checks


def local_cluster_running() -> str | None:
    """The endpoint of the embedded local cluster's background server, when it runs."""
    from oscar_plugins.local import status

    info = status()
    return info.endpoint if info is not None else None


def cli_command() -> str:
    """How to call ``oscar-plugins`` from here: its name when it is on PATH (an activated venv), else its path."""
    exe = Path(sys.executable).parent / "oscar-plugins"
    if shutil.which("oscar-plugins") == str(exe):
        return "oscar-plugins"
    try:
        return str(exe.relative_to(Path.cwd()))
    except ValueError:
        return str(exe)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=80, help="cells per side of the 2 km domain (default 80: 25 m)")
    parser.add_argument("--return-period", type=float, default=100.0, help="of the single scenario (years)")
    parser.add_argument("--return-periods", type=float, nargs="+", default=[10.0, 50.0, 100.0],
                        help="of the scattered scenarios (years)")
    parser.add_argument("-o", "--output", type=Path, default=Path("flood-demo-output"), help="output directory")
    parser.add_argument("--cluster", help="oscar-cli profile of the OSCAR cluster (default: the usual precedence, "
                                          "else the embedded local cluster)")
    parser.add_argument("--runner", choices=("oscar-cwl", "cwltool"), default="oscar-cwl",
                        help="cwltool runs everything locally, for comparison")
    parser.add_argument("--only", choices=("single", "scatter"), help="run one of the two workflows")
    parser.add_argument("--image", help="run the model step in this image instead of tools/model.cwl's "
                                        "(it needs python3 with numpy; used when the cluster runs jobs in images)")
    parser.add_argument("-v", "--verbose", action="store_true", help="echo the runner's whole log")
    args = parser.parse_args(argv)

    out = args.output.resolve()
    local_before = local_cluster_running()
    started = time.monotonic()
    where = f"cluster profile '{args.cluster}'" if args.cluster else "the configured or embedded local cluster"
    print(f"DT-Flood example: flood model offloaded to OSCAR ({where}), {args.size}x{args.size} cells; "
          f"outputs in {out}", flush=True)
    single = scatter = None
    if args.only in (None, "single"):
        print(f"1. one scenario, T = {args.return_period:g} years (flood.cwl)", flush=True)
        single = run_workflow("flood.cwl", "flood.cwl", ["--return_period", str(args.return_period),
                                                         "--size", str(args.size)], out / "single", args, started)
    if args.only in (None, "scatter"):
        periods = [p for t in args.return_periods for p in ("--return_periods", f"{t:g}")]
        print(f"2. return periods {', '.join(f'{t:g}' for t in args.return_periods)} in parallel (flood_scatter.cwl)",
              flush=True)
        scatter = run_workflow("flood_scatter.cwl", "flood_scatter.cwl", [*periods, "--size", str(args.size)],
                               out / "scatter", args, started)

    checks = check(single, scatter)
    print("Physical checks:")
    for c in checks:
        print(f"  {c}")
    runs = [r for r in (single, scatter) if r is not None]
    total = time.monotonic() - started
    offloaded = sum(r.offload_seconds() for r in runs)
    print(f"Wall time {total:.0f} s; offloaded model steps in flight {offloaded:.0f} s "
          f"({100 * offloaded / total:.0f}%)")
    if single is not None and single.code == 0:
        print(f"Flood map (T = {args.return_period:g} years): {single.output['flood_map']['path']}")
    if scatter is not None and scatter.code == 0:
        print(f"Comparison of return periods:  {scatter.output['comparison_plot']['path']}")
        print(f"Flood maps per return period:  {out / 'scatter'}/flood_map_T*.png")
    ok = all(r.code == 0 for r in runs) and bool(checks) and all(c.ok for c in checks)
    print("Demo finished: all checks passed." if ok else "Demo FAILED: see the messages above.")
    if local_before is None and (endpoint := local_cluster_running()):
        print(f"The demo started the embedded local OSCAR cluster ({endpoint}); it keeps running in the background "
              f"so the next run starts faster. Stop it with: {cli_command()} local down")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
