"""The searched copy follows the source size (small faces in 1080p are found) and downscaling is exact and
cheap (detectors/downscale.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from app import demo
from detectors.downscale import downscale, search_side
from detectors.haar import HaarDetector, HaarSettings
from detectors.mtcnn_detector import MTCNNSettings

HEAD = (slice(20, 230), slice(140, 310))  # the astronaut's head in skimage's 512x512 photo (face ~90x120 px)


@pytest.fixture(scope="module")
def crowd_1080p() -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A 1920x1080 frame with three astronaut heads whose faces are ~60 px wide (people in a group video)."""
    frame = demo.background(1920, 1080).copy()
    head = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[HEAD], None, fx=0.66, fy=0.66)
    h, w = head.shape[:2]
    corners = [(300, 400), (900, 300), (1500, 600)]
    for x, y in corners:
        frame[y : y + h, x : x + w] = head
    return frame, corners


def test_search_side_keeps_a_fraction_of_large_frames() -> None:
    assert search_side(640, 360, 0.5) == 360
    assert search_side(1920, 360, 0.5) == 960
    assert search_side(1920, 360, 0.0) == 360
    assert search_side(1920, None, 0.5) is None
    frame = np.zeros((1080, 1920), np.uint8)
    small, back = downscale(frame, 360, min_fraction=0.5)
    assert small.shape == (540, 960) and back == pytest.approx(2.0)
    assert downscale(np.zeros((480, 640), np.uint8), 360, min_fraction=0.5)[0].shape == (270, 360)


def test_haar_finds_small_faces_in_1080p_only_with_the_scaled_search(crowd_1080p) -> None:
    frame, corners = crowd_1080p
    fixed = HaarDetector(HaarSettings(min_fraction=0.0))
    scaled = HaarDetector()
    try:
        found = scaled.detect(frame)
        missed = fixed.detect(frame)
    finally:
        fixed.close()
        scaled.close()
    centres = [(x + 55, y + 70) for x, y in corners]
    hits = sum(any(abs(b.center[0] - cx) < 30 and abs(b.center[1] - cy) < 40 for b in found) for cx, cy in centres)
    assert hits == 3, found
    assert len(missed) < 3, "with a fixed 360 px search a 60 px face at 1920 wide should be too small"


def test_settings_reject_a_fraction_outside_0_1() -> None:
    with pytest.raises(ValueError, match="min_fraction"):
        HaarSettings(min_fraction=1.5)
    with pytest.raises(ValueError, match="min_fraction"):
        MTCNNSettings(min_fraction=-0.1)
