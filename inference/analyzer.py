"""One frame in, one FrameResult out: detect → crop → classify every face in one batch per model → track.

The analyzer is the only place that knows the order of the stages, so the GUI worker, the headless
`analyze` command and the benchmark all time and run them identically.

With a tracker (frames of one video or camera stream) it detects around the faces already found and scans
the whole frame only every `full_scan_every`-th frame or 1/3 s (`detectors.roi`): detection is most of the
cost, and this cuts it to 0.2-0.7x (Haar) and 0.3-0.7x (MTCNN, which refines known faces) on real clips,
losing no face on one-speaker clips (README, "Region detection"). Without a tracker frames are unrelated (a
photo): always a full scan.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from detectors.base import FaceDetector
from detectors.roi import RegionSearch, RegionSettings
from inference.preprocess import InputSpec, crop_face, prepare_faces
from inference.types import ATTRIBUTES, Face, FaceBox, FrameResult, Prediction

if TYPE_CHECKING:  # importing the models pulls in TensorFlow; the analyzer only calls them
    from inference.models import AttributeModel
    from inference.tracking import FaceTracker

TIMING_KEYS: tuple[str, ...] = ("detect", "preprocess", *ATTRIBUTES, "track", "total")
FULL_SCAN_EVERY = 10  # with RegionSettings.full_every_s: a new face is found within 1/3 s at any analysis rate


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


@dataclass(frozen=True, slots=True)
class Detection:
    """What the detection stage hands the classification stage: the faces found and what finding them cost."""

    boxes: tuple[FaceBox, ...]
    ms: float


def _inside(box: FaceBox, width: int, height: int) -> bool:
    """A detector may report a box hanging off the frame; one entirely outside it has nothing to crop."""
    return box.x < width and box.y < height and box.x + box.w > 0 and box.y + box.h > 0


class FrameAnalyzer:
    """Runs the per-frame pipeline with the current detector, the enabled models and an optional tracker.

    `analyze` runs on one worker thread; `set_detector` and `enabled` may be changed from another (the GUI).
    Without a tracker, faces are numbered 0..n-1 within each frame and carry the raw (unsmoothed) predictions.
    `full_scan_every` (used only with a tracker): every how many frames the whole frame is searched; in between
    only regions around the faces found (1: every frame in full). `last_boxes` are the boxes the last frame's
    detection found (what the models were fed), unlike a tracked result, which also holds faces it remembers.
    """

    def __init__(
        self,
        detector: FaceDetector,
        models: Mapping[str, AttributeModel],
        tracker: FaceTracker | None = None,
        *,
        full_scan_every: int = FULL_SCAN_EVERY,
    ) -> None:
        for attr, model in models.items():
            if attr not in ATTRIBUTES:
                raise ValueError(f"unknown attribute {attr!r}; expected one of {ATTRIBUTES}")
            if model.task != attr:
                raise ValueError(f"the model given for {attr!r} is a {model.task!r} model")
        self._detector = detector
        self._detector_lock = threading.Lock()
        self.models: dict[str, AttributeModel] = dict(models)
        self.tracker = tracker
        # Which attributes to run; the GUI may replace or edit this set at any time. A switched-off model costs
        # nothing: it is neither fed nor called, and its Prediction is None.
        self.enabled: set[str] = set(self.models)
        self.classes: dict[str, tuple[str, ...]] = {attr: model.classes for attr, model in self.models.items()}
        self.regions: RegionSearch | None = None
        if tracker is not None and full_scan_every > 1:
            self.regions = RegionSearch(RegionSettings(full_every=full_scan_every))
        self.last_boxes: tuple[FaceBox, ...] = ()

    @property
    def detector(self) -> FaceDetector:
        return self._detector

    def set_detector(self, detector: FaceDetector) -> FaceDetector:
        """Swap the detector; returns the previous one. Blocks until a detection in progress has finished,
        so when this returns nobody uses the old detector any more and the caller may close it."""
        with self._detector_lock:
            old, self._detector = self._detector, detector
            if self.regions is not None:  # another detector's boxes and costs differ: start afresh
                self.regions = RegionSearch(self.regions.settings)
        return old

    def reset(self) -> None:
        """Forget all tracks and known faces (a new source starts)."""
        if self.tracker is not None:
            self.tracker.reset()
        if self.regions is not None:
            with self._detector_lock:
                self.regions.reset()

    def analyze(self, frame_bgr: np.ndarray, index: int, timestamp: float) -> FrameResult:
        return self.classify(frame_bgr, self.detect(frame_bgr, timestamp), index, timestamp)

    def detect(self, frame_bgr: np.ndarray, timestamp: float) -> Detection:
        """The first stage alone. Split from `classify` so a pipeline can detect frame n+1 on one thread while
        another classifies frame n: detection depends only on earlier detections (the region search), never
        on the models or the tracker. Call it for frames in order, one thread at a time."""
        start = time.perf_counter()
        with self._detector_lock:
            if self.regions is None:
                boxes = self._detector.detect(frame_bgr)
            else:
                boxes = self.regions.detect(self._detector, frame_bgr, timestamp)
        height, width = frame_bgr.shape[:2]
        found = tuple(box for box in boxes if _inside(box, width, height))
        self.last_boxes = found
        return Detection(found, _ms(start))

    def classify(self, frame_bgr: np.ndarray, detection: Detection, index: int, timestamp: float) -> FrameResult:
        """The second stage: crop, run every enabled model once on all faces, track. Frames in order."""
        start = time.perf_counter()
        enabled = frozenset(self.enabled)  # one consistent choice for the whole frame
        active = [attr for attr in ATTRIBUTES if attr in enabled and attr in self.models]
        timings = dict.fromkeys(TIMING_KEYS, 0.0)
        timings["detect"] = detection.ms
        boxes = list(detection.boxes)

        probs: dict[str, np.ndarray] = {}
        if boxes and active:
            t = time.perf_counter()
            inputs = self._prepare(frame_bgr, boxes, [self.models[attr].spec for attr in active])
            timings["preprocess"] = _ms(t)
            for attr in active:
                t = time.perf_counter()
                probs[attr] = self.models[attr].predict(inputs[self.models[attr].spec])
                timings[attr] = _ms(t)
        else:
            probs = {attr: np.empty((0, len(self.classes[attr])), np.float32) for attr in active}

        t = time.perf_counter()
        active_classes = {attr: self.classes[attr] for attr in active}
        if self.tracker is not None:
            faces = self.tracker.update(boxes, probs, active_classes, timestamp)
        else:
            faces = self._untracked_faces(boxes, probs, active_classes)
        timings["track"] = _ms(t)
        timings["total"] = detection.ms + _ms(start)
        return FrameResult(index=index, timestamp=timestamp, faces=tuple(faces), timings=timings)

    @staticmethod
    def _prepare(
        frame_bgr: np.ndarray, boxes: Sequence[FaceBox], specs: Sequence[InputSpec]
    ) -> dict[InputSpec, np.ndarray]:
        """Model inputs per distinct InputSpec: each face is cropped once per margin and prepared once per
        spec (models that share a recipe share their faces), so adding one with a known recipe adds no preprocessing."""
        crops: dict[float, list[np.ndarray]] = {}
        inputs: dict[InputSpec, np.ndarray] = {}
        for spec in specs:
            if spec in inputs:
                continue
            if spec.margin not in crops:
                crops[spec.margin] = [crop_face(frame_bgr, box, spec.margin) for box in boxes]
            inputs[spec] = prepare_faces(crops[spec.margin], spec)
        return inputs

    @staticmethod
    def _untracked_faces(
        boxes: Sequence[FaceBox], probs: Mapping[str, np.ndarray], classes: Mapping[str, Sequence[str]]
    ) -> list[Face]:
        return [
            Face(
                track_id=i,
                box=box,
                **{attr: Prediction.from_probs(tuple(classes[attr]), rows[i]) for attr, rows in probs.items()},
            )
            for i, box in enumerate(boxes)
        ]
