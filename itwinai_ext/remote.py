"""The remote side of :class:`~oscar_plugins.itwinai.OscarOffload`, and the artifact format both sides use.

This file is self-contained on purpose (standard library at import; numpy, torch, itwinai and hydra
imported only when needed): its source is embedded in the OSCAR service script, so a service needs
``python3`` with itwinai in its image, not oscar-plugins. Run by the service as::

    python3 remote.py <inputs dir> <output dir>        # or: python3 -m oscar_plugins.itwinai.remote

Artifact format (``oscar-itwinai/1``): a value becomes a JSON *node* plus files beside it.

=============  =================================================  ==========================
node ``k``     Python value                                       file
=============  =================================================  ==========================
``json``       None, bool, int, float, str (``v`` holds it)       -
``tuple``      tuple / list / dict (``items``; dict items are      -
``list``       ``[key, node]`` pairs, keys JSON scalars)
``dict``
``tensor``     ``torch.Tensor`` (detached, moved to CPU)          ``.pt``  (``torch.save``)
``ndarray``    ``numpy.ndarray`` (not of dtype object)            ``.npy`` (``allow_pickle=False``)
``bytes``      bytes / bytearray                                  ``.bin``
``file``       ``pathlib.Path`` of an existing file               the file, name kept in ``name``
``pickle``     anything else that pickles                         ``.pkl``
=============  =================================================  ==========================

A tensor that is a view into a larger storage (a row of a batch) travels as a compact copy of its own
elements, not with the whole storage ``torch.save`` would write.

The call file (``oscar-itwinai-call.json``) holds ``format``, ``step``, the ``component`` config and the
``args`` node; format ``oscar-itwinai/1+dirs`` adds ``dirs``, ``{archive: folder}`` of shipped folders
(tar archives among the inputs, unpacked next to them before the component is built). Strings
``oscar-input://<name>[/<path inside a shipped folder>]`` in the config become local paths.

Tensors load with ``torch.load(weights_only=True)`` and arrays with ``allow_pickle=False``: decoding
them runs no code. ``pickle`` nodes are decoded only when the caller allows it, because unpickling
data from elsewhere runs code chosen by whoever wrote it.

Exit codes of the runner: 0 success, 1 the component raised, 3 itwinai (or hydra) is not importable,
4 the call could not be read or the component could not be built.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
import tarfile
import time
import traceback
from pathlib import Path, PurePath
from typing import Any

FORMAT = "oscar-itwinai/1"
#: A call that ships folders: older runners refuse it (asking for a redeploy) instead of ignoring them.
FORMAT_DIRS = FORMAT + "+dirs"
CALL_FORMATS = (FORMAT, FORMAT_DIRS)
#: Suffix of the archive a shipped folder travels as.
DIR_ARCHIVE_SUFFIX = ".oi-dir.tar"
CALL_FILE = "oscar-itwinai-call.json"
RESULT_FILE = "oscar-itwinai-result.json"
INPUT_MARKER = "oscar-input://"
EXIT_FAILED, EXIT_NO_ITWINAI, EXIT_BAD_CALL = 1, 3, 4
RUNNER_MARKER = "# oscar-plugins itwinai runner v1"
_SCRIPT_END = "__OSCAR_ITWINAI_RUNNER_END__"
_SCALARS = (type(None), bool, int, float, str)


class PickleRefused(ValueError):
    """A ``pickle`` node was met while unpickling is not allowed."""


def _module(value: Any, name: str) -> Any:
    """``sys.modules[name]`` when ``value`` can be one of its objects (no import otherwise)."""
    return sys.modules.get(name) if type(value).__module__.split(".", 1)[0] == name else None


class Encoder:
    """Turns values into nodes, writing their files into ``directory`` as ``<prefix><n>.<ext>``.

    ``files`` collects what must travel: the written files, and existing files referenced by ``Path``
    values (linked into ``directory`` under a unique name when ``link_files``, else copied).
    """

    def __init__(self, directory: Path, prefix: str, *, link_files: bool = True) -> None:
        self.directory = directory
        self.prefix = prefix
        self.link_files = link_files
        self.files: list[Path] = []
        self._count = 0

    def _target(self, ext: str, name: str = "") -> Path:
        self._count += 1
        path = self.directory / f"{self.prefix}{self._count}{'-' + name if name else ext}"
        self.files.append(path)
        return path

    def encode(self, value: Any) -> dict[str, Any]:
        if isinstance(value, _SCALARS):
            return {"k": "json", "v": value}
        if isinstance(value, (tuple, list)):
            return {"k": "tuple" if isinstance(value, tuple) else "list", "items": [self.encode(v) for v in value]}
        if isinstance(value, dict) and all(isinstance(k, _SCALARS) for k in value):
            return {"k": "dict", "items": [[k, self.encode(v)] for k, v in value.items()]}
        torch = _module(value, "torch")
        if torch is not None and isinstance(value, torch.Tensor):
            path = self._target(".pt")
            tensor = value.detach().cpu()
            storage = tensor.untyped_storage().nbytes() if tensor.layout == torch.strided else 0
            if storage > tensor.nelement() * tensor.element_size():
                tensor = tensor.clone()  # a view: torch.save would write the whole storage it points into
            torch.save(tensor, path)
            return {"k": "tensor", "f": path.name}
        np = _module(value, "numpy")
        if np is not None and isinstance(value, np.ndarray) and value.dtype != object:
            path = self._target(".npy")
            np.save(path, value, allow_pickle=False)
            return {"k": "ndarray", "f": path.name}
        if isinstance(value, (bytes, bytearray)):
            path = self._target(".bin")
            path.write_bytes(bytes(value))
            return {"k": "bytes", "f": path.name}
        if isinstance(value, PurePath) and Path(value).is_file():
            path = self._target("", Path(value).name)
            self._place(Path(value), path)
            return {"k": "file", "f": path.name, "name": Path(value).name}
        data = pickle.dumps(value, protocol=4)  # raises for what cannot travel at all
        path = self._target(".pkl")
        path.write_bytes(data)
        return {"k": "pickle", "f": path.name, "type": f"{type(value).__module__}.{type(value).__qualname__}"}

    def _place(self, source: Path, target: Path) -> None:
        if self.link_files:
            try:
                target.symlink_to(source.resolve())
                return
            except OSError:
                pass
        shutil.copyfile(source, target)


def decode(node: dict[str, Any], directory: Path, *, allow_pickle: bool, files_to: Path | None = None) -> Any:
    """Rebuild a value from its node; ``file`` nodes are moved to ``files_to`` (default: left in place)."""
    kind = node.get("k")
    if kind == "json":
        return node.get("v")
    if kind in {"tuple", "list"}:
        items = [decode(n, directory, allow_pickle=allow_pickle, files_to=files_to) for n in node["items"]]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        return {k: decode(n, directory, allow_pickle=allow_pickle, files_to=files_to) for k, n in node["items"]}
    path = directory / _safe_name(str(node.get("f", "")))
    if kind == "tensor":
        import torch

        return torch.load(path, map_location="cpu", weights_only=True)
    if kind == "ndarray":
        import numpy as np

        return np.load(path, allow_pickle=False)
    if kind == "bytes":
        return path.read_bytes()
    if kind == "file":
        if files_to is None:
            return path
        files_to.mkdir(parents=True, exist_ok=True)
        dest = files_to / _safe_name(str(node.get("name") or path.name))
        shutil.move(str(path), dest)
        return dest
    if kind == "pickle":
        if not allow_pickle:
            raise PickleRefused(f"a {node.get('type', 'Python object')} can only travel pickled")
        with path.open("rb") as fh:
            return pickle.load(fh)  # noqa: S301 - the caller opted in (allow_pickle)
    raise ValueError(f"unknown artifact node kind {kind!r} (format {FORMAT})")


def _safe_name(name: str) -> str:
    if not name or "/" in name or "\\" in name or name in {".", ".."}:
        raise ValueError(f"unsafe artifact file name {name!r}")
    return name


def _safe_relative(path: str) -> str:
    """``name`` or ``name/inside/a/folder``: relative, without ``.``/``..`` or empty parts."""
    parts = path.split("/")
    for part in parts:
        _safe_name(part)
    return "/".join(parts)


def substitute_inputs(value: Any, inputs_dir: Path) -> Any:
    """Replace ``oscar-input://<name>[/<path>]`` strings with paths under ``inputs_dir`` (recursively)."""
    if isinstance(value, str) and value.startswith(INPUT_MARKER):
        return str(inputs_dir / _safe_relative(value[len(INPUT_MARKER):]))
    if isinstance(value, list):
        return [substitute_inputs(v, inputs_dir) for v in value]
    if isinstance(value, dict):
        return {k: substitute_inputs(v, inputs_dir) for k, v in value.items()}
    return value


def unpack_dir(archive: Path, target: Path) -> None:
    """Unpack a shipped folder's archive into ``target``: regular files and folders only, all inside it."""
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for member in members:
            name = member.name
            if not (member.isfile() or member.isdir()) or name.startswith("/") or name == "":
                raise ValueError(f"{archive.name}: member {name!r} is not a plain file or folder inside it")
            if name != ".":
                _safe_relative(name)
        target.mkdir(parents=True, exist_ok=True)
        for member in members:
            if member.isdir():
                (target / member.name).mkdir(parents=True, exist_ok=True)
                continue
            dest = target / member.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            if source is None:
                raise ValueError(f"{archive.name}: cannot read member {member.name!r}")
            with source, dest.open("wb") as fh:
                shutil.copyfileobj(source, fh)
            os.utime(dest, (member.mtime, member.mtime))


# -- the runner ------------------------------------------------------------------------------------
def _fail(code: int, step: str, message: str) -> int:
    print(f"oscar-plugins itwinai: step {step!r}: {message}", file=sys.stderr, flush=True)
    return code


def run(inputs_dir: Path, output_dir: Path) -> int:
    """Build the component of the call file, execute it on the decoded inputs, encode its result."""
    try:
        call = json.loads((inputs_dir / CALL_FILE).read_text(encoding="utf-8"))
        step = str(call.get("step") or "?")
        if call.get("format") not in CALL_FORMATS:
            return _fail(EXIT_BAD_CALL, step, f"call format {call.get('format')!r} is not one of "
                         f"{', '.join(CALL_FORMATS)}: the client and the service runner differ in version; "
                         "redeploy the service")
    except (OSError, ValueError) as exc:
        return _fail(EXIT_BAD_CALL, "?", f"cannot read {CALL_FILE} in {inputs_dir}: {exc}")
    try:
        import itwinai  # noqa: F401
        from hydra.utils import instantiate
    except ImportError as exc:
        return _fail(EXIT_NO_ITWINAI, step, f"itwinai is not importable by {sys.executable} in this image "
                     f"({exc}); use an image with itwinai installed (pip install itwinai)")
    sys.path.insert(0, str(inputs_dir))  # shipped modules are importable
    try:
        for archive, folder in (call.get("dirs") or {}).items():
            unpack_dir(inputs_dir / _safe_name(str(archive)), inputs_dir / _safe_name(str(folder)))
    except (OSError, ValueError, tarfile.TarError) as exc:
        return _fail(EXIT_BAD_CALL, step, f"cannot unpack a shipped folder: {exc}")
    try:
        component = instantiate(substitute_inputs(call["component"], inputs_dir), _convert_="all")
        args = decode(call["args"], inputs_dir, allow_pickle=True)
    except Exception:
        traceback.print_exc()
        return _fail(EXIT_BAD_CALL, step, f"could not build component {call['component'].get('_target_')!r} "
                     "or decode its inputs (traceback above)")
    start = time.perf_counter()
    try:
        result = component.execute(*args)
    except Exception:
        traceback.print_exc()
        return _fail(EXIT_FAILED, step, f"{type(component).__name__}.execute raised (traceback above)")
    seconds = time.perf_counter() - start
    output_dir.mkdir(parents=True, exist_ok=True)
    node = Encoder(output_dir, "out-", link_files=False).encode(result)
    summary = {"format": FORMAT, "result": node, "seconds": seconds, "python": sys.version.split()[0]}
    (output_dir / RESULT_FILE).write_text(json.dumps(summary), encoding="utf-8")
    return 0


def service_script(python: str = "python3", prelude: str = "") -> str:
    """The OSCAR service script that runs this file's runner with ``python`` (``prelude`` runs first)."""
    source = Path(__file__).read_text(encoding="utf-8")
    if any(line.strip() == _SCRIPT_END for line in (source + "\n" + prelude).splitlines()):
        raise ValueError(f"the line {_SCRIPT_END} is reserved")
    quoted = "'" + python.replace("'", "'\\''") + "'"
    return "\n".join([
        RUNNER_MARKER,
        prelude.rstrip("\n"),
        f"op_py={quoted}",
        'op_runner="${TMPDIR:-/tmp}/oscar-itwinai-runner-$$.py"',
        f"cat > \"$op_runner\" <<'{_SCRIPT_END}'",
        source.rstrip("\n"),
        _SCRIPT_END,
        'if ! command -v "${op_py%% *}" >/dev/null 2>&1; then',
        '  echo "oscar-plugins itwinai: no \'$op_py\' in this image: itwinai needs Python" >&2; exit 3',
        "fi",
        '$op_py "$op_runner" "${OSCAR_INPUTS_DIR:-$(dirname "$INPUT_FILE_PATH")}" "$TMP_OUTPUT_DIR"',
        "op_rc=$?",
        'rm -f "$op_runner"',
        "exit $op_rc",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python3 -m oscar_plugins.itwinai.remote <inputs dir> <output dir>", file=sys.stderr)
        return 2
    return run(Path(args[0]), Path(args[1] or os.environ.get("TMP_OUTPUT_DIR", ".")))


if __name__ == "__main__":
    sys.exit(main())
