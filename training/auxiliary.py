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
from inference.errors import DatasetError, WeightsError
from training.data.utk import AGE_BANDS

AUX_CLASSES: dict[str, tuple[str, ...]] = {
    "gender": tuple(DEFAULT_CLASSES["gender"]),
    "race": tuple(DEFAULT_CLASSES["race"]),
    "age": tuple(name for name, _, _ in AGE_BANDS),
}
ALL_CLASSES = {**DEFAULT_CLASSES, **AUX_CLASSES}  # every label a head can predict: tasks and age
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


def aux_targets(groups: dict[str, list[str]], names: Sequence[str], unlabelled: int = 0) -> dict[str, np.ndarray]:
    """One-hot targets per auxiliary head from a split's per-face group names (UTKFace and its packs only:
    FER2013 carries no such labels, and saying so beats training a head on nothing), then all-zero rows for
    `unlabelled` faces after them (`--extra-faces`): cross-entropy against a zero target is zero, so those faces
    train the main head and leave the auxiliary ones alone."""
    targets = {}
    for name in names:
        if name not in groups:
            raise DatasetError(
                f"--aux {name}: this dataset has no {name} labels (UTKFace folders and their packs have them)"
            )
        index = {label: i for i, label in enumerate(AUX_CLASSES[name])}
        labels = np.array([index[g] for g in groups[name]], dtype=np.int64)
        onehot = np.eye(len(index), dtype=np.float32)[labels]
        targets[f"aux_{name}"] = np.concatenate([onehot, np.zeros((unlabelled, len(index)), np.float32)])
    return targets


def head_labels(model) -> dict[str, str]:
    """Output name -> the label that head predicts. A multi-task model's main head predicts the one label
    whose class count it has and that is not already an auxiliary head (gender 2, race 5, age 6, emotion 7:
    the counts differ, so the answer is unique); a plain model's is {"probs": ""} (its task, unnamed)."""
    if not isinstance(model.output, dict):
        return {MAIN_OUTPUT: ""}
    aux = aux_of(model)
    main = label_by_count(int(model.get_layer(MAIN_OUTPUT).output.shape[-1]))
    return {MAIN_OUTPUT: main if main not in aux else "", **{f"aux_{name}": name for name in aux}}


def label_by_count(units: int) -> str:
    """The label a head with `units` classes predicts ("" if none has that many)."""
    return {len(classes): label for label, classes in ALL_CLASSES.items()}.get(units, "")


def with_heads(model, task: str, names: Sequence[str], new_head: bool = False):
    """The model with `task` as its main head and one softmax head per label in `names`, all reading the
    features its classifier reads. A head the model already has for a label keeps its trained weights,
    wherever it sat: so a multi-task trunk trained for gender with a race head can start a race run with
    the race head as its main output and gender as an auxiliary one. With `new_head`, a network trained for
    another task (named by its class count) lends its trunk: the `task` head starts from random weights,
    and its own head serves as an auxiliary one if `names` asks for it.

    Why: a gender network trained with race and age as auxiliary labels already predicts race nearly as well
    as a race network; fine-tuning it with race as the main loss starts from there instead of from random
    weights, hours of CPU training saved (README, Models: the shipped race pair's wide network)."""
    import keras
    from keras import layers

    labels = head_labels(model)
    if new_head:
        labels = {
            output: label or label_by_count(int(model.get_layer(output).output.shape[-1]))
            for output, label in labels.items()
        }
        if task in labels.values():
            raise WeightsError(f"the model already has a {task} head: fine-tune it without --new-head")
    elif not names and labels == {MAIN_OUTPUT: ""}:
        return model
    trained = {label or task: model.get_layer(output) for output, label in labels.items()}
    if task not in trained and not new_head:
        have = ", ".join(label for label in labels.values() if label) or "none named"
        raise WeightsError(f"the model has no {task} head (its heads: {have})")
    features = model.get_layer(MAIN_OUTPUT).input
    outputs = {}
    for output, label in [(MAIN_OUTPUT, task), *((f"aux_{name}", name) for name in names)]:
        parent = trained.get(label)
        if parent is None:
            head = layers.Dense(len(ALL_CLASSES[label]), activation="softmax", name=output)
        else:
            head = layers.Dense.from_config({**parent.get_config(), "name": output})
        outputs[output] = head(features)
        if parent is not None:
            head.set_weights(parent.get_weights())
    if not names:
        return keras.Model(model.input, outputs[MAIN_OUTPUT], name=model.name)
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
