"""FairFace (Kärkkäinen & Joo, 2021): a race-balanced face set, used here to judge models on faces that are
not UTKFace's.

The root folder holds `fairface_label_{train,val}.csv` (`file,age,gender,race,service_test`, `file` relative
to the root) and the images. FairFace images are dlib face chips padded by 25% or 125% of the face on every
side, which is not what the app sees, so each face is re-cropped the way UTKFace faces are: the Haar box
(the app's default detector) plus the model's margin, prepared by the app's own function.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.errors import DatasetError
from inference.preprocess import InputSpec
from inference.types import FaceBox
from training.data.cache import cached_arrays, open_text
from training.data.utk import detect_haar, load_face

FAIRFACE_COLUMNS = ("file", "age", "gender", "race", "service_test")
FAIRFACE_SPLITS = ("train", "val")
FAIRFACE_GENDERS = ("Male", "Female")
FAIRFACE_AGES = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70")
FAIRFACE_RACES = ("White", "Black", "East Asian", "Southeast Asian", "Indian", "Latino_Hispanic", "Middle Eastern")
# FairFace's 7 groups onto UTKFace's 5 classes (UTKFace's "Others" covers Hispanic, Latino, Middle Eastern).
FAIRFACE_TO_UTK_RACE: dict[str, str] = {
    "White": "White",
    "Black": "Black",
    "East Asian": "Asian",
    "Southeast Asian": "Asian",
    "Indian": "Indian",
    "Latino_Hispanic": "Others",
    "Middle Eastern": "Others",
}
SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val"}
# The chips of the 1.25-margin release show the face at 1/3.5 of the side: too small for the detector at its
# working resolution, so it looks again inside the region the 0.25-margin release would show (1.5/3.5).
CENTRE_RETRY = 1.5 / 3.5
FALLBACK_FACE = 1.0 / 1.5  # no detection at all: the face square of a 0.25-margin chip, centred


@dataclass(frozen=True)
class FairFaceRecord:
    file: str
    age: str
    gender: str
    race: str
    service_test: bool
    line: int


def resolve_fairface_split(name: str) -> str:
    split = SPLIT_ALIASES.get(name.lower())
    if split is None:
        raise DatasetError(f"unknown FairFace split {name!r}; FairFace has {' and '.join(FAIRFACE_SPLITS)}")
    return split


def label_file(root: Path, split: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: FairFace folder not found (expected the folder holding fairface_label_*.csv)")
    path = root / f"fairface_label_{resolve_fairface_split(split)}.csv"
    if not path.is_file():
        raise DatasetError(f"{path}: FairFace label file not found")
    return path


def _check_choice(path: Path, line: int, column: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise DatasetError(f"{path}:{line}: {column} {value!r} is not one of {', '.join(choices)}")
    return value


def parse_fairface_csv(path: Path) -> list[FairFaceRecord]:
    """Every row of a FairFace label file, validated; the first bad row stops with file, line and problem."""
    records = []
    with open_text(path) as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise DatasetError(f"{path}: empty file (expected header {','.join(FAIRFACE_COLUMNS)})")
        header = [h.strip() for h in header]
        missing = [c for c in FAIRFACE_COLUMNS if c not in header]
        if missing:
            raise DatasetError(
                f"{path}:1: missing column(s) {', '.join(missing)}; expected {','.join(FAIRFACE_COLUMNS)}"
            )
        position = {name: header.index(name) for name in FAIRFACE_COLUMNS}
        for line, row in enumerate(reader, start=2):
            if not row or not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise DatasetError(f"{path}:{line}: expected {len(header)} fields, got {len(row)}")
            value = {name: row[i].strip() for name, i in position.items()}
            file = value["file"]
            if not file or Path(file).is_absolute() or ".." in Path(file).parts:
                raise DatasetError(f"{path}:{line}: file {file!r} must be a path relative to the FairFace folder")
            service = value["service_test"].lower()
            if service not in ("true", "false"):
                raise DatasetError(f"{path}:{line}: service_test {value['service_test']!r} is not True or False")
            records.append(
                FairFaceRecord(
                    file,
                    _check_choice(path, line, "age", value["age"], FAIRFACE_AGES),
                    _check_choice(path, line, "gender", value["gender"], FAIRFACE_GENDERS),
                    _check_choice(path, line, "race", value["race"], FAIRFACE_RACES),
                    service == "true",
                    line,
                )
            )
    if not records:
        raise DatasetError(f"{path}: no data rows")
    return records


def fairface_box(image_bgr: np.ndarray) -> FaceBox:
    """The Haar box the app's default detector would give, whichever margin release the chip comes from."""
    box = detect_haar(image_bgr)
    if box is not None:
        return box
    h, w = image_bgr.shape[:2]
    side = int(round(min(h, w) * CENTRE_RETRY))
    x0, y0 = (w - side) // 2, (h - side) // 2
    inner = detect_haar(image_bgr[y0 : y0 + side, x0 : x0 + side])
    if inner is not None:
        return FaceBox(inner.x + x0, inner.y + y0, inner.w, inner.h)
    side_f = min(h, w) * FALLBACK_FACE
    return FaceBox((w - side_f) / 2, (h - side_f) / 2, side_f, side_f)


def load_fairface_face(path: Path, spec: InputSpec) -> np.ndarray:
    """Read one FairFace chip and prepare it exactly as the app prepares a detected face."""
    return load_face(path, spec, fairface_box)


@dataclass(frozen=True)
class FairFaceData:
    images: np.ndarray  # (n, size, size, c) uint8, prepared
    files: np.ndarray
    age: np.ndarray  # FairFace's age band strings
    gender: np.ndarray
    race: np.ndarray  # FairFace's 7 groups

    def labels(self, task: str) -> np.ndarray:
        """Label names in the shipped models' vocabulary (race mapped 7 → 5)."""
        if task == "gender":
            return self.gender
        if task == "race":
            return np.array([FAIRFACE_TO_UTK_RACE[r] for r in self.race])
        raise DatasetError(f"FairFace has no {task!r} labels (it has gender and race)")

    def groups(self) -> dict[str, list[str]]:
        """Per-face groups for per-group accuracy: FairFace's own 7 race groups and age bands."""
        return {"gender": list(self.gender), "race": list(self.race), "age": list(self.age)}


def load_fairface(root: Path, split: str, spec: InputSpec) -> FairFaceData:
    """One FairFace split, prepared for `spec` (cached after the first run: ~5 ms per face for the detector)."""
    csv_path = label_file(root, split)
    records = parse_fairface_csv(csv_path)
    root = Path(root)

    def build() -> dict[str, np.ndarray]:
        images = np.empty((len(records), *spec.shape), dtype=np.uint8)
        for i, record in enumerate(records):
            image_path = root / record.file
            if not image_path.is_file():
                raise DatasetError(f"{csv_path}:{record.line}: image {record.file} not found under {root}")
            images[i] = load_fairface_face(image_path, spec)
        return {"images": images}

    tag = f"fairface-{resolve_fairface_split(split)}-{spec.size}-{spec.color}-{spec.margin}-{len(records)}"
    (images,) = cached_arrays(csv_path, tag, build, keys=("images",))
    return FairFaceData(
        images,
        np.array([r.file for r in records]),
        np.array([r.age for r in records]),
        np.array([r.gender for r in records]),
        np.array([r.race for r in records]),
    )
