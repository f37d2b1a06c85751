"""Soft targets from trained "teacher" models (knowledge distillation) for `facelens train --teacher`.

Why: a mean of several networks (and of each face with its mirror image) is more accurate than any one of
them but costs several forward passes per face at run time. Training one network towards the teachers'
class probabilities carries part of that accuracy into a single pass, and the probabilities also say which
wrong classes are plausible (a FER2013 "fear" face that looks half "surprise"), which hard labels cannot.
Teachers are run once, on the un-augmented training faces, before training starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from inference.errors import WeightsError

CHUNK = 512


def load_trained(path: Path, option: str, input_shape: tuple[int, ...], n_classes: int):
    """A trained model named on the command line (`option` is the flag, for the message), as a Keras model,
    after checking it takes this task's faces and predicts its classes. Used for --teacher and --init-from."""
    import keras

    if not Path(path).is_file():
        raise WeightsError(f"{option} {path}: no such model file")
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - any load failure means unusable weights
        raise WeightsError(f"{option} {path}: cannot load ({type(exc).__name__}: {exc})") from exc
    if tuple(model.input_shape[1:]) != tuple(input_shape) or model.output_shape[-1] != n_classes:
        raise WeightsError(
            f"{option} {path}: takes {model.input_shape[1:]} -> {model.output_shape[-1]} classes, "
            f"this task needs {tuple(input_shape)} -> {n_classes}"
        )
    return model


def load_teacher(path: Path, input_shape: tuple[int, ...], n_classes: int):
    return load_trained(path, "--teacher", input_shape, n_classes)


def teacher_probabilities(teachers: Sequence, images: np.ndarray, mirror: bool = True) -> np.ndarray:
    """Mean class probabilities of all teachers (and, with `mirror`, of each face's mirror image), computed by
    the same averaging model `python -m training.ensemble` ships."""
    from training.ensemble import build_ensemble

    for index, model in enumerate(teachers):
        model.name = f"teacher{index}_{model.name}"  # unique layer names inside the averaging model
    teacher = build_ensemble(list(teachers), "teachers", mirror) if mirror or len(teachers) > 1 else teachers[0]
    chunks = [teacher(images[i : i + CHUNK].astype(np.float32), training=False) for i in range(0, len(images), CHUNK)]
    return np.concatenate([np.asarray(chunk) for chunk in chunks]).astype(np.float32)


def blend_targets(targets: np.ndarray, teacher: np.ndarray, weight: float) -> np.ndarray:
    """(1 - weight) x the dataset's targets + weight x the teachers' probabilities, row-normalised."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"teacher weight must be within 0..1, got {weight}")
    mixed = (1.0 - weight) * targets + weight * teacher
    return (mixed / mixed.sum(axis=1, keepdims=True)).astype(np.float32)
