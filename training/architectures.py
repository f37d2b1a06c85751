"""Model builders: pure functions `(input_shape, num_classes, ...) -> keras.Model`.

Every model starts with Rescaling(1/255) so it takes the 0..255 faces that `inference.preprocess` produces,
and uses only stock layers so the saved `.keras` file loads with `safe_mode=True`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
from keras import layers, regularizers


def _conv_bn_relu(x, filters: int, strides: int = 1, weight_decay: float = 1e-4):
    x = layers.Conv2D(
        filters, 3, strides=strides, padding="same", use_bias=False, kernel_regularizer=regularizers.l2(weight_decay)
    )(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def facelens_cnn(
    input_shape: Sequence[int],
    num_classes: int,
    widths: Sequence[int] = (32, 64, 128, 256),
    convs_per_stage: int = 2,
    stem_stride: int = 1,
    dropout: float = 0.4,
    name: str = "facelens_cnn",
) -> keras.Model:
    """A VGG-style stack of 3x3 Conv-BN-ReLU stages ending in global average pooling.

    Chosen for accuracy per millisecond on a CPU: plain 3x3 convolutions run near peak in oneDNN (depthwise
    ones do not), and global pooling instead of a wide dense layer keeps parameters ~50x below the seed
    projects' 19.7 M. `stem_stride=2` halves the resolution at once for larger colour inputs.
    """
    inputs = keras.Input(tuple(input_shape), name="face")
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    for stage, width in enumerate(widths):
        for conv in range(convs_per_stage):
            strides = stem_stride if stage == 0 and conv == 0 else 1
            x = _conv_bn_relu(x, width, strides)
        if stage < len(widths) - 1:
            x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name=name)


def seed_finalized_cnn(input_shape: Sequence[int], num_classes: int) -> keras.Model:
    """The seed projects' "finalized" CNN (19.7 M parameters at 48x48), kept as a reference row."""
    inputs = keras.Input(tuple(input_shape), name="face")
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    x = layers.Conv2D(32, 5, padding="same", activation="relu")(x)
    x = layers.Conv2D(64, 5, padding="same", activation="relu")(x)
    x = layers.BatchNormalization()(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(128, 3, padding="same", activation="relu")(x)
    x = layers.Dropout(0.1)(x)
    x = layers.BatchNormalization()(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    for units in (1024, 512, 256):
        x = layers.Dense(units, activation="relu", kernel_regularizer=regularizers.l2(1e-4))(x)
        x = layers.BatchNormalization()(x)
        x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="seed_finalized_cnn")


ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {
    "facelens_cnn": facelens_cnn,
    "facelens_small": lambda shape, n: facelens_cnn(shape, n, widths=(24, 48, 96, 192), name="facelens_small"),
    "facelens_tiny": lambda shape, n: facelens_cnn(shape, n, widths=(16, 32, 64, 128), name="facelens_tiny"),
    "facelens_rgb": lambda shape, n: facelens_cnn(
        shape, n, widths=(24, 48, 96, 192), stem_stride=2, name="facelens_rgb"
    ),
    "facelens_rgb_wide": lambda shape, n: facelens_cnn(
        shape, n, widths=(32, 64, 128, 256), stem_stride=2, name="facelens_rgb_wide"
    ),
    "facelens_rgb_xl": lambda shape, n: facelens_cnn(
        shape, n, widths=(48, 96, 192, 384), stem_stride=2, name="facelens_rgb_xl"
    ),
    # Depth instead of width at the wide network's cost (102 vs 106 MFLOPs at 64 px): the XL run showed that
    # more width only fits the training faces better; this asks whether a third conv per stage generalises.
    "facelens_rgb_deep": lambda shape, n: facelens_cnn(
        shape, n, widths=(24, 48, 96, 192), convs_per_stage=3, stem_stride=2, name="facelens_rgb_deep"
    ),
    "seed_finalized": seed_finalized_cnn,
}
