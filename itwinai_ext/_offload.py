"""``OscarOffload``: run an existing itwinai component, unchanged, on an OSCAR service."""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from itwinai.components import BaseComponent, monitor_exec
from itwinai.serialization import SerializationError

from . import remote
from ._base import OscarComponentBase
from ._errors import StepConfigError, StepError
from ._service import plain, resolve_service
from ._transport import StepTransport, choose_mode

__all__ = ["DEFAULT_IMAGE", "OscarOffload", "offloaded"]

#: interTwin's itwinai image with PyTorch (a use case's image is usually built FROM it).
DEFAULT_IMAGE = "ghcr.io/intertwin-eu/itwinai:torch-slim-latest"
DEFAULT_SERVICE: dict[str, Any] = {"name": "itwinai-runner", "image": DEFAULT_IMAGE, "cpu": "1.0", "memory": "2Gi"}


def component_config(component: Any, step: str) -> dict[str, Any]:
    """The ``_target_`` config of a component given as a config mapping or as a built component."""
    component = plain(component)
    if isinstance(component, BaseComponent):
        try:
            config = component.to_dict()
        except SerializationError as exc:
            raise StepConfigError(step, f"the component cannot be offloaded: {exc} It is rebuilt on the cluster "
                                  "from its constructor arguments, which must be plain values; or give its config "
                                  "as a mapping (with '_recursive_: false' on this step in YAML)") from None
        return dict(config)
    if isinstance(component, Mapping) and isinstance(component.get("_target_"), str):
        return dict(component)
    raise StepConfigError(step, "component must be an itwinai component or its config (a mapping with '_target_'), "
                          f"not {type(component).__name__}")


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. a long text that is no file name
        return False


def _replace_paths(value: Any, names: Mapping[str, str], folders: Mapping[Path, str]) -> Any:
    """Strings naming a shipped file or folder (as given, or resolved) become ``oscar-input://<name>``;
    those naming an existing path inside a shipped folder, ``oscar-input://<folder>/<relative path>``."""
    if isinstance(value, str):
        if value in names:
            return remote.INPUT_MARKER + names[value]
        try:
            resolved = Path(value).expanduser().resolve() if value else None
        except (OSError, ValueError, RuntimeError):
            return value
        if resolved is None:
            return value
        if str(resolved) in names:
            return remote.INPUT_MARKER + names[str(resolved)]
        for folder, name in folders.items():
            if resolved.is_relative_to(folder) and _exists(resolved):
                return f"{remote.INPUT_MARKER}{name}/{resolved.relative_to(folder).as_posix()}"
        return value
    if isinstance(value, list):
        return [_replace_paths(v, names, folders) for v in value]
    if isinstance(value, dict):
        return {k: _replace_paths(v, names, folders) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class _Shipped:
    entry: str  # as written in ``files``
    path: Path
    name: str  # under this name in the service's inputs folder
    folder: bool


def _normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def pack_folder(source: Path, archive: Path) -> None:
    """A tar of the regular files and folders under ``source`` (symbolic links followed, other special files
    left out), in a stable order, so an unchanged folder gives the same archive (the cluster then reuses
    the copy it staged before)."""
    seen: set[str] = set()
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT, dereference=True) as tar:
        for dirpath, dirnames, filenames in os.walk(source, followlinks=True):
            real = os.path.realpath(dirpath)
            if real in seen:  # a link back up the tree: stop there
                dirnames[:] = []
                continue
            seen.add(real)
            dirnames.sort()
            base = Path(dirpath)
            for name in [*dirnames, *sorted(filenames)]:
                path = base / name
                if path.is_dir() or path.is_file():
                    tar.add(path, arcname=path.relative_to(source).as_posix(), recursive=False, filter=_normalised)


class OscarOffload(OscarComponentBase):
    """Run an itwinai component on an OSCAR service instead of in this process, and return its result.

    The component is rebuilt on the cluster from its ``_target_`` config (with Hydra, as
    ``itwinai exec-pipeline`` does), its ``execute`` gets this step's inputs and its return value comes
    back: the "inference step on the cluster" pattern of CERN's 3DGAN. The service runs a small runner
    (:mod:`oscar_plugins.itwinai.remote`), so its image needs Python and itwinai (and the component's own
    packages), not oscar-plugins. Inputs and results travel in the ``oscar-itwinai/1`` format: tensors
    (``torch.save``, loaded with ``weights_only``), arrays (``.npy``), JSON values, files, and pickles
    for anything else; pickled *results* are refused unless ``allow_pickle``.

    Args:
        component: the component's config (a mapping with ``_target_``) or the component itself (then
            rebuilt from its ``to_dict()``). In YAML, set ``_recursive_: false`` on this step so Hydra
            does not build the component locally too.
        service: the service definition (FDL path, ``file.yaml#name``, or mapping; its ``script``, if
            any, runs before the runner, e.g. to activate an environment) or the name of a service
            already deployed by this class. Default: ``itwinai-runner`` with :data:`DEFAULT_IMAGE`.
        cluster, mode, timeout, env, output_dir, sync_limit_mb, name: as for :class:`OscarStep`.
        files: local files and folders the component needs on the cluster (checkpoints, data folders,
            its own ``.py`` modules). They arrive under their own names in a folder put on ``sys.path``
            (a folder travels as one archive, unpacked there), and every string of the component's config
            equal to one of these paths (as written, or resolved) is replaced by its path on the cluster;
            so is a string naming an existing path inside a shipped folder.
        python: the Python interpreter (and options) in the service's image.
        allow_pickle: accept results that can only travel pickled (unpickling runs code chosen by the
            service: enable it only for services you trust).

    Example (YAML)::

        predictor:
          _target_: oscar_plugins.itwinai.OscarOffload
          _recursive_: false
          service: oscar-fdl.yaml
          files: [model.pt, my_components.py]
          component: {_target_: my_components.Predictor, checkpoint: model.pt}
    """

    #: Seconds the component's ``execute`` took on the cluster in the last run.
    remote_seconds: float | None = None

    def __init__(
        self,
        component: Mapping[str, Any] | BaseComponent,
        service: str | Mapping[str, Any] | None = None,
        cluster: str | None = None,
        mode: str = "auto",
        timeout: float | None = None,
        files: list[str] | None = None,
        python: str = "python3",
        env: Mapping[str, Any] | None = None,
        allow_pickle: bool = False,
        output_dir: str | None = None,
        sync_limit_mb: float = 1.0,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        component, service, files, env = plain(component), plain(service), plain(files), plain(env)
        self.save_parameters(**self.locals2params(locals()))
        provisional = name or "OscarOffload"
        config = component_config(component, provisional)
        short = str(config.get("name") or str(config["_target_"]).rsplit(".", 1)[-1])
        self.name = name or f"{short}@oscar"
        self.save_parameters(component=config)  # stored as config: to_dict() stays plain data
        self._setup(cluster=cluster, mode=mode, timeout=timeout, sync_limit_mb=sync_limit_mb,
                    output_dir=output_dir, env=env)
        if files is not None and not (isinstance(files, list) and all(isinstance(f, str) for f in files)):
            raise StepConfigError(self.name, "files must be a list of paths")
        if not isinstance(python, str) or not python.strip():
            raise StepConfigError(self.name, "python must name the interpreter in the image, e.g. 'python3'")
        self.component_config = config
        self.files = list(files or [])
        self.allow_pickle = bool(allow_pickle)
        self._check_serialisable()

        def script_for(script: str | None) -> str:
            return remote.service_script(python, prelude=script or "")

        resolved = resolve_service(service if service is not None else DEFAULT_SERVICE, step=self.name,
                                   script_for=script_for)
        self.transport = StepTransport(self.name, cluster, resolved, self.timeout, marker=remote.RUNNER_MARKER,
                                       require_marker=True)

    def to_dict(self) -> dict[str, Any]:
        """As :meth:`BaseComponent.to_dict`, plus ``_recursive_: false`` so Hydra keeps the component a config."""
        return {**super().to_dict(), "_recursive_": False}

    def _shipped(self) -> list[_Shipped]:
        shipped: list[_Shipped] = []
        taken: set[str] = set()
        for entry in self.files:
            path = Path(entry).expanduser()
            folder = path.is_dir()
            if not folder and not path.is_file():
                raise StepConfigError(self.name, f"{entry!r} in files is neither a file nor a folder (relative "
                                      f"paths are resolved from {Path.cwd()})")
            name = path.resolve().name if folder else path.name
            travels = [name, name + remote.DIR_ARCHIVE_SUFFIX] if folder else [name]
            if (taken.intersection(travels) or name == remote.CALL_FILE or name.startswith("oi-in-")
                    or name.endswith(remote.DIR_ARCHIVE_SUFFIX)):
                raise StepConfigError(self.name, f"two entries of files would arrive as {name!r}: rename one")
            taken.update(travels)
            shipped.append(_Shipped(entry, path, name, folder))
        return shipped

    @monitor_exec
    def execute(self, *args: Any) -> Any:
        """Run the component's ``execute(*args)`` on the service and return what it returned."""
        work = self._new_workdir()
        indir = work / "in"
        indir.mkdir()
        shipped = self._shipped()
        names = {item.entry: item.name for item in shipped}
        names.update({str(item.path.resolve()): item.name for item in shipped})
        folders = {item.path.resolve(): item.name for item in shipped if item.folder}
        sent: list[Path] = []
        archives: dict[str, str] = {}
        for item in shipped:
            if item.folder:
                archive = indir / (item.name + remote.DIR_ARCHIVE_SUFFIX)
                pack_folder(item.path, archive)
                archives[archive.name] = item.name
                sent.append(archive)
            else:
                sent.append(item.path)
        encoder = remote.Encoder(indir, "oi-in-")
        try:
            args_node = encoder.encode(tuple(args))
        except Exception as exc:
            raise StepConfigError(self.name, f"its inputs cannot be sent ({type(exc).__name__}: {exc})") from None
        call: dict[str, Any] = {"format": remote.FORMAT_DIRS if archives else remote.FORMAT, "step": self.name,
                                "args": args_node, "component": _replace_paths(self.component_config, names, folders)}
        if archives:
            call["dirs"] = archives
        call_file = indir / remote.CALL_FILE
        call_file.write_text(json.dumps(call), encoding="utf-8")
        inputs = [call_file, *encoder.files, *sent]
        size = sum(p.stat().st_size for p in inputs)
        mode = choose_mode(self.mode, input_bytes=size, n_inputs=len(inputs), timeout=self.timeout,
                           sync_limit_mb=self.sync_limit_mb, step=self.name)
        run = self.transport.run(inputs, mode, work, env=self.env, chosen=self.mode == "auto")
        self.last_run = run
        result_file = run.outputs.get(remote.RESULT_FILE) or (run.outputs.get("") if run.single else None)
        if result_file is None:
            raise StepError(self.name, f"the runner on service {run.service!r} returned no result file: was the "
                            "service changed by hand? Redeploy it from its definition")
        summary = json.loads(result_file.read_text(encoding="utf-8"))
        self.remote_seconds = float(summary.get("seconds") or 0.0)
        self._log_run(run, f" (component ran {self.remote_seconds:.2f} s there)")
        try:
            return remote.decode(summary["result"], result_file.parent, allow_pickle=self.allow_pickle,
                                 files_to=self._keep_dir())
        except remote.PickleRefused as exc:
            raise StepConfigError(self.name, f"the component returned what only travels pickled ({exc}); "
                                  "unpickling runs code chosen by the service: set allow_pickle: true if you "
                                  "trust it") from None


OscarOffload.__module__ = "oscar_plugins.itwinai"  # its public path, also in to_dict()'s _target_

#: The keys ``offloaded`` takes under ``oscar:`` besides ``target``: OscarOffload's arguments.
OFFLOAD_KEYS = ("service", "cluster", "mode", "timeout", "files", "python", "env", "allow_pickle", "output_dir",
                "sync_limit_mb", "name")
_PLAIN = (type(None), bool, int, float, str)


def _built_object(value: Any) -> Any:
    """The first value in ``value`` that is no plain config value (a built object), or None."""
    if isinstance(value, _PLAIN):
        return None
    if isinstance(value, list):
        return next((found for v in value if (found := _built_object(v)) is not None), None)
    if isinstance(value, dict):
        return next((found for v in value.values() if (found := _built_object(v)) is not None), None)
    return value


def offloaded(oscar: Mapping[str, Any] | None = None, **component: Any) -> OscarOffload:
    """Hydra target that offloads the pipeline step it replaces, keeping the step's own keys as they are.

    For wrapping a step of a config you do not edit: override the step's ``_target_`` with this function,
    set ``_recursive_: false``, and add an ``oscar:`` mapping with the step's original ``_target_`` as
    ``target`` plus :class:`OscarOffload`'s arguments (``service``, ``files``, ``env``, ...). Every
    other key of the step is the component's config, unchanged::

        inference_step:                        # in a config whose defaults list loads the unchanged one
          _target_: oscar_plugins.itwinai.offloaded
          _recursive_: false
          oscar: {target: trainer.Lightning3DGANPredictor, files: [trainer.py, model.py]}

    The same as Hydra overrides: ``inference_pipeline.steps.inference_step._target_=oscar_plugins.itwinai.offloaded
    +inference_pipeline.steps.inference_step._recursive_=false
    +inference_pipeline.steps.inference_step.oscar.target=trainer.Lightning3DGANPredictor ...``.
    """
    given = plain(oscar) if oscar is not None else {}
    if not isinstance(given, Mapping):
        raise StepConfigError("offloaded step", f"oscar must be a mapping (target, service, files, ...), not "
                              f"{type(given).__name__}")
    settings = dict(given)
    step = str(settings.get("name") or "offloaded step")
    target = settings.pop("target", None)
    if not isinstance(target, str) or not target:
        raise StepConfigError(step, "oscar.target must name the component this step runs (the step's original "
                              "_target_, e.g. trainer.Lightning3DGANPredictor)")
    unknown = sorted(set(settings) - set(OFFLOAD_KEYS))
    if unknown:
        raise StepConfigError(step, f"unknown key(s) under oscar: {', '.join(unknown)} (known: target, "
                              f"{', '.join(OFFLOAD_KEYS)})")
    config: dict[str, Any] = {"_target_": target}
    for key, value in component.items():
        value = plain(value)
        built = _built_object(value)
        if built is not None:
            raise StepConfigError(step, f"the component's {key!r} reached this step as a built "
                                  f"{type(built).__name__}, not as its config: add '_recursive_: false' to the "
                                  "step, so that its config is built on the cluster and not here")
        config[key] = value
    return OscarOffload(config, **settings)


offloaded.__module__ = "oscar_plugins.itwinai"  # Hydra checks that a target is what its dotted path names
