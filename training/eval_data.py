"""The labelled faces `facelens eval` scores: one adapter per dataset, all returning label *names* so scoring maps
them onto whatever class order the model's card declares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.cards import DEFAULT_CLASSES, TASKS, default_weights_dir
from inference.errors import DatasetError
from inference.preprocess import InputSpec
from training.splits import UTK_SPLIT_FILE

DATASETS: tuple[str, ...] = ("fer2013", "ferplus", "utkface", "fairface", "folders")
DATASET_TASKS: dict[str, tuple[str, ...]] = {
    "fer2013": ("emotion",),
    "ferplus": ("emotion",),
    "utkface": ("gender", "race"),
    "fairface": ("gender", "race"),
    "folders": TASKS,
}
# None: the folder layout decides (test if present, else everything).
DEFAULT_SPLITS: dict[str, str | None] = {
    "fer2013": "PrivateTest",
    "ferplus": "PrivateTest",
    "utkface": "test",
    "fairface": "val",
    "folders": None,
}
UTK_SPLITS = ("train", "val", "test", "all")


@dataclass
class EvalSet:
    """Prepared faces (n, size, size, c) uint8 with their true label names, the split they came from,
    optional per-face groups (gender/race/age) and how many faces the dataset's rules skipped."""

    images: np.ndarray
    labels: np.ndarray
    split: str
    groups: dict[str, list[str]] | None = None
    skipped: int = 0


def utk_split_file(weights_dir: Path | None) -> Path:
    """The split saved beside the weights being evaluated, else the one shipped with FaceLens."""
    candidates = [Path(weights_dir) / UTK_SPLIT_FILE] if weights_dir else []
    candidates.append(default_weights_dir() / UTK_SPLIT_FILE)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return candidates[0]


def _fer(dataset: str, path: Path, split: str, spec: InputSpec) -> EvalSet:
    from training.data.fer import FER_CLASSES, load_fer2013, resolve_split
    from training.task_data import fer_split

    usage = resolve_split(split)
    data = load_fer2013(path, ferplus=dataset == "ferplus")
    part = fer_split(data, usage, spec, use_ferplus_labels=dataset == "ferplus")
    skipped = int((data.usage == usage).sum()) - len(part.labels)
    return EvalSet(part.images, np.array(FER_CLASSES)[part.labels], usage, None, skipped)


def _utkface(task: str, path: Path, split: str, spec: InputSpec, split_file: Path) -> EvalSet:
    from training.data.utk import load_utkface
    from training.task_data import utk_splits

    split = split.lower()
    if split not in UTK_SPLITS:
        raise DatasetError(f"unknown UTKFace split {split!r}; use one of {', '.join(UTK_SPLITS)}")
    names = np.array(DEFAULT_CLASSES[task])
    if split == "all":
        data = load_utkface(path, spec)
        return EvalSet(data.images, names[data.labels(task)], split, data.groups())
    if not Path(split_file).is_file():
        # utk_splits would draw a new split here, whose test faces may well have been trained on.
        raise DatasetError(
            f"{split_file}: UTKFace split file not found; `facelens train gender|race` writes it "
            f"beside the weights (or pass --split-file)"
        )
    part = utk_splits(path, spec, task, split_file)[split]
    if len(part.labels) == 0:
        raise DatasetError(f"{split_file}: none of its {split} faces are in {path}")
    return EvalSet(part.images, names[part.labels], split, part.groups)


def _fairface(task: str, path: Path, split: str, spec: InputSpec) -> EvalSet:
    from training.data.fairface import load_fairface, resolve_fairface_split

    split = resolve_fairface_split(split)
    data = load_fairface(path, split, spec)
    return EvalSet(data.images, data.labels(task), split, data.groups())


def _folders(path: Path, split: str | None, classes: tuple[str, ...], spec: InputSpec) -> EvalSet:
    from training.data.folders import load_folders

    data = load_folders(path, split, classes, spec)
    return EvalSet(data.images, data.labels, data.split)


def load_eval_set(
    dataset: str,
    task: str,
    path: Path,
    split: str | None,
    spec: InputSpec,
    classes: tuple[str, ...],
    split_file: Path | None = None,
) -> EvalSet:
    """Faces of `dataset`'s `split` (None: the dataset's default) prepared for `spec`."""
    if dataset not in DATASETS:
        raise DatasetError(f"unknown dataset {dataset!r}; use one of {', '.join(DATASETS)}")
    if task not in DATASET_TASKS[dataset]:
        raise DatasetError(f"{dataset} has no {task} labels; it can evaluate {', '.join(DATASET_TASKS[dataset])}")
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: not found")
    split = split or DEFAULT_SPLITS[dataset]
    if dataset in ("fer2013", "ferplus"):
        result = _fer(dataset, path, split, spec)
    elif dataset == "utkface":
        result = _utkface(task, path, split, spec, split_file or utk_split_file(None))
    elif dataset == "fairface":
        result = _fairface(task, path, split, spec)
    else:
        result = _folders(path, split, classes, spec)
    if len(result.labels) == 0:
        raise DatasetError(f"{path}: no faces to evaluate in split {result.split!r}")
    return result
