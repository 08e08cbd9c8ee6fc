"""How :class:`~oscar_plugins.itwinai.OscarStep` turns arguments into files and output files into values.

Pure functions over the local file system. Argument ``i`` becomes one file in the service's
``$OSCAR_INPUTS_DIR`` (the first is also ``$INPUT_FILE_PATH``):

===========================  ==============================  =========================================
argument                     file                            read back (outputs, by extension)
===========================  ==============================  =========================================
``pathlib.Path`` to a file   the file, under its own name    any other extension: a ``Path``
``torch.Tensor``             ``arg<i>.pt`` (``torch.save``)  ``.pt``/``.pth``: ``torch.load(weights_only)``
``numpy.ndarray``            ``arg<i>.npy``                  ``.npy``/``.npz``: ``numpy.load`` (no pickle)
``bytes``                    ``arg<i>.bin``                  ``.bin``: bytes
JSON-able (dict, list, ...)  ``arg<i>.json``                 ``.json``: parsed
anything else picklable      ``arg<i>.pkl`` (pickle)         ``.pkl``/``.pickle``: only if allow_pickle
===========================  ==============================  =========================================

Plus ``oscar-itwinai-args.json``: the list of the argument files' names, in order.
"""

from __future__ import annotations

import json
import pickle
import shutil
import sys
from pathlib import Path, PurePath
from typing import Any

from ._errors import StepConfigError

__all__ = ["ARGS_FILE", "read_output", "write_args"]

ARGS_FILE = "oscar-itwinai-args.json"


def _write_one(value: Any, directory: Path, index: int, step: str) -> Path:
    torch = sys.modules.get("torch")
    np = sys.modules.get("numpy")
    if isinstance(value, PurePath):
        source = Path(value)
        if not source.exists():
            raise StepConfigError(step, f"argument {index} is the path {source}, which does not exist: fix the path "
                                  "(relative paths are resolved from the working directory)")
        if not source.is_file():
            raise StepConfigError(step, f"argument {index} is the path {source}, which is not a file: only files "
                                  "can be shipped (archive a directory first)")
        target = directory / source.name
        try:
            target.symlink_to(source.resolve())
        except OSError:
            shutil.copyfile(source, target)
        return target
    if torch is not None and isinstance(value, torch.Tensor):
        target = directory / f"arg{index}.pt"
        torch.save(value.detach().cpu(), target)
    elif np is not None and isinstance(value, np.ndarray) and value.dtype != object:
        target = directory / f"arg{index}.npy"
        np.save(target, value, allow_pickle=False)
    elif isinstance(value, (bytes, bytearray)):
        target = directory / f"arg{index}.bin"
        target.write_bytes(bytes(value))
    else:
        try:
            text = json.dumps(value)
            target = directory / f"arg{index}.json"
            target.write_text(text, encoding="utf-8")
        except (TypeError, ValueError):
            target = directory / f"arg{index}.pkl"
            try:
                target.write_bytes(pickle.dumps(value, protocol=4))
            except Exception as exc:
                raise StepConfigError(step, f"argument {index} ({type(value).__name__}) cannot be sent to the "
                                      f"service: it is no file, tensor, array, JSON value, and does not pickle "
                                      f"({exc})") from None
    return target


def write_args(args: tuple[Any, ...], directory: Path, step: str) -> list[Path]:
    """Write each argument as one file (see the module docstring); returns them plus the args list."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [_write_one(value, directory, i, step) for i, value in enumerate(args)]
    names = [p.name for p in paths]
    if len(set(names)) != len(names) or ARGS_FILE in names:
        raise StepConfigError(step, f"two arguments would reach the service under the same file name ({names}): "
                              "rename the files")
    listing = directory / ARGS_FILE
    listing.write_text(json.dumps(names), encoding="utf-8")
    return [*paths, listing]


def read_output(path: Path, name: str, *, allow_pickle: bool, keep_dir: Path, step: str) -> Any:
    """The value of one output file, chosen by the extension of ``name``; other files move to ``keep_dir``."""
    suffix = PurePath(name).suffix.lower()
    if suffix in {".pt", ".pth"}:
        import torch

        try:
            return torch.load(path, map_location="cpu", weights_only=not allow_pickle)
        except Exception as exc:
            raise StepConfigError(step, f"output {name} does not load as tensors ({exc}); if it holds other "
                                  "objects and you trust the service, set allow_pickle: true") from None
    if suffix in {".npy", ".npz"}:
        import numpy as np

        loaded = np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with loaded:
                return {k: loaded[k] for k in loaded.files}
        return loaded
    if suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    if suffix == ".bin":
        return path.read_bytes()
    if suffix in {".pkl", ".pickle"}:
        if not allow_pickle:
            raise StepConfigError(step, f"the service returned the pickle {name}: unpickling runs code chosen by "
                                  "whoever wrote it; set allow_pickle: true if you trust the service")
        with path.open("rb") as fh:
            return pickle.load(fh)  # noqa: S301 - opted in with allow_pickle
    dest = keep_dir / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), dest)
    return dest
