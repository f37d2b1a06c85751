"""Model cards: the machine-readable half of each shipped model.

The class list and input recipe live in exactly one place, next to the weights, so the GUI, the CSV log,
training and evaluation never hard-code a label order twice.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from inference.errors import WeightsError
from inference.preprocess import InputSpec

TASKS: tuple[str, ...] = ("emotion", "gender", "race")

# The label orders of the datasets the shipped models are trained on (FER2013 and UTKFace indices).
DEFAULT_CLASSES: dict[str, tuple[str, ...]] = {
    "emotion": ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"),
    "gender": ("Male", "Female"),
    "race": ("White", "Black", "Asian", "Indian", "Others"),
}


@dataclass(frozen=True)
class ModelCard:
    """What a model predicts (classes in output order), how to feed it (input), and everything measured
    about it (free-form `details`: metrics, cost, training record)."""

    task: str
    classes: tuple[str, ...]
    input: InputSpec
    file: str
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise WeightsError(f"model card task {self.task!r} is not one of {TASKS}")
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise WeightsError(f"model card for {self.task} needs >= 2 distinct classes, got {self.classes}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "classes": list(self.classes),
            "input": self.input.to_dict(),
            "file": self.file,
            **self.details,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        known = {"task", "classes", "input", "file"}
        return cls(
            task=str(data["task"]),
            classes=tuple(data["classes"]),
            input=InputSpec.from_dict(data["input"]),
            file=str(data["file"]),
            details={k: v for k, v in data.items() if k not in known},
        )

    def save(self, path: Path) -> None:
        """Write atomically so an interrupted save never leaves half a card next to good weights."""
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, path)


def default_weights_dir() -> Path:
    """The shipped weights (the `weights` package), unless FACELENS_WEIGHTS points elsewhere."""
    override = os.environ.get("FACELENS_WEIGHTS")
    if override:
        return Path(override)
    return Path(str(resources.files("weights")))


def card_path(task: str, weights_dir: Path | None = None) -> Path:
    return Path(weights_dir or default_weights_dir()) / f"{task}.json"


def load_card(task: str, weights_dir: Path | None = None) -> ModelCard:
    """Read `<weights_dir>/<task>.json`; every way it can be wrong becomes one WeightsError line."""
    path = card_path(task, weights_dir)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise WeightsError(f"model card not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"model card {path} is unreadable: {exc}") from None
    try:
        card = ModelCard.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"model card {path} is malformed: {exc}") from None
    if card.task != task:
        raise WeightsError(f"model card {path} is for {card.task!r}, expected {task!r}")
    return card
