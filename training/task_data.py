"""Labelled, prepared faces per task and split — the one place train and eval get their data from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inference.cards import DEFAULT_CLASSES
from inference.preprocess import InputSpec, crop_face, prepare_faces
from inference.types import FaceBox
from training.data.fer import FerData
from training.data.utk import age_band, load_utkface
from training.splits import load_split, save_split, stratified_split

UTK_SPLIT_SEED = 1234


@dataclass
class SplitData:
    """Prepared faces (n, size, size, c) uint8, integer labels in card order, optional soft targets and
    per-face group names (for per-group accuracy). The last `extra` faces carry no label of their own: their
    targets and labels are teachers', and the group names cover only the faces before them
    (`training.extra_faces`)."""

    images: np.ndarray
    labels: np.ndarray
    soft_targets: np.ndarray | None = None
    groups: dict[str, list[str]] = field(default_factory=dict)
    extra: int = 0


def joined(first: SplitData, second: SplitData) -> SplitData:
    """Both sets of labelled faces as one (a final refit's training faces: train + val). Soft targets are kept
    where either has them (one-hot labels stand in for the other's), group names where both have them."""
    if first.extra or second.extra:
        raise ValueError("join labelled faces before adding unlabelled extra faces")
    soft = None
    if first.soft_targets is not None or second.soft_targets is not None:
        n_classes = next(s.shape[1] for s in (first.soft_targets, second.soft_targets) if s is not None)
        soft = np.concatenate(
            [
                part.soft_targets if part.soft_targets is not None else np.eye(n_classes, dtype=np.float32)[part.labels]
                for part in (first, second)
            ]
        ).astype(np.float32)
    groups = {name: [*first.groups[name], *second.groups[name]] for name in first.groups if name in second.groups}
    return SplitData(
        np.concatenate([first.images, second.images]), np.concatenate([first.labels, second.labels]), soft, groups
    )


def prepare_fer_faces(images: np.ndarray, spec: InputSpec) -> np.ndarray:
    """FER2013 faces are already ~one Haar box wide: crop the whole image as if it were the detector box and
    prepare it with the same function the app uses."""
    height, width = images.shape[1:3]
    box = FaceBox(0, 0, width, height)
    return prepare_faces([crop_face(im, box, spec.margin) for im in images], spec).astype(np.uint8)


def fer_split(
    data: FerData, split: str, spec: InputSpec, ferplus_weight: float = 0.0, use_ferplus_labels: bool = False
) -> SplitData:
    part = data.split(split)
    images = prepare_fer_faces(part.images, spec)
    labels = part.labels
    if use_ferplus_labels:
        majority = part.ferplus_majority()
        keep = majority >= 0
        return SplitData(images[keep], majority[keep])
    soft = None
    if ferplus_weight > 0 and part.ferplus_votes is not None:
        onehot = np.eye(len(DEFAULT_CLASSES["emotion"]), dtype=np.float32)[labels]
        plus = part.ferplus_distribution()
        has_votes = plus.sum(axis=1, keepdims=True) > 0
        soft = np.where(has_votes, (1 - ferplus_weight) * onehot + ferplus_weight * plus, onehot)
    return SplitData(images, labels, soft)


def utk_strata(data) -> list[str]:
    return [f"{g}|{r}|{age_band(int(a))}" for g, r, a in zip(data.gender, data.race, data.age, strict=True)]


def utk_splits(path: Path, spec: InputSpec, task: str, split_file: Path) -> dict[str, SplitData]:
    """UTKFace prepared for `spec`, split by the saved split file (created, seeded and stratified by
    gender × race × age band, on first use)."""
    data = load_utkface(path, spec)
    if Path(split_file).is_file():
        index = load_split(split_file, list(data.files))
    else:
        index = stratified_split(utk_strata(data), fractions=(0.1, 0.1), seed=UTK_SPLIT_SEED)
        save_split(
            split_file,
            list(data.files),
            index,
            {
                "dataset": "UTKFace",
                "seed": UTK_SPLIT_SEED,
                "fractions": {"val": 0.1, "test": 0.1},
                "stratified_by": "gender x race x age band",
                "n_total": len(data.files),
            },
        )
    out = {}
    for name, idx in index.items():
        mask = np.zeros(len(data.files), bool)
        mask[idx] = True
        part = data.subset(mask)
        out[name] = SplitData(part.images, part.labels(task), None, part.groups())
    return out
