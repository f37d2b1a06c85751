"""Model loading and batched inference: probabilities in card order, padding-invariant, never retracing,
and every broken weights folder reported as one WeightsError line naming the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from inference.cards import DEFAULT_CLASSES, TASKS, ModelCard, load_card
from inference.errors import WeightsError
from inference.models import BUCKETS, MAX_BUCKET, AttributeModel, bucket_size, load_model, load_models
from inference.preprocess import InputSpec


@pytest.fixture(scope="module")
def models(tiny_weights_dir: Path) -> dict[str, AttributeModel]:
    return load_models(tiny_weights_dir)


@pytest.fixture(scope="module")
def tf_models(tiny_weights_dir: Path) -> dict[str, AttributeModel]:
    return load_models(tiny_weights_dir, engine="tf")


@pytest.fixture(params=["auto", "tf"])
def any_models(request, models, tf_models) -> dict[str, AttributeModel]:
    return models if request.param == "auto" else tf_models


def faces(model: AttributeModel, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, *model.spec.shape)).astype(np.float32)


def test_load_models_exposes_card_classes_and_spec(models):
    assert set(models) == set(TASKS)
    for task, model in models.items():
        assert model.task == task
        assert model.classes == DEFAULT_CLASSES[task]
        assert model.spec == model.card.input
        assert model.device in ("CPU:0", "GPU:0")
        assert model.engine == ("tflite-int8" if model.device == "CPU:0" else "tf")
    assert models["emotion"].spec.shape == (48, 48, 1)
    assert models["gender"].spec.shape == (64, 64, 3)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("n", [1, 3, 8])
def test_predictions_are_probability_rows(any_models, task, n):
    probs = any_models[task].predict(faces(any_models[task], n, seed=n))
    assert probs.shape == (n, len(DEFAULT_CLASSES[task]))
    assert probs.dtype == np.float32
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_padding_does_not_change_a_faces_result(any_models):
    for model in any_models.values():
        batch = faces(model, 5, seed=1)  # padded to the 8 bucket
        together = model.predict(batch)
        for i in range(5):
            alone = model.predict(batch[i : i + 1])
            np.testing.assert_allclose(alone[0], together[i], rtol=1e-5, atol=1e-6)
        assert not np.allclose(together[0], together[1]), "distinct faces should give distinct outputs"


def test_batches_larger_than_the_biggest_bucket_are_split(any_models):
    model = any_models["race"]
    batch = faces(model, MAX_BUCKET * 2 + 5, seed=2)
    probs = model.predict(batch)
    assert probs.shape == (len(batch), len(model.classes))
    np.testing.assert_allclose(probs[-5:], model.predict(batch[-5:]), rtol=1e-5, atol=1e-6)


def test_engines_agree(tiny_weights_dir, models, tf_models):
    for task, model in models.items():
        batch = faces(model, 6, seed=3)
        exact = tf_models[task].predict(batch)
        float_lite = load_model(task, tiny_weights_dir, engine="tflite")
        np.testing.assert_allclose(float_lite.predict(batch), exact, rtol=1e-5, atol=1e-6)
        quantized = model.predict(batch)  # int8 weights: close, not identical
        assert not np.array_equal(quantized, exact)
        np.testing.assert_allclose(quantized, exact, atol=0.05)


def test_a_quantized_face_does_not_depend_on_the_other_faces_in_its_batch(models):
    model = models["emotion"]
    batch = faces(model, 4, seed=6)
    together = model.predict(batch)
    batch[1:] *= 0.1  # much darker neighbours: a batch-wide quantization range would shift face 0
    np.testing.assert_array_equal(model.predict(batch)[0], together[0])


def test_tflite_engine_keeps_one_interpreter_per_bucket(tiny_weights_dir):
    model = load_model("emotion", tiny_weights_dir, engine="tflite")
    for n in range(1, 41):
        model.predict(faces(model, n))
    assert model.engine == "tflite"
    assert len(model._lite._interpreters) <= len(BUCKETS)
    assert model.trace_count == 0


def test_unknown_engine_is_rejected(tiny_weights_dir):
    with pytest.raises(ValueError, match="engine"):
        load_model("emotion", tiny_weights_dir, engine="onnx")


def test_many_batch_sizes_never_retrace(tiny_weights_dir):
    model = load_model("gender", tiny_weights_dir, engine="tf")
    for n in range(1, 41):
        model.predict(faces(model, n))
    traced = model.trace_count
    assert traced <= len(BUCKETS)
    assert model._function.experimental_get_tracing_count() == traced
    for n in (40, 17, 1, 3, 9, 32, 33, 2, 31, 5):
        model.predict(faces(model, n))
    assert model.trace_count == traced


def test_bucket_sizes():
    assert [bucket_size(n) for n in (1, 2, 3, 5, 8, 9, 17, 32)] == [1, 2, 4, 8, 8, 16, 32, 32]
    with pytest.raises(ValueError):
        bucket_size(MAX_BUCKET + 1)


def test_empty_and_misshapen_batches(models):
    model = models["emotion"]
    assert model.predict(np.empty((0, 48, 48, 1), np.float32)).shape == (0, 7)
    with pytest.raises(ValueError, match="48, 48, 1"):
        model.predict(np.zeros((2, 64, 64, 3), np.float32))


# --- broken weights folders -------------------------------------------------------------------------------


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _garbage(folder: Path) -> Path:
    path = folder / "emotion.keras"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return path


def _truncated(folder: Path) -> Path:
    path = folder / "emotion.keras"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _missing(folder: Path) -> Path:
    path = folder / "emotion.keras"
    path.unlink()
    return path


def _card_input_mismatch(folder: Path) -> Path:
    card = load_card("emotion", folder)
    ModelCard("emotion", card.classes, InputSpec(64, "rgb", 0.1), card.file).save(folder / "emotion.json")
    return folder / "emotion.keras"


def _card_class_count_mismatch(folder: Path) -> Path:
    card = load_card("emotion", folder)
    ModelCard("emotion", ("Happy", "Sad", "Neutral"), card.input, card.file).save(folder / "emotion.json")
    return folder / "emotion.keras"


def _save_model(folder: Path, build) -> Path:
    import keras

    inputs = keras.Input((48, 48, 1))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    keras.Model(inputs, build(keras, x)).save(folder / "emotion.keras")
    return folder / "emotion.keras"


def _logits(folder: Path) -> Path:
    return _save_model(folder, lambda keras, x: keras.layers.Dense(7)(x))


def _unsafe_lambda(folder: Path) -> Path:
    return _save_model(
        folder, lambda keras, x: keras.layers.Dense(7, activation="softmax")(keras.layers.Lambda(lambda t: t * 1.0)(x))
    )


@pytest.mark.parametrize(
    "breaker, expect",
    [
        (_garbage, "could not be loaded"),
        (_truncated, "could not be loaded"),
        (_missing, "not found"),
        (_card_input_mismatch, "does not match the card"),
        (_card_class_count_mismatch, "3 classes"),
        (_logits, "probabilities"),
        (_unsafe_lambda, "could not be loaded"),
    ],
)
def test_broken_weights_raise_one_line_weights_error(tiny_weights_dir, tmp_path, breaker, expect):
    folder = _copy(tiny_weights_dir, tmp_path / "weights")
    path = breaker(folder)
    with pytest.raises(WeightsError) as info:
        load_models(folder)
    message = str(info.value)
    assert str(path) in message
    assert expect in message
    assert "\n" not in message


def test_missing_card_is_a_weights_error(tmp_path):
    with pytest.raises(WeightsError, match="card not found"):
        load_model("race", tmp_path)


def _cache_entries() -> list[Path]:
    from inference.user_cache import cache_dir

    return sorted((cache_dir() / "tflite").glob("*.npz"))


def test_the_next_load_starts_from_the_cached_conversion_without_building_keras(tiny_weights_dir, monkeypatch):
    first = load_model("gender", tiny_weights_dir, engine="tflite-int8")
    assert len(_cache_entries()) == 1

    def not_again(*args, **kwargs):
        raise AssertionError("built or converted again although a checked conversion was cached")

    monkeypatch.setattr("inference.models.convert", not_again)
    monkeypatch.setattr("keras.saving.load_model", not_again)
    second = load_model("gender", tiny_weights_dir, engine="tflite-int8")
    x = faces(second, 5)
    np.testing.assert_array_equal(second.predict(x), first.predict(x))
    assert second.engine == "tflite-int8"


def _rewrite_entry(entry: Path, **arrays: np.ndarray) -> None:
    with np.load(entry) as stored:
        content = {**dict(stored), **arrays}
    with entry.open("wb") as handle:
        np.savez(handle, **content)


@pytest.mark.parametrize(
    "damage",
    [
        lambda entry: entry.write_bytes(b"not an npz file"),
        lambda entry: _rewrite_entry(entry, flatbuffer=np.frombuffer(b"\0\0\0\0TFL3" + bytes(64), np.uint8)),
        lambda entry: _rewrite_entry(entry, expected=1.0 - np.load(entry)["expected"]),  # other weights' results
    ],
    ids=["unreadable", "broken flatbuffer", "wrong probabilities"],
)
def test_a_damaged_cache_entry_is_converted_again_and_replaced(tiny_weights_dir, damage):
    load_model("race", tiny_weights_dir, engine="tflite")
    (entry,) = _cache_entries()
    good = np.load(entry)["expected"]
    damage(entry)
    model = load_model("race", tiny_weights_dir, engine="tflite")
    assert model.engine == "tflite" and model.predict(faces(model, 2)).shape == (2, 5)
    (entry,) = _cache_entries()
    np.testing.assert_array_equal(np.load(entry)["expected"], good)


def test_new_weights_replace_their_old_cache_entry(tiny_weights_dir, tmp_path):
    folder = tmp_path / "weights"
    shutil.copytree(tiny_weights_dir, folder)
    old_model = load_model("emotion", folder, engine="tflite")
    (old,) = _cache_entries()
    model = load_model("emotion", folder, engine="tf")._model
    bias = model.layers[-1].bias
    bias.assign(bias + np.arange(bias.shape[0], dtype=np.float32))  # other weights: other predictions
    model.save(folder / "emotion.keras")
    new_model = load_model("emotion", folder, engine="tflite")
    (new,) = _cache_entries()
    assert new != old
    x = faces(new_model, 3)
    assert not np.allclose(new_model.predict(x), old_model.predict(x))


def test_an_unwritable_cache_only_costs_the_conversion(tiny_weights_dir, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("FACELENS_CACHE", str(blocker))
    for _ in range(2):
        model = load_model("emotion", tiny_weights_dir, engine="tflite")
        assert model.engine == "tflite" and model.predict(faces(model, 1)).shape == (1, 7)


def test_the_cache_keeps_only_the_most_recently_used_entries(tiny_weights_dir, monkeypatch):
    import os
    import time

    monkeypatch.setattr("inference.lite_cache.MAX_ENTRIES", 2)
    now = time.time()
    for age, task in ((100, "emotion"), (50, "gender")):
        load_model(task, tiny_weights_dir, engine="tflite")
        (newest,) = [e for e in _cache_entries() if os.stat(e).st_mtime > now - 10]
        os.utime(newest, (now - age, now - age))
    load_model("emotion", tiny_weights_dir, engine="tflite")  # a hit: emotion's entry is now the newest
    load_model("race", tiny_weights_dir, engine="tflite")
    entries = _cache_entries()
    assert len(entries) == 2
    assert all(os.stat(e).st_mtime > now - 10 for e in entries)  # gender's, the least recently used, went
