"""Fixed, seeded, stratified splits for datasets that ship without one (UTKFace).

The split is written next to the weights (weights/splits/) so every later evaluation scores the same test
faces, whatever machine or session runs it. Only val and test names are stored; train is everything else.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from inference.errors import DatasetError

SPLIT_NAMES = ("train", "val", "test")
# Where the UTKFace split lives inside a weights folder.
UTK_SPLIT_FILE = Path("splits") / "utk-faces-split.json"


def stratified_split(
    keys: Sequence[str], fractions: tuple[float, float] = (0.1, 0.1), seed: int = 1234
) -> dict[str, np.ndarray]:
    """Indices for train/val/test with every stratum (e.g. gender|race|age band) split in the same proportion.
    Deterministic: the same keys and seed always give the same split."""
    val_fraction, test_fraction = fractions
    rng = np.random.default_rng(seed)
    strata: dict[str, list[int]] = defaultdict(list)
    for index, key in enumerate(keys):
        strata[key].append(index)
    out: dict[str, list[int]] = {name: [] for name in SPLIT_NAMES}
    for key in sorted(strata):
        members = np.array(strata[key])
        rng.shuffle(members)
        n_test = int(round(len(members) * test_fraction))
        n_val = int(round(len(members) * val_fraction))
        out["test"].extend(members[:n_test])
        out["val"].extend(members[n_test : n_test + n_val])
        out["train"].extend(members[n_test + n_val :])
    return {name: np.sort(np.array(idx, dtype=np.int64)) for name, idx in out.items()}


def save_split(path: Path, files: Sequence[str], split: dict[str, np.ndarray], meta: dict) -> None:
    payload = {**meta, "val": sorted(files[i] for i in split["val"]), "test": sorted(files[i] for i in split["test"])}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=0) + "\n")


def load_split(path: Path, files: Sequence[str]) -> dict[str, np.ndarray]:
    """Indices into `files` for each split of a saved split file."""
    try:
        payload = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: unreadable split file: {exc}") from None
    position = {name: i for i, name in enumerate(files)}
    result: dict[str, np.ndarray] = {}
    held_out = set()
    for name in ("val", "test"):
        idx = [position[f] for f in payload.get(name, []) if f in position]
        result[name] = np.array(sorted(idx), dtype=np.int64)
        held_out.update(idx)
    result["train"] = np.array([i for i in range(len(files)) if i not in held_out], dtype=np.int64)
    return result
