"""MTCNN (the `mtcnn` 1.0 package: PNet -> RNet -> ONet), compiled and downscaled for a 2-core CPU.

Three things make it usable live and safe for our classifiers:

1. Speed. mtcnn 1.0 calls its Keras networks eagerly, once per pyramid level: ~150-500 ms per 640x480 frame
   here, mostly Python/Keras dispatch. Wrapping each network in one `tf.function` with a shape-free input
   signature traces it once and gives identical boxes at ~35-40 ms CPU per frame on a 360 px copy
   (eager: ~180 ms CPU on the same copy). RNet and ONet, which see fixed-size patches, now run as TFLite
   instead (`detectors.mtcnn_lite`), which saves most of what remained of their call overhead.
2. `min_face_size` is clamped to [12, 20]. mtcnn 1.0 keeps the pyramid's level *count* fixed (from the image
   size) and only moves its first scale, so a larger minimum shrinks the last level below PNet's 12 px input;
   TensorFlow then raises inside PNet, which mtcnn catches as "no faces": the whole frame silently comes back
   empty (measured on the astronaut at 240-480 px: fine up to 22, empty from 24-26 on; the last level is
   12 * 1.99 * (12 / min_face_size) * [0.84, 1.19] px, so 20 is the largest value safe for every size).
   Larger faces-only searches are done by downscaling instead (`max_side`), which is also faster.
3. Box geometry. Our attribute models were trained on crops of Haar-style boxes plus a margin; MTCNN boxes
   are not Haar boxes, so a face crop would be framed differently from training. Measured on 125 faces both
   detectors found (the ../shared photos and video frames, dlib_faces photos, skimage astronaut; Haar at
   scale 1.05, MTCNN confidence >= 0.95, pairs with IoU >= 0.3), relative to the MTCNN box (w, h):
       MTCNN boxes are tall: h / w = 1.36 (median; sd 0.07); Haar boxes are square.
       Haar side = 1.31 w = 0.96 h = 1.125 * sqrt(w h)   (sd ~ 10 % in each form)
       Haar centre - MTCNN centre = (+0.02 w, +0.01 h)     (sd 0.08 w, 0.04 h)
   So MTCNN is mostly narrower (no cheeks/ears) and very slightly higher, not much shorter or longer. We
   return the square of side 1.125 * sqrt(w h) centred at (cx + 0.02 w, cy + 0.01 h): its IoU with the Haar
   box of the same face rises from 0.71 to 0.84 (median; 10th percentile 0.61 -> 0.71).

Quality and speed (dlib_faces photos, 43 faces, IoU >= 0.5; 640x480 astronaut frame; CPU ms are medians of
process CPU time on this shared 2-core EPYC next to a training job, so treat them as +-20 %):

    max side   recall        precision     CPU ms / 640x480
    240        0.93 (40/43)  1.00 (40/40)   25
    288        0.98 (42/43)  1.00 (42/42)   31
    320        0.98 (42/43)  0.98 (42/43)   35
    360 (ours) 0.98 (42/43)  1.00 (42/42)   38-61   <- smallest face in a 640x480 frame: ~36 px
    400        0.98 (42/43)  1.00 (42/42)   49
    full frame 1.00 (43/43)  1.00 (43/43)   84
    OpenCV Haar defaults: 0.84 (36/43), 0.90 (36/40), ~180 ms.   Raw MTCNN boxes at 360 (no geometry
    correction): 41/43 and 41/42, so the correction also matches hand-labelled boxes better.

    command: nice -n 10 python -m detectors.quality --detector mtcnn   (re-run with min_fraction 0.5 below:
    0.977 (42/43), 1.000 (42/42), 39 ms at load 6)

4. Known faces are refined, not searched for (`refine`, used by `detectors.roi` between full scans). A region
   search still runs PNet's whole pyramid on the crop, a fixed ~25 CPU ms a call. Instead each known face's
   square (slightly enlarged) goes straight to RNet and ONet as if PNet had proposed it; ONet re-fits the box
   to where the face is now and scores it. Only the part of the frame around the known faces is prepared,
   at the scale `detect` searches. liveportrait, 183 frames (`python -m detectors.region_bench`, load ~1.5):
   detection 56.1 CPU ms per frame with full scans on every frame, 15.8 with refining between full scans
   every 10th frame (30.5 with region searches, next to a training job), all 183 faces found; refined
   boxes agree with a full scan's at IoU 0.94 (median; 10th percentile 0.89). A face lost (ONet unsure)
   sends the caller to a full scan, as a region search would. Of a refine call's ~10 ms, most was the two
   networks' TensorFlow call overhead, which TFLite removes (`detectors.mtcnn_lite`: refine steps 15.8 ->
   11.0 CPU ms per frame on liveportrait, including the full scans every 10th frame).

Large sources (`min_fraction=0.5`, as for Haar): the copy keeps at least half the frame's longest side, so
the smallest face found is ~40 px at any size (not 108 px at 1920 wide). facenet-pytorch__video.mp4 (1080p,
4-8 people, 55-120 px faces; load ~5.5): 271 -> 582 tracked faces in `facelens analyze`, 6.4 fps
(~135 CPU ms per full scan of the 960x540 copy).
"""

from __future__ import annotations

import importlib.resources
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detectors.base import register
from detectors.downscale import downscale, downscale_factor
from inference.errors import DetectorError
from inference.types import FaceBox

# Measured MTCNN -> Haar geometry (see module docstring).
HAAR_SIDE_PER_SQRT_AREA = 1.125
HAAR_SHIFT_X = 0.02  # of the MTCNN box width
HAAR_SHIFT_Y = 0.01  # of the MTCNN box height

REFINE_MARGIN = 0.1  # each side of a known face's square grows by this much before RNet sees it
REFINE_RNET_THRESHOLD = 0.5  # RNet only passes the proposal on: ONet and min_confidence decide
SAFE_MIN_FACE_SIZE = (12, 20)  # PNet's input size .. the largest value that never empties the pyramid


@dataclass(frozen=True, slots=True)
class MTCNNSettings:
    """Defaults chosen by the table in the module docstring. `max_side` is the searched copy's longest side,
    at least `min_fraction` of the frame's;
    `min_face_size` is in that copy's pixels (clamped to [12, 20]); `min_confidence` drops ONet's unsure
    faces."""

    max_side: int | None = 360
    min_fraction: float = 0.5
    min_face_size: int = 20
    min_confidence: float = 0.9

    def __post_init__(self) -> None:
        if self.max_side is not None and self.max_side < 48:
            raise ValueError(f"max_side must be >= 48 px, got {self.max_side}")
        if not 0.0 <= self.min_fraction <= 1.0:
            raise ValueError(f"min_fraction must be within [0, 1], got {self.min_fraction}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be within [0, 1], got {self.min_confidence}")

    @property
    def safe_min_face_size(self) -> int:
        low, high = SAFE_MIN_FACE_SIZE
        return min(high, max(low, int(self.min_face_size)))


def mtcnn_weights(name: str) -> Path:
    """One of MTCNN's weight files inside the installed `mtcnn` package, named in full: given a bare file name,
    mtcnn's loader first looks for (and unpickles) a file of that name in the current folder."""
    return Path(str(importlib.resources.files("mtcnn.assets.weights") / name))


def to_haar_geometry(x: float, y: float, w: float, h: float, score: float) -> FaceBox:
    """The Haar-style square for an MTCNN box (measured affine correction; see module docstring)."""
    side = HAAR_SIDE_PER_SQRT_AREA * math.sqrt(w * h)
    cx = x + w / 2.0 + HAAR_SHIFT_X * w
    cy = y + h / 2.0 + HAAR_SHIFT_Y * h
    return FaceBox(cx - side / 2.0, cy - side / 2.0, side, side, score)


class MTCNNDetector:
    """MTCNN behind the `FaceDetector` protocol. Boxes are Haar-style squares in full-frame pixels; near the
    frame edge they may reach past it (the face crop pads by repeating edge pixels, keeping the framing)."""

    def __init__(self, settings: MTCNNSettings | None = None) -> None:
        self.settings = settings or MTCNNSettings()
        self.name = "mtcnn"
        try:  # imported here: it pulls in TensorFlow, which the Haar-only path never needs
            import tensorflow as tf
            from mtcnn import MTCNN
        except ImportError as exc:
            raise DetectorError(f"MTCNN needs the 'mtcnn' and 'tensorflow' packages: {exc}") from exc
        from mtcnn.stages import StageONet, StagePNet, StageRNet

        stages = [
            stage(weights=str(mtcnn_weights(name)))
            for stage, name in zip((StagePNet, StageRNet, StageONet), ("pnet.lz4", "rnet.lz4", "onet.lz4"), strict=True)
        ]
        self._mtcnn = MTCNN(stages=stages, device="CPU:0")
        _compile_stages(self._mtcnn, tf)
        self._lock = threading.Lock()

    def detect(self, frame_bgr: np.ndarray) -> list[FaceBox]:
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
            raise ValueError(f"MTCNN needs a BGR image, got shape {frame_bgr.shape}")
        small, back = downscale(frame_bgr, self.settings.max_side, self.settings.min_fraction)
        if min(small.shape[:2]) < 24:  # too small for one PNet window at the smallest pyramid level
            return []
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB).astype(np.float32)  # float32 end to end: no casts in TF
        with self._lock:
            if self._mtcnn is None:
                raise DetectorError("MTCNN detector used after close()")
            rows = self._mtcnn.detect_faces(
                rgb, min_face_size=self.settings.safe_min_face_size, output_type="numpy", box_format="xywh"
            )
        return self._boxes(np.asarray(rows, dtype=np.float64), back)

    def refine(self, frame_bgr: np.ndarray, known: Sequence[FaceBox]) -> list[FaceBox]:
        """Where the `known` faces (boxes from this detector on a recent frame) are now: RNet and ONet only,
        with each known square as the proposal, at the scale `detect` searches. A face that moved out of its
        square, turned away or left is missing from the result."""
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
            raise ValueError(f"MTCNN needs a BGR image, got shape {frame_bgr.shape}")
        if not known:
            return []
        from mtcnn.utils.images import standarize_batch

        # Only the part of the frame around the known faces is prepared (not the whole frame, as `detect`
        # must), at the scale `detect` searches, so RNet and ONet see the pixels they would after PNet.
        height, width = frame_bgr.shape[:2]
        back = downscale_factor(max(height, width), self.settings.max_side, self.settings.min_fraction)
        squares = []
        for box in known:
            side = max(box.w, box.h)
            grow = REFINE_MARGIN * side
            squares.append((box.x - grow, box.y - grow, box.x + side + grow, box.y + side + grow))
        x0 = max(0, int(min(q[0] for q in squares)))
        y0 = max(0, int(min(q[1] for q in squares)))
        x1 = min(width, int(math.ceil(max(q[2] for q in squares))))
        y1 = min(height, int(math.ceil(max(q[3] for q in squares))))
        if x1 - x0 < 2 or y1 - y0 < 2:
            return []
        crop = frame_bgr[y0:y1, x0:x1]
        if back > 1.0:
            size = (max(1, round((x1 - x0) / back)), max(1, round((y1 - y0) / back)))
            crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        sx, sy = (x1 - x0) / crop.shape[1], (y1 - y0) / crop.shape[0]
        rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32)
        # [image index, x1, y1, x2, y2, score] in the crop's pixels, as PNet would propose them
        proposals = [[0.0, (a - x0) / sx, (b - y0) / sy, (c - x0) / sx, (d - y0) / sy, 1.0] for a, b, c, d in squares]
        with self._lock:
            if self._mtcnn is None:
                raise DetectorError("MTCNN detector used after close()")
            images, _, _ = standarize_batch([rgb], normalize=True)  # one image: no padding to undo
            _, rnet, onet = self._mtcnn.stages
            rows = rnet(
                images_normalized=images, bboxes_batch=np.asarray(proposals), threshold_rnet=REFINE_RNET_THRESHOLD
            )
            rows = onet(images_normalized=images, bboxes_batch=rows) if len(rows) else np.empty((0, 6))
        rows = np.asarray(rows, dtype=np.float64)
        if rows.size == 0:
            return []
        rows = rows.reshape(-1, rows.shape[-1]).copy()
        rows[:, [1, 3]] = rows[:, [1, 3]] * sx + x0  # crop -> frame pixels, clipped to the frame as
        rows[:, [2, 4]] = rows[:, [2, 4]] * sy + y0  # detect_faces(fit_to_image=True) does
        rows[:, [1, 3]] = rows[:, [1, 3]].clip(0, width)
        rows[:, [2, 4]] = rows[:, [2, 4]].clip(0, height)
        rows[:, 3] -= rows[:, 1]  # x2, y2 -> w, h
        rows[:, 4] -= rows[:, 2]
        return self._boxes(rows, 1.0)

    def _boxes(self, rows: np.ndarray, back: float) -> list[FaceBox]:
        """mtcnn rows [image, x, y, w, h, score, ...] in the copy's pixels -> confident Haar-style boxes in the
        frame's, best first."""
        boxes = []
        for row in rows.reshape(-1, rows.shape[-1]) if rows.size else ():
            x, y, w, h, score = (float(v) for v in row[1:6])
            if score >= self.settings.min_confidence and w > 1 and h > 1:
                boxes.append(to_haar_geometry(x, y, w, h, score).scaled(back))
        boxes.sort(key=lambda b: (b.score, b.area), reverse=True)
        return boxes

    def close(self) -> None:
        with self._lock:
            self._mtcnn = None


def _compile_stages(mtcnn, tf) -> None:
    """PNet, which sees whole pyramid levels of any size, is traced once as a graph with a shape-free float32
    input; RNet and ONet, which see fixed-size patches, run as TFLite (`detectors.mtcnn_lite`). mtcnn 1.0 keeps
    the network in `stage._model`; if a later version moves it, detection still works, only eagerly
    (slower), rather than failing."""
    from detectors.mtcnn_lite import ONET, RNET, StageNetwork

    pnet, rnet, onet = mtcnn.stages
    if getattr(pnet, "_model", None) is not None:
        pnet._model = tf.function(pnet._model, input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    for stage, network in ((rnet, RNET), (onet, ONET)):
        if getattr(stage, "_model", None) is not None:
            stage._model = StageNetwork(network)


register("mtcnn", MTCNNDetector)
