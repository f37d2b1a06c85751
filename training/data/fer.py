"""FER2013 (and its FER+ relabelling) as arrays.

The CSV is 300 MB of space-separated pixel strings that take ~20 s to parse, so the parsed arrays are cached
(keyed by the file's size and mtime) and every later run starts in well under a second.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.cards import DEFAULT_CLASSES
from inference.errors import DatasetError
from training.data.cache import cached_arrays, open_text

log = logging.getLogger(__name__)

FER_CLASSES = DEFAULT_CLASSES["emotion"]
FER_USAGES = ("Training", "PublicTest", "PrivateTest")
# FER+ vote columns in FER2013 class order (Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral).
FERPLUS_COLUMNS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
FERPLUS_OTHER = ("contempt", "unknown", "NF")
SPLIT_ALIASES = {
    "train": "Training",
    "val": "PublicTest",
    "test": "PrivateTest",
    "training": "Training",
    "publictest": "PublicTest",
    "privatetest": "PrivateTest",
}


@dataclass(frozen=True)
class FerData:
    """Faces (n, 48, 48) uint8, FER2013 labels (n,), usage strings (n,), and FER+ votes (n, 10) or None."""

    images: np.ndarray
    labels: np.ndarray
    usage: np.ndarray
    ferplus_votes: np.ndarray | None = None

    def split(self, name: str) -> FerData:
        usage = resolve_split(name)
        keep = self.usage == usage
        votes = None if self.ferplus_votes is None else self.ferplus_votes[keep]
        return FerData(self.images[keep], self.labels[keep], self.usage[keep], votes)

    def ferplus_majority(self) -> np.ndarray:
        """Majority FER+ label in FER2013 order, or -1 where the majority is contempt/unknown/not-a-face
        (or there are no votes): those faces are skipped when scoring against FER+."""
        if self.ferplus_votes is None:
            raise DatasetError("FER+ votes were not loaded (fer2013new.csv missing next to the FER2013 CSV)")
        votes = self.ferplus_votes
        best = votes.argmax(axis=1)
        labels = np.full(len(votes), -1, dtype=np.int64)
        emotion_best = best < len(FERPLUS_COLUMNS)
        has_votes = votes.sum(axis=1) > 0
        labels[emotion_best & has_votes] = best[emotion_best & has_votes]
        return labels

    def ferplus_distribution(self) -> np.ndarray:
        """FER+ votes over the 7 emotions as probabilities; rows without emotion votes are all zero."""
        if self.ferplus_votes is None:
            raise DatasetError("FER+ votes were not loaded")
        votes = self.ferplus_votes[:, : len(FERPLUS_COLUMNS)].astype(np.float32)
        total = votes.sum(axis=1, keepdims=True)
        return np.divide(votes, total, out=np.zeros_like(votes), where=total > 0)


def resolve_split(name: str) -> str:
    usage = SPLIT_ALIASES.get(name.lower(), name)
    if usage not in FER_USAGES:
        raise DatasetError(f"unknown FER2013 split {name!r}; use one of {', '.join(FER_USAGES)} (or train/val/test)")
    return usage


def find_fer_csv(path: Path) -> Path:
    """Accept the CSV itself or a folder holding fer2013.csv[.gz|.xz]."""
    path = Path(path)
    if path.is_dir():
        for name in ("fer2013.csv", "fer2013.csv.xz", "fer2013.csv.gz"):
            if (path / name).is_file():
                return path / name
        raise DatasetError(f"{path}: no fer2013.csv, fer2013.csv.xz or fer2013.csv.gz in this folder")
    if not path.is_file():
        raise DatasetError(f"{path}: FER2013 CSV not found")
    return path


def parse_fer_csv(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse and validate `emotion,pixels,Usage` rows; the first bad row stops with file, line and problem."""
    images, labels, usages = [], [], []
    with open_text(path) as handle:
        header = handle.readline().strip().split(",")
        if header[:3] != ["emotion", "pixels", "Usage"]:
            raise DatasetError(f"{path}: expected header 'emotion,pixels,Usage', got {','.join(header)!r}")
        for line_no, line in enumerate(handle, start=2):
            line = line.strip()
            if not line:
                continue
            parts = line.split(",")
            if len(parts) != 3:
                raise DatasetError(f"{path}:{line_no}: expected 3 fields, got {len(parts)}")
            label_text, pixel_text, usage = parts
            try:
                label = int(label_text)
                pixels = np.array(pixel_text.split(), dtype=np.int32)
            except ValueError:
                raise DatasetError(f"{path}:{line_no}: non-numeric emotion or pixel values") from None
            if not 0 <= label < len(FER_CLASSES):
                raise DatasetError(f"{path}:{line_no}: emotion {label} is outside 0..{len(FER_CLASSES) - 1}")
            if pixels.size != 48 * 48:
                raise DatasetError(f"{path}:{line_no}: {pixels.size} pixel values, expected 2304 (48x48)")
            if pixels.min() < 0 or pixels.max() > 255:
                raise DatasetError(f"{path}:{line_no}: pixel values must be within 0..255")
            if usage not in FER_USAGES:
                raise DatasetError(f"{path}:{line_no}: unknown Usage {usage!r}")
            images.append(pixels.astype(np.uint8).reshape(48, 48))
            labels.append(label)
            usages.append(usage)
    if not images:
        raise DatasetError(f"{path}: no data rows")
    return np.stack(images), np.array(labels, dtype=np.int64), np.array(usages)


def parse_ferplus(path: Path, expected_rows: int) -> np.ndarray:
    """FER+ votes (n, 10) in FER2013 class order followed by contempt, unknown, NF; rows must align."""
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable FER+ file: {exc}") from None
    columns = FERPLUS_COLUMNS + FERPLUS_OTHER
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DatasetError(f"{path}: missing FER+ columns {missing}")
    if len(frame) != expected_rows:
        raise DatasetError(f"{path}: {len(frame)} rows but the FER2013 CSV has {expected_rows}; they must align")
    votes = frame[list(columns)].fillna(0).to_numpy()
    if (votes < 0).any():
        raise DatasetError(f"{path}: negative vote counts")
    return votes.astype(np.int16)


def load_fer2013(path: Path, ferplus: Path | None | bool = True) -> FerData:
    """Load FER2013 from a CSV (plain/.gz/.xz) or its folder. `ferplus=True` looks for fer2013new.csv beside
    it (optional), a path requires it, False skips it."""
    csv = find_fer_csv(path)
    images, labels, usage = cached_arrays(
        csv,
        "fer2013",
        lambda: dict(zip(("images", "labels", "usage"), parse_fer_csv(csv), strict=True)),
        keys=("images", "labels", "usage"),
    )
    votes = None
    plus_path = csv.parent / "fer2013new.csv" if ferplus is True else ferplus
    if plus_path:
        plus_path = Path(plus_path)
        if plus_path.is_file():
            votes = parse_ferplus(plus_path, len(labels))
        elif ferplus is not True:
            raise DatasetError(f"{plus_path}: FER+ vote file not found")
        else:
            log.info("no FER+ votes beside %s; training with FER2013 labels only", csv)
    return FerData(images, labels, usage.astype(str), votes)
