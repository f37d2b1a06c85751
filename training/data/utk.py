"""UTKFace: labels from file names, detector-style crops, and a fixed seeded stratified split.

UTKFace's 200x200 images are aligned with a wide margin, but at run time the models see detector boxes plus a
margin. So each training face is cropped the way the app crops it: the Haar cascade's box (the app's default
detector) plus the model's margin, falling back to the mean Haar box geometry when the cascade finds nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from inference.cards import DEFAULT_CLASSES
from inference.errors import DatasetError
from inference.preprocess import InputSpec, crop_face, prepare_face
from inference.types import FaceBox
from training.data.cache import cached_arrays

log = logging.getLogger(__name__)

UTK_NAME = re.compile(r"^(\d{1,3})_([01])_([0-4])_(\d{8,20})\.jpg(\.chip\.jpg)?$")
AGE_BANDS: tuple[tuple[str, int, int], ...] = (
    ("0-12", 0, 12),
    ("13-19", 13, 19),
    ("20-29", 20, 29),
    ("30-44", 30, 44),
    ("45-59", 45, 59),
    ("60+", 60, 200),
)
# Mean Haar box on UTKFace's 200x200 chips as fractions of the side (x, y, w, h), measured on every 60th image
# (389 found, 7 missed): the chips are about one Haar box wide, shifted ~9% down. Used when the cascade misses.
FALLBACK_BOX = (-0.015, -0.092, 1.018, 1.018)
DETECT_SIDE = 100  # detect on a half-size copy: 4x cheaper, same box geometry
DETECT_PAD = 0.25  # UTKFace chips cut the face at the border; Haar needs some context around it


def age_band(age: int) -> str:
    for name, low, high in AGE_BANDS:
        if low <= age <= high:
            return name
    raise ValueError(f"age {age} outside every band")


@dataclass(frozen=True)
class UtkRecord:
    file: str
    age: int
    gender: int
    race: int


def parse_name(name: str) -> UtkRecord | None:
    """`[age]_[gender]_[race]_[date].jpg.chip.jpg` → record, or None for the set's malformed names."""
    match = UTK_NAME.match(name)
    if not match:
        return None
    age, gender, race = (int(match.group(i)) for i in (1, 2, 3))
    if not 1 <= age <= 116:
        return None
    return UtkRecord(name, age, gender, race)


def scan_utkface(folder: Path) -> list[UtkRecord]:
    """All well-formed records in `folder`; malformed names are counted and reported in one warning."""
    folder = Path(folder)
    if (folder / "UTKFace").is_dir():
        folder = folder / "UTKFace"
    if not folder.is_dir():
        raise DatasetError(f"{folder}: UTKFace folder not found")
    names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() == ".jpg")
    if not names:
        raise DatasetError(f"{folder}: no .jpg files (expected UTKFace's [age]_[gender]_[race]_[date].jpg.chip.jpg)")
    records = [r for r in map(parse_name, names) if r is not None]
    skipped = len(names) - len(records)
    if skipped:
        log.warning("UTKFace: skipped %d file(s) with malformed names in %s", skipped, folder)
    if not records:
        raise DatasetError(f"{folder}: none of {len(names)} file names follow UTKFace's naming")
    return records


_CASCADE: cv2.CascadeClassifier | None = None


def detect_haar(image_bgr: np.ndarray) -> FaceBox | None:
    """The largest frontal Haar box (the app's default detector geometry) in image coordinates, or None."""
    global _CASCADE
    if _CASCADE is None:
        _CASCADE = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    h, w = image_bgr.shape[:2]
    scale = DETECT_SIDE / max(h, w)
    grey = cv2.cvtColor(
        cv2.resize(image_bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY
    )
    pad = int(DETECT_SIDE * DETECT_PAD)
    grey = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_CONSTANT)
    found = _CASCADE.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(DETECT_SIDE // 3,) * 2)
    if len(found):
        x, y, bw, bh = max(found, key=lambda b: b[2] * b[3])
        return FaceBox((x - pad) / scale, (y - pad) / scale, bw / scale, bh / scale)
    return None


def haar_box(image_bgr: np.ndarray) -> FaceBox:
    """The largest frontal Haar box, else the mean fallback box of a UTKFace chip."""
    box = detect_haar(image_bgr)
    if box is not None:
        return box
    h, w = image_bgr.shape[:2]
    fx, fy, fw, fh = FALLBACK_BOX
    return FaceBox(fx * w, fy * h, fw * w, fh * h)


def load_face(path: Path, spec: InputSpec, locate: Callable[[np.ndarray], FaceBox] = haar_box) -> np.ndarray:
    """Read one photo and prepare it exactly as the app prepares a detected face; `locate` finds the
    detector-style box on that dataset's chips."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"{path}: missing or unreadable image")
    return prepare_face(crop_face(image, locate(image), spec.margin), spec).astype(np.uint8)


@dataclass(frozen=True)
class UtkData:
    images: np.ndarray  # (n, size, size, 3) uint8, prepared
    files: np.ndarray
    age: np.ndarray
    gender: np.ndarray
    race: np.ndarray

    def subset(self, mask: np.ndarray) -> UtkData:
        return UtkData(self.images[mask], self.files[mask], self.age[mask], self.gender[mask], self.race[mask])

    def labels(self, task: str) -> np.ndarray:
        if task not in ("gender", "race"):
            raise DatasetError(f"UTKFace has no {task!r} labels (it has gender and race)")
        return getattr(self, task)

    def groups(self) -> dict[str, list[str]]:
        """Per-face group names used for the per-group accuracy tables."""
        return {
            "gender": [DEFAULT_CLASSES["gender"][g] for g in self.gender],
            "race": [DEFAULT_CLASSES["race"][r] for r in self.race],
            "age": [age_band(int(a)) for a in self.age],
        }


def load_utkface(folder: Path, spec: InputSpec) -> UtkData:
    """All faces of a UTKFace folder, prepared for `spec` (cached after the first ~2 min run)."""
    records = scan_utkface(Path(folder))
    root = Path(folder) / "UTKFace" if (Path(folder) / "UTKFace").is_dir() else Path(folder)

    def build() -> dict[str, np.ndarray]:
        images = np.empty((len(records), *spec.shape), dtype=np.uint8)
        for i, record in enumerate(records):
            images[i] = load_face(root / record.file, spec)
        return {"images": images, "files": np.array([r.file for r in records])}

    tag = f"utkface-{spec.size}-{spec.color}-{spec.margin}-{len(records)}"
    images, files = cached_arrays(root, tag, build, keys=("images", "files"))
    by_file = {r.file: r for r in records}
    ordered = [by_file[str(f)] for f in files]
    return UtkData(
        images,
        files.astype(str),
        np.array([r.age for r in ordered]),
        np.array([r.gender for r in ordered]),
        np.array([r.race for r in ordered]),
    )
