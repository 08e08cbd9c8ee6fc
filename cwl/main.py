"""``oscar-cwl``: cwltool with CommandLineTools offloaded to OSCAR.

Every cwltool option works as in cwltool; the OSCAR options are listed under "OSCAR" in ``--help``.
The run is cwltool's own ``main()`` with our loading context (tool factory), runtime context
(settings and cluster sessions), executor and extension schema.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from types import FrameType

from cwltool import main as cwlmain
from cwltool.argparser import arg_parser
from cwltool.process import supportedProcessRequirements, use_custom_schema

from . import crate
from .executor import OscarExecutor
from .fsaccess import OscarFsAccess
from .hints import OFFLOAD, extension_schema
from .session import Sessions
from .timeline import StepTimeline
from .tool import DEFAULT_IMAGE, OFFLOAD_MODES, OscarLoadingContext, OscarRuntimeContext, OscarSettings

__all__ = ["build_parser", "main", "register_schema"]

_logger = logging.getLogger("cwltool")
_VERSIONS = {"v1.0": "extensions.yml", "v1.1": "extensions-v1.1.yml", "v1.2": "extensions-v1.2.yml",
             "v1.3.0-dev1": "extensions-v1.3.yml", "v1.2.0-dev1": "extensions-v1.1.yml",
             "v1.2.0-dev2": "extensions-v1.1.yml", "v1.2.0-dev3": "extensions-v1.1.yml"}


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    """cwltool's parser plus the OSCAR options."""
    parser = arg_parser()
    parser.prog = "oscar-cwl"
    parser.description = "Run CWL workflows with CommandLineTools offloaded to OSCAR serverless clusters."
    group = parser.add_argument_group("OSCAR")
    group.add_argument("--oscar-cluster", metavar="PROFILE", default=None,
                       help="cluster profile for offloaded steps, checked (it exists and answers) before any "
                            "step runs (default: OSCAR_ENDPOINT/OSCAR_CLUSTER, the default of "
                            "~/.oscar-cli/config.yaml, else the embedded local cluster)")
    group.add_argument("--offload", choices=OFFLOAD_MODES, default="all",
                       help="which CommandLineTools run on OSCAR: all (unless their oscar:Offload hint says "
                            "offload: false), only those with an oscar:Offload hint, or none (default: all)")
    group.add_argument("--max-in-flight", type=_positive, default=64, metavar="N",
                       help="offloaded jobs on the cluster at once, at most (default: 64)")
    group.add_argument("--oscar-batch", type=_positive, default=1, metavar="N",
                       help="run up to N jobs of one tool (e.g. scatter branches) in one OSCAR job, one after the "
                            "other: one pod start and one staging round for N short commands, each branch's "
                            "outputs, exit code and log kept apart. Helps when steps are much shorter than a pod "
                            "start; a tool's oscar:Offload hint 'batch:' wins (default: 1, each job its own)")
    group.add_argument("--oscar-image", metavar="IMAGE", default=None,
                       help="image for offloaded tools without DockerRequirement (default: --default-container "
                            f"if given, else {DEFAULT_IMAGE})")
    group.add_argument("--oscar-start-timeout", type=float, default=0, metavar="SECONDS",
                       help="fail an offloaded job still Pending after this long, e.g. because its image "
                            "cannot be pulled (default: 0, wait for ever)")
    group.add_argument("--oscar-keep-jobs", action="store_true",
                       help="keep finished jobs (and their logs) on the cluster instead of deleting them")
    group.add_argument("--timeline", metavar="PATH", default=None,
                       help="draw when each step queued, ran (offloaded or local) and was collected, with CPU-hours "
                            "and bytes moved, into PATH: .html (a page a browser opens offline) or .png (needs "
                            "matplotlib); checked before any step runs")
    group.add_argument("--ro-crate", metavar="PATH", default=None,
                       help="also write the run as a Workflow Run RO-Crate (a folder, or a .zip), with where each "
                            "offloaded step ran; made from the --provenance research object (a temporary one "
                            "without --provenance)")
    return parser


def register_schema(enable_ext: bool) -> None:
    """Make ``oscar:Offload`` a known hint/requirement (``--strict`` documents validate)."""
    for version, ext_file in _VERSIONS.items():
        name = "http://commonwl.org/cwltool" if enable_ext else OFFLOAD.split("#")[0]
        use_custom_schema(version, name, extension_schema(ext_file if enable_ext else None))
    if OFFLOAD not in supportedProcessRequirements:
        supportedProcessRequirements.append(OFFLOAD)


@contextlib.contextmanager
def _cancel_on_signals(sessions: Sessions) -> Iterator[None]:
    """Ctrl-C / SIGTERM: delete the OSCAR jobs in flight, stop local processes, then unwind."""
    seen: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        if seen:  # a second signal while cleaning up: leave now
            os._exit(130 if signum == signal.SIGINT else signum)
        seen.append(signum)
        cancelled = sessions.cancel_all()
        _logger.error("Interrupted by %s: cancelled %d OSCAR job(s) in flight", signal.Signals(signum).name,
                      cancelled)
        cwlmain._terminate_processes()
        # SystemExit, not an Exception: cwltool's main must not turn the interrupt into a job failure.
        raise SystemExit(130 if signum == signal.SIGINT else signum)

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    in_main = _in_main_thread()
    if in_main:
        for sig in previous:
            signal.signal(sig, handler)
    try:
        yield
    finally:
        if in_main:
            for sig, old in previous.items():
                signal.signal(sig, old)


#: cwltool options that run no workflow: no cluster to check.
_NO_RUN = ("version", "validate", "print_deps", "print_input_deps", "print_dot", "print_rdf", "pack",
           "print_targets", "print_subgraph", "make_template", "print_supported_versions")


def check_cluster(sessions: Sessions, name: str) -> str | None:
    """Connect to the cluster ``--oscar-cluster`` names and ask it for ``/system/info``; the problem, or None.

    Done before cwltool starts, so a wrong name or a cluster that does not answer fails before any local
    step runs (the error of an unknown name lists the profiles there are)."""
    from oscar_plugins import OscarError

    try:
        sessions.get(name).client.info()
    except OscarError as exc:
        return f"--oscar-cluster {name}: {exc}"
    return None


def _timeline(parser: argparse.ArgumentParser, path: str | None) -> StepTimeline | None:
    """``--timeline PATH``, checked before anything runs: a bad path is a usage error (exit code 2)."""
    from oscar_plugins import ConfigError, check_timeline_path

    if path is None:
        return None
    try:
        return StepTimeline(check_timeline_path(path))
    except ConfigError as exc:
        parser.error(f"--timeline: {exc}")


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``oscar-cwl``; returns the exit code (0 success, 1 failure, 33 unsupported feature)."""
    argsl = list(sys.argv[1:] if argv is None else argv)
    extra = os.environ.get("CWLTOOL_OPTIONS", "").split()
    parser = build_parser()
    args = parser.parse_args(extra + argsl)
    if args.record_container_id:
        args.cidfile_dir = args.cidfile_dir or os.getcwd()
    del args.record_container_id
    problem = crate.prepare(args)  # --provenance / --ro-crate can be written: checked before any job runs
    if problem:
        parser.error(problem)

    timeline = _timeline(parser, args.timeline)
    sessions = Sessions(args.oscar_cluster, keep_jobs=args.oscar_keep_jobs)
    settings = OscarSettings(offload=args.offload, cluster=args.oscar_cluster,
                             default_image=args.oscar_image or args.default_container or DEFAULT_IMAGE,
                             batch=args.oscar_batch, sessions=sessions)
    executor = OscarExecutor(args.max_in_flight, parallel=bool(args.parallel), parallel_max=args.parallel_max,
                             start_timeout=args.oscar_start_timeout)
    executor.timeline = timeline
    runtime_context = OscarRuntimeContext(vars(args))
    runtime_context.oscar = settings
    runtime_context.make_fs_access = OscarFsAccess.bound(sessions)
    if args.parallel:
        runtime_context.select_resources = executor.select_resources
    loading_context = OscarLoadingContext(vars(args))
    loading_context.singularity = runtime_context.singularity
    loading_context.podman = runtime_context.podman
    loading_context.oscar = settings

    if args.oscar_cluster and args.offload != "none" and args.workflow and \
            not any(getattr(args, option, False) for option in _NO_RUN):
        problem = check_cluster(sessions, args.oscar_cluster)
        if problem:
            sessions.close()
            print(f"oscar-cwl: error: {problem}", file=sys.stderr)
            return 1

    code = 1
    with _cancel_on_signals(sessions):
        try:
            code = cwlmain.main(args=args, argsl=argsl, executor=executor, loadingContext=loading_context,
                                runtimeContext=runtime_context,
                                custom_schema_callback=lambda: register_schema(bool(args.enable_ext)))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            left = sessions.cancel_all()
            if left:
                _logger.warning("cancelled %d OSCAR job(s) still in flight", left)
            sessions.close()
    return crate.finish(args, code)


if __name__ == "__main__":
    sys.exit(main())
