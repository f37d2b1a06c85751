"""Every registered architecture must build, predict a distribution and survive a safe_mode round trip,
because `facelens train --arch NAME` ships whatever it builds."""

import keras
import numpy as np
import pytest

from training.architectures import ARCHITECTURES


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_architecture_builds_predicts_and_loads_in_safe_mode(name, tmp_path):
    model = ARCHITECTURES[name]((32, 32, 3), 5)
    faces = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype(np.float32)
    probs = np.asarray(model(faces, training=False))
    assert probs.shape == (2, 5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    np.testing.assert_allclose(np.asarray(loaded(faces, training=False)), probs, rtol=1e-4, atol=1e-6)


def test_the_wide_variant_is_wider_than_the_shipped_rgb_network():
    shipped = ARCHITECTURES["facelens_rgb"]((64, 64, 3), 2).count_params()
    wide = ARCHITECTURES["facelens_rgb_wide"]((64, 64, 3), 2).count_params()
    assert wide > 1.5 * shipped


def test_the_deep_variant_costs_what_the_wide_one_costs_with_more_layers():
    from training.cost import count_flops

    def convs(model):
        return sum(isinstance(layer, keras.layers.Conv2D) for layer in model.layers)

    wide = ARCHITECTURES["facelens_rgb_wide"]((64, 64, 3), 2)
    deep = ARCHITECTURES["facelens_rgb_deep"]((64, 64, 3), 2)
    assert convs(deep) == convs(wide) + 4
    assert abs(count_flops(deep) / count_flops(wide) - 1.0) < 0.05
