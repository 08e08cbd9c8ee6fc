"""``oscar-plugins``: manage clusters and services, run and submit jobs, read logs, run a local cluster.

Exit codes: 0 success; 1 a failure, with a one-line reason (no traceback for user errors);
2 bad usage; 130 interrupted (jobs in flight are cancelled).
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._client import OscarClient
    from ._fdl import FDL, FDLService
    from ._profiles import ClusterProfile

__all__ = ["main"]

EPILOG = """\
Cluster selection (first match wins): --cluster NAME; OSCAR_ENDPOINT with OSCAR_USER/OSCAR_PASSWORD or
OSCAR_TOKEN; OSCAR_CLUSTER; the 'default:' of ~/.oscar-cli/config.yaml; else the embedded local cluster.
"""
#: oscar-cli's FDL cluster id for "the profile file's default".
DEFAULT_CLUSTER_ID = "default-cluster"
APPLY_HELP = """\
Where each service goes: with -c NAME, every service goes to NAME ('local' = the embedded local cluster).
Otherwise to the cluster id it is listed under in the FDL (functions: oscar: - <cluster-id>: ...):
  - the FDL's own 'clusters: <cluster-id>:' endpoint and credentials, if it has them;
  - else the profile of that name in ~/.oscar-cli/config.yaml (or $OSCAR_CONFIG); 'default-cluster' is
    that file's default, 'local' the embedded local cluster;
  - else the cluster of OSCAR_ENDPOINT or OSCAR_CLUSTER, if set (with a notice);
  - else, when no cluster is configured at all, the embedded local cluster (with a notice);
  - else an error naming the profiles to choose from.
Every target is checked before the first service is deployed.
"""


class UsageError(Exception):
    """Bad usage found after parsing (exit code 2, like argparse's own errors)."""


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is too small: give at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not more than 0 seconds")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative: give 0 (no retry) or more")
    return value


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE: write it as {key or 'NAME'}=VALUE")
    return key, value


def _client(args: argparse.Namespace) -> OscarClient:
    from ._client import OscarClient

    return OscarClient.connect(args.cluster, quiet=args.quiet)


#: The library's words for its arguments, as a CLI user types them.
_CLI_WORDS = (("pass overwrite=True", "pass --overwrite"), ("pass expect='text'", "pass --expect text"))


def cli_words(message: str) -> str:
    """An error message of the library with its argument names as the CLI spells them."""
    for library, cli in _CLI_WORDS:
        message = message.replace(library, cli)
    return message


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


# -- cluster ---------------------------------------------------------------------------------------------
def cmd_cluster_list(args: argparse.Namespace) -> int:
    from ._profiles import config_path, load_profiles

    profiles, default = load_profiles()
    print(f"# profiles from {config_path()}")
    for name, prof in sorted(profiles.items()):
        mark = "*" if name == default else " "
        print(f"{mark} {name:20} {prof.endpoint:45} auth={prof.credentials.kind}")
    print(f"{'*' if not default else ' '} local                (embedded local cluster, started on demand)")
    return 0


def cmd_cluster_show(args: argparse.Namespace) -> int:
    client = _client(args)
    info = {"profile": client.profile.describe(), "info": client.info()}
    _print_json(info)
    return 0


def _secret_from_stdin(what: str, use_stdin: bool) -> str:
    if use_stdin:
        return sys.stdin.readline().strip()
    if sys.stdin.isatty():
        return getpass.getpass(f"{what}: ")
    raise SystemExit(f"oscar-plugins: error: give the {what} on standard input with --{what.replace(' ', '-')}"
                     "-stdin (it is never taken as an argument, which would leak into shell history)")


def cmd_cluster_add(args: argparse.Namespace) -> int:
    from ._profiles import save_profile

    entry: dict[str, Any] = {"endpoint": args.endpoint, "ssl_verify": not args.no_ssl_verify}
    if args.user:
        entry["auth_user"] = args.user
        entry["auth_password"] = _secret_from_stdin("password", args.password_stdin)
    elif args.oidc_account:
        entry["oidc_account_name"] = args.oidc_account
    elif args.refresh_token_stdin:
        entry["oidc_refresh_token"] = _secret_from_stdin("refresh token", True)
    elif args.token_stdin:
        entry["oidc_token"] = _secret_from_stdin("token", True)
    else:
        raise SystemExit("oscar-plugins: error: give --user (with the password on stdin), --oidc-account, "
                         "--token-stdin or --refresh-token-stdin")
    path = save_profile(args.name, entry, make_default=args.default)
    print(f"saved profile {args.name!r} in {path}")
    return 0


# -- services --------------------------------------------------------------------------------------------
def cmd_service_apply(args: argparse.Namespace) -> int:
    from ._client import OscarClient
    from ._fdl import load_fdl

    fdl = load_fdl(Path(args.fdl))
    profiles: dict[str, ClusterProfile] = {}
    for item in fdl.services:  # every target is settled before anything is deployed
        target = args.cluster or item.cluster_id
        if target not in profiles:
            profiles[target] = _apply_target(args, fdl, item)
    clients = {target: OscarClient(profile) for target, profile in profiles.items()}
    try:
        for item in fdl.services:
            target = args.cluster or item.cluster_id
            svc = clients[target].ensure_service(item.service, wrap=not args.no_wrap)
            print(f"service {svc.name} ready on {profiles[target].name}")
    finally:
        for client in clients.values():
            client.close()
    return 0


def _apply_target(args: argparse.Namespace, fdl: FDL, item: FDLService) -> ClusterProfile:
    """Where one service of an FDL file goes (see APPLY_HELP)."""
    from ._exceptions import ProfileNotFound
    from ._profiles import LOCAL_PROFILE, config_path, load_profiles, resolve_profile

    if args.cluster:
        return resolve_profile(args.cluster, quiet=args.quiet)
    cid = item.cluster_id
    own = fdl.cluster_for(cid, item.service.name)
    if own is not None:
        return resolve_profile(cid, endpoint=own.endpoint, user=own.auth_user, password=own.auth_password,
                               ssl_verify=own.ssl_verify)
    if cid == LOCAL_PROFILE:
        return resolve_profile(LOCAL_PROFILE, quiet=args.quiet)
    file = config_path()
    profiles, default = load_profiles(file)
    from_env = bool(os.environ.get("OSCAR_ENDPOINT") or os.environ.get("OSCAR_CLUSTER"))
    if cid in profiles:
        return profiles[cid]
    if cid == DEFAULT_CLUSTER_ID and (default or from_env):
        return resolve_profile(None, quiet=args.quiet)
    if from_env:
        profile = resolve_profile(None, quiet=args.quiet)
        _notice(args, f"cluster {cid!r} is not a profile: deploying to {profile.name!r} ({profile.endpoint}), "
                      "chosen by OSCAR_ENDPOINT/OSCAR_CLUSTER; use -c NAME to choose")
        return profile
    if not profiles:
        _notice(args, f"cluster {cid!r} is not configured: deploying to the embedded local cluster; "
                      "use -c NAME to choose")
        return resolve_profile(LOCAL_PROFILE, quiet=True)
    what = (f"cluster {cid!r} (oscar-cli's name for the default profile), but {file} has no 'default:'"
            if cid == DEFAULT_CLUSTER_ID else f"cluster {cid!r}, which is not a profile in {file}")
    known = ", ".join(f"-c {name}" for name in sorted(profiles))
    raise ProfileNotFound(
        f"{fdl.source}: service {item.service.name!r} goes to {what}: deploy with -c local (the embedded local "
        f"cluster) or {known}, or add it with 'oscar-plugins cluster add {cid} --endpoint URL --user USER "
        "--password-stdin'")


def _notice(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(f"oscar-plugins: {message}", file=sys.stderr)


def cmd_service_list(args: argparse.Namespace) -> int:
    for svc in _client(args).list_services():
        print(f"{svc.name:40} {svc.image:50} cpu={svc.cpu} memory={svc.memory}")
    return 0


def cmd_service_get(args: argparse.Namespace) -> int:
    from ._auth import mask_secrets

    svc = _client(args).get_service(args.name)
    data = svc.model_dump(mode="json", exclude_none=True)
    token = data.pop("token", None)
    data = mask_secrets(data)
    if args.show_token and token:
        data["token"] = token
    _print_json(data)
    return 0


def cmd_service_delete(args: argparse.Namespace) -> int:
    _client(args).delete_service(args.name)
    print(f"deleted service {args.name} (and its buckets)")
    return 0


# -- run, job, logs --------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    given = [what for what, value in (("an input file", args.input), ("--json", args.json),
                                      ("--payload", args.payload)) if value is not None]
    if not given:
        raise UsageError("run: nothing to send: give an input file, --json '{...}' or --payload TEXT "
                         "(--payload '' sends an empty input)")
    if len(given) > 1:
        raise UsageError(f"run: give only one of {' and '.join(given)}")
    client = _client(args)
    data: Any = args.payload
    if args.json is not None:
        try:
            data = json.loads(args.json)
        except ValueError as exc:
            raise SystemExit(f"oscar-plugins: error: --json is not valid JSON ({exc})") from None
    elif args.input is not None:
        data = Path(args.input)
    out = Path(args.output) if args.output else None
    result = client.run(args.service, data, output=out, expect=args.expect, overwrite=args.overwrite)
    if result.kind == "text":
        sys.stdout.write(result.text)
    elif result.paths:
        for path in result.paths:
            print(path)
    elif result.data is not None:
        sys.stdout.buffer.write(result.data)
    return 0


def cmd_job(args: argparse.Namespace) -> int:
    from ._dispatch import Dispatcher

    if not args.cancel and not args.inputs and args.payload is None:
        raise UsageError("job: nothing to send: give input files (one job each) or --payload TEXT for one job "
                         "without files (--payload '' sends an empty input)")
    if args.inputs and args.payload is not None and not args.cancel:
        raise UsageError("job: --payload is for one job without input files: give input files or --payload")
    if args.timeline is not None:
        args.timeline = _timeline_path(args)
    if args.batch > 1 and (not args.wait or args.cancel):
        raise UsageError("job --batch runs several inputs in one job and splits its results when collecting them: "
                         "add --wait")
    client = _client(args)
    dispatcher = Dispatcher(client)
    if args.cancel:
        from ._jobs import Job

        if not args.inputs:
            raise UsageError("job --cancel: name the jobs to cancel (see 'oscar-plugins logs SERVICE')")
        dispatcher.cancel([Job(args.service, name) for name in args.inputs])
        print(f"cancelled {len(args.inputs)} job(s)")
        return 0
    env = dict(args.env)
    inputs = [Path(p) for p in args.inputs]
    for path in inputs:
        if not path.is_file():
            raise SystemExit(f"oscar-plugins: error: input file {path} does not exist: check the path")
    if not args.wait:
        for path in inputs:
            job = dispatcher.submit(args.service, [path], env=env, track=False)
            print(job.name)
        if not inputs:
            print(dispatcher.submit(args.service, [], payload=args.payload, env=env, track=False).name)
        return 0
    return _wait_for_jobs(args, dispatcher, inputs, env)


def _timeline_path(args: argparse.Namespace) -> Path:
    """``job --timeline PATH``, checked before any job is submitted (exit code 2 when it cannot be written)."""
    from ._exceptions import ConfigError
    from ._timeline import check_timeline_path

    if not args.wait or args.cancel:
        raise UsageError("job --timeline draws the jobs of a batch it waits for: add --wait")
    try:
        return check_timeline_path(args.timeline)
    except ConfigError as exc:
        raise UsageError(f"job --timeline: {exc}") from None


def _write_timeline(args: argparse.Namespace, dispatcher: Any, results: list[Any], labels: list[str],
                    inputs: list[Path], collected_at: dict[int, float]) -> int:
    """Draw the batch's jobs (the results are already collected and printed: a failure here loses none)."""
    from ._exceptions import OscarError
    from ._timeline import job_row, server_cpu_hours, timeline_totals, write_timeline

    cpu = dispatcher.client.get_service(args.service, refresh=False).cpu
    rows = []
    by_job: dict[str, list[Any]] = {}  # --batch: several inputs ran in one job, drawn as one row
    for r in results:
        if r.job is not None:  # (None: collected by an earlier run of the batch, no times to show)
            by_job.setdefault(r.job.name, []).append(r)
    for members in by_job.values():
        first = members[0]
        label = labels[first.index] + (f" (+{len(members) - 1} in its batch)" if len(members) > 1 else "")
        staged = sum(p.stat().st_size for r in members for p in inputs[r.index:r.index + 1] if p.is_file())
        rows.append(job_row(first.job, label, collected=max(collected_at.get(r.index, 0.0) for r in members) or None,
                            cpu=cpu, bytes_in=staged,
                            bytes_out=sum(p.stat().st_size for r in members for p in r.outputs if p.is_file()),
                            status="succeeded" if all(r.ok for r in members) else "failed"))
    try:
        totals = timeline_totals(rows, server_cpu_hours(dispatcher.client, rows))
        path = write_timeline(rows, args.timeline, title=f"oscar-plugins job {args.service}: {len(rows)} job(s)",
                              totals=totals)
    except (OSError, ImportError, ValueError, OscarError) as exc:
        print(f"oscar-plugins: error: the timeline could not be written to {args.timeline} ({exc}); the jobs' "
              "results above are complete", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"timeline: {path} ({totals.summary()})", file=sys.stderr)
    return 0


def _wait_for_jobs(args: argparse.Namespace, dispatcher: Any, inputs: list[Path], env: dict[str, str]) -> int:
    """``job --wait``: one folder per input under ``-o``, named after it; folders already complete (their record
    matches, their outputs are whole) are reused unless ``--force``; an interrupt says what was kept."""
    import dataclasses
    import time
    import uuid

    from ._collected import RECORD, folder_names, identity, reusable, write_record
    from ._dispatch import JobResult, JobSpec
    from ._journal import Journal

    out = Path(args.output)
    specs = [JobSpec([p], env=env) for p in inputs] or [JobSpec([], payload=args.payload, env=env)]
    folders = folder_names(inputs) if inputs else ["payload"]
    labels = [str(p) for p in inputs] or ["payload"]
    endpoint = dispatcher.client.profile.endpoint

    def given(i: int) -> dict[str, Any]:
        return identity(endpoint, args.service, specs[i].inputs, specs[i].payload, specs[i].env)

    reused: dict[int, list[Path]] = {}
    if not args.force:
        for i, folder in enumerate(folders):
            if (out / folder / RECORD).is_file() and (paths := reusable(out / folder, given(i))) is not None:
                reused[i] = paths
    todo = [i for i in range(len(specs)) if i not in reused]
    collected: list[JobResult] = []  # appended by the dispatcher's threads as jobs are collected
    collected_at: dict[int, float] = {}  # when each job's result came, for --timeline

    def on_result(r: JobResult) -> None:
        collected_at[todo[r.index]] = time.time()
        if r.ok:
            collected.append(r)

    bar = _progress(len(todo), args.quiet or not todo)
    try:
        results = dispatcher.map(
            args.service, [specs[i] for i in todo], out, max_in_flight=args.max_in_flight, journal=Journal(),
            batch_key=f"force-{uuid.uuid4().hex}" if args.force else None, retries=args.retries,
            overwrite=args.overwrite or args.force, progress=lambda n, total: bar(n),
            folders=[folders[i] for i in todo], on_result=on_result, batch=args.batch,
        ) if todo else []
    except KeyboardInterrupt:
        bar(-1)
        print(f"oscar-plugins: interrupted: {len(reused) + len(collected)} of {len(specs)} job(s) collected in "
              f"{out}/ (jobs in flight were cancelled); run the same command again to resume: collected jobs are "
              "not submitted again", file=sys.stderr)
        return 130
    finally:
        for r in list(collected):
            i = todo[r.index]
            write_record(out / folders[i], given(i), r.job.name if r.job else None, r.outputs)
    bar(-1)
    for i, paths in sorted(reused.items()):
        print(f"{labels[i]}: already collected (--force to redo) -> {', '.join(map(str, paths)) or 'no outputs'}")
    failed = [r for r in results if not r.ok]
    for r in results:
        if r.ok:
            print(f"{labels[todo[r.index]]}: {r.job.name if r.job else '(collected earlier)'} -> "
                  f"{', '.join(str(p) for p in r.outputs) or 'no outputs'}")
    for r in failed:
        print(f"oscar-plugins: error: {labels[todo[r.index]]}: {cli_words(str(r.error))}", file=sys.stderr)
    drawn = 0
    if args.timeline is not None:
        by_input = [dataclasses.replace(r, index=todo[r.index]) for r in results]
        drawn = _write_timeline(args, dispatcher, by_input, labels, inputs, collected_at)
    if failed:
        print(f"oscar-plugins: error: {len(failed)} of {len(specs)} job(s) failed (the outputs of the others are "
              f"kept in {out}/: running the command again does not submit them again)", file=sys.stderr)
        return 1
    return drawn


def _progress(total: int, quiet: bool) -> Any:
    if quiet:
        return lambda n: None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="job", desc="jobs", file=sys.stderr, dynamic_ncols=True)

    def update(n: int) -> None:
        if n < 0:
            bar.close()
        else:
            bar.n = n
            bar.refresh()

    return update


def cmd_logs(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.job:
        from ._dispatch import Dispatcher
        from ._jobs import Job
        from ._wrapper import explain_job_log

        text = client.job_log(args.service, args.job, timestamps=args.timestamps)
        if not args.raw:  # the base64 faas-supervisor prints after a job (its response) says nothing to a reader
            text = explain_job_log(text, lines=1 << 30)[1] + "\n"
        sys.stdout.write(text)
        output = Dispatcher(client).script_output(Job(args.service, args.job), limit=1 << 20)
        if output:
            print(f"--- the script's own output (kept by the oscar-plugins wrapper, last MiB) ---\n{output}", end="")
        return 0
    for name, info in sorted(client.list_jobs(args.service).items(),
                             key=lambda kv: str(kv[1].get("creation_time") or "")):
        print(f"{name:60} {info.get('status', ''):10} {info.get('creation_time', '')}")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from ._watch import watch_jobs

    client = _client(args)
    count = 0
    for event in watch_jobs(client, args.service, interval=args.interval, existing=args.existing,
                            timeout=args.timeout):
        if args.json:
            print(json.dumps(event.as_dict()), flush=True)
        else:
            print(f"{event.finish_time or '-':20} {event.status:9} {event.job}", flush=True)
        count += 1
        if args.count and count >= args.count:
            break
    return 0


# -- parser ----------------------------------------------------------------------------------------------
CLUSTER_HELP = ("cluster profile to use (see 'cluster list'); 'local' = the embedded local cluster (default: "
                "OSCAR_ENDPOINT or OSCAR_CLUSTER, else the 'default:' of ~/.oscar-cli/config.yaml, else 'local')")
VERBOSE_HELP = "more logging: -v info, -vv debug (default: warnings only)"
QUIET_HELP = "no progress bar or notices"


def _global_options(parser: argparse.ArgumentParser, *, cluster: bool = True, top: bool = False) -> None:
    """``-c``, ``-v``, ``-q`` on the top-level parser (``top``) and again on every sub-command, where their
    default is SUPPRESS: absent after the sub-command means "as given before it", so
    ``oscar-plugins -q run ...`` and ``oscar-plugins run ... -q`` agree."""
    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    if cluster:
        parser.add_argument("-c", "--cluster", default=default(None), help=CLUSTER_HELP)
    parser.add_argument("-v", "--verbose", action="count", default=default(0), help=VERBOSE_HELP)
    parser.add_argument("-q", "--quiet", action="store_true", default=default(False), help=QUIET_HELP)


def _share_global_options(parser: argparse.ArgumentParser, *, cluster: bool = True) -> None:
    """Give every sub-command, at every depth, the global options (a sub-command's own ``-c`` stays; the
    ``local`` commands, which always mean the embedded cluster, take no ``-c``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                own = {opt for a in sub._actions for opt in a.option_strings}
                wants_cluster = cluster and name != "local"
                _global_options(sub, cluster=wants_cluster and "--cluster" not in own)
                _share_global_options(sub, cluster=wants_cluster)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oscar-plugins", description="Offload work to OSCAR clusters.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cluster = sub.add_parser("cluster", help="list, show or add cluster profiles").add_subparsers(
        dest="sub", required=True, metavar="ACTION")
    cluster.add_parser("list", help="profiles of ~/.oscar-cli/config.yaml").set_defaults(func=cmd_cluster_list)
    show = cluster.add_parser("show", help="a cluster's profile (no secrets) and /system/info, as JSON; which "
                                           "cluster: -c NAME, else the order below", epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    show.set_defaults(func=cmd_cluster_show)
    add = cluster.add_parser("add", help="add a profile to ~/.oscar-cli/config.yaml (secrets from stdin)")
    add.add_argument("name", help="the profile's name (used with -c NAME)")
    add.add_argument("--endpoint", required=True, help="the cluster's URL, e.g. https://oscar.example.org")
    add.add_argument("--user", help="user for basic authentication (give the password with --password-stdin)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument("--token-stdin", action="store_true", help="read an OIDC access token from stdin")
    add.add_argument("--refresh-token-stdin", action="store_true", help="read an OIDC refresh token from stdin")
    add.add_argument("--oidc-account", help="an oidc-agent account name")
    add.add_argument("--no-ssl-verify", action="store_true", help="do not verify TLS (test clusters only)")
    add.add_argument("--default", action="store_true", help="make it the default profile (the first profile "
                                                           "saved becomes the default anyway)")
    add.set_defaults(func=cmd_cluster_add)

    service = sub.add_parser("service", help="apply, list, get or delete services").add_subparsers(
        dest="sub", required=True, metavar="ACTION")
    apply = service.add_parser("apply", help="deploy every service of an FDL file (idempotent)",
                               description="Deploy every service of an FDL file (idempotent).", epilog=APPLY_HELP,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    apply.add_argument("fdl", help="FDL file (oscar-cli format); 'script:' is read beside it, else in the "
                                   "current directory")
    apply.add_argument("-c", "--cluster", default=argparse.SUPPRESS,
                       help="deploy every service to this profile ('local' = embedded cluster), whatever its "
                            "cluster id in the FDL (default: the cluster id of each service, see below)")
    apply.add_argument("--no-wrap", action="store_true",
                       help="deploy scripts as they are (no exit codes, per-job outputs or staged inputs)")
    apply.set_defaults(func=cmd_service_apply)
    service.add_parser("list", help="services on the cluster").set_defaults(func=cmd_service_list)
    get = service.add_parser("get", help="a service's definition as JSON")
    get.add_argument("name", help="the service's name")
    get.add_argument("--show-token", action="store_true", help="include the service's token")
    get.set_defaults(func=cmd_service_get)
    delete = service.add_parser("delete", help="delete a service and its buckets")
    delete.add_argument("name", help="the service's name")
    delete.set_defaults(func=cmd_service_delete)

    run = sub.add_parser("run", help="run a service synchronously on one input")
    run.add_argument("service", help="the service's name")
    run.add_argument("input", nargs="?", help="input file (streamed, base64-encoded)")
    run.add_argument("--json", help="send this JSON object instead of a file")
    run.add_argument("--payload", metavar="TEXT", help="send this text instead of a file ('' sends an empty input)")
    run.add_argument("-o", "--output", help="write the output here, a directory when several files (default: "
                                            "print text, write a single file's bytes to stdout)")
    run.add_argument("--expect", choices=["auto", "file", "zip", "text"], default="auto",
                     help="how to read the answer: a file, a zip of files (unpacked), or the script's text; "
                          "auto decides from the answer (default: %(default)s)")
    run.add_argument("--overwrite", action="store_true", help="replace existing output files")
    run.set_defaults(func=cmd_run)

    job = sub.add_parser("job", help="submit asynchronous jobs, one per input; --wait collects outputs")
    job.add_argument("service", help="the service's name")
    job.add_argument("inputs", nargs="*", help="input files, one job each (with --cancel: job names)")
    job.add_argument("--payload", metavar="TEXT",
                     help="one job without input files, with this text as its input ('' sends an empty input)")
    job.add_argument("--env", action="append", default=[], type=_env_pair, metavar="NAME=VALUE",
                     help="an extra variable for the jobs (repeatable)")
    job.add_argument("--wait", action="store_true", help="wait (progress bar) and download outputs")
    job.add_argument("-o", "--output", default=".",
                     help="with --wait: directory for outputs, one folder per input named after it (a.nc -> "
                          "a/); a rerun reuses the folders already complete (default: %(default)s)")
    job.add_argument("--force", action="store_true",
                     help="with --wait: submit every job again, even those whose outputs were collected, and "
                          "replace their outputs")
    job.add_argument("--max-in-flight", type=_positive, default=256, metavar="N",
                     help="with --wait: jobs submitted but not finished, at most (default: %(default)s)")
    job.add_argument("--retries", type=_non_negative, default=0, metavar="N",
                     help="with --wait: resubmit a job the cluster lost or failed (not a script's non-zero exit) "
                          "up to N times (default: %(default)s)")
    job.add_argument("--batch", type=_positive, default=1, metavar="N",
                     help="with --wait: run up to N inputs in one job, one after the other, each with its own "
                          "outputs, exit code and log; pays when an input runs much shorter than a job's start "
                          "(seconds), not for long ones (default: %(default)s, one job per input)")
    job.add_argument("--overwrite", action="store_true", help="replace existing output files")
    job.add_argument("--timeline", metavar="PATH", default=None,
                     help="with --wait: draw when each job queued, ran and was collected, with CPU-hours and bytes "
                          "moved, into PATH: .html (a page a browser opens offline) or .png (needs matplotlib); "
                          "checked before any job is submitted")
    job.add_argument("--cancel", action="store_true", help="cancel (delete) the named jobs")
    job.set_defaults(func=cmd_job)

    logs = sub.add_parser("logs", help="a service's jobs, or one job's log")
    logs.add_argument("service", help="the service's name")
    logs.add_argument("job", nargs="?", help="a job's name (default: list the service's jobs)")
    logs.add_argument("--timestamps", action="store_true", help="prefix each line of the job's log with its time")
    logs.add_argument("--raw", action="store_true",
                      help="the job's log exactly as OSCAR returns it (with the base64 of the outputs)")
    logs.set_defaults(func=cmd_logs)

    watch = sub.add_parser("watch", help="a service's jobs as they finish (Succeeded or Failed), one line each")
    watch.add_argument("service", help="the service's name")
    watch.add_argument("--json", action="store_true",
                       help="one JSON object per line (service, job, status, creation/start/finish times)")
    watch.add_argument("--existing", action="store_true", help="first, the jobs that had finished already")
    watch.add_argument("--count", type=_positive, default=None, metavar="N",
                       help="stop after N jobs (default: never)")
    watch.add_argument("--timeout", type=_seconds, default=None, metavar="SECONDS",
                       help="stop after this many seconds (default: never)")
    watch.add_argument("--interval", type=_seconds, default=2.0, metavar="SECONDS",
                       help="seconds between readings of the job list (default: %(default)s)")
    watch.set_defaults(func=cmd_watch)

    try:
        from .local.cli import add_local_commands
    except ImportError:  # pragma: no cover - the local cluster ships with the core
        pass
    else:
        add_local_commands(sub)
    _share_global_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ._exceptions import OscarError

    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"oscar-plugins: error: {exc}", file=sys.stderr)
        return 2
    except OscarError as exc:
        print(f"oscar-plugins: error: {cli_words(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("oscar-plugins: interrupted; jobs in flight were cancelled", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
