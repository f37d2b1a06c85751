"""MTCNN's two patch networks, RNet (24 px) and ONet (48 px), as float TFLite.

Why: each of them scores a small batch of face patches, and as a compiled TensorFlow function a call costs
~2-4 ms on the 2-core CPU, nearly all of it the graph executor's fixed cost, not arithmetic. A refine step
(`MTCNNDetector.refine`, every frame between full scans) calls both, and so does every full scan and every
Haar second opinion (`detectors.verify`, ONet). Measured against TensorFlow functions on the same idle
2-core machine with the same faces found (`python -m detectors.region_bench CLIP --detector mtcnn`, CPU ms
per frame): liveportrait with refining between full scans 15.8 -> 11.0, full scans only 56.0 -> 50.6;
hamilton 35.4 -> 23.7 and 53.0 -> 43.5. Boxes agree to 1e-5 px.

A network's heads (box offsets, landmarks, face probability) come out of one TFLite output, side by side,
so the single-output runner of the attribute models serves here too; `StageNetwork` splits them again for
mtcnn's own stage code. The conversion is checked against TensorFlow and kept in the models' TFLite cache.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PatchNetwork:
    """One of mtcnn's patch networks: its weights file in the package, its input side and its heads' widths,
    in the order the network returns them."""

    weights: str
    size: int
    heads: tuple[int, ...]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.size, self.size, 3)

    @property
    def width(self) -> int:
        return sum(self.heads)


RNET = PatchNetwork("rnet.lz4", 24, (4, 2))  # box offsets, [not face, face]
ONET = PatchNetwork("onet.lz4", 48, (4, 10, 2))  # box offsets, 5 landmarks (x..., y...), [not face, face]


class _HeadsSideBySide:
    """A network whose heads are concatenated into one output, with what `inference.lite.convert` needs."""

    def __init__(self, network) -> None:
        self._network = network
        self.variables = network.variables

    def __call__(self, patches, training: bool = False):
        import tensorflow as tf

        return tf.concat(list(self._network(patches, training=training)), axis=-1)


def _build(network: PatchNetwork):
    """The Keras network, built by mtcnn's own stage class from the package's weights (by full path)."""
    from mtcnn.stages import stage_onet, stage_rnet

    from detectors.mtcnn_detector import mtcnn_weights

    stage = {RNET.weights: stage_rnet.StageRNet, ONET.weights: stage_onet.StageONet}[network.weights]
    return _HeadsSideBySide(stage(weights=str(mtcnn_weights(network.weights)))._model)


def network_runner(network: PatchNetwork) -> Callable[[np.ndarray], np.ndarray]:
    """patches (n, size, size, 3), normalised as mtcnn does -> rows (n, network.width): float TFLite, or a
    compiled TensorFlow function if TFLite disagrees with it or fails. A later start checks the cached
    flatbuffer against the outputs stored with it and never builds the Keras network."""
    import tensorflow as tf

    from detectors.mtcnn_detector import mtcnn_weights
    from inference.lite import convert
    from inference.lite_cache import LiteCache, checked_runner
    from inference.models import LITE_TOLERANCE, run_in_buckets

    shape = network.input_shape
    probe = np.random.default_rng(0).uniform(-1.0, 1.0, (2, *shape)).astype(np.float32)
    cache = LiteCache(mtcnn_weights(network.weights), shape, network.width, quantize=False)
    run = cache.load_checked(shape, probe, LITE_TOLERANCE[False])
    if run is None:
        model = _build(network)
        compiled = tf.function(model, input_signature=[tf.TensorSpec([None, *shape], tf.float32)])
        expected = np.asarray(compiled(probe))
        try:
            flatbuffer = convert(model, shape)
            run = checked_runner(flatbuffer, shape, probe, expected, LITE_TOLERANCE[False])
            if run is not None:
                cache.store(flatbuffer, expected)
            else:
                log.warning("%s under TFLite disagrees with TensorFlow; running it with TensorFlow", network.weights)
        except Exception as exc:  # the converter's failures are many and third-party; TensorFlow still runs it
            log.warning("%s could not be converted to TFLite (%s); running it with TensorFlow", network.weights, exc)
        if run is None:
            run = lambda patches: np.asarray(compiled(patches))  # noqa: E731

    def rows(patches: np.ndarray) -> np.ndarray:
        if len(patches) == 0:
            return np.empty((0, network.width), np.float32)
        return run_in_buckets(run, np.asarray(patches, dtype=np.float32))

    return rows


class StageNetwork:
    """Stands in for a stage's Keras network (`stage._model`) in mtcnn's stage code, which hands it a tensor of
    patches and unpacks one tensor per head."""

    def __init__(self, network: PatchNetwork) -> None:
        self._rows = network_runner(network)
        self._cuts = np.cumsum(network.heads)[:-1]

    def __call__(self, patches) -> tuple:
        import tensorflow as tf

        rows = self._rows(np.asarray(patches, dtype=np.float32))
        return tuple(tf.constant(head) for head in np.split(rows, self._cuts, axis=-1))
