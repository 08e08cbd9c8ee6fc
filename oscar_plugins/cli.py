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


def _client(args: argparse.Namespace) -> OscarClient:
    from ._client import OscarClient

    return OscarClient.connect(args.cluster, quiet=args.quiet)


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


_SECRET_KEYS = {"secret_key", "password", "auth_password", "token", "refresh_token", "client_secret"}


def mask_secrets(data: Any, *, under_secrets: bool = False) -> Any:
    """A copy with secret values (service secrets, provider keys, passwords, tokens) replaced by ``***``."""
    if isinstance(data, dict):
        return {k: ("***" if (under_secrets or k in _SECRET_KEYS) and isinstance(v, str) and v else
                    mask_secrets(v, under_secrets=under_secrets or k == "secrets"))
                for k, v in data.items()}
    if isinstance(data, list):
        return [mask_secrets(v, under_secrets=under_secrets) for v in data]
    return data


def cmd_service_get(args: argparse.Namespace) -> int:
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
    client = _client(args)
    data: Any = None
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
    from ._dispatch import Dispatcher, JobSpec
    from ._journal import Journal

    client = _client(args)
    dispatcher = Dispatcher(client)
    if args.cancel:
        from ._jobs import Job

        dispatcher.cancel([Job(args.service, name) for name in args.inputs])
        print(f"cancelled {len(args.inputs)} job(s)")
        return 0
    env = dict(_split_env(e) for e in args.env)
    inputs = [Path(p) for p in args.inputs]
    for path in inputs:
        if not path.is_file():
            raise SystemExit(f"oscar-plugins: error: input file {path} does not exist: check the path")
    if not args.wait:
        for path in inputs:
            job = dispatcher.submit(args.service, [path], env=env, track=False)
            print(job.name)
        if not inputs:
            print(dispatcher.submit(args.service, [], payload=args.payload or "", env=env, track=False).name)
        return 0
    out = Path(args.output or ".")
    specs = [JobSpec([p], env=env) for p in inputs] or [JobSpec([], payload=args.payload or "", env=env)]
    bar = _progress(len(specs), args.quiet)
    results = dispatcher.map(args.service, specs, out, max_in_flight=args.max_in_flight, journal=Journal(),
                             retries=args.retries, overwrite=args.overwrite,
                             progress=lambda n, total: bar(n))
    bar(-1)
    failed = [r for r in results if not r.ok]
    for r in results:
        label = str(inputs[r.index]) if inputs else "payload"
        if r.ok:
            print(f"{label}: {r.job.name if r.job else '(collected earlier)'} -> "
                  f"{', '.join(str(p) for p in r.outputs) or 'no outputs'}")
    for r in failed:
        print(f"oscar-plugins: error: {r.error}", file=sys.stderr)
    if failed:
        print(f"oscar-plugins: error: {len(failed)} of {len(results)} job(s) failed", file=sys.stderr)
        return 1
    return 0


def _split_env(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise SystemExit(f"oscar-plugins: error: --env {text!r} must be NAME=VALUE")
    key, value = text.split("=", 1)
    return key, value


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


# -- parser ----------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oscar-plugins", description="Offload work to OSCAR clusters.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--cluster", help="profile name (see 'cluster list'); 'local' = embedded cluster")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notices")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cluster = sub.add_parser("cluster", help="list, show or add cluster profiles").add_subparsers(
        dest="sub", required=True, metavar="ACTION")
    cluster.add_parser("list", help="profiles of ~/.oscar-cli/config.yaml").set_defaults(func=cmd_cluster_list)
    show = cluster.add_parser("show", help="a cluster's profile and /system/info")
    show.set_defaults(func=cmd_cluster_show)
    add = cluster.add_parser("add", help="add a profile to ~/.oscar-cli/config.yaml (secrets from stdin)")
    add.add_argument("name")
    add.add_argument("--endpoint", required=True)
    add.add_argument("--user")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument("--token-stdin", action="store_true", help="read an OIDC access token from stdin")
    add.add_argument("--refresh-token-stdin", action="store_true", help="read an OIDC refresh token from stdin")
    add.add_argument("--oidc-account", help="an oidc-agent account name")
    add.add_argument("--no-ssl-verify", action="store_true", help="do not verify TLS (test clusters only)")
    add.add_argument("--default", action="store_true", help="make it the default profile")
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
                            "cluster id in the FDL")
    apply.add_argument("--no-wrap", action="store_true",
                       help="deploy scripts as they are (no exit codes, per-job outputs or staged inputs)")
    apply.set_defaults(func=cmd_service_apply)
    service.add_parser("list", help="services on the cluster").set_defaults(func=cmd_service_list)
    get = service.add_parser("get", help="a service's definition as JSON")
    get.add_argument("name")
    get.add_argument("--show-token", action="store_true", help="include the service's token")
    get.set_defaults(func=cmd_service_get)
    delete = service.add_parser("delete", help="delete a service and its buckets")
    delete.add_argument("name")
    delete.set_defaults(func=cmd_service_delete)

    run = sub.add_parser("run", help="run a service synchronously on one input")
    run.add_argument("service")
    run.add_argument("input", nargs="?", help="input file (streamed, base64-encoded)")
    run.add_argument("--json", help="send this JSON object instead of a file")
    run.add_argument("-o", "--output", help="write the output here (a directory when several files)")
    run.add_argument("--expect", choices=["auto", "file", "zip", "text"], default="auto")
    run.add_argument("--overwrite", action="store_true", help="replace existing output files")
    run.set_defaults(func=cmd_run)

    job = sub.add_parser("job", help="submit asynchronous jobs, one per input; --wait collects outputs")
    job.add_argument("service")
    job.add_argument("inputs", nargs="*", help="input files (with --cancel: job names)")
    job.add_argument("--payload", help="a text payload when no input file is given")
    job.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="extra variable")
    job.add_argument("--wait", action="store_true", help="wait (progress bar) and download outputs")
    job.add_argument("-o", "--output", help="directory for outputs (one folder per job); default: .")
    job.add_argument("--max-in-flight", type=int, default=256, help="jobs submitted but not finished")
    job.add_argument("--retries", type=int, default=0, help="resubmit jobs the cluster lost or failed")
    job.add_argument("--overwrite", action="store_true", help="replace existing output files")
    job.add_argument("--cancel", action="store_true", help="cancel (delete) the named jobs")
    job.set_defaults(func=cmd_job)

    logs = sub.add_parser("logs", help="a service's jobs, or one job's log")
    logs.add_argument("service")
    logs.add_argument("job", nargs="?")
    logs.add_argument("--timestamps", action="store_true")
    logs.add_argument("--raw", action="store_true",
                      help="the job's log exactly as OSCAR returns it (with the base64 of the outputs)")
    logs.set_defaults(func=cmd_logs)

    try:
        from .local.cli import add_local_commands
    except ImportError:  # pragma: no cover - the local cluster ships with the core
        pass
    else:
        add_local_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ._exceptions import OscarError

    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except OscarError as exc:
        print(f"oscar-plugins: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("oscar-plugins: interrupted; jobs in flight were cancelled", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
