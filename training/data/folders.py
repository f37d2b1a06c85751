"""Class-per-folder image sets (`<root>/<split>/<class>/*.jpg|png` or `<root>/<class>/*`), the layout the seed
projects and most Kaggle exports use.

Each image is taken to be a face crop, like a FER2013 image: the whole image stands for the detector box and is
prepared by the same function as FER2013 faces, so a folder export of FER2013 scores like the CSV.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from inference.errors import DatasetError
from inference.preprocess import InputSpec
from training.task_data import prepare_fer_faces

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# Folder names of the usual splits, normalised (see `_norm`) → FaceLens split name.
SPLIT_FOLDERS = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "publictest": "val",
    "test": "test",
    "testing": "test",
    "privatetest": "test",
}
# Other spellings of class names seen in public exports, normalised → normalised card class name.
CLASS_ALIASES = {
    "anger": "angry",
    "happiness": "happy",
    "sadness": "sad",
    "surprised": "surprise",
    "fearful": "fear",
    "disgusted": "disgust",
    "man": "male",
    "men": "male",
    "males": "male",
    "woman": "female",
    "women": "female",
    "females": "female",
    "other": "others",
}


def _norm(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def match_class(folder_name: str, classes: Sequence[str]) -> str | None:
    """The card class a folder name stands for (case-insensitive, common spellings), or None."""
    by_norm = {_norm(c): c for c in classes}
    key = _norm(folder_name)
    return by_norm.get(key) or by_norm.get(CLASS_ALIASES.get(key, ""))


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def split_folders(root: Path) -> dict[str, Path]:
    """FaceLens split name → folder, for roots laid out as `<root>/<split>/<class>/`; empty otherwise."""
    found: dict[str, Path] = {}
    for folder in _subfolders(root):
        split = SPLIT_FOLDERS.get(_norm(folder.name))
        if split is not None and split not in found:
            found[split] = folder
    return found


def resolve_folders_split(root: Path, split: str | None) -> tuple[str, list[Path]]:
    """(split name, folders holding class folders). Default: `test` if the root has one, else everything."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: image folder not found")
    splits = split_folders(root)
    if split is None:
        split = "test" if "test" in splits else "all"
    wanted = _norm(split)
    if wanted == "all":
        return "all", list(splits.values()) or [root]
    name = SPLIT_FOLDERS.get(wanted)
    if not splits:
        raise DatasetError(f"{root}: has no split folders (train/val/test), only class folders; use --split all")
    if name not in splits:
        raise DatasetError(f"{root}: no {split!r} split folder; found {', '.join(sorted(splits))} (or use all)")
    return name, [splits[name]]


def scan_class_folders(folder: Path, classes: Sequence[str]) -> list[tuple[Path, str]]:
    """(image path, card class) for every image in `folder`'s class subfolders; unknown folders are an error
    rather than silently ignored, since a misspelt class would quietly shrink the evaluation."""
    items: list[tuple[Path, str]] = []
    subfolders = _subfolders(folder)
    if not subfolders:
        raise DatasetError(f"{folder}: no class folders (expected one folder per class: {', '.join(classes)})")
    for sub in subfolders:
        label = match_class(sub.name, classes)
        if label is None:
            raise DatasetError(
                f"{sub}: folder name {sub.name!r} is not a class; expected one of "
                f"{', '.join(classes)} (case-insensitive)"
            )
        items.extend((p, label) for p in sorted(sub.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES)
    if not items:
        raise DatasetError(f"{folder}: no images ({'/'.join(IMAGE_SUFFIXES)}) in its class folders")
    return items


@dataclass(frozen=True)
class FolderData:
    images: np.ndarray  # (n, size, size, c) uint8, prepared
    labels: np.ndarray  # card class names
    files: np.ndarray
    split: str


def load_folders(root: Path, split: str | None, classes: Sequence[str], spec: InputSpec) -> FolderData:
    """Every image of the chosen split, prepared for `spec` as a whole-image face crop."""
    split_name, folders = resolve_folders_split(root, split)
    items = [item for folder in folders for item in scan_class_folders(folder, classes)]
    raw: list[np.ndarray] = []
    for path, _ in items:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetError(f"{path}: unreadable image")
        raw.append(image)
    images = np.empty((len(items), *spec.shape), dtype=np.uint8)
    by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, image in enumerate(raw):
        by_shape[image.shape].append(i)
    for indices in by_shape.values():  # one call per image size: prepare_fer_faces takes equal-sized stacks
        images[indices] = prepare_fer_faces(np.stack([raw[i] for i in indices]), spec)
    return FolderData(images, np.array([label for _, label in items]), np.array([str(p) for p, _ in items]), split_name)
