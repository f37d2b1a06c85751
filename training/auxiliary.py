"""Auxiliary heads for multi-task training: `facelens train gender --aux race,age`.

Why: UTKFace labels every face with gender, race and age, but a single-task network only ever sees one of
them. Asking the same trunk to also predict the other labels is a cheap source of extra supervision (the
features that tell a child's age are the ones gender gets wrong on children), and it costs nothing at run
time: the auxiliary heads are dropped when the model is exported, so the shipped file is the single-task
network of the same size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inference.cards import DEFAULT_CLASSES
from inference.errors import DatasetError
from training.data.utk import AGE_BANDS

AUX_CLASSES: dict[str, tuple[str, ...]] = {
    "gender": tuple(DEFAULT_CLASSES["gender"]),
    "race": tuple(DEFAULT_CLASSES["race"]),
    "age": tuple(name for name, _, _ in AGE_BANDS),
}
MAIN_OUTPUT = "probs"  # the classifier layer every architecture ends in


def parse_aux(text: str | None, task: str) -> tuple[str, ...]:
    """`race,age` → ("race", "age"), refusing unknown labels and the task's own label."""
    if not text:
        return ()
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    for name in names:
        if name not in AUX_CLASSES:
            raise DatasetError(f"--aux {name!r}: choose from {', '.join(AUX_CLASSES)}")
        if name == task:
            raise DatasetError(f"--aux {name!r} is the task itself")
    return names


def aux_targets(groups: dict[str, list[str]], names: Sequence[str]) -> dict[str, np.ndarray]:
    """One-hot targets per auxiliary head from a split's per-face group names (UTKFace and its packs only:
    FER2013 carries no such labels, and saying so beats training a head on nothing)."""
    targets = {}
    for name in names:
        if name not in groups:
            raise DatasetError(
                f"--aux {name}: this dataset has no {name} labels (UTKFace folders and their packs have them)"
            )
        index = {label: i for i, label in enumerate(AUX_CLASSES[name])}
        labels = np.array([index[g] for g in groups[name]], dtype=np.int64)
        targets[f"aux_{name}"] = np.eye(len(index), dtype=np.float32)[labels]
    return targets


def with_aux_heads(model, names: Sequence[str]):
    """The model with one softmax head per auxiliary label on the features its classifier reads."""
    import keras
    from keras import layers

    if not names:
        return model
    features = model.get_layer(MAIN_OUTPUT).input
    outputs = {MAIN_OUTPUT: model.output}
    for name in names:
        outputs[f"aux_{name}"] = layers.Dense(len(AUX_CLASSES[name]), activation="softmax", name=f"aux_{name}")(
            features
        )
    return keras.Model(model.input, outputs, name=model.name)


def aux_of(model) -> tuple[str, ...]:
    """The auxiliary labels a (possibly multi-task) model was built with, so a resumed run can be checked."""
    if not isinstance(model.output, dict):
        return ()
    return tuple(sorted(name.removeprefix("aux_") for name in model.output if name != MAIN_OUTPUT))


def main_output_only(model):
    """The single-task network inside a multi-task one (the same layers and weights, no auxiliary heads)."""
    import keras

    if not isinstance(model.output, dict):
        return model
    return keras.Model(model.input, model.get_layer(MAIN_OUTPUT).output, name=model.name)
