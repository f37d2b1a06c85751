"""The attribute classifiers: a saved Keras model plus its card, called the fast way.

A webcam frame holds a handful of faces, so per-call overhead dominates. Measured on the 2-core target for a
0.3 M-parameter face CNN at batch 1 / 8: `model.predict` ~110-160 ms whatever the batch, eager `model(x)`
~40 / 50 ms, a compiled `tf.function` graph ~4-5 / 12-15 ms, TFLite (XNNPACK, 2 threads) ~1.1-1.9 / 6-10 ms.
So every batch of faces is ONE call of a compiled model: the in-memory TFLite conversion on a CPU, with int8
weights ("tflite-int8" engine, ~3.8x faster again than float "tflite"), the `tf.function` graph on a GPU or
wherever conversion fails ("tf" engine). The batch is padded to
a fixed bucket size (1, 2, 4, 8, 16, 32) so neither engine ever re-traces or reallocates as faces come and go.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from inference.cards import TASKS, ModelCard, default_weights_dir, load_card  # noqa: E402
from inference.engines import ENGINES  # noqa: E402
from inference.errors import WeightsError  # noqa: E402
from inference.lite import LiteRunner, convert  # noqa: E402
from inference.lite_cache import LiteCache, checked_runner  # noqa: E402
from inference.preprocess import InputSpec  # noqa: E402

log = logging.getLogger(__name__)

BUCKETS: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
MAX_BUCKET = BUCKETS[-1]
# Buckets compiled at load time. Tracing a tf.function bucket costs 0.15-0.35 s per model on this 2-core CPU
# (all six buckets of three models would add ~5 s to start-up; a TFLite bucket costs only 3-35 ms), so the
# common 1-4 face cases are ready before the first frame and larger groups compile once, on first use.
WARM_BUCKETS: tuple[int, ...] = (1, 2, 4)


def run_in_buckets(run: Callable[[np.ndarray], np.ndarray], batch: np.ndarray) -> np.ndarray:
    """`run` on `batch` in chunks of at most MAX_BUCKET rows, each padded with zeros to its bucket size, so a
    compiled graph or a TFLite interpreter only ever sees the bucket sizes; padding rows are dropped again."""
    outputs = []
    for start in range(0, len(batch), MAX_BUCKET):
        chunk = batch[start : start + MAX_BUCKET]
        missing = bucket_size(len(chunk)) - len(chunk)
        if missing:
            chunk = np.concatenate([chunk, np.zeros((missing, *chunk.shape[1:]), chunk.dtype)])
        outputs.append(np.asarray(run(chunk))[: len(chunk) - missing])
    return np.concatenate(outputs)


def bucket_size(n: int) -> int:
    """The smallest bucket holding `n` faces (n <= MAX_BUCKET)."""
    for size in BUCKETS:
        if n <= size:
            return size
    raise ValueError(f"batch of {n} exceeds the largest bucket {MAX_BUCKET}")


_gpu_setup_done = False


def compute_device() -> str:
    """Where TensorFlow places the models by default: the first GPU it sees, else the CPU.

    Memory growth is switched on first so a desktop app does not reserve the whole GPU for three small
    CNNs; that is only possible before TensorFlow initialises the device, hence once and guarded."""
    global _gpu_setup_done
    gpus = tf.config.list_physical_devices("GPU")
    if not _gpu_setup_done:
        _gpu_setup_done = True
        for gpu in gpus:
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except (RuntimeError, ValueError):  # already initialised by someone else: keep their setting
                pass
    return "GPU:0" if gpus else "CPU:0"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


class AttributeModel:
    """One attribute classifier (emotion, gender or race) ready for batched inference.

    `predict` is meant to be called from one worker thread; compiling a new bucket is guarded by a lock so a
    second caller (a benchmark, a test) cannot trace the same bucket twice. With a `lite` runner the model runs
    on TFLite; otherwise (and always on a GPU) as `tf.function` graphs, one per bucket. A model started from
    a cached TFLite conversion has no Keras `model` (None): it was never built, which is the point."""

    def __init__(
        self,
        card: ModelCard,
        model: keras.Model | None,
        path: Path | None = None,
        lite: LiteRunner | None = None,
        quantized: bool = False,
    ) -> None:
        if model is None and lite is None:
            raise ValueError("an AttributeModel needs a Keras model, a TFLite runner, or both")
        self.card = card
        self.quantized = quantized and lite is not None
        self.path = path
        self.device = compute_device()
        self._model = model
        self._lite = lite
        self._function = tf.function(self._forward, reduce_retracing=False)
        self._compiled: dict[int, tf.types.experimental.ConcreteFunction] = {}
        self._compile_lock = threading.Lock()
        self.trace_count = 0  # how many graphs were built: at most one per bucket, ever

    @property
    def task(self) -> str:
        return self.card.task

    @property
    def classes(self) -> tuple[str, ...]:
        return self.card.classes

    @property
    def spec(self) -> InputSpec:
        return self.card.input

    @property
    def engine(self) -> str:
        """ "tflite-int8", "tflite" or "tf": which compiled form runs `predict` (for logs, cards and benchmarks)."""
        if self._lite is None:
            return "tf"
        return "tflite-int8" if self.quantized else "tflite"

    def _forward(self, faces: tf.Tensor) -> tf.Tensor:
        self.trace_count += 1  # Python side effect: runs while tracing only
        return self._model(faces, training=False)

    def _graph(self, size: int):
        graph = self._compiled.get(size)
        if graph is None:
            with self._compile_lock:
                graph = self._compiled.get(size)
                if graph is None:
                    spec = tf.TensorSpec((size, *self.spec.shape), tf.float32)
                    graph = self._function.get_concrete_function(spec)
                    self._compiled[size] = graph
        return graph

    def warm_up(self, sizes: Iterable[int] = BUCKETS) -> None:
        """Compile (and run once) the buckets holding these batch sizes now, not on the first frame needing them."""
        for size in sizes:
            self._run(np.zeros((bucket_size(size), *self.spec.shape), np.float32))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, len(classes)) in card order, for faces shaped like `spec.shape`
        (the output of `prepare_faces`). One compiled call per 32 faces."""
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1:] != self.spec.shape:
            raise ValueError(
                f"{self.task} model expects faces of shape (n, {', '.join(map(str, self.spec.shape))})"
                f", got {batch.shape}"
            )
        if len(batch) == 0:
            return np.empty((0, len(self.classes)), np.float32)
        return run_in_buckets(self._run, batch)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """One call on a batch of a bucket's size."""
        if self._lite is not None:
            return self._lite(batch)
        return np.asarray(self._graph(len(batch))(tf.constant(batch)))

    def __repr__(self) -> str:
        return (
            f"AttributeModel({self.task!r}, classes={len(self.classes)}, input={self.spec}, "
            f"engine={self.engine}, device={self.device})"
        )


def _check_shapes(model: keras.Model, card: ModelCard, path: Path) -> None:
    """The card and the model must agree, or every label would be silently wrong."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise WeightsError(
            f"{path}: expected a model with one input and one output, got {len(model.inputs)} and {len(model.outputs)}"
        )
    in_shape = tuple(model.inputs[0].shape[1:])
    want = card.input.shape
    if len(in_shape) != len(want) or any(d is not None and d != w for d, w in zip(in_shape, want, strict=True)):
        raise WeightsError(
            f"{path}: model input {in_shape} does not match the card's {want} ({card.input.size}px {card.input.color})"
        )
    out_shape = tuple(model.outputs[0].shape[1:])
    if out_shape != (len(card.classes),):
        raise WeightsError(f"{path}: model outputs {out_shape} but the card lists {len(card.classes)} classes")


# How far TFLite's probabilities may stray from Keras's on the load-time probe before the engine is refused:
# float32 differs only by rounding; int8 weights and per-face int8 activations move probabilities by ~0.004 on
# the shipped models. The check catches broken conversions; the quantized path's accuracy is what
# `facelens eval` measures, since eval runs the models exactly as the app does.
LITE_TOLERANCE: dict[bool, float] = {False: 1e-3, True: 0.05}


def _converted_model(
    model: keras.Model, card: ModelCard, path: Path, expected: np.ndarray, cache: LiteCache, required: bool
) -> AttributeModel | None:
    """The model converted to TFLite (float32, or int8 for an int8 `cache`) if it converts and reproduces
    Keras's probabilities on the probe faces; otherwise None, or a WeightsError when this engine was asked for
    explicitly. Kept in `cache` for the next start."""
    kind = "TFLite int8" if cache.quantize else "TFLite"
    try:
        flatbuffer = convert(model, card.input.shape, cache.quantize)
        runner = checked_runner(flatbuffer, card.input.shape, _probe(card), expected, LITE_TOLERANCE[cache.quantize])
    except Exception as exc:  # the converter rejects some layers; tf.function still runs them
        if required:
            raise WeightsError(f"model {path} cannot be converted to {kind}: {_one_line(exc)}") from None
        log.info("%s conversion of %s failed (%s)", kind, path, _one_line(exc))
        return None
    if runner is not None:
        cache.store(flatbuffer, expected)
        return AttributeModel(card, model, path, runner, quantized=cache.quantize)
    if required:
        raise WeightsError(f"model {path} gives different results under {kind}")
    log.warning("%s results of %s differ from Keras; trying the next engine", kind, path)
    return None


def _cached_model(card: ModelCard, path: Path, cache: LiteCache) -> AttributeModel | None:
    """The model from an earlier start's conversion of these exact bytes, checked against the Keras
    probabilities stored with it, without building the Keras model; None (and the entry deleted) otherwise."""
    runner = cache.load_checked(card.input.shape, _probe(card), LITE_TOLERANCE[cache.quantize])
    return None if runner is None else AttributeModel(card, None, path, runner, quantized=cache.quantize)


def _probe(card: ModelCard) -> np.ndarray:
    """Two fixed random faces: the same every start, so stored Keras probabilities stay comparable."""
    return np.random.default_rng(0).uniform(0, 255, (2, *card.input.shape)).astype(np.float32)


def _is_probabilities(out: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(out)) and np.all(out >= -1e-6) and np.allclose(out.sum(axis=1), 1.0, atol=1e-3))


def load_model(task: str, weights_dir: Path | None = None, *, engine: str = "auto") -> AttributeModel:
    """Load `<weights_dir>/<card.file>` (normally `<task>.keras`) with its card, checked and warmed up.

    Every way the files can be wrong (missing, truncated, not a Keras archive, unsafe layers, shapes or
    class count that disagree with the card, logits instead of probabilities) is one WeightsError line
    naming the file. `engine`: "auto" (on a CPU the first of int8 TFLite, float TFLite that converts and
    agrees with Keras, else tf.function; on a GPU tf.function), "tflite-int8" or "tflite" (required), or "tf".
    A TFLite engine starts from an earlier start's conversion of the same file when one is cached and still
    reproduces Keras's probabilities (`inference.lite_cache`): half the start-up time on a 2-core CPU."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    folder = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    card = load_card(task, folder)
    path = folder / card.file
    if not path.is_file():
        raise WeightsError(f"model weights not found: {path}")
    on_cpu = compute_device().startswith("CPU")
    attempts = {"auto": (True, False) if on_cpu else (), "tflite-int8": (True,), "tflite": (False,), "tf": ()}[engine]
    # One cache entry per engine tried, made once: finding an entry hashes the model file.
    caches = [LiteCache(path, card.input.shape, len(card.classes), quantize) for quantize in attempts]
    attribute_model = _cached_model(card, path, caches[0]) if caches else None
    if attribute_model is None:
        attribute_model = _keras_model(card, path, caches, required=engine != "auto")
    attribute_model.warm_up(WARM_BUCKETS)
    log.info("loaded %s model %s: %s engine on %s", task, path, attribute_model.engine, attribute_model.device)
    return attribute_model


def _keras_model(card: ModelCard, path: Path, caches: Sequence[LiteCache], required: bool) -> AttributeModel:
    """Build the Keras model, check it, and run it on the first TFLite engine of `caches` (one per engine to
    try, int8 or float) that converts and agrees with it, else as tf.function graphs."""
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # a corrupt archive surfaces as many different third-party errors
        raise WeightsError(
            f"model weights {path} could not be loaded: {type(exc).__name__}: {_one_line(exc)}"
        ) from None
    if not isinstance(model, keras.Model):
        raise WeightsError(f"{path} holds a {type(model).__name__}, not a Keras model")
    _check_shapes(model, card, path)
    try:
        expected = np.asarray(model(_probe(card), training=False))
    except Exception as exc:
        raise WeightsError(f"model {path} fails on a test face: {type(exc).__name__}: {_one_line(exc)}") from None
    if not _is_probabilities(expected):
        raise WeightsError(f"model {path} does not output probabilities (rows must sum to 1; missing softmax?)")
    for cache in caches:
        attribute_model = _converted_model(model, card, path, expected, cache, required)
        if attribute_model is not None:
            return attribute_model
    return AttributeModel(card, model, path)


def load_models(
    weights_dir: Path | None = None, tasks: Iterable[str] = TASKS, *, engine: str = "auto"
) -> dict[str, AttributeModel]:
    """Load every requested model; the first failure raises WeightsError."""
    return {task: load_model(task, weights_dir, engine=engine) for task in tasks}
