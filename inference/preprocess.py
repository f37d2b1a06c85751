"""Face preparation shared by training and inference.

A model is only as good as the agreement between how its training faces were prepared and how live faces
are: one seed project preprocessed the same model two ways in two demos. So both sides call these functions,
driven by the `InputSpec` stored in each model card.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from inference.types import FaceBox

COLORS = ("grey", "rgb")


@dataclass(frozen=True, slots=True)
class InputSpec:
    """How a model wants its faces: a square `size` px crop in `color`, taken around the detector box
    enlarged by `margin` (a fraction of the box side added on every side). Pixel values stay 0..255;
    the model scales them itself (a Rescaling layer), so no caller can forget or repeat it."""

    size: int
    color: str
    margin: float

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ValueError(f"input size must be >= 8 px, got {self.size}")
        if self.color not in COLORS:
            raise ValueError(f"color must be one of {COLORS}, got {self.color!r}")
        if not 0.0 <= self.margin <= 1.0:
            raise ValueError(f"margin must be within [0, 1], got {self.margin}")

    @property
    def channels(self) -> int:
        return 1 if self.color == "grey" else 3

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.size, self.size, self.channels)

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "color": self.color, "margin": self.margin}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputSpec:
        return cls(size=int(data["size"]), color=str(data["color"]), margin=float(data["margin"]))


def square_region(box: FaceBox, margin: float) -> tuple[int, int, int]:
    """The square (x0, y0, side) around `box` enlarged by `margin`: square so faces are never stretched."""
    cx, cy = box.center
    side = max(box.w, box.h) * (1.0 + 2.0 * margin)
    side_px = max(1, int(round(side)))
    return int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), side_px


def crop_face(frame: np.ndarray, box: FaceBox, margin: float) -> np.ndarray:
    """Cut the square region around `box` out of `frame`; parts outside the frame repeat the edge pixels
    so a face at the border keeps its position inside the crop."""
    if frame.ndim not in (2, 3) or frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"expected an HxW or HxWxC image, got shape {frame.shape}")
    x0, y0, side = square_region(box, margin)
    height, width = frame.shape[:2]
    x1, y1 = x0 + side, y0 + side
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    if cx1 <= cx0 or cy1 <= cy0:
        raise ValueError(f"face box {box} lies outside the {width}x{height} frame")
    crop = frame[cy0:cy1, cx0:cx1]
    pads = (cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1)
    if any(pads):
        crop = cv2.copyMakeBorder(crop, *pads, borderType=cv2.BORDER_REPLICATE)
    return crop


def to_color(image: np.ndarray, color: str) -> np.ndarray:
    """Convert a grey (HxW / HxWx1) or BGR (HxWx3) uint8 image to the model's colour (grey or RGB)."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if color == "grey":
        return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def prepare_face(crop: np.ndarray, spec: InputSpec) -> np.ndarray:
    """One face crop (grey or BGR, any size) → the model's input tensor (size, size, channels) float32 0..255."""
    if crop.dtype != np.uint8:
        raise ValueError(f"face crops must be uint8, got {crop.dtype}")
    image = to_color(crop, spec.color)
    interpolation = cv2.INTER_AREA if min(image.shape[:2]) >= spec.size else cv2.INTER_LINEAR
    image = cv2.resize(image, (spec.size, spec.size), interpolation=interpolation)
    return image.reshape(spec.shape).astype(np.float32)


def prepare_faces(crops: Sequence[np.ndarray], spec: InputSpec) -> np.ndarray:
    """A batch of crops → (n, size, size, channels) float32, the exact array the model is called on."""
    out = np.empty((len(crops), *spec.shape), dtype=np.float32)
    for i, crop in enumerate(crops):
        out[i] = prepare_face(crop, spec)
    return out
