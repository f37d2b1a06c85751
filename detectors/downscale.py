"""The shared first step of every detector: a smaller copy of the frame to search.

Detection cost grows with the pixel count, while a face only needs a few dozen pixels to be found, so each
detector searches a copy whose longest side is at most `max_side` and scales its boxes back by the returned
factor. Keeping this in one place means every detector agrees on rounding and interpolation.
"""

from __future__ import annotations

import cv2
import numpy as np


def downscale(frame: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """Return (copy with longest side <= max_side, factor that maps its pixels back to `frame`'s).

    Never upscales: a small frame is returned as is with factor 1. INTER_AREA averages the dropped pixels,
    which keeps the faint edges Haar features and CNNs rely on (nearest-neighbour would alias them away).
    """
    if frame.ndim not in (2, 3) or frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"expected an HxW or HxWxC image, got shape {frame.shape}")
    height, width = frame.shape[:2]
    longest = max(height, width)
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
