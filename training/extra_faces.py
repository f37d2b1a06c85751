"""Unlabelled faces labelled by teachers, for `facelens train gender|race --extra-faces FER2013 --teacher ...`.

Why: gender and race level off on UTKFace's ~19,000 training faces whatever the network (README, Models),
and the only other faces in `../shared` are FER2013's, which carry emotion labels, not gender or race. The
shipped models' mean (the teacher) labels them instead, with soft probabilities that say how sure it is, and a
student network learns from UTKFace's labelled faces and these together ("noisy student" self-training): more
faces of more kinds than UTKFace alone, at no cost at run time.

Only FER2013's Training faces are used, so its PublicTest and PrivateTest faces stay unseen by every FaceLens
model, and faces whose FER+ majority vote says "not a face" are dropped. FER2013 is 48x48 grey: its faces are
prepared with the same `prepare_faces` as any other crop, so an RGB model sees them as grey RGB faces, the way
it would see a grey camera frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inference.errors import DatasetError
from inference.preprocess import InputSpec
from training.data.fer import FERPLUS_COLUMNS, FERPLUS_OTHER, load_fer2013
from training.task_data import SplitData, prepare_fer_faces

NOT_A_FACE = len(FERPLUS_COLUMNS) + FERPLUS_OTHER.index("NF")  # the FER+ vote column for "not a face"


def unlabelled_fer_faces(path: Path, spec: InputSpec, limit: int = 0, seed: int = 0) -> np.ndarray:
    """FER2013's Training faces prepared for `spec`, less those whose FER+ majority vote is "not a face";
    with `limit`, a seeded sample of that many (smoke runs)."""
    part = load_fer2013(path).split("Training")
    keep = np.ones(len(part.labels), bool)
    if part.ferplus_votes is not None:
        votes = part.ferplus_votes
        keep = votes.argmax(axis=1) != NOT_A_FACE
    index = np.flatnonzero(keep)
    if limit:
        index = np.sort(np.random.default_rng(seed).choice(index, min(limit, len(index)), replace=False))
    if len(index) == 0:
        raise DatasetError(f"{path}: no FER2013 Training faces to use as extra faces")
    return prepare_fer_faces(part.images[index], spec)


def with_extra_faces(
    train: SplitData, weights: np.ndarray, faces: np.ndarray, probabilities: np.ndarray
) -> tuple[SplitData, np.ndarray]:
    """The training split with `faces` appended, each targeting the teachers' `probabilities` at weight 1
    (the labelled faces' mean weight, since balancing weights have mean 1). Their race and age are unknown, so
    the split's group names keep covering only the labelled faces (auxiliary heads get zero targets for the
    rest, `training.auxiliary.aux_targets`)."""
    if len(faces) != len(probabilities):
        raise ValueError(f"{len(faces)} extra faces but {len(probabilities)} teacher probabilities")
    train.images = np.concatenate([train.images, faces.astype(train.images.dtype)])
    train.labels = np.concatenate([train.labels, probabilities.argmax(axis=1)])
    train.soft_targets = np.concatenate([train.soft_targets, probabilities.astype(np.float32)])
    train.extra += len(faces)
    return train, np.concatenate([weights, np.ones(len(faces), np.float32)])
