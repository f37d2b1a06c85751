"""Small helpers shared by the dataset loaders: transparent decompression and an array cache (in
`inference.user_cache.cache_dir()`)."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from inference.errors import DatasetError
from inference.user_cache import cache_dir


def open_text(path: Path) -> io.TextIOBase:
    """Open a text file that may be gzip/xz/bz2-compressed, so users can pass what they downloaded as is."""
    path = Path(path)
    opener = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}.get(path.suffix, open)
    try:
        return opener(path, "rt", encoding="utf-8", newline="")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot open: {exc}") from None


def cached_arrays(
    source: Path, tag: str, build: Callable[[], dict[str, np.ndarray]], keys: Sequence[str]
) -> list[np.ndarray]:
    """Return `build()`'s arrays, reusing a cache keyed by the source's path, size, mtime and `tag`.

    A source that changed (or was copied in again, with a new mtime) makes its older cache files stale for good,
    so writing a new one removes them: the cache holds one version per source and tag, not one per session.
    Files in the format used before 2026-12-01 (`<tag>-<16 hex>.npz`, one key for source and version) can never
    be read again, so they go too."""
    stat = Path(source).stat()
    source_key = hashlib.sha1(f"{Path(source).resolve()}|{tag}".encode()).hexdigest()[:12]
    version_key = hashlib.sha1(f"{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:8]
    path = cache_dir() / f"{tag}-{source_key}-{version_key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                return [data[k] for k in keys]
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # a broken cache is rebuilt, never trusted
    arrays = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
        legacy = re.compile(re.escape(tag) + r"-[0-9a-f]{16}\.npz")
        for stale in path.parent.glob(f"{tag}-*.npz"):
            same_source = stale.name.startswith(f"{tag}-{source_key}-") and not stale.name.endswith(".tmp.npz")
            if stale != path and (same_source or legacy.fullmatch(stale.name)):
                stale.unlink(missing_ok=True)
    except OSError:
        pass  # caching is an optimisation; a read-only home still trains
    return [arrays[k] for k in keys]
