"""The contract every face detector meets, and the registry the menu and CLI pick from.

Detectors know nothing of Qt or the CNNs: they take a BGR frame and return boxes in that frame's pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from inference.errors import DetectorError
from inference.types import FaceBox


@runtime_checkable
class FaceDetector(Protocol):
    """Finds faces. `detect` may be called from a worker thread, one call at a time."""

    name: str

    def detect(self, frame_bgr: np.ndarray) -> list[FaceBox]:
        """Boxes of all faces in full-frame pixel coordinates, best score first."""
        ...

    def close(self) -> None:
        """Release whatever the detector holds (sessions, files)."""
        ...


@runtime_checkable
class RefiningDetector(FaceDetector, Protocol):
    """A detector that can also re-find faces it found on a recent frame more cheaply than `detect`
    (MTCNN: its last two networks on the known boxes, skipping the pyramid). `detectors.roi` uses it between
    full scans instead of searching regions."""

    def refine(self, frame_bgr: np.ndarray, known: Sequence[FaceBox]) -> list[FaceBox]:
        """Where the `known` faces are in this frame (full-frame pixels, best first); lost ones are missing."""
        ...


@runtime_checkable
class VerifyingDetector(FaceDetector, Protocol):
    """A detector whose `detect` keeps only the boxes a second, slower look confirms (Haar + ONet). Where
    the boxes will be checked against faces already confirmed anyway (`detectors.roi` between full scans),
    `candidates` skips that look."""

    def candidates(self, frame_bgr: np.ndarray) -> list[FaceBox]:
        """Every box the first look finds, unconfirmed (full-frame pixels, best first)."""
        ...


DetectorFactory = Callable[[], FaceDetector]
_REGISTRY: dict[str, DetectorFactory] = {}


def register(name: str, factory: DetectorFactory) -> None:
    """Make a detector available by name (to the Detector menu, `--detector`, the benchmark)."""
    _REGISTRY[name] = factory


def available_detectors() -> list[str]:
    _load_builtins()
    return list(_REGISTRY)


def create_detector(name: str) -> FaceDetector:
    """Build a detector by name; an unknown name or a failed load raises DetectorError (one line)."""
    _load_builtins()
    if name not in _REGISTRY:
        raise DetectorError(f"unknown detector {name!r}; choose one of: {', '.join(_REGISTRY)}")
    try:
        return _REGISTRY[name]()
    except DetectorError:
        raise
    except Exception as exc:  # a third-party load failure is an expected, reportable error here
        raise DetectorError(f"detector {name!r} failed to load: {type(exc).__name__}: {exc}") from exc


def _load_builtins() -> None:
    """Import the bundled detector modules, which register themselves; cheap after the first call."""
    from detectors import haar, mtcnn_detector  # noqa: F401
