"""OpenCV's frontal-face Haar cascade, tuned for speed on a 2-core CPU without losing detection quality.

Why these settings (`HaarSettings()`): the cascade's cost is its image pyramid, so we search a grey copy
whose longest side is 360 px with pyramid steps of 1.2 and accept a face from 2 neighbouring hits.
Measured on the labelled dlib_faces photos (43 faces, most ~37 px in 500 px photos, IoU >= 0.5), and on a
640x480 frame (skimage astronaut) for speed; this machine is 2 shared EPYC cores next to a training job, so the
times are noisy, taken as single-thread CPU time (medians):

    settings                                   recall        precision     ms / 640x480 frame
    ours: max side 360, scale 1.2, nb 2        0.86 (37/43)  0.97 (37/38)   ~32
    OpenCV defaults: full frame, 1.1, nb 5     0.84 (36/43)  0.90 (36/40)  ~175
    max side 400, scale 1.1, nb 4              0.86 (37/43)  0.95 (37/39)   ~80
    max side 480, scale 1.1, nb 5 + equalize   0.86 (37/43)  0.88 (37/42)  ~116

    command: nice -n 10 python -m detectors.quality --detector haar   (prints our row and the defaults' row;
    the other rows come from the same evaluation with those settings; re-run with min_fraction 0.5 below:
    0.860 (37/43), 0.974 (37/38), 34 ms at load 6: these photos are searched at 360 px either way)

Large sources (`min_fraction=0.5`): the copy keeps at least half the frame's longest side (960 px at 1080p,
640 at 720p; 640x480 and smaller are unchanged), so the smallest face found is ~48 px at any size instead
of 24 x longest / 360 (128 px at 1920 wide). On facenet-pytorch__video.mp4 (1920x1080, 4-8 people with
55-120 px faces, 105 frames, load ~5): 360 px found 43 faces; 960 px found 432 boxes, 368 of the 500 faces
MTCNN is sure of, at ~210 CPU ms per full scan, which the region search between full scans (detectors.roi)
halves (facelens analyze 4.1 -> 8.1 fps there; regions alone find 340 of the 500).

A second opinion (`min_face_probability`, since 2026-12-02): every box the cascade finds on a full scan goes
to MTCNN's ONet (`detectors.verify`), and only boxes it gives a face probability of at least 0.5 are
returned. On 120 Haar boxes from the dlib_faces photos, the shared photos and every 15th frame of the shared
clips it kept all 108 face boxes and dropped 11 of the 12 others (a tie, a dress, a railing, shoulders, a
face part); on every frame, 951 of 952 face boxes and 8 of 97 others stayed. The crowd clip (MOT20), whose
faces are too small to detect, went from 57 false boxes in `facelens analyze` to none. It costs one batched
call per full scan, ~0.3 ms for one box on float TFLite; region searches between full scans skip it
(`candidates`), since their boxes must match faces a full scan already confirmed.
A confirmed box lying 90 % inside a larger one is a part of that face, and is dropped (`drop_nested`).

Choices the measurements made for us:
- No `equalizeHist`: every Haar window is already variance-normalised, and global equalisation cost 3-4
  faces of recall on these photos (e.g. max side 400, scale 1.1, nb 5: 33/43 with it, 36/43 without).
- 360 px and 1.2 go together: the benchmark's faces are nearly all the same size, so whether a pyramid level
  lands on them moves recall by +-2 faces between neighbouring settings (340 or 370 px lose 2); 350 px with
  nb 3 scores 37/43 at 0.95 too. On frames of one speaker (sadtalker, liveportrait clips), of a crowd with no
  detectable faces (MOT20 clip) and on 15 placements of the astronaut in a 640x480 frame (face found 14/15,
  3 false boxes on the space suit) these settings do as well as OpenCV's defaults (14/15, 3 false boxes).
- Faster is not free: the 24 px cascade window on a 360 px copy means the smallest face found in a 640x480
  frame is ~43 px. The pyramid's cost falls with the square of that minimum, so ~15 ms on this CPU would need
  a ~65 px minimum (a ~240 px copy), which shrinks the benchmark's 37 px faces below the window; we kept
  quality. Detection is serialised per detector but releases the GIL, so it overlaps other pipeline stages.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detectors.base import register
from detectors.downscale import downscale
from detectors.verify import DEFAULT_MIN_PROBABILITY, shared_verifier
from inference.errors import DetectorError
from inference.types import FaceBox

CASCADE_FILE = "haarcascade_frontalface_default.xml"
NESTED_INSIDE = 0.9  # a confirmed box this much inside a larger one is a part of that face (`drop_nested`)


@dataclass(frozen=True, slots=True)
class HaarSettings:
    """How the cascade searches. `max_side=None` searches the full frame; otherwise the copy's longest side is
    max(max_side, min_fraction x the frame's). `min_size` is in pixels of the searched (downscaled) copy,
    never below the cascade's 24 px window. `min_face_probability`: the least ONet face probability a box
    needs to be returned (None: every box the cascade finds, with no second opinion)."""

    max_side: int | None = 360
    min_fraction: float = 0.5
    scale_factor: float = 1.2
    min_neighbors: int = 2
    min_size: int = 24
    equalize: bool = False
    min_face_probability: float | None = DEFAULT_MIN_PROBABILITY

    def __post_init__(self) -> None:
        if self.max_side is not None and self.max_side < 48:
            raise ValueError(f"max_side must be >= 48 px (two cascade windows), got {self.max_side}")
        if not 0.0 <= self.min_fraction <= 1.0:
            raise ValueError(f"min_fraction must be within [0, 1], got {self.min_fraction}")
        if self.scale_factor <= 1.0:
            raise ValueError(f"scale_factor must be > 1, got {self.scale_factor}")
        if self.min_neighbors < 0 or self.min_size < 1:
            raise ValueError(f"min_neighbors must be >= 0 and min_size >= 1, got {self.min_neighbors}, {self.min_size}")
        if self.min_face_probability is not None and not 0.0 <= self.min_face_probability <= 1.0:
            raise ValueError(f"min_face_probability must be within [0, 1] or None, got {self.min_face_probability}")


# OpenCV's documented defaults (scaleFactor 1.1, minNeighbors 5, the cascade's own 24 px window, full frame, no
# second opinion): the baseline `detectors.quality` compares against.
OPENCV_DEFAULTS = HaarSettings(
    max_side=None, scale_factor=1.1, min_neighbors=5, min_size=24, equalize=False, min_face_probability=None
)
# Ours without ONet's second opinion (`detectors.verify`), to measure what that opinion changes.
UNVERIFIED = HaarSettings(min_face_probability=None)


def cascade_path() -> Path:
    return Path(cv2.data.haarcascades) / CASCADE_FILE


def neighbours_to_score(neighbours: int) -> float:
    """Squash the cascade's hit count into (0, 1): more overlapping hits means a surer face. The cascade has
    no calibrated probability; this only orders boxes and lets a caller set a threshold."""
    return neighbours / (neighbours + 3.0)


class HaarDetector:
    """The Haar cascade behind the `FaceDetector` protocol; one `detect` at a time (guarded by a lock,
    because OpenCV's CascadeClassifier keeps per-call scratch buffers)."""

    def __init__(self, settings: HaarSettings | None = None, name: str = "haar") -> None:
        self.settings = settings or HaarSettings()
        self.name = name
        path = cascade_path()
        if not path.is_file():
            raise DetectorError(f"Haar cascade not found at {path} (is opencv-python-headless installed?)")
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise DetectorError(f"Haar cascade at {path} could not be loaded")
        self._verifier = shared_verifier() if self.settings.min_face_probability is not None else None
        self._lock = threading.Lock()

    def detect(self, frame_bgr: np.ndarray) -> list[FaceBox]:
        boxes = self.candidates(frame_bgr)
        if self._verifier is None or not boxes:
            return boxes
        return drop_nested(self._verifier.keep_faces(frame_bgr, boxes, self.settings.min_face_probability))

    def candidates(self, frame_bgr: np.ndarray) -> list[FaceBox]:
        """The cascade's boxes before ONet's second opinion, best first."""
        grey = _to_grey(frame_bgr)
        small, back = downscale(grey, self.settings.max_side, self.settings.min_fraction)
        if self.settings.equalize:
            small = cv2.equalizeHist(small)
        size = (self.settings.min_size, self.settings.min_size)
        with self._lock:
            if self._cascade.empty():
                raise DetectorError("Haar detector used after close()")
            rects, neighbours = self._cascade.detectMultiScale2(
                small,
                scaleFactor=self.settings.scale_factor,
                minNeighbors=self.settings.min_neighbors,
                minSize=size,
            )
        boxes = [
            FaceBox(float(x), float(y), float(w), float(h), neighbours_to_score(int(n))).scaled(back)
            for (x, y, w, h), n in zip(np.asarray(rects).reshape(-1, 4), np.asarray(neighbours).ravel(), strict=True)
        ]
        boxes.sort(key=lambda b: (b.score, b.area), reverse=True)
        return boxes

    def close(self) -> None:
        with self._lock:
            self._cascade = cv2.CascadeClassifier()  # empty: frees the cascade; detect() now says why


def drop_nested(boxes: list[FaceBox], inside: float = NESTED_INSIDE) -> list[FaceBox]:
    """The boxes without any that lies (`inside` of its area or more) within a larger one, order kept.

    Haar sometimes boxes a face twice, the whole face and a part of it (eyes and nose) inside, and ONet calls
    both faces. Over every frame of the five shared clips that happened twice (liveportrait frame 88,
    hamilton 109); the two closest pairs of different people, a face half behind another in the 1080p group
    clip, overlapped by 70 and 81 % of the smaller box, so 90 % keeps them apart. The larger box is kept: the
    inner one is the part."""
    kept: list[int] = []
    for i in sorted(range(len(boxes)), key=lambda i: boxes[i].area, reverse=True):
        if all(boxes[i].intersection(boxes[j]) < inside * boxes[i].area for j in kept):
            kept.append(i)
    return [boxes[i] for i in sorted(kept)]


def _to_grey(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 1:
        return frame[:, :, 0]
    raise ValueError(f"expected a grey, BGR or BGRA image, got shape {frame.shape}")


register("haar", HaarDetector)
