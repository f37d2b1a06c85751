"""Weight averaging over the last epochs of a run (`facelens train ... --average-from N`).

Why: late in training, validation accuracy swings by up to a few points from one epoch to the next (the
optimizer keeps moving around a wide minimum), so the single best epoch is partly luck. The mean of the
weights of those epochs sits nearer the middle of that minimum and generalises better (stochastic weight
averaging, Izmailov et al. 2018), at no cost at run time: the result is one network of the same size.
Batch-norm statistics do not average (they belong to the weights that produced them), so they are measured
again on training faces for the averaged weights.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class WeightAverage:
    """The running mean of a model's weights, kept in a file so that `--resume` continues it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self.first_epoch = self.last_epoch = 0
        self.weights: list[np.ndarray] = []
        if path.is_file():
            with np.load(path) as saved:
                self.count, self.first_epoch, self.last_epoch = (int(saved[k]) for k in ("count", "first", "last"))
                self.weights = [saved[f"w{i}"] for i in range(len(saved.files) - 3)]

    def add(self, weights: list[np.ndarray], epoch: int) -> None:
        """Folds epoch `epoch`'s weights into the mean and saves it atomically, so a run killed at any point
        keeps a whole mean; an epoch already in the mean (a resume that repeats it) is not counted twice."""
        if epoch <= self.last_epoch:
            return
        if self.weights and [w.shape for w in self.weights] != [w.shape for w in weights]:
            raise ValueError(f"{self.path}: averaged weights belong to another network")
        self.count += 1
        self.first_epoch, self.last_epoch = self.first_epoch or epoch, epoch
        if not self.weights:
            self.weights = [np.array(w, dtype=np.float64) for w in weights]
        else:
            for mean, w in zip(self.weights, weights, strict=True):
                mean += (w - mean) / self.count
        tmp = self.path.with_name(f".{self.path.name}.tmp.npz")
        arrays = {f"w{i}": w for i, w in enumerate(self.weights)}
        np.savez(tmp, count=self.count, first=self.first_epoch, last=self.last_epoch, **arrays)
        os.replace(tmp, self.path)

    def apply_to(self, model) -> None:
        """Puts the mean into `model` (its batch-norm statistics still need `measure_batch_norm`)."""
        model.set_weights([mean.astype(w.dtype) for mean, w in zip(self.weights, model.get_weights(), strict=True)])


def batch_norm_layers(layer) -> list:
    """Every BatchNormalization layer inside `layer`, nested models included."""
    import keras

    if isinstance(layer, keras.layers.BatchNormalization):
        return [layer]
    return [bn for inner in getattr(layer, "layers", []) for bn in batch_norm_layers(inner)]


def measure_batch_norm(model, images: np.ndarray, batch_size: int = 128, max_batches: int = 80) -> None:
    """Sets every batch-norm layer's moving mean and variance to their plain average over `images`.

    Why the momentum trick: a batch-norm layer updates `moving = moving * m + batch * (1 - m)` when run in
    training mode; with m = i / (i + 1) for the i-th batch (from 0) that is the exact mean over batches,
    with no bias towards the last ones and no reliance on the layer's own momentum."""
    layers = batch_norm_layers(model)
    if not layers:
        return
    saved = [layer.momentum for layer in layers]
    order = np.random.default_rng(0).permutation(len(images))
    starts = range(0, len(images), batch_size)[:max_batches]
    try:
        for i, start in enumerate(starts):
            for layer in layers:
                layer.momentum = i / (i + 1)
            model(images[order[start : start + batch_size]].astype(np.float32), training=True)
    finally:
        for layer, momentum in zip(layers, saved, strict=True):
            layer.momentum = momentum
