"""Command line of the local cluster: ``local up | status | down | serve``.

The main CLI wires these in with :func:`add_local_commands`; each sub-command stores its handler as
``func`` (``args.func(args) -> int``). ``python -m oscar_plugins.local ...`` uses :func:`main`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oscar_plugins._validation import parse_memory
from oscar_plugins.local._config import LocalClusterError, LocalClusterInfo, write_json_atomic
from oscar_plugins.local._daemon import down, status, up

if TYPE_CHECKING:
    from oscar_plugins.local._cluster import LocalCluster

__all__ = ["add_local_commands", "main"]


def _memory(text: str) -> int:
    try:
        return parse_memory(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _print_info(info: LocalClusterInfo, secrets: bool) -> None:
    print(f"endpoint:    {info.endpoint}")
    print(f"user:        {info.username}")
    if secrets:
        print(f"password:    {info.password}")
    print(f"s3 endpoint: {info.s3_endpoint}")
    if secrets:
        print(f"s3 access key: {info.s3_access_key}")
        print(f"s3 secret key: {info.s3_secret_key}")
    else:
        print("credentials: not shown (oscar-plugins and its Python API find them by themselves, profile "
              "'local'); to print them: oscar-plugins local status --show-credentials")
    print(f"data:        {info.data_dir}")
    if info.oscar_version:
        print(f"answers as:  OSCAR {info.oscar_version} (oscar-plugins local up --oscar-version to change)")
    if info.execution:
        runner = "the real faas-supervisor" if info.execution == "supervisor" else "faas-supervisor's rules"
        print(f"jobs:        run by {runner}, on {info.engine or 'host'}")
    if info.ca:
        print(f"TLS CA:      {info.ca}")
        print(f"             export SSL_CERT_FILE={info.ca} REQUESTS_CA_BUNDLE={info.ca} AWS_CA_BUNDLE={info.ca}")
    if info.pid:
        print(f"pid:         {info.pid}")


def _serve_args(args: argparse.Namespace) -> list[str]:
    """The ``local serve`` options ``up`` passes on to the background server."""
    out: list[str] = []
    for flag, value in (("--oscar-version", args.oscar_version), ("--execution", args.execution),
                        ("--engine", args.engine),
                        ("--supervisor", args.supervisor), ("--minio-restart", args.minio_restart)):
        if value is not None:
            out += [flag, str(value)]
    for issuer in args.oidc_issuer or []:
        out += ["--oidc-issuer", issuer]
    if args.latency_model is not None:
        spec = args.latency_model
        out += ["--latency-model", str(Path(spec).absolute()) if Path(spec).is_file() else spec]
    return out + (["--tls"] if args.tls else [])


def _cmd_up(args: argparse.Namespace) -> int:
    try:
        if args.latency_model is not None:
            from oscar_plugins.local._latency import load_latency_model  # lazy: keeps --help fast

            model = load_latency_model(args.latency_model)
            print(f"latency model: {model.describe() if model else 'none'} (benchmarks only)")
        info = up(args.data_dir, args.port, cpus=args.cpus, memory=args.memory, host=args.host,
                  serve_args=_serve_args(args))
    except (LocalClusterError, ValueError) as exc:
        print(f"oscar-plugins local up: {exc}", file=sys.stderr)
        return 1
    _print_info(info, secrets=args.show_credentials)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    info = status(args.data_dir)
    if info is None:
        print("the local cluster is not running")
        return 1
    _print_info(info, secrets=args.show_credentials)
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    print("stopped" if down(args.data_dir) else "the local cluster was not running")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from oscar_plugins.local._cluster import LocalCluster  # lazy: keeps `oscar-plugins --help` fast

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        cluster = LocalCluster(args.data_dir, args.port, host=args.host, cpus=args.cpus, memory=args.memory,
                               engine=args.engine, oscar_version=args.oscar_version, execution=args.execution,
                               supervisor=args.supervisor, minio_restart=args.minio_restart or 0.0,
                               oidc_issuers=args.oidc_issuer or (), tls=args.tls, latency=args.latency_model)
    except (LocalClusterError, ValueError) as exc:
        print(f"oscar-plugins local serve: {exc}", file=sys.stderr)
        return 1
    meta_path = cluster.data_dir / "server.json"

    def ready(lc: LocalCluster) -> None:
        info = lc.info()
        write_json_atomic(meta_path, {
            "pid": os.getpid(), "endpoint": lc.endpoint, "s3_endpoint": lc.s3_endpoint,
            "started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "oscar_version": info.oscar_version, "execution": info.execution, "engine": info.engine,
            "ca": str(info.ca) if info.ca else None,
        })
        logging.getLogger("oscar_plugins.local").info("local cluster ready at %s (S3 at %s, data in %s)",
                                                      lc.endpoint, lc.s3_endpoint, lc.data_dir)

    try:
        cluster.serve_forever(on_ready=ready)
    except LocalClusterError as exc:
        print(f"oscar-plugins local serve: {exc}", file=sys.stderr)
        return 1
    finally:
        if meta_path.exists():
            meta_path.unlink()
    return 0


def add_local_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``local`` with ``up``, ``status``, ``down`` and ``serve`` to an argparse sub-parser set."""
    local = subparsers.add_parser("local", help="the embedded local OSCAR cluster",
                                  description="Run an OSCAR-compatible cluster on this machine.")
    commands = local.add_subparsers(dest="local_command", metavar="{up,status,down,serve}")
    commands.required = True
    for name, handler, text in [
        ("up", _cmd_up, "start the local cluster in the background (unless it runs) and print its endpoint"),
        ("status", _cmd_status, "show whether the local cluster runs, and where"),
        ("down", _cmd_down, "stop the local cluster"),
        ("serve", _cmd_serve, "run the local cluster in the foreground (used by 'up')"),
    ]:
        parser = commands.add_parser(name, help=text, description=text)
        parser.add_argument("--data-dir", default=None,
                            help="data directory (default: $OSCAR_PLUGINS_LOCAL_DIR or "
                                 "~/.local/share/oscar-plugins/local)")
        if name in ("up", "status"):
            parser.add_argument("--show-credentials", action="store_true",
                                help="also print the password and the S3 keys (secrets: they are not shown "
                                     "unless asked)")
        if name in ("up", "serve"):
            parser.add_argument("--port", type=int, default=0, help="API port (default: the previous one, else free)")
            parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
            parser.add_argument("--cpus", type=float, default=None, help="cores to hand out (default: all)")
            parser.add_argument("--memory", type=_memory, default=None,
                                help="memory to hand out, e.g. 8Gi (default: 80%% of RAM)")
            parser.add_argument("--oscar-version", default=None, metavar="VERSION",
                                help="the OSCAR release to answer as: 4.1.2 (default), 4.0, 3.7 or 3.6 "
                                     "($OSCAR_PLUGINS_LOCAL_VERSION); see docs/FIDELITY.md")
            parser.add_argument("--execution", choices=("builtin", "supervisor"), default=None,
                                help="run jobs by faas-supervisor's rules (builtin, default) or through the real "
                                     "faas-supervisor as a pod does (supervisor; needs --supervisor)")
            parser.add_argument("--supervisor", default=None, metavar="DIR",
                                help="faas-supervisor's source folder, with faassupervisor/ inside "
                                     "($OSCAR_PLUGINS_LOCAL_SUPERVISOR)")
            parser.add_argument("--minio-restart", type=float, default=None, metavar="SECONDS",
                                help="pause this long on each service create/delete while the S3 server restarts, "
                                     "as OSCAR restarts MinIO (it waits 6 s); default 0")
            parser.add_argument("--oidc-issuer", action="append", metavar="URL",
                                help="accept OIDC access tokens of this issuer (repeatable)")
            parser.add_argument("--tls", action="store_true",
                                help="serve HTTPS with a generated CA (its path is printed: trust it with "
                                     "SSL_CERT_FILE / REQUESTS_CA_BUNDLE / AWS_CA_BUNDLE)")
            parser.add_argument("--latency-model", default=None, metavar="FILE|PRESET",
                                help="for benchmarks: behave as a remote cluster (pod start, capacity, API and S3 "
                                     "round trips, S3 bandwidth): a preset (cloud, lan) or a YAML/JSON file "
                                     "($OSCAR_PLUGINS_LOCAL_LATENCY); see docs/PERFORMANCE.md")
            parser.add_argument("--engine", default=None,
                                help="where jobs run: host (default), podman, docker, apptainer, singularity, or auto "
                                     "(the first that answers); an engine pulls each service's image "
                                     "($OSCAR_PLUGINS_LOCAL_ENGINE)")
        parser.set_defaults(func=handler)
    return local  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    """``python -m oscar_plugins.local {up,status,down,serve}``."""
    parser = argparse.ArgumentParser(prog="python -m oscar_plugins.local")
    subparsers = parser.add_subparsers(dest="command")
    local = add_local_commands(subparsers)
    args = parser.parse_args(["local", *(sys.argv[1:] if argv is None else argv)])
    del local
    return int(args.func(args))
