"""Loading trained models named on the command line, and rebuilding them for another face size."""

from __future__ import annotations

import json

import numpy as np
import pytest

from inference.errors import WeightsError
from training.trained import load_trained


def pooled_net(shape=(32, 32, 3), classes: int = 2):
    """1x1 conv → global pooling → softmax: no weight depends on the face size (and no border effects)."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(4, 1, activation="relu")(keras.layers.Rescaling(1 / 255.0)(inputs))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax", name="probs")(x))


def flattened_net(shape=(32, 32, 3), classes: int = 2):
    """Flatten → Dense: the classifier's weights are sized for one face size only."""
    import keras

    inputs = keras.Input(shape)
    x = keras.layers.Flatten()(keras.layers.Conv2D(2, 3, padding="same")(inputs))
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x))


def test_a_pooled_model_is_rebuilt_for_another_size_with_the_same_weights(tmp_path):
    model = pooled_net()
    model.save(tmp_path / "m.keras")
    resized = load_trained(tmp_path / "m.keras", "--init-from", (48, 48, 3), 2)
    assert resized.input_shape == (None, 48, 48, 3)
    for before, after in zip(model.get_weights(), resized.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    # A flat grey face gives the same pooled features at any size, so the same probabilities.
    small, large = np.full((1, 32, 32, 3), 120, np.float32), np.full((1, 48, 48, 3), 120, np.float32)
    np.testing.assert_allclose(model(small).numpy(), resized(large).numpy(), atol=1e-5)


def test_sizes_that_the_weights_cannot_serve_and_wrong_tasks_are_refused(tmp_path):
    flattened_net().save(tmp_path / "flat.keras")
    with pytest.raises(WeightsError, match="cannot serve"):
        load_trained(tmp_path / "flat.keras", "--init-from", (48, 48, 3), 2)
    pooled_net().save(tmp_path / "m.keras")
    with pytest.raises(WeightsError, match="this task needs"):
        load_trained(tmp_path / "m.keras", "--teacher", (32, 32, 1), 2)  # grey faces for an RGB model
    with pytest.raises(WeightsError, match="this task needs"):
        load_trained(tmp_path / "m.keras", "--teacher", (32, 32, 3), 5)


def test_a_face_size_below_8_px_is_a_usage_error(capsys):
    from training.train import parse_args

    with pytest.raises(SystemExit) as exit_info:
        parse_args(["race", "--size", "4"])
    assert exit_info.value.code == 2 and "--size must be at least 8 px" in capsys.readouterr().err
    assert parse_args(["race", "--size", "96"]).size == 96


def test_a_multi_task_checkpoint_starts_a_run_for_any_of_its_heads_with_the_trained_weights(tmp_path):
    from training.auxiliary import head_labels, with_heads

    gender = with_heads(pooled_net(classes=2), "gender", ("race", "age"))
    gender.save(tmp_path / "best.keras")
    faces = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3)).astype(np.float32)
    before = gender(faces)

    race = load_trained(tmp_path / "best.keras", "--init-from", (32, 32, 3), 5, "race", ("gender",))
    assert head_labels(race) == {"probs": "race", "aux_gender": "gender"}
    after = race(faces)
    np.testing.assert_allclose(after["probs"].numpy(), before["aux_race"].numpy(), atol=1e-6)
    np.testing.assert_allclose(after["aux_gender"].numpy(), before["probs"].numpy(), atol=1e-6)

    alone = load_trained(tmp_path / "best.keras", "--teacher", (32, 32, 3), 6, "age")  # no aux: one output
    np.testing.assert_allclose(alone(faces).numpy(), before["aux_age"].numpy(), atol=1e-6)
    with pytest.raises(WeightsError, match=r"best.keras: the model has no emotion head \(its heads: gender, "):
        load_trained(tmp_path / "best.keras", "--init-from", (32, 32, 3), 7, "emotion")


def test_a_network_of_another_task_lends_its_trunk_to_a_new_head(tmp_path, capsys):
    """`facelens train race --init-from GENDER --new-head`: the trunk and the gender head keep their weights,
    the race head is new, and the card's lineage still finds the parent's record (in gender.json)."""
    from training.auxiliary import head_labels
    from training.ensemble import member_record
    from training.train import parse_args

    gender = pooled_net(classes=2)
    gender.save(tmp_path / "gender.keras")
    (tmp_path / "gender.json").write_text(json.dumps({"file": "gender.keras", "training": {"train_seconds": 1800}}))
    faces = np.random.default_rng(1).integers(0, 255, (3, 32, 32, 3)).astype(np.float32)

    with pytest.raises(WeightsError, match=r"-> 2 classes, this task needs .* -> 5"):
        load_trained(tmp_path / "gender.keras", "--init-from", (32, 32, 3), 5, "race")
    race = load_trained(tmp_path / "gender.keras", "--init-from", (32, 32, 3), 5, "race", ("gender",), new_head=True)
    assert head_labels(race) == {"probs": "race", "aux_gender": "gender"}
    outputs = race(faces)
    assert outputs["probs"].shape == (3, 5)
    np.testing.assert_allclose(outputs["aux_gender"].numpy(), gender(faces).numpy(), atol=1e-6)

    alone = load_trained(tmp_path / "gender.keras", "--init-from", (32, 32, 3), 5, "race", new_head=True)
    assert alone.output_shape == (None, 5)
    np.testing.assert_array_equal(alone.layers[2].get_weights()[0], gender.layers[2].get_weights()[0])
    with pytest.raises(WeightsError, match="already has a gender head"):
        load_trained(tmp_path / "gender.keras", "--init-from", (32, 32, 3), 2, "gender", new_head=True)
    assert member_record(tmp_path / "gender.keras", "race")["train_seconds"] == 1800

    with pytest.raises(SystemExit):
        parse_args(["race", "--new-head"])
    assert "--new-head needs --init-from" in capsys.readouterr().err
