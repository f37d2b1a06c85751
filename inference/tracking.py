"""Give each face a stable id across frames, and smooth what the models say about it over time.

A per-frame classifier is noisy: on a still face the top emotion can change from one frame to the next,
and a label that flickers is unreadable. The tracker therefore

- matches each frame's boxes to the faces it already knows by IoU (greedy, best overlap first), against where
  each face is *predicted* to be now, so two faces that cross keep their ids while their boxes still say so;
- smooths each face's class probabilities with an exponential filter whose time constant is in SECONDS, not
  frames, because the analysis rate changes with the load and the number of faces. tau = 0.25 s: one wrong but
  confident frame does not flip the label down to about 8 analyses per second, and a real change of expression
  takes over in 0.15-0.4 s at 5-30 analyses per second (tests/test_tracking.py checks both);
- smooths boxes lightly with an alpha-beta filter, which also estimates each face's velocity so `follow`
  can move boxes on the frames displayed between two analyses;
- keeps a face it missed for `hold_s` (a detector that misses a face for one frame should not blink its box),
  unless a face detected this frame covers half its box or more (then it is being reported already), and
  forgets it after `max_missed_s`.

`update` runs on the analysis thread while `follow` runs on the display thread: `follow` reads only an
immutable snapshot of the motion state that `update` replaces in one assignment, so it needs no lock.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from inference.types import Face, FaceBox, FrameResult, Prediction

# Alpha-beta gains for boxes: how far a box moves toward its new measurement (light smoothing: faces move),
# and how much of the surprise feeds the velocity (Benedict-Bordner: beta = alpha^2 / (2 - alpha)).
_POSITION_GAIN = 0.6
_VELOCITY_GAIN = _POSITION_GAIN**2 / (2.0 - _POSITION_GAIN)
# A matched detection that jumps (detector noise, a near-miss match) must not fling the box across the frame:
# speed is capped at this many face sizes per second.
_MAX_SPEED = 3.0
# A missed face is not held where its box and a detected face's overlap by this much of the smaller box.
HELD_OVERLAP = 0.5
# Below this interval two updates are treated as simultaneous for the velocity estimate.
_MIN_DT = 1e-3


@dataclass(slots=True)
class _Smoothed:
    """One attribute's smoothed probabilities for one face, and when they were last updated."""

    classes: tuple[str, ...]
    probs: np.ndarray
    updated: float


@dataclass(slots=True)
class _Track:
    """What the tracker knows about one face. State is (cx, cy, w, h) in pixels; velocity in pixels/second."""

    track_id: int
    state: np.ndarray
    velocity: np.ndarray
    last_seen: float
    score: float
    hits: int = 1
    attributes: dict[str, _Smoothed] = field(default_factory=dict)

    def predicted(self, timestamp: float, max_s: float) -> np.ndarray:
        """Where the face should be at `timestamp`, extrapolating at most `max_s` past its last sighting."""
        dt = min(max(timestamp - self.last_seen, 0.0), max_s)
        return _moved(self.state, self.velocity, dt)


def _moved(state: np.ndarray, velocity: np.ndarray, dt: float) -> np.ndarray:
    out = state + velocity * dt
    out[2:] = np.maximum(out[2:], 1.0)  # a shrinking face never reaches zero size
    return out


def _state(box: FaceBox) -> np.ndarray:
    cx, cy = box.center
    return np.array([cx, cy, box.w, box.h], dtype=np.float64)


def _box(state: np.ndarray, score: float) -> FaceBox:
    cx, cy, w, h = (float(v) for v in state)
    return FaceBox(cx - w / 2.0, cy - h / 2.0, w, h, score)


def _iou_matrix(a: np.ndarray, b: np.ndarray, of_smaller: bool = False) -> np.ndarray:
    """IoU of every (cx, cy, w, h) row of `a` with every row of `b`; with `of_smaller`, the intersection over
    the smaller box's area instead (1.0 when one box lies inside the other)."""
    a_lo, a_hi = a[:, None, :2] - a[:, None, 2:] / 2, a[:, None, :2] + a[:, None, 2:] / 2
    b_lo, b_hi = b[None, :, :2] - b[None, :, 2:] / 2, b[None, :, :2] + b[None, :, 2:] / 2
    overlap = np.clip(np.minimum(a_hi, b_hi) - np.maximum(a_lo, b_lo), 0.0, None)
    inter = overlap[..., 0] * overlap[..., 1]
    a_area, b_area = a[:, None, 2] * a[:, None, 3], b[None, :, 2] * b[None, :, 3]
    denominator = np.minimum(a_area, b_area) if of_smaller else a_area + b_area - inter
    return np.where(denominator > 0, inter / np.maximum(denominator, 1e-12), 0.0)


def _covered(state: np.ndarray, detections: np.ndarray) -> bool:
    """Whether a missed face's predicted box mostly lies on, or holds, a face detected this frame. Then the
    face is not missing, it is being reported under another id (a detector that boxed one face twice, then
    once): holding it would draw two labels on one face."""
    if not len(detections):
        return False
    return bool((_iou_matrix(state[None], detections, of_smaller=True) >= HELD_OVERLAP).any())


def _greedy_match(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """(track, detection) pairs, best overlap first, each side used once, none below `threshold`.
    Greedy equals the optimal assignment whenever faces do not overlap each other, which is the norm."""
    pairs: list[tuple[int, int]] = []
    if iou.size == 0:
        return pairs
    used_t: set[int] = set()
    used_d: set[int] = set()
    order = np.argsort(-iou, axis=None, kind="stable")
    for flat in order:
        t, d = divmod(int(flat), iou.shape[1])
        if iou[t, d] < threshold:
            break
        if t in used_t or d in used_d:
            continue
        pairs.append((t, d))
        used_t.add(t)
        used_d.add(d)
    return pairs


class FaceTracker:
    """IoU tracker with time-based smoothing of boxes and class probabilities (see the module docstring).

    iou_threshold: the least overlap between a face's predicted box and a detection to call them the same face.
    max_missed_s: a face not detected for longer than this is forgotten (a new detection there gets a new id).
    smoothing_s: time constant of the probability smoothing; 0 turns it off.
    hold_s: a face missed for up to this long is still reported (at its predicted place, with its last labels).
    max_extrapolate_s: the longest a box is moved along its velocity past the face's last sighting.
    """

    def __init__(
        self,
        iou_threshold: float = 0.3,
        max_missed_s: float = 1.0,
        smoothing_s: float = 0.25,
        hold_s: float = 0.25,
        max_extrapolate_s: float = 0.25,
    ) -> None:
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        for name, value in (
            ("max_missed_s", max_missed_s),
            ("smoothing_s", smoothing_s),
            ("hold_s", hold_s),
            ("max_extrapolate_s", max_extrapolate_s),
        ):
            if not (value >= 0.0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        self.iou_threshold = iou_threshold
        self.max_missed_s = max_missed_s
        self.smoothing_s = smoothing_s
        self.hold_s = min(hold_s, max_missed_s)
        self.max_extrapolate_s = max_extrapolate_s
        self._lock = threading.Lock()
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._last_update: float | None = None
        # id -> (velocity, last_seen); replaced whole by update(), read by follow() on another thread.
        self._motion: Mapping[int, tuple[np.ndarray, float]] = {}

    def reset(self) -> None:
        """Forget every face and restart ids at 1 (a new source)."""
        with self._lock:
            self._reset()

    def _reset(self) -> None:
        self._tracks = []
        self._next_id = 1
        self._last_update = None
        self._motion = {}

    @property
    def track_count(self) -> int:
        """Faces currently remembered, including those missed for less than `max_missed_s`."""
        return len(self._tracks)

    def update(
        self,
        boxes: Sequence[FaceBox],
        probs: Mapping[str, np.ndarray],
        classes: Mapping[str, Sequence[str]],
        timestamp: float,
    ) -> tuple[Face, ...]:
        """Match this frame's detections to known faces and return them with smoothed boxes and predictions.

        `probs[attr]` holds one row per box, in the order of `classes[attr]`; an attribute missing from `probs`
        is None on every returned face. Faces come in the order of `boxes`, then held (missed) faces by id.
        """
        arrays = self._checked(boxes, probs, classes)
        with self._lock:
            if self._last_update is not None and timestamp < self._last_update:
                self._reset()  # time went backwards: a new stream (a looped file, a seek); old tracks mean nothing
            self._last_update = timestamp
            self._tracks = [t for t in self._tracks if timestamp - t.last_seen <= self.max_missed_s]

            detections = np.array([_state(b) for b in boxes], dtype=np.float64).reshape(-1, 4)
            predicted = np.array(
                [t.predicted(timestamp, self.max_extrapolate_s) for t in self._tracks], dtype=np.float64
            ).reshape(-1, 4)
            pairs = _greedy_match(_iou_matrix(predicted, detections), self.iou_threshold)
            track_of = {d: self._tracks[t] for t, d in pairs}

            faces: list[Face] = []
            current: set[int] = set()
            for d, box in enumerate(boxes):
                track = track_of.get(d)
                if track is None:
                    track = self._new_track(detections[d], box.score, timestamp)
                else:
                    self._move(track, detections[d], box.score, timestamp)
                for attr, rows in arrays.items():
                    self._smooth(track, attr, tuple(classes[attr]), rows[d], timestamp)
                faces.append(self._face(track, track.state, arrays))
                current.add(track.track_id)

            for track in sorted(self._tracks, key=lambda t: t.track_id):
                if track.track_id not in current and timestamp - track.last_seen <= self.hold_s:
                    state = track.predicted(timestamp, self.max_extrapolate_s)
                    if not _covered(state, detections):
                        faces.append(self._face(track, state, arrays))

            self._motion = {t.track_id: (t.velocity.copy(), t.last_seen) for t in self._tracks}
            return tuple(faces)

    def follow(self, result: FrameResult, timestamp: float) -> FrameResult:
        """`result` with each face's box moved along its velocity to `timestamp` (a displayed frame newer than
        the analysed one). Extrapolation stops `max_extrapolate_s` after the face was last seen, so a face that
        stopped being detected does not drift away. Returns `result` itself when nothing moves."""
        dt_result = timestamp - result.timestamp
        if dt_result <= 0 or not result.faces:
            return result
        motion = self._motion  # one read of the snapshot: consistent even while update() runs
        faces = []
        moved = False
        for face in result.faces:
            entry = motion.get(face.track_id)
            if entry is None:
                faces.append(face)
                continue
            velocity, last_seen = entry
            used = min(max(result.timestamp - last_seen, 0.0), self.max_extrapolate_s)
            dt = min(dt_result, self.max_extrapolate_s - used)
            if dt <= 0 or not velocity.any():
                faces.append(face)
                continue
            state = _moved(_state(face.box), velocity, dt)
            faces.append(replace(face, box=_box(state, face.box.score)))
            moved = True
        return replace(result, faces=tuple(faces)) if moved else result

    # -- internals -----------------------------------------------------------------------------------------

    @staticmethod
    def _checked(
        boxes: Sequence[FaceBox], probs: Mapping[str, np.ndarray], classes: Mapping[str, Sequence[str]]
    ) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {}
        for attr, rows in probs.items():
            if attr not in classes:
                raise ValueError(f"probabilities for {attr!r} come without its class names")
            array = np.asarray(rows, dtype=np.float64)
            if not boxes and array.size == 0:
                array = array.reshape(0, len(classes[attr]))  # no faces: any empty array will do
            expected = (len(boxes), len(classes[attr]))
            if array.shape != expected:
                raise ValueError(f"{attr} probabilities have shape {array.shape}, expected {expected}")
            arrays[attr] = array
        return arrays

    def _new_track(self, state: np.ndarray, score: float, timestamp: float) -> _Track:
        track = _Track(self._next_id, state.copy(), np.zeros(4), timestamp, score)
        self._next_id += 1
        self._tracks.append(track)
        return track

    def _move(self, track: _Track, measured: np.ndarray, score: float, timestamp: float) -> None:
        dt = max(timestamp - track.last_seen, _MIN_DT)
        if track.hits == 1:
            # The second sighting is the first chance to measure a velocity; take it as is.
            velocity = (measured - track.state) / dt
            state = measured.copy()
        else:
            prior = _moved(track.state, track.velocity, dt)
            residual = measured - prior
            state = prior + _POSITION_GAIN * residual
            velocity = track.velocity + _VELOCITY_GAIN * residual / dt
        limit = _MAX_SPEED * max(state[2], state[3])
        track.velocity = np.clip(velocity, -limit, limit)
        state[2:] = np.maximum(state[2:], 1.0)
        track.state = state
        track.last_seen = timestamp
        track.score = score
        track.hits += 1

    def _smooth(self, track: _Track, attr: str, classes: tuple[str, ...], row: np.ndarray, timestamp: float) -> None:
        row = np.clip(row, 0.0, 1.0)
        current = track.attributes.get(attr)
        if current is None or current.classes != classes:
            track.attributes[attr] = _Smoothed(classes, row.copy(), timestamp)
            return
        dt = timestamp - current.updated
        alpha = 1.0 if self.smoothing_s <= 0 else 1.0 - math.exp(-max(dt, 0.0) / self.smoothing_s)
        current.probs = current.probs + alpha * (row - current.probs)
        current.updated = timestamp

    @staticmethod
    def _face(track: _Track, state: np.ndarray, arrays: Mapping[str, np.ndarray]) -> Face:
        predictions: dict[str, Prediction] = {}
        for attr in arrays:
            smoothed = track.attributes.get(attr)
            if smoothed is not None:
                predictions[attr] = Prediction.from_probs(smoothed.classes, np.clip(smoothed.probs, 0.0, 1.0))
        return Face(track_id=track.track_id, box=_box(state, track.score), **predictions)
