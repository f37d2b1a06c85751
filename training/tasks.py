"""What each shipped model is trained on and how its faces are prepared: one table both `train` and `eval` read.

Crop policy (measured, see weights/README.md): FER2013 faces and UTKFace chips are both about one Haar box
wide (the cascade's box on a padded FER face is 0.97 of the image; on a UTKFace chip 1.02), so every model is
fed the detector box itself (margin 0), squared — the runtime crop then frames a face like the training data.
"""

from __future__ import annotations

from dataclasses import dataclass

from inference.preprocess import InputSpec


@dataclass(frozen=True)
class TaskConfig:
    dataset: str
    default_path: str
    spec: InputSpec
    architecture: str
    epochs: int
    learning_rate: float


TASK_CONFIGS: dict[str, TaskConfig] = {
    "emotion": TaskConfig(
        "fer2013", "../shared/datasets/fer2013", InputSpec(48, "grey", 0.0), "facelens_small", 60, 2e-3
    ),
    "gender": TaskConfig("utkface", "../shared/datasets/utkface", InputSpec(64, "rgb", 0.0), "facelens_rgb", 40, 2e-3),
    "race": TaskConfig("utkface", "../shared/datasets/utkface", InputSpec(64, "rgb", 0.0), "facelens_rgb", 40, 2e-3),
}

# The split each dataset's checkpoints and ensembles are chosen on (never the one final numbers come from).
VALIDATION_SPLIT = {"fer2013": "PublicTest", "utkface": "val"}
