"""Converted TFLite models kept between runs, because loading Keras and converting is most of a start's cost.

Measured on the 2-core machine (AVX2, a training run sharing it): `load_models` took 19.6 s, of which the
three int8 conversions were 17.0 s (emotion 6.4, gender 5.0, race 5.6 s) and rebuilding the Keras models
most of the rest. An entry holds the flatbuffer and the Keras model's probabilities on the loader's probe
faces, so a later start can run the same agreement check without building the Keras model at all.

An entry is keyed by the Keras file's bytes, the card's input shape and class count, the engine, TensorFlow's
version and `CONVERTER_VERSION`: new weights, a new card or a new converter never reuse an old entry, and a
new entry for a model file removes that file's older ones. The cache is only ever a shortcut: an entry that is
unreadable or fails the check is deleted and the model converted afresh, and a cache that cannot be written
costs only the next start its conversion (see `inference.models.load_model`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from inference.lite import LiteRunner
from inference.user_cache import cache_dir

# Bump when `inference.lite.convert` changes what it produces for the same model.
CONVERTER_VERSION = 1
# Entries kept, the most recently used first: the shipped set needs 3 (~1.4-1.9 MB each); evaluating many
# training runs' models, or test runs' throwaway ones, must not grow the folder without bound.
MAX_ENTRIES = 16
TFLITE_IDENTIFIER = b"TFL3"  # a flatbuffer's file identifier, bytes 4-8


class LiteCache:
    """The cache entry for one model file converted one way."""

    def __init__(self, model_path: Path, input_shape: Sequence[int], n_classes: int, quantize: bool) -> None:
        model_path = Path(model_path)
        self.quantize = quantize
        engine = "int8" if quantize else "float"
        self._prefix = hashlib.sha1(f"{model_path.resolve()}|{engine}".encode()).hexdigest()[:12]
        self._model_path = model_path
        self._key = f"{tuple(input_shape)}|{n_classes}|{engine}|{tf.__version__}|{CONVERTER_VERSION}"
        self._path: Path | None = None

    @property
    def path(self) -> Path:
        """Computed on first use: hashing the model file is the only cost of a cache hit besides reading it."""
        if self._path is None:
            digest = hashlib.sha256(self._model_path.read_bytes())
            digest.update(self._key.encode())
            self._path = cache_dir() / "tflite" / f"{self._prefix}-{digest.hexdigest()[:20]}.npz"
        return self._path

    def load(self) -> tuple[bytes, np.ndarray] | None:
        """(flatbuffer, the Keras probabilities it must reproduce), or None when there is no usable entry."""
        try:
            with np.load(self.path, allow_pickle=False) as entry:
                flatbuffer, expected = entry["flatbuffer"].tobytes(), entry["expected"]
            os.utime(self.path)  # used now: the last to be evicted
        except (OSError, ValueError, KeyError):
            return None
        return (flatbuffer, expected) if flatbuffer[4:8] == TFLITE_IDENTIFIER else None

    def store(self, flatbuffer: bytes, expected: np.ndarray) -> None:
        """Write atomically (another FaceLens may be starting too), drop this model file's older entries and
        all but the `MAX_ENTRIES` most recently used."""
        buffer = io.BytesIO()
        np.savez(buffer, flatbuffer=np.frombuffer(flatbuffer, np.uint8), expected=np.asarray(expected, np.float32))
        tmp = None
        try:
            path = self.path
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(buffer.getvalue())
            os.replace(tmp, path)
            for stale in path.parent.glob(f"{self._prefix}-*.npz"):
                if stale != path:
                    stale.unlink(missing_ok=True)
            entries = sorted(path.parent.glob("*.npz"), key=lambda entry: entry.stat().st_mtime, reverse=True)
            for old in entries[MAX_ENTRIES:]:
                old.unlink(missing_ok=True)
        except OSError:  # read-only or full disk, or another process tidying at the same time
            if tmp is not None:
                with contextlib.suppress(OSError):
                    tmp.unlink(missing_ok=True)

    def load_checked(self, input_shape: Sequence[int], probe: np.ndarray, tolerance: float) -> LiteRunner | None:
        """A runner on this entry's flatbuffer if it still reproduces, on `probe`, the outputs stored with it;
        otherwise None, and a bad entry deleted (converting again is the fix)."""
        entry = self.load()
        if entry is None:
            return None
        try:
            runner = checked_runner(entry[0], input_shape, probe, entry[1], tolerance)
        except Exception:  # a damaged entry can fail anywhere in the interpreter
            runner = None
        if runner is None:
            self.discard()
        return runner

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)


def checked_runner(
    flatbuffer: bytes, input_shape: Sequence[int], probe: np.ndarray, expected: np.ndarray, tolerance: float
) -> LiteRunner | None:
    """A runner on `flatbuffer` if it reproduces `expected`, the source model's outputs on `probe`, within
    `tolerance`: the check every conversion passes before it runs or is cached."""
    runner = LiteRunner(flatbuffer, input_shape)
    return runner if np.allclose(runner(probe), expected, atol=tolerance) else None
