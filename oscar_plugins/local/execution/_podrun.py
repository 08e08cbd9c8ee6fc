"""Running a job through the real faas-supervisor, as an OSCAR job pod does (the ``supervisor`` execution).

A job pod (``job.go`` MakeJobHandler, ``types.Service.ToPodSpec``) runs
``/bin/sh -c "echo $EVENT | /oscar/bin/supervisor"`` with the service's variables, its Secret
(``envFrom``), ``EVENT``, ``JOB_UUID``, ``RESOURCE_ID`` and ``OSCAR_SERVICE_*``; the service's ConfigMap
is mounted at ``/oscar/config`` (``function_config.yaml``: the service as YAML with the script blanked and
``minio.default``'s keys ``hidden``; ``script.sh``), and the user's MinIO keys at
``/var/run/secrets/providers/minio.default/{accessKey,secretKey}``.

Here the supervisor is grycap/faas-supervisor's source (``faassupervisor.supervisor`` run as
``__main__``, what its PyInstaller binary runs). As root with ``unshare``, each job gets a private mount
namespace where the job's config and keys are bound at those very paths; otherwise the supervisor reads
the same config from ``FUNCTION_CONFIG``/``SCRIPT`` (which it supports) and the keys from the job's
folder (the one constant the launcher changes).
"""

from __future__ import annotations

import base64
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from oscar_plugins.local.api._gotypes import encode
from oscar_plugins.local.api._persona import Persona

__all__ = ["ENV_SUPERVISOR", "SupervisorSource", "find_supervisor", "function_config", "pod_command", "pod_env"]

ENV_SUPERVISOR = "OSCAR_PLUGINS_LOCAL_SUPERVISOR"
CONFIG_DIR = "/oscar/config"
MINIO_SECRET_DIR = "/var/run/secrets/providers/minio.default"  # noqa: S105 - a path, not a secret
#: The watchdog variables ToPodSpec sets (defaults of ``types.Config``).
_WATCHDOG = {"fprocess": "/oscar/bin/supervisor", "max_inflight": "1", "write_debug": "true",
             "exec_timeout": "0", "read_timeout": "300", "write_timeout": "300", "healthcheck_interval": "5"}
_LAUNCH = """import runpy, sys
sys.path.insert(0, sys.argv.pop(1))
secrets = sys.argv.pop(1)
if secrets:
    import faassupervisor.storage.config as config
    config._STORAGE_CREDENTIALS_PATH = secrets
runpy.run_module("faassupervisor.supervisor", run_name="__main__", alter_sys=True)
"""


@dataclass(frozen=True)
class SupervisorSource:
    """Where faas-supervisor's source is (the folder holding ``faassupervisor/``) and how to feed it."""

    root: Path
    #: Mount namespaces: the config and keys at a pod's paths (root with ``unshare``).
    namespaces: bool


def find_supervisor(path: str | os.PathLike[str] | None = None) -> SupervisorSource:
    """The faas-supervisor source to run jobs with: ``path``, else ``OSCAR_PLUGINS_LOCAL_SUPERVISOR``.

    Raises:
        ValueError: no path, or it holds no ``faassupervisor/supervisor.py`` (the message says what to give).
    """
    given = path or os.environ.get(ENV_SUPERVISOR)
    if not given:
        raise ValueError(f"the supervisor execution needs faas-supervisor's source: give its folder (with "
                         f"faassupervisor/ inside) as supervisor=... or ${ENV_SUPERVISOR}")
    root = Path(given).expanduser().absolute()
    if not (root / "faassupervisor" / "supervisor.py").is_file():
        raise ValueError(f"{root} has no faassupervisor/supervisor.py: give the folder of a faas-supervisor "
                         "checkout (its imports also need boto3, requests, PyYAML, webdavclient3, rucio-clients)")
    namespaces = os.geteuid() == 0 and shutil.which("unshare") is not None
    if namespaces:
        for folder in (CONFIG_DIR, MINIO_SECRET_DIR):
            try:
                Path(folder).mkdir(parents=True, exist_ok=True)  # mount points only; each job binds its own
            except OSError:
                namespaces = False
    return SupervisorSource(root, namespaces)


def function_config(persona: Persona, service: Mapping[str, Any]) -> str:
    """``function_config.yaml``: the service as ``createServiceConfigMap`` writes it (``ToYAML``: the JSON
    keys, the script blanked, ``namespace``, ``volume_status`` and ``deployment`` left out, secrets blank)."""
    shown = dict(service)
    shown["script"] = ""
    environment = dict(shown.get("environment") or {})
    environment["secrets"] = {k: "" for k in environment.get("secrets") or {}}
    shown["environment"] = environment
    tree = encode(persona.service, shown)
    for key in ("namespace", "volume_status", "deployment"):
        tree.pop(key, None)
    return str(yaml.safe_dump(tree, sort_keys=False, allow_unicode=True))


def pod_env(service: Mapping[str, Any], persona: Persona, *, event: bytes, job: str, work: Path,
            base: Mapping[str, str]) -> dict[str, str]:
    """The job container's environment: the service's variables, OSCAR's, its Secret, the watchdog's."""
    env = dict(base)
    environment = service.get("environment") or {}
    env.update({str(k): str(v) for k, v in (environment.get("variables") or {}).items()})
    if persona.version_tuple >= (4, 0, 0):
        exposed = (service.get("expose") or {}).get("api_port")
        env.update({"OSCAR_SERVICE_NAME": str(service.get("name", "")),
                    "OSCAR_SERVICE_TOKEN": str(service.get("token", "")),
                    "OSCAR_SERVICE_BASE_PATH": f"/system/services/{service.get('name')}/exposed" if exposed else ""})
    env.update(_WATCHDOG)
    env.update({str(k): str(v) for k, v in (environment.get("secrets") or {}).items()})  # envFrom: the Secret
    env.update({"EVENT": event.decode("utf-8", "surrogateescape"), "JOB_UUID": job, "RESOURCE_ID": "localhost",
                "TMPDIR": str(work / "tmp")})
    return env


def pod_command(source: SupervisorSource, work: Path, config_yaml: str, script: str, access_key: str,
                secret_key: str, env: dict[str, str]) -> list[str]:
    """The command of one job pod; writes the job's config and keys under ``work`` (mode 0700).

    With namespaces, ``/oscar/config`` and the MinIO key folder are bound over the pod's paths; without,
    ``FUNCTION_CONFIG``/``SCRIPT`` go into ``env`` and the launcher points the keys at ``work``.
    """
    config, keys = work / "pod-config", work / "pod-secrets" / "minio.default"
    config.mkdir(mode=0o700)
    keys.mkdir(mode=0o700, parents=True)
    (config / "function_config.yaml").write_text(config_yaml, encoding="utf-8")
    (config / "script.sh").write_text(script, encoding="utf-8")
    (keys / "accessKey").write_text(access_key, encoding="utf-8")
    (keys / "secretKey").write_text(secret_key, encoding="utf-8")
    launch = [sys.executable, "-c", _LAUNCH, str(source.root)]
    pod = f"echo $EVENT | {' '.join(_quote(a) for a in launch)}"
    if source.namespaces:
        mounts = (f"mount --bind {_quote(str(config))} {CONFIG_DIR} && "
                  f"mount --bind {_quote(str(keys))} {MINIO_SECRET_DIR} && ")
        return ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                f"{mounts}exec /bin/sh -c {_quote(pod + ' ' + _quote(''))}"]
    env["FUNCTION_CONFIG"] = base64.b64encode(config_yaml.encode()).decode()
    env["SCRIPT"] = base64.b64encode(script.encode()).decode()
    return ["/bin/sh", "-c", f"{pod} {_quote(str(keys.parent) + '/')}"]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"
