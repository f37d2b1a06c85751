"""Where FaceLens keeps what it can rebuild but should not rebuild every run (parsed datasets, converted
models): one folder outside the repository, never frames or faces of the user's own sources."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$FACELENS_CACHE, else ~/.cache/facelens."""
    return Path(os.environ.get("FACELENS_CACHE", Path.home() / ".cache" / "facelens"))
