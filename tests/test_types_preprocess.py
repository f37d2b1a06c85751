import numpy as np
import pytest

from inference.cards import DEFAULT_CLASSES, ModelCard, load_card
from inference.errors import WeightsError
from inference.preprocess import InputSpec, crop_face, prepare_faces
from inference.types import FaceBox, Prediction


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"x": 0, "y": 0, "w": 0, "h": 5}, ValueError),
        ({"x": float("nan"), "y": 0, "w": 5, "h": 5}, ValueError),
        ({"x": -3, "y": 2, "w": 5, "h": 5}, None),
    ],
)
def test_facebox_validation(kwargs, error):
    if error:
        with pytest.raises(error):
            FaceBox(**kwargs)
    else:
        assert FaceBox(**kwargs).area == 25


def test_iou_and_scaling():
    a, b = FaceBox(0, 0, 10, 10), FaceBox(5, 0, 10, 10)
    assert a.iou(b) == pytest.approx(50 / 150)
    assert a.scaled(2.0) == FaceBox(0, 0, 20, 20)


def test_prediction_from_probs_picks_argmax_and_rejects_mismatch():
    pred = Prediction.from_probs(("a", "b", "c"), [0.1, 0.7, 0.2])
    assert pred.label == "b" and pred.confidence == pytest.approx(0.7)
    with pytest.raises(ValueError):
        Prediction.from_probs(("a", "b"), [0.1, 0.2, 0.7])


def test_crop_at_border_keeps_square_and_position():
    frame = np.zeros((100, 100, 3), np.uint8)
    frame[:, :50] = 255
    crop = crop_face(frame, FaceBox(-10, 10, 40, 40), margin=0.25)
    assert crop.shape == (60, 60, 3)
    with pytest.raises(ValueError):
        crop_face(frame, FaceBox(500, 500, 10, 10), margin=0.0)


def test_prepare_faces_shapes_colors_and_range():
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (90, 70, 3), dtype=np.uint8), rng.integers(0, 256, (30, 30), dtype=np.uint8)]
    grey = prepare_faces(crops, InputSpec(48, "grey", 0.1))
    rgb = prepare_faces(crops, InputSpec(64, "rgb", 0.2))
    assert grey.shape == (2, 48, 48, 1) and rgb.shape == (2, 64, 64, 3)
    assert grey.dtype == np.float32 and 0 <= grey.min() and grey.max() <= 255


def test_card_round_trip_and_errors(tmp_path):
    card = ModelCard("gender", DEFAULT_CLASSES["gender"], InputSpec(64, "rgb", 0.2), "gender.keras", {"acc": 0.9})
    card.save(tmp_path / "gender.json")
    assert load_card("gender", tmp_path) == card
    (tmp_path / "race.json").write_text("{not json")
    with pytest.raises(WeightsError, match="unreadable"):
        load_card("race", tmp_path)
    with pytest.raises(WeightsError, match="not found"):
        load_card("emotion", tmp_path)
