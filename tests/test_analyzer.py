"""The per-frame pipeline on a real photo with the tiny real models: wiring (right recipe to the right model),
switching attributes off, frames without faces, and swapping the detector while another thread analyses."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from inference.analyzer import TIMING_KEYS, FrameAnalyzer
from inference.cards import DEFAULT_CLASSES
from inference.models import AttributeModel, load_models
from inference.preprocess import crop_face, prepare_faces
from inference.types import ATTRIBUTES, FaceBox

ASTRONAUT_FACE = FaceBox(165, 45, 100, 120, 0.99)


class FixedDetector:
    """A detector test double: reports the given boxes, optionally after a delay, and remembers its use."""

    def __init__(self, boxes: list[FaceBox], delay_s: float = 0.0, name: str = "fixed") -> None:
        self.name = name
        self.boxes = list(boxes)
        self.delay_s = delay_s
        self.calls = 0
        self.busy = threading.Event()
        self.finished = threading.Event()
        self.closed = False

    def detect(self, frame_bgr: np.ndarray) -> list[FaceBox]:
        self.busy.set()
        time.sleep(self.delay_s)
        self.calls += 1
        self.finished.set()
        return list(self.boxes)

    def close(self) -> None:
        self.closed = True


class CountingModel:
    """Delegates to a real AttributeModel and counts calls, to prove skipped models are never run."""

    def __init__(self, model: AttributeModel) -> None:
        self.model = model
        self.task, self.card, self.classes, self.spec = model.task, model.card, model.classes, model.spec
        self.calls = 0

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.model.predict(batch)


@pytest.fixture(scope="module")
def models(tiny_weights_dir: Path) -> dict[str, AttributeModel]:
    return load_models(tiny_weights_dir)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def test_one_face_gets_all_three_predictions_and_all_timings(models, astronaut):
    result = FrameAnalyzer(FixedDetector([ASTRONAUT_FACE]), models).analyze(astronaut, index=7, timestamp=1.5)
    assert (result.index, result.timestamp) == (7, 1.5)
    assert len(result.faces) == 1
    face = result.faces[0]
    assert face.box == ASTRONAUT_FACE
    for attr in ATTRIBUTES:
        prediction = face.attribute(attr)
        assert prediction is not None
        assert tuple(prediction.probs) == DEFAULT_CLASSES[attr]
        assert sum(prediction.probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert set(result.timings) == set(TIMING_KEYS)
    assert all(v >= 0 for v in result.timings.values())
    assert result.timings["total"] >= result.timings["detect"] + result.timings["emotion"]


def test_each_model_gets_its_own_recipe(models, astronaut):
    """Emotion sees a 48px grey crop with margin 0.1, gender/race a 64px RGB crop with margin 0.2."""
    result = FrameAnalyzer(FixedDetector([ASTRONAUT_FACE]), models).analyze(astronaut, 0, 0.0)
    for attr, model in models.items():
        expected = model.predict(prepare_faces([crop_face(astronaut, ASTRONAUT_FACE, model.spec.margin)], model.spec))
        got = np.array([result.faces[0].attribute(attr).probs[c] for c in model.classes])
        np.testing.assert_allclose(got, expected[0], rtol=1e-5, atol=1e-6)


def test_several_faces_are_batched_once_per_model_with_sequential_ids(models, astronaut):
    boxes = [ASTRONAUT_FACE, FaceBox(300, 200, 80, 80), FaceBox(20, 300, 90, 100)]
    counting = {attr: CountingModel(model) for attr, model in models.items()}
    analyzer = FrameAnalyzer(FixedDetector(boxes), counting)
    result = analyzer.analyze(astronaut, 0, 0.0)
    assert [f.track_id for f in result.faces] == [0, 1, 2]
    assert [f.box for f in result.faces] == boxes
    assert all(m.calls == 1 for m in counting.values())
    alone = FrameAnalyzer(FixedDetector(boxes[1:2]), models).analyze(astronaut, 1, 0.1).faces[0]
    for attr in ATTRIBUTES:
        for c in models[attr].classes:
            assert alone.attribute(attr).probs[c] == pytest.approx(result.faces[1].attribute(attr).probs[c], abs=1e-6)


def test_disabled_attributes_are_none_and_never_run(models, astronaut):
    counting = {attr: CountingModel(model) for attr, model in models.items()}
    analyzer = FrameAnalyzer(FixedDetector([ASTRONAUT_FACE]), counting)
    analyzer.enabled = {"emotion"}
    face = analyzer.analyze(astronaut, 0, 0.0).faces[0]
    assert face.emotion is not None and face.gender is None and face.race is None
    assert (counting["emotion"].calls, counting["gender"].calls, counting["race"].calls) == (1, 0, 0)
    analyzer.enabled.discard("emotion")
    result = analyzer.analyze(astronaut, 1, 0.1)
    assert result.faces[0].emotion is None and counting["emotion"].calls == 1
    assert result.timings["emotion"] == 0.0


def test_missing_models_give_none(models, astronaut):
    face = (
        FrameAnalyzer(FixedDetector([ASTRONAUT_FACE]), {"gender": models["gender"]}).analyze(astronaut, 0, 0).faces[0]
    )
    assert face.gender is not None and face.emotion is None and face.race is None


def test_frame_without_faces_skips_the_models(models, astronaut):
    counting = {attr: CountingModel(model) for attr, model in models.items()}
    result = FrameAnalyzer(FixedDetector([]), counting).analyze(astronaut, 3, 0.3)
    assert result.faces == ()
    assert all(m.calls == 0 for m in counting.values())
    assert set(result.timings) == set(TIMING_KEYS)


def test_boxes_entirely_outside_the_frame_are_dropped(models, astronaut):
    height, width = astronaut.shape[:2]
    boxes = [FaceBox(width + 10, 0, 50, 50), ASTRONAUT_FACE, FaceBox(-80, -80, 40, 40)]
    result = FrameAnalyzer(FixedDetector(boxes), models).analyze(astronaut, 0, 0.0)
    assert [f.box for f in result.faces] == [ASTRONAUT_FACE]


def test_rejects_a_model_under_the_wrong_attribute(models):
    with pytest.raises(ValueError, match="gender"):
        FrameAnalyzer(FixedDetector([]), {"emotion": models["gender"]})


def test_set_detector_swaps_and_waits_for_a_running_detection(models, astronaut):
    slow = FixedDetector([ASTRONAUT_FACE], delay_s=0.3, name="slow")
    fast = FixedDetector([ASTRONAUT_FACE, FaceBox(300, 200, 80, 80)], name="fast")
    analyzer = FrameAnalyzer(slow, models)
    worker = threading.Thread(target=analyzer.analyze, args=(astronaut, 0, 0.0))
    worker.start()
    assert slow.busy.wait(2.0)
    old = analyzer.set_detector(fast)
    assert old is slow
    assert slow.finished.is_set(), "set_detector returned while the old detector was still detecting"
    worker.join(2.0)
    assert analyzer.detector is fast
    result = analyzer.analyze(astronaut, 1, 0.1)
    assert len(result.faces) == 2 and fast.calls == 1 and slow.calls == 1


def test_with_the_real_tracker_ids_persist(models, astronaut):
    tracking = pytest.importorskip("inference.tracking")
    detector = FixedDetector([ASTRONAUT_FACE])
    analyzer = FrameAnalyzer(detector, models, tracker=tracking.FaceTracker())
    first = analyzer.analyze(astronaut, 0, 0.0).faces
    detector.boxes = [FaceBox(ASTRONAUT_FACE.x + 4, ASTRONAUT_FACE.y + 2, ASTRONAUT_FACE.w, ASTRONAUT_FACE.h)]
    second = analyzer.analyze(astronaut, 1, 0.033).faces
    assert len(first) == len(second) == 1
    assert first[0].track_id == second[0].track_id
    assert all(second[0].attribute(attr) is not None for attr in ATTRIBUTES)
