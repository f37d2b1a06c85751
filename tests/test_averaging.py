"""Weight averaging (`--average-from`): the running mean survives restarts without counting an epoch twice, and
batch-norm statistics are re-measured as a plain mean over batches."""

from __future__ import annotations

import numpy as np
import pytest

from training.averaging import WeightAverage, measure_batch_norm


def test_the_running_mean_is_the_mean_of_the_epochs_and_resumes_from_its_file(tmp_path):
    path = tmp_path / "average.npz"
    epochs = [[np.full((2, 3), v, np.float32), np.array([v * 10], np.float32)] for v in (1.0, 2.0, 6.0)]
    average = WeightAverage(path)
    average.add(epochs[0], 4)
    average.add(epochs[1], 5)
    average.add(epochs[1], 5)  # a resume repeating epoch 5 does not count it twice
    reopened = WeightAverage(path)
    assert (reopened.count, reopened.first_epoch, reopened.last_epoch) == (2, 4, 5)
    reopened.add(epochs[2], 6)
    np.testing.assert_allclose(WeightAverage(path).weights[0], np.full((2, 3), 3.0))
    np.testing.assert_allclose(WeightAverage(path).weights[1], [30.0])
    with pytest.raises(ValueError, match="another network"):
        reopened.add([np.zeros((4,), np.float32)], 7)


def test_batch_norm_statistics_become_the_plain_mean_over_batches():
    import keras

    inputs = keras.Input((3,))
    norm = keras.layers.BatchNormalization(momentum=0.99)
    model = keras.Model(inputs, keras.layers.Dense(2)(norm(inputs)))
    # Two batches of 4: per-batch means 1 and 5 (mean 3); per-batch variances 0 and 4 (mean 2).
    images = np.concatenate([np.ones((4, 3)), np.tile([[3.0], [7.0], [3.0], [7.0]], (1, 3))]).astype(np.float32)
    order = np.random.default_rng(0).permutation(8)
    images_in_measured_order = np.empty_like(images)
    images_in_measured_order[order] = images  # measure_batch_norm shuffles with seed 0; undo it
    measure_batch_norm(model, images_in_measured_order, batch_size=4)
    np.testing.assert_allclose(norm.moving_mean.numpy(), [3.0] * 3, rtol=1e-5)
    np.testing.assert_allclose(norm.moving_variance.numpy(), [2.0] * 3, rtol=1e-5)
    assert norm.momentum == 0.99  # the layer's own momentum is put back


def test_an_ensemble_card_names_the_epochs_an_averaged_member_comes_from():
    from training.ensemble import chosen_epoch

    averaged = {"best_epoch": 11, "weight_average": {"first_epoch": 2, "last_epoch": 13, "exported": True}}
    assert chosen_epoch(averaged) == "mean of 2-13"
    assert chosen_epoch({**averaged, "weight_average": {**averaged["weight_average"], "exported": False}}) == "11"
