"""The small immutable values that flow between FaceLens's stages.

They are validated on construction so that a bad box or probability is caught where it is made,
not three threads later when the renderer draws it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class FaceBox:
    """A face rectangle in pixel coordinates of the full frame (top-left x, y; width, height)."""

    x: float
    y: float
    w: float
    h: float
    score: float = 1.0

    def __post_init__(self) -> None:
        for name in ("x", "y", "w", "h", "score"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"FaceBox.{name} must be finite, got {getattr(self, name)!r}")
        if self.w <= 0 or self.h <= 0:
            raise ValueError(f"FaceBox needs a positive size, got w={self.w} h={self.h}")

    @property
    def area(self) -> float:
        return self.w * self.h

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.w / 2.0, self.y + self.h / 2.0

    def scaled(self, factor: float) -> FaceBox:
        """The same box in a frame `factor` times larger (detection runs on a downscaled copy)."""
        return FaceBox(self.x * factor, self.y * factor, self.w * factor, self.h * factor, self.score)

    def intersection(self, other: FaceBox) -> float:
        """The area both boxes cover."""
        ix = max(0.0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0.0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        return ix * iy

    def iou(self, other: FaceBox) -> float:
        inter = self.intersection(other)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Prediction:
    """One attribute's answer for one face: the winning label and every class's probability."""

    label: str
    probs: Mapping[str, float]

    def __post_init__(self) -> None:
        if self.label not in self.probs:
            raise ValueError(f"Prediction label {self.label!r} is not one of {list(self.probs)}")
        for name, p in self.probs.items():
            if not (0.0 <= p <= 1.0 + 1e-6) or not math.isfinite(p):
                raise ValueError(f"probability of {name!r} must be in [0, 1], got {p!r}")
        object.__setattr__(self, "probs", MappingProxyType(dict(self.probs)))

    @property
    def confidence(self) -> float:
        return float(self.probs[self.label])

    @classmethod
    def from_probs(cls, classes: tuple[str, ...] | list[str], probs) -> Prediction:
        """Build from a probability vector in the model card's class order."""
        values = [float(p) for p in probs]
        if len(values) != len(classes):
            raise ValueError(f"{len(values)} probabilities for {len(classes)} classes")
        best = max(range(len(values)), key=values.__getitem__)
        return cls(label=classes[best], probs=dict(zip(classes, values, strict=True)))


@dataclass(frozen=True, slots=True)
class Face:
    """A tracked face: a stable id, where it is now, and its (smoothed) attributes; any may be None
    when that model is switched off or has not seen the face yet."""

    track_id: int
    box: FaceBox
    emotion: Prediction | None = None
    gender: Prediction | None = None
    race: Prediction | None = None

    def __post_init__(self) -> None:
        if self.track_id < 0:
            raise ValueError(f"track_id must be >= 0, got {self.track_id}")

    def attribute(self, name: str) -> Prediction | None:
        if name not in ATTRIBUTES:
            raise KeyError(f"unknown attribute {name!r}; expected one of {ATTRIBUTES}")
        return getattr(self, name)


ATTRIBUTES: tuple[str, ...] = ("emotion", "gender", "race")


@dataclass(frozen=True, slots=True)
class FrameResult:
    """Everything analysis learned about one frame; `index` says which frame, so the display can tell
    how far behind the overlay is."""

    index: int
    timestamp: float
    faces: tuple[Face, ...] = ()
    timings: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.index < 0:
            raise ValueError(f"frame index must be >= 0, got {self.index}")
        object.__setattr__(self, "faces", tuple(self.faces))
        object.__setattr__(self, "timings", MappingProxyType(dict(self.timings)))
