"""Small itwinai components for the tests: shipped to the local cluster by ``OscarOffload`` (``files:``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from itwinai.components import BaseComponent, monitor_exec


class TensorGetter(BaseComponent):
    """A float tensor ``arange(n).reshape(rows, -1)`` and a float64 array of the same values."""

    def __init__(self, n: int = 12, rows: int = 3, name: str | None = None) -> None:
        super().__init__(name=name)
        self.save_parameters(**self.locals2params(locals()))
        self.n, self.rows = n, rows

    @monitor_exec
    def execute(self) -> tuple[torch.Tensor, np.ndarray]:
        t = torch.arange(self.n, dtype=torch.float32).reshape(self.rows, -1)
        return t, t.numpy().astype(np.float64)


class Scale(BaseComponent):
    """Multiply a tensor (and an optional array) by ``factor``; also report what it saw."""

    def __init__(self, factor: float = 2.0, name: str | None = None) -> None:
        super().__init__(name=name)
        self.save_parameters(**self.locals2params(locals()))
        self.factor = factor

    @monitor_exec
    def execute(self, tensor: torch.Tensor, array: Any = None) -> tuple[torch.Tensor, Any, dict[str, Any]]:
        seen = {"shape": list(tensor.shape), "dtype": str(tensor.dtype), "array_type": type(array).__name__}
        return tensor * self.factor, None if array is None else array * self.factor, seen


class Boom(BaseComponent):
    """Always fails, with a recognisable message."""

    def __init__(self, message: str = "boom", name: str | None = None) -> None:
        super().__init__(name=name)
        self.save_parameters(**self.locals2params(locals()))
        self.message = message

    @monitor_exec
    def execute(self, *args: Any) -> None:
        raise ValueError(f"{self.message}: the remote component failed on purpose")


class ReadText(BaseComponent):
    """Return the text of the file at ``path`` (a file shipped with the step, or inside a shipped folder)."""

    def __init__(self, path: str, name: str | None = None) -> None:
        super().__init__(name=name)
        self.save_parameters(**self.locals2params(locals()))
        self.path = path

    @monitor_exec
    def execute(self) -> str:
        return Path(self.path).read_text(encoding="utf-8")


class Recorder(BaseComponent):
    """Write what the previous step returned to ``path`` (``.npz`` of arrays + a JSON of the rest)."""

    def __init__(self, path: str, name: str | None = None) -> None:
        super().__init__(name=name)
        self.save_parameters(**self.locals2params(locals()))
        self.path = path

    @monitor_exec
    def execute(self, *args: Any) -> tuple[Any, ...]:
        arrays, meta = {}, []
        for i, value in enumerate(args):
            if isinstance(value, torch.Tensor):
                arrays[f"arg{i}"] = value.numpy()
                meta.append({"type": "tensor", "dtype": str(value.dtype)})
            elif isinstance(value, np.ndarray):
                arrays[f"arg{i}"] = value
                meta.append({"type": "ndarray", "dtype": str(value.dtype)})
            else:
                shown = str(value) if isinstance(value, Path) else value
                meta.append({"type": type(value).__name__, "value": shown})
        np.savez(self.path + ".npz", **arrays)
        Path(self.path + ".json").write_text(json.dumps(meta), encoding="utf-8")
        return args
