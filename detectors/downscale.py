"""The shared first step of every detector: a smaller copy of the frame to search.

Detection cost grows with the pixel count, while a face only needs a few dozen pixels to be found, so each
detector searches a copy whose longest side is at most `max_side` and scales its boxes back by the returned
factor. Keeping this in one place means every detector agrees on rounding and interpolation.

A fixed `max_side` alone would make the smallest face found grow with the source (a 24 px Haar window on a
360 px copy is a 43 px face at 640 wide but 128 px at 1920, which missed most people of a 1080p group
clip), so `min_fraction` keeps at least that fraction of the frame's longest side: with 0.5 the smallest
face stays about twice the detector's window at any resolution above ~720 px.
"""

from __future__ import annotations

import cv2
import numpy as np


def search_side(longest: int, max_side: int | None, min_fraction: float = 0.0) -> int | None:
    """The longest side to search for a frame whose longest side is `longest` (None: the full frame)."""
    if max_side is None:
        return None
    return max(max_side, round(longest * min_fraction))


def downscale_factor(longest: int, max_side: int | None, min_fraction: float = 0.0) -> float:
    """How many frame pixels one pixel of the searched copy spans (1.0: searched at full size)."""
    side = search_side(longest, max_side, min_fraction)
    return 1.0 if side is None or longest <= side else longest / side


def downscale(frame: np.ndarray, max_side: int | None, min_fraction: float = 0.0) -> tuple[np.ndarray, float]:
    """Return (copy with longest side <= max(max_side, min_fraction x its longest side), factor that maps
    its pixels back to `frame`'s).

    Never upscales: a small frame is returned as is with factor 1. INTER_AREA averages the dropped pixels,
    which keeps the faint edges Haar features and CNNs rely on (nearest-neighbour would alias them away).
    """
    if frame.ndim not in (2, 3) or frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"expected an HxW or HxWxC image, got shape {frame.shape}")
    height, width = frame.shape[:2]
    longest = max(height, width)
    max_side = search_side(longest, max_side, min_fraction)
    if max_side is None or longest <= max_side:
        return frame, 1.0
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    factor = max_side / longest
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    # The exact per-axis factor after rounding; the mean of both axes keeps boxes within a pixel.
    back = (width / size[0] + height / size[1]) / 2.0
    return small, back
