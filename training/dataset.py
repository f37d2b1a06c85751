"""Batches for Keras fit(): shuffled each epoch, augmented on the fly, with soft targets and sample weights.

Each epoch's order comes from a generator keyed by (seed, epoch), and each batch's augmentations from one keyed
by (seed, epoch, batch). So a batch does not depend on which batches Keras fetched before it, and a run resumed
at epoch k sees exactly what an uninterrupted run would have seen. Before, a resume replayed epoch 1's images:
the network met the same augmented faces again, and its training loss dropped at each resume while validation
did not move."""

from __future__ import annotations

import math

import keras
import numpy as np

from training.augment import AugmentConfig, augment_batch, mix_batch


class FaceBatches(keras.utils.PyDataset):
    """Faces (n, h, w, c) uint8 with targets (n, k) probabilities — or a dict of them, one per model output —
    and per-sample weights (n,)."""

    def __init__(
        self,
        images: np.ndarray,
        targets: np.ndarray | dict[str, np.ndarray],
        weights: np.ndarray | None = None,
        batch_size: int = 128,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        first_epoch: int = 0,
        cutmix: float = 0.0,
        mixup: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.single_output = not isinstance(targets, dict)  # a plain array for a one-output model
        named = {"targets": targets} if self.single_output else targets
        for name, values in named.items():
            if len(values) != len(images):
                raise ValueError(f"{len(images)} images but {len(values)} {name}")
        self.images = images
        self.targets = {name: values.astype(np.float32) for name, values in named.items()}
        self.weights = None if weights is None else weights.astype(np.float32)
        self.batch_size, self.augment = batch_size, augment
        self.seed, self.cutmix, self.mixup = seed, cutmix, mixup
        self.order = np.arange(len(images))
        self.begin_epoch(first_epoch)

    def begin_epoch(self, epoch: int) -> None:
        """Fixes this epoch's face order from (seed, epoch) alone."""
        self.epoch = epoch
        if self.augment is not None:
            self.order = np.random.default_rng((self.seed, epoch)).permutation(len(self.images))

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index: int):
        idx = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        faces = self.images[idx]
        y = {name: values[idx] for name, values in self.targets.items()}
        w = None if self.weights is None else self.weights[idx]
        if self.augment is None:
            x = faces.astype(np.float32)
        else:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            x = augment_batch(faces, rng, self.augment)
            if self.cutmix > 0 or self.mixup > 0:
                x, y, w = mix_batch(x, y, w, rng, self.cutmix, self.mixup)
        y = y["targets"] if self.single_output else y
        return (x, y) if w is None else (x, y, w)

    def on_epoch_end(self) -> None:
        self.begin_epoch(self.epoch + 1)
