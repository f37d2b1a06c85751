"""Shared fixtures: tiny real Keras models with cards (for pipeline mechanics), and ../shared data paths."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsed-dataset caches of the small generated sets go to a temporary folder, never the user's
    ~/.cache/facelens. Module-scoped fixtures run before this one, so the slices of the real ../shared sets
    still reuse the real files' caches."""
    monkeypatch.setenv("FACELENS_CACHE", str(tmp_path_factory.mktemp("cache")))


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test with a reason when it is not there (a user's fresh clone)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs ../shared/{'/'.join(parts)} (absent: this checkout has no shared data beside it)")
    return path


def tiny_utkface(root: Path) -> Path:
    """48 UTKFace-named faces in two strata (gender x White x 20-29) whose brightness follows gender, so a
    one-epoch run has something to learn; 10% of each stratum go to val and to test."""
    import cv2
    import numpy as np

    folder = root / "UTKFace"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    stamp = 20170116000000000
    for i in range(48):
        stamp += 1
        image = np.full((60, 60, 3), 40 + 150 * (i % 2), np.uint8) + rng.integers(0, 30, (60, 60, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"{20 + i % 10}_{i % 2}_0_{stamp}.jpg.chip.jpg"), image)
    return root


@pytest.fixture(scope="session")
def tiny_weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Untrained but real Keras models with valid cards, shaped like the shipped ones, so pipeline tests
    exercise loading, batching and label mapping without depending on the trained weights."""
    import keras

    from inference.cards import DEFAULT_CLASSES, ModelCard
    from inference.preprocess import InputSpec

    specs = {
        "emotion": InputSpec(48, "grey", 0.1),
        "gender": InputSpec(64, "rgb", 0.2),
        "race": InputSpec(64, "rgb", 0.2),
    }
    folder = tmp_path_factory.mktemp("tiny_weights")
    for task, spec in specs.items():
        keras.utils.set_random_seed(0)
        inputs = keras.Input(spec.shape)
        x = keras.layers.Rescaling(1 / 255.0)(inputs)
        x = keras.layers.Conv2D(4, 3, strides=4, activation="relu")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        outputs = keras.layers.Dense(len(DEFAULT_CLASSES[task]), activation="softmax")(x)
        keras.Model(inputs, outputs, name=f"tiny_{task}").save(folder / f"{task}.keras")
        ModelCard(task, DEFAULT_CLASSES[task], spec, f"{task}.keras", {"note": "untrained test model"}).save(
            folder / f"{task}.json"
        )
    return folder


def small_model(seed: int, shape=(48, 48, 1), classes: int = 7, name: str = "net"):
    """A seeded four-filter CNN: cheap, real, and different for every seed (ensemble mechanics)."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape)
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, strides=4, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax", name="probs")(x), name=name)


@pytest.fixture
def fer_csv(tmp_path: Path) -> Path:
    """21 random FER2013 rows, 7 in each of Training, PublicTest and PrivateTest."""
    import numpy as np

    rng = np.random.default_rng(0)
    path = tmp_path / "fer2013.csv"
    with path.open("w") as handle:
        handle.write("emotion,pixels,Usage\n")
        for i in range(21):
            pixels = " ".join(map(str, rng.integers(0, 256, 48 * 48)))
            handle.write(f"{i % 7},{pixels},{('Training', 'PublicTest', 'PrivateTest')[i % 3]}\n")
    return path
