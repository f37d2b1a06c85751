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

import logging
import threading
from collections.abc import Callable, Sequence
from functools import cache

import numpy as np

from inference.errors import DetectorError
from inference.preprocess import InputSpec, crop_face, prepare_faces
from inference.types import FaceBox

ONET_INPUT = 48  # px, RGB
ONET_WEIGHTS = "onet.lz4"
DEFAULT_MIN_PROBABILITY = 0.5

log = logging.getLogger(__name__)


class FaceVerifier:
    """ONet from the `mtcnn` package (its weights ship inside the package; nothing is downloaded), converted
    once. `margin` enlarges each box before it is cut out (0: the box itself). Thread-safe: the TFLite runner
    serialises its calls, and a compiled TensorFlow function may be called from several threads."""

    def __init__(self, margin: float = 0.0) -> None:
        try:  # imported here: TensorFlow is heavy, and a Haar detector without verification never needs it
            import mtcnn  # noqa: F401
        except ImportError as exc:
            raise DetectorError(f"face verification needs the 'mtcnn' and 'tensorflow' packages: {exc}") from exc
        self._patch = InputSpec(size=ONET_INPUT, color="rgb", margin=margin)
        self._run = _onet_runner(self._patch.shape)

    def face_probability(self, frame_bgr: np.ndarray, boxes: Sequence[FaceBox]) -> np.ndarray:
        """ONet's probability that each box holds a face, in the boxes' order (one call per 32 boxes)."""
        if not boxes:
            return np.empty(0, dtype=np.float32)
        if frame_bgr.ndim == 3 and frame_bgr.shape[2] == 4:
            frame_bgr = frame_bgr[:, :, :3]  # BGRA: Haar takes it, ONet sees the colours
        patches = prepare_faces([crop_face(frame_bgr, box, self._patch.margin) for box in boxes], self._patch)
        patches = (patches - 127.5) / 128.0  # mtcnn's own normalisation (mtcnn.utils.images.normalize_images)
        from inference.models import run_in_buckets

        return run_in_buckets(self._run, patches)[:, 1]

    def keep_faces(self, frame_bgr: np.ndarray, boxes: Sequence[FaceBox], min_probability: float) -> list[FaceBox]:
        """The boxes ONet calls faces with at least `min_probability`, in their order."""
        probabilities = self.face_probability(frame_bgr, boxes)
        return [box for box, p in zip(boxes, probabilities, strict=True) if p >= min_probability]


class _FaceScore:
    """ONet reduced to its face / not-face head, with what `inference.lite.convert` needs of a model."""

    def __init__(self, onet) -> None:
        self._onet = onet
        self.variables = onet.variables

    def __call__(self, patches, training: bool = False):
        return self._onet(patches, training=training)[2]


def _onet_runner(input_shape: tuple[int, ...]) -> Callable[[np.ndarray], np.ndarray]:
    """ONet as float TFLite (0.3 ms for one box on the 2-core CPU, against 2.5 ms as a compiled TensorFlow
    function), or as that function if TFLite disagrees or fails. The conversion (~1.3 s with building ONet)
    is kept in the models' TFLite cache (`inference.lite_cache`) with ONet's scores on two probe patches, so a
    later start checks the stored flatbuffer against them without building ONet at all."""
    import tensorflow as tf

    from detectors.mtcnn_detector import mtcnn_weights
    from inference.lite import convert
    from inference.lite_cache import LiteCache, checked_runner
    from inference.models import LITE_TOLERANCE

    weights = mtcnn_weights(ONET_WEIGHTS)
    probe = np.random.default_rng(0).uniform(-1.0, 1.0, (2, *input_shape)).astype(np.float32)
    cache = LiteCache(weights, input_shape, 2, quantize=False)
    lite = cache.load_checked(input_shape, probe, LITE_TOLERANCE[False])
    if lite is not None:
        return lite
    from mtcnn.stages.stage_onet import StageONet

    network = _FaceScore(StageONet(weights=str(weights))._model)
    compiled = tf.function(network, input_signature=[tf.TensorSpec([None, *input_shape], tf.float32)])
    expected = np.asarray(compiled(probe))
    try:
        flatbuffer = convert(network, input_shape)
        lite = checked_runner(flatbuffer, input_shape, probe, expected, LITE_TOLERANCE[False])
        if lite is not None:
            cache.store(flatbuffer, expected)
            return lite
        log.warning("ONet under TFLite disagrees with TensorFlow; verifying faces with TensorFlow")
    except Exception as exc:  # the converter's failures are many and third-party; TensorFlow still runs it
        log.warning("ONet could not be converted to TFLite (%s); verifying faces with TensorFlow", exc)
    return lambda patches: np.asarray(compiled(patches))


_shared_lock = threading.Lock()


@cache
def _build_shared() -> FaceVerifier:
    return FaceVerifier()


def shared_verifier() -> FaceVerifier:
    """One verifier per process: every Haar detector (the GUI's, a benchmark's) uses the same small network."""
    with _shared_lock:
        return _build_shared()
