"""Face packs (`training.pack`): what a lent GPU machine trains from must be the faces a run here would use,
without the test split, and anything else must be refused with a clear message."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import tiny_utkface

from inference.errors import DatasetError
from training.pack import main as pack_main
from training.pack import read_pack
from training.tasks import TASK_CONFIGS

GENDER_SPEC = TASK_CONFIGS["gender"].spec


@pytest.fixture
def gender_pack(tmp_path, capsys):
    data = tiny_utkface(tmp_path / "utk")
    split_file = tmp_path / "split.json"
    out = tmp_path / "pack" / "gender.npz"
    argv = ["gender", "--data", str(data), "--split-file", str(split_file), "--out", str(out)]
    assert pack_main(argv) == 0
    assert "no test faces" in capsys.readouterr().out
    return out, data, split_file


def test_a_pack_holds_train_and_val_faces_as_prepared_here_and_no_test_faces(gender_pack):
    from training.task_data import utk_splits

    out, data, split_file = gender_pack
    train, val, keys = read_pack(out, "gender", GENDER_SPEC)
    parts = utk_splits(data, GENDER_SPEC, "gender", split_file)
    split = json.loads(split_file.read_text())
    assert len(val.labels) == len(split["val"]) == 4 and len(split["test"]) == 4
    assert len(train.labels) + len(val.labels) == 48 - len(split["test"])
    np.testing.assert_array_equal(train.labels, parts["train"].labels)
    np.testing.assert_array_equal(val.labels, parts["val"].labels)
    assert train.images.shape == parts["train"].images.shape and train.images.dtype == np.uint8
    # JPEG at quality 90: each face within a few grey levels of the one prepared here.
    error = np.abs(train.images.astype(int) - parts["train"].images.astype(int)).mean(axis=(1, 2, 3))
    assert error.max() < 4.0
    assert keys.shape == train.labels.shape
    assert train.groups == parts["train"].groups and val.groups == parts["val"].groups
    assert all(key.startswith(f"{label}|White|") for key, label in zip(keys, train.labels, strict=True))


def test_a_pack_for_another_size_or_task_is_refused(gender_pack):
    from dataclasses import replace

    out, _, _ = gender_pack
    with pytest.raises(DatasetError, match="make a pack with the run's task and --size"):
        read_pack(out, "gender", replace(GENDER_SPEC, size=96))
    with pytest.raises(DatasetError, match="packed for gender"):
        read_pack(out, "race", TASK_CONFIGS["race"].spec)


def test_a_file_that_is_not_a_pack_is_a_dataset_error(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(DatasetError, match="not a FaceLens face pack"):
        read_pack(junk, "gender", GENDER_SPEC)
    other = tmp_path / "other.npz"
    np.savez(other, format=np.array("something-else"))
    with pytest.raises(DatasetError, match="unknown pack format"):
        read_pack(other, "gender", GENDER_SPEC)


def test_pack_cli_bad_data_is_exit_2_with_one_line(tmp_path, capsys):
    assert pack_main(["gender", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "p.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m training.pack: error:") and len(err.splitlines()) == 1
    assert not (tmp_path / "p.npz").exists()


@pytest.mark.slow
def test_training_from_a_pack_with_an_auxiliary_head_exports_a_model(gender_pack, tmp_path, capsys):
    from inference.cards import load_card
    from training.train import main as train_main

    out, _, _ = gender_pack
    weights = tmp_path / "weights"
    argv = ["gender", "--data", str(out), "--run-dir", str(tmp_path / "run"), "--export", str(weights)]
    assert train_main([*argv, "--epochs", "1", "--batch-size", "16", "--aux", "age"]) == 0
    assert "40 training faces, 4 validation faces" in capsys.readouterr().err
    training = load_card("gender", weights).details["training"]
    assert training["data_path"] == str(out) and training["auxiliary_heads"] == ["age"]
