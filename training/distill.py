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

CHUNK = 512


def load_teacher(path: Path, input_shape: tuple[int, ...], n_classes: int, task: str = ""):
    from training.trained import load_trained

    return load_trained(path, "--teacher", input_shape, n_classes, task)


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
