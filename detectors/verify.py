"""A second opinion on each Haar box: MTCNN's last network (ONet) scores the box's pixels as face or not.

Why: Haar's cascade answers "is there a face-like pattern of light and dark here", and on textures it says
yes: a striped tie, a patterned dress, a railing, a crowd seen from above, a part of a face next to the
whole face. The attribute models then label those boxes as people ("Sad, Male, Black" on a crowd), and in
video they flicker on and off. ONet, the 48 px network that MTCNN ends with, was trained to tell faces from
non-faces at exactly this stage: each box becomes a 48x48 RGB patch and one batched call scores them all.

Measured (`python -m detectors.verify_bench`, the Haar boxes of the dlib_faces photos, of the 11 photos in
../shared/media/images and of every 15th frame of the 5 clips in ../shared/media/videos; a box is a face when
it overlaps a hand-labelled face (dlib_faces) or a full-frame MTCNN face at IoU >= 0.4):
108 face boxes and 12 others. ONet's face probability on the face boxes was 0.94-1.00; on the others
0.00-0.52, and by eye the 0.52 is a real, blurred face MTCNN had missed, the rest a tie, a railing, a
dress, shoulders, a face part. So a box needs probability >= 0.5: every face box stayed, 11 of the 12 others
went. ONet sees the Haar square itself (`--margin 0`): enlarged by 10 % per side, closer to MTCNN's own
proposals, 4 face boxes fell below 0.5 and 3 others rose above 0.3; by 5 %, the face boxes' lowest
probability fell to 0.87. One ONet call per frame (all its boxes) took 1.4 ms (median, float TFLite; 2.5 ms
for one box as a compiled TensorFlow function), next to Haar's ~20 ms.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import cache

import numpy as np

from inference.errors import DetectorError
from inference.preprocess import InputSpec, crop_face, prepare_faces
from inference.types import FaceBox

DEFAULT_MIN_PROBABILITY = 0.5


class FaceVerifier:
    """ONet from the `mtcnn` package (its weights ship inside the package; nothing is downloaded) as float
    TFLite (`detectors.mtcnn_lite`: 0.3 ms for one box on the 2-core CPU, 2.5 ms as a compiled TensorFlow
    function), converted once. `margin` enlarges each box before it is cut out (0: the box itself).
    Thread-safe: the TFLite runner serialises its calls, and a compiled TensorFlow function may be called from
    several threads."""

    def __init__(self, margin: float = 0.0) -> None:
        try:  # imported here: TensorFlow is heavy, and a Haar detector without verification never needs it
            import mtcnn  # noqa: F401
        except ImportError as exc:
            raise DetectorError(f"face verification needs the 'mtcnn' and 'tensorflow' packages: {exc}") from exc
        from detectors.mtcnn_lite import ONET, network_runner

        self._patch = InputSpec(size=ONET.size, color="rgb", margin=margin)
        self._onet = network_runner(ONET)

    def face_probability(self, frame_bgr: np.ndarray, boxes: Sequence[FaceBox]) -> np.ndarray:
        """ONet's probability that each box holds a face, in the boxes' order (one call per 32 boxes)."""
        if not boxes:
            return np.empty(0, dtype=np.float32)
        if frame_bgr.ndim == 3 and frame_bgr.shape[2] == 4:
            frame_bgr = frame_bgr[:, :, :3]  # BGRA: Haar takes it, ONet sees the colours
        patches = prepare_faces([crop_face(frame_bgr, box, self._patch.margin) for box in boxes], self._patch)
        patches = (patches - 127.5) / 128.0  # mtcnn's own normalisation (mtcnn.utils.images.normalize_images)
        return self._onet(patches)[:, -1]  # the last head: [not face, face]

    def keep_faces(self, frame_bgr: np.ndarray, boxes: Sequence[FaceBox], min_probability: float) -> list[FaceBox]:
        """The boxes ONet calls faces with at least `min_probability`, in their order."""
        probabilities = self.face_probability(frame_bgr, boxes)
        return [box for box, p in zip(boxes, probabilities, strict=True) if p >= min_probability]


_shared_lock = threading.Lock()


@cache
def _build_shared() -> FaceVerifier:
    return FaceVerifier()


def shared_verifier() -> FaceVerifier:
    """One verifier per process: every Haar detector (the GUI's, a benchmark's) uses the same small network."""
    with _shared_lock:
        return _build_shared()
