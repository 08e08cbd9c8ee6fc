"""Where oscar-plugins keeps its own files (read from the environment at call time, never at import)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "state_dir"]


def _xdg(var: str, fallback: str) -> Path:
    return Path(os.environ.get(var) or Path.home() / fallback)


def state_dir() -> Path:
    """``$OSCAR_PLUGINS_STATE_DIR`` or ``$XDG_STATE_HOME/oscar-plugins`` (the job journal lives here)."""
    explicit = os.environ.get("OSCAR_PLUGINS_STATE_DIR")
    return Path(explicit) if explicit else _xdg("XDG_STATE_HOME", ".local/state") / "oscar-plugins"


def cache_dir() -> Path:
    """``$OSCAR_PLUGINS_CACHE_DIR`` or ``$XDG_CACHE_HOME/oscar-plugins`` (file hashes)."""
    explicit = os.environ.get("OSCAR_PLUGINS_CACHE_DIR")
    return Path(explicit) if explicit else _xdg("XDG_CACHE_HOME", ".cache") / "oscar-plugins"
