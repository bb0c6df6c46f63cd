"""Where dipo caches what it builds (the testbed model, SmolLM2 converted from its GGUF package)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """`$DIPO_CACHE` if set (and not empty), else `~/.cache/dipo`."""
    return Path(os.environ.get("DIPO_CACHE") or Path.home() / ".cache" / "dipo")
