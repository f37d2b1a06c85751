"""Teacher-labelled FER2013 faces as extra training faces for gender/race (`facelens train --extra-faces`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_training_data import fer_rows, write_fer, write_ferplus
from test_training_smoke import tiny_gender_run

from inference.cards import load_card
from inference.preprocess import InputSpec
from training.extra_faces import unlabelled_fer_faces, with_extra_faces
from training.task_data import SplitData

RGB64 = InputSpec(64, "rgb", 0.0)


def test_only_training_faces_that_voters_call_a_face_are_used(tmp_path):
    rows = fer_rows(6, usages=("Training",)) + fer_rows(4, seed=1, usages=("PublicTest", "PrivateTest"))
    csv = write_fer(tmp_path / "fer2013.csv", rows)
    face, not_a_face = [0, 9, 1, 0, 0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0, 0, 9]
    write_ferplus(tmp_path / "fer2013new.csv", [face, not_a_face, face, face, not_a_face, face] + [face] * 4)

    faces = unlabelled_fer_faces(csv, RGB64)
    assert faces.shape == (4, 64, 64, 3) and faces.dtype == np.uint8
    # Grey faces become grey RGB: all three channels equal.
    assert np.array_equal(faces[..., 0], faces[..., 1]) and np.array_equal(faces[..., 1], faces[..., 2])
    assert len(unlabelled_fer_faces(csv, RGB64, limit=3, seed=0)) == 3


def test_extra_faces_are_appended_with_the_teachers_targets_at_weight_one():
    train = SplitData(
        np.zeros((3, 8, 8, 3), np.uint8),
        np.array([0, 1, 1]),
        np.eye(2, dtype=np.float32)[[0, 1, 1]],
        {"race": ["White"] * 3},
    )
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8]], np.float32)
    grown, weights = with_extra_faces(
        train, np.full(3, 0.5, np.float32), np.ones((2, 8, 8, 3), np.uint8), probabilities
    )
    assert len(grown.images) == 5 and grown.extra == 2
    assert np.array_equal(grown.soft_targets[3:], probabilities) and list(grown.labels[3:]) == [0, 1]
    assert list(weights) == [0.5, 0.5, 0.5, 1.0, 1.0]
    assert grown.groups == {"race": ["White"] * 3}  # the extra faces have no race: none is made up for them
    with pytest.raises(ValueError, match="2 extra faces but 1"):
        with_extra_faces(grown, weights, np.ones((2, 8, 8, 3), np.uint8), probabilities[:1])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["gender", "--extra-faces", "fer"], "needs --teacher"),
        (["emotion", "--extra-faces", "fer", "--teacher", "t.keras"], "emotion trains on FER2013 already"),
    ],
)
def test_extra_faces_misuse_is_a_usage_error(options, message, capsys):
    from training.train import main

    with pytest.raises(SystemExit) as stop:
        main(options)
    assert stop.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.slow
def test_a_multi_task_student_trains_on_teacher_labelled_fer_faces_and_its_card_says_so(tmp_path):
    import keras

    from training.train import main

    (tmp_path / "fer").mkdir()
    fer = write_fer(tmp_path / "fer" / "fer2013.csv", fer_rows(20))
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64, 64, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255.0)(inputs))
    keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(pooled)).save(tmp_path / "teacher.keras")
    argv, run_dir, weights = tiny_gender_run(
        tmp_path,
        "--epochs",
        "1",
        "--teacher",
        str(tmp_path / "teacher.keras"),
        "--teacher-weight",
        "0",
        "--aux",
        "race",
    )
    assert main([*argv, "--extra-faces", str(fer)]) == 0
    extra = load_card("gender", weights).details["training"]["extra_faces"]
    assert extra["faces"] == 7 and extra["dataset"] == "fer2013"  # fer_rows(20) holds 7 Training rows
    state = json.loads((run_dir / "state.json").read_text())
    assert state["settings"]["extra_faces"] == str(fer) and state["extra_faces"] == 7  # a resume keeps both


def test_auxiliary_heads_learn_nothing_from_the_extra_faces():
    import keras

    from training.auxiliary import aux_targets

    targets = aux_targets({"race": ["White", "Black"]}, ["race"], unlabelled=2)["aux_race"]
    assert targets.shape == (4, 5) and targets[:2].sum() == 2 and not targets[2:].any()
    predicted = np.full((4, 5), 0.2, np.float32)
    loss = np.asarray(keras.losses.categorical_crossentropy(targets, predicted))
    assert loss[2:].tolist() == [0.0, 0.0] and loss[0] > 1.5
