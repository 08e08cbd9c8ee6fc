"""Load an example's step script (a standalone file shipped to the cluster) as a module for tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_step(path: Path, prefix: str) -> ModuleType:
    """Import ``path`` once, as ``<prefix>_<stem>``."""
    name = f"{prefix}_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module
