"""Which OSCAR service a step uses: a deployed service's name, an FDL file, or a service dict.

Pure except for reading FDL files. A definition is turned into a :class:`oscar_plugins.Service`
ready for ``ensure_service``, with the step's script adjustments and a default output path (async
jobs need one to stage inputs and return outputs).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from oscar_plugins import RESERVED_FILES, FDLError, Service, StorageIO, load_fdl, service_from_dict

from ._errors import StepConfigError

__all__ = ["OUTPUT_LIST", "STEP_MARKER", "plain", "resolve_service", "step_script"]

STEP_MARKER = "# oscar-plugins itwinai step v1"
#: Written by the step's prelude: the names of the files the script left in $TMP_OUTPUT_DIR.
OUTPUT_LIST = ".oscar-itwinai-outputs"
_FDL_SUFFIXES = (".yaml", ".yml", ".json")

ScriptFor = Callable[[str | None], str | None]


def plain(value: Any) -> Any:
    """OmegaConf containers (Hydra without ``_convert_``) to plain dicts and lists; others unchanged."""
    if hasattr(value, "_metadata") and hasattr(value, "_get_node"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    return value


def step_script(script: str | None) -> str | None:
    """The user's script behind a prelude that lists its outputs on exit.

    A synchronous OSCAR answer carries one file without its name, or a zip of several: with the list
    written beside them there are always two files or more when the script wrote any, so names
    survive and a single output that is itself a zip (``torch.save`` writes zips) is never unpacked.
    """
    if script is None or STEP_MARKER in script:
        return script
    skip = " ".join(f"! -name {name}" for name in (OUTPUT_LIST, *RESERVED_FILES))
    listing = f'(cd "$TMP_OUTPUT_DIR" 2>/dev/null && find . -type f {skip} | sort > {OUTPUT_LIST})'
    return f"{STEP_MARKER}\ntrap '{listing}' EXIT\n{script}"


def _is_fdl_path(text: str) -> bool:
    return text.split("#", 1)[0].endswith(_FDL_SUFFIXES) or "/" in text


def _raw_services(data: Any) -> list[tuple[str, dict[str, Any]]]:
    """``(name, raw definition)`` of each well-formed service entry of an FDL mapping."""
    items = ((data or {}).get("functions") or {}).get("oscar") if isinstance(data, dict) else None
    found = []
    for item in items if isinstance(items, list) else []:
        raw = next(iter(item.values())) if isinstance(item, dict) and len(item) == 1 else None
        if isinstance(raw, dict):
            found.append((str(raw.get("name")), raw))
    return found


def _prepare_fdl(data: Any, base: Path | None, script_for: ScriptFor) -> None:
    """Read relative ``script:`` files and apply ``script_for`` to each service (in place)."""
    for _, raw in _raw_services(data):
        script = raw.get("script")
        if isinstance(script, str) and base is not None and "\n" not in script and (base / script).is_file():
            script = (base / script).read_text(encoding="utf-8")
        new = script_for(script if isinstance(script, str) else None)
        if new is not None:
            raw["script"] = new


def _from_fdl(data: Any, base: Path | None, wanted: str | None, label: str, step: str,
              script_for: ScriptFor) -> Service:
    services = _raw_services(data)
    if wanted is not None:
        chosen = [(n, r) for n, r in services if n == wanted]
        if not chosen:
            names = ", ".join(n for n, _ in services) or "none"
            raise StepConfigError(step, f"{label} has no service named {wanted!r} (it has: {names})")
        # Keep only the chosen entry: the other services of the file are not this step's business.
        data = {**data, "functions": {"oscar": [item for item in data["functions"]["oscar"]
                                                if isinstance(item, dict) and chosen[0][1] in item.values()]}}
    elif len(services) > 1:
        names = ", ".join(n for n, _ in services)
        raise StepConfigError(step, f"{label} defines several services ({names}): pick one with "
                              f"'{label}#<name>'")
    _prepare_fdl(data, base, script_for)
    try:
        fdl = load_fdl(data if isinstance(data, dict) else {})
    except FDLError as exc:
        raise StepConfigError(step, f"service definition {label}: {exc}") from None
    return fdl.services[0].service


def resolve_service(source: str | Mapping[str, Any], *, step: str, script_for: ScriptFor,
                    base: Path | None = None) -> Service | str:
    """A :class:`Service` to deploy, or the name of a service that must already exist.

    Args:
        source: a service name; an FDL file path (``file.yaml`` or ``file.yaml#service``), relative
            to ``base`` (default: the working directory); an FDL mapping (with ``functions:``); or one
            service's definition as a mapping.
        script_for: maps the definition's script (None when it has none) to the script to deploy.
    """
    source = copy.deepcopy(plain(source))  # never touch the caller's (saved) definition
    if isinstance(source, str):
        if not _is_fdl_path(source):
            return source
        file_part, _, wanted = source.partition("#")
        path = (base or Path.cwd()) / file_part
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise StepConfigError(step, f"cannot read the service definition {path} ({exc.strerror or exc}): fix "
                                  "the path (relative to the working directory), or give a deployed service's name "
                                  "or the definition itself") from None
        except yaml.YAMLError as exc:
            raise StepConfigError(step, f"cannot read the service definition {path}: it is not valid YAML ({exc})"
                                  ) from None
        svc = _from_fdl(data, path.parent, wanted or None, str(path), step, script_for)
    elif isinstance(source, Mapping):
        raw = dict(source)
        if "functions" in raw:
            svc = _from_fdl(raw, base, None, "<FDL mapping>", step, script_for)
        else:
            script = script_for(raw.get("script") if isinstance(raw.get("script"), str) else None)
            if script is not None:
                raw["script"] = script
            try:
                svc = service_from_dict(raw, source="the step's service definition")
            except FDLError as exc:
                raise StepConfigError(step, str(exc)) from None
    else:
        raise StepConfigError(step, f"service must be a name, an FDL path or a mapping, not {type(source).__name__}")
    if not any(o.storage_provider.startswith("minio") for o in svc.output):
        svc = svc.model_copy(update={"output": [*svc.output, StorageIO(path=f"{svc.name}/out")]})
    return svc
