"""Knowledge distillation targets for `facelens train --teacher`."""

from __future__ import annotations

import numpy as np
import pytest

from inference.errors import WeightsError
from training.distill import blend_targets, load_teacher, teacher_probabilities


def constant_net(probs: list[float], shape=(48, 48, 1), mirror_sensitive: bool = False):
    """A model whose output is `probs` for every face (or, if `mirror_sensitive`, depends on the left half)."""
    import keras

    inputs = keras.Input(shape)
    if mirror_sensitive:
        left = keras.layers.Cropping2D(((0, 0), (0, shape[1] // 2)))(inputs)
        x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255.0)(left))
        out = keras.layers.Dense(len(probs), activation="softmax", kernel_initializer="ones")(x)
        return keras.Model(inputs, out)
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(len(probs), activation="softmax", kernel_initializer="zeros")
    model = keras.Model(inputs, dense(x))
    dense.set_weights([np.zeros((shape[-1], len(probs)), np.float32), np.log(np.array(probs, np.float32))])
    return model


def test_blend_is_the_weighted_mean_and_stays_a_distribution():
    hard = np.eye(3, dtype=np.float32)[[0, 2]]
    teacher = np.array([[0.5, 0.5, 0.0], [0.2, 0.2, 0.6]], np.float32)
    mixed = blend_targets(hard, teacher, 0.5)
    np.testing.assert_allclose(mixed, [[0.75, 0.25, 0.0], [0.1, 0.1, 0.8]], atol=1e-6)
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0, atol=1e-6)
    with pytest.raises(ValueError):
        blend_targets(hard, teacher, 1.5)


def test_teachers_are_averaged_over_models_and_mirror_images():
    faces = np.zeros((4, 48, 48, 1), np.float32)
    faces[:, :, :24] = 255.0  # bright left half: the mirror image is dark on the left
    first, second = constant_net([0.6, 0.3, 0.1]), constant_net([0.2, 0.3, 0.5])
    np.testing.assert_allclose(teacher_probabilities([first, second], faces), [[0.4, 0.3, 0.3]] * 4, atol=1e-5)
    sided = constant_net([1, 1, 1], mirror_sensitive=True)
    plain, flipped = sided(faces).numpy(), sided(np.ascontiguousarray(faces[:, :, ::-1])).numpy()
    np.testing.assert_allclose(teacher_probabilities([sided], faces), (plain + flipped) / 2, atol=1e-6)
    np.testing.assert_allclose(teacher_probabilities([sided], faces, mirror=False), plain, atol=1e-6)


def test_a_teacher_for_another_task_or_a_missing_file_is_refused(tmp_path):
    constant_net([0.5, 0.5], shape=(64, 64, 3)).save(tmp_path / "gender.keras")
    with pytest.raises(WeightsError, match="this task needs"):
        load_teacher(tmp_path / "gender.keras", (48, 48, 1), 7)
    with pytest.raises(WeightsError, match="no such model file"):
        load_teacher(tmp_path / "absent.keras", (48, 48, 1), 7)


def test_a_teacher_weight_outside_0_to_1_is_a_usage_error(capsys):
    from training.train import parse_args

    with pytest.raises(SystemExit) as exit_info:
        parse_args(["emotion", "--teacher-weight", "1.5"])
    assert exit_info.value.code == 2 and "--teacher-weight must be within 0..1" in capsys.readouterr().err
