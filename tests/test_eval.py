"""`facelens eval`: JSON contract, tables/PNG, TTA, card write-back and one-line errors, on slices of the real
../shared data (skipped when absent) and on small generated FairFace/folder sets; plus the shipped weights."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ROOT, shared_path

from inference.cards import DEFAULT_CLASSES, TASKS, load_card
from inference.errors import DatasetError
from training.evaluate import main
from training.metrics import score

REQUIRED_KEYS = {"task", "dataset", "split", "n", "accuracy", "macro_f1", "per_class", "confusion"}
GROUP_KEYS = {"per_group", "per_group_n", "per_group_gap"}


def run_eval(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def run_json(capsys, *argv: str) -> dict:
    code, out, err = run_eval(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)  # stdout holds exactly one JSON object


# ----------------------------------------------------------------------------------------- metrics


def test_score_counts_accuracy_macro_f1_confusion_and_group_gaps():
    truth = np.array([0, 0, 0, 1, 1, 2] * 5)
    predicted = np.array([0, 0, 1, 1, 1, 0] * 5)
    groups = {"race": ["A"] * 24 + ["B"] * 6}
    result = score(truth, predicted, ("x", "y", "z"), groups)
    assert result["n"] == 30 and result["accuracy"] == pytest.approx(20 / 30, abs=1e-4)
    assert result["per_class"] == {"x": pytest.approx(2 / 3, abs=1e-4), "y": 1.0, "z": 0.0}
    assert result["confusion"] == {"labels": ["x", "y", "z"], "matrix": [[10, 5, 0], [0, 10, 0], [5, 0, 0]]}
    f1_x, f1_y = 2 * 10 / (15 + 15), 2 * 10 / (10 + 15)
    assert result["macro_f1"] == pytest.approx((f1_x + f1_y + 0.0) / 3, abs=1e-4)
    assert result["per_group_n"]["race"] == {"A": 24, "B": 6}
    # group B (6 faces) is below the 20-face minimum, so it cannot be "worst"
    assert result["per_group_gap"]["race"] == {"best": "A", "worst": "A", "gap": 0.0, "min_n": 20}


# ----------------------------------------------------------------------------------------- FER2013 slice


@pytest.fixture(scope="module")
def fer_slice(tmp_path_factory) -> Path:
    """The first 200 PrivateTest faces of the real FER2013 (and their FER+ votes) as a small CSV pair.
    Reading the real file is fast after the first parse (cached in ~/.cache/facelens)."""
    from training.data.fer import FERPLUS_COLUMNS, FERPLUS_OTHER, load_fer2013

    source = shared_path("datasets", "fer2013", "fer2013.csv.xz")
    data = load_fer2013(source).split("PrivateTest")
    folder = tmp_path_factory.mktemp("fer_slice")
    lines = ["emotion,pixels,Usage"]
    lines += [
        f"{label},{' '.join(map(str, image.ravel()))},PrivateTest"
        for label, image in zip(data.labels[:200], data.images[:200], strict=True)
    ]
    (folder / "fer2013.csv").write_text("\n".join(lines) + "\n")
    columns = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear") + FERPLUS_OTHER
    order = [(FERPLUS_COLUMNS + FERPLUS_OTHER).index(c) for c in columns]
    plus = ["Usage,Image name," + ",".join(columns)]
    plus += [f"PrivateTest,x.png,{','.join(str(int(v)) for v in votes[order])}" for votes in data.ferplus_votes[:200]]
    (folder / "fer2013new.csv").write_text("\n".join(plus) + "\n")
    return folder


def test_eval_fer2013_json(capsys, fer_slice, tiny_weights_dir):
    result = run_json(
        capsys, "emotion", "--dataset", "fer2013", "--path", str(fer_slice), "--weights", str(tiny_weights_dir)
    )
    assert REQUIRED_KEYS <= set(result)
    assert (result["task"], result["dataset"], result["split"], result["n"]) == (
        "emotion",
        "fer2013",
        "PrivateTest",
        200,
    )
    assert result["confusion"]["labels"] == list(DEFAULT_CLASSES["emotion"])
    matrix = np.array(result["confusion"]["matrix"])
    assert matrix.shape == (7, 7) and matrix.sum() == 200
    assert result["accuracy"] == pytest.approx(np.trace(matrix) / 200, abs=1e-4)
    assert set(result["per_class"]) <= set(DEFAULT_CLASSES["emotion"])
    assert result["tta"] is False
    assert result["engine"] in ("tflite-int8", "tf")  # what the app runs: int8 TFLite on a CPU


def test_eval_engine_float_scores_the_same_faces(capsys, fer_slice, tiny_weights_dir):
    common = ["emotion", "--dataset", "fer2013", "--path", str(fer_slice), "--weights", str(tiny_weights_dir)]
    quantized = run_json(capsys, *common)
    exact = run_json(capsys, *common, "--engine", "tflite")
    assert exact["engine"] == "tflite" and exact["n"] == quantized["n"]
    assert abs(exact["accuracy"] - quantized["accuracy"]) <= 0.05


def test_eval_ferplus_scores_the_majority_and_skips_non_emotions(capsys, fer_slice, tiny_weights_dir):
    result = run_json(
        capsys,
        "emotion",
        "--dataset",
        "ferplus",
        "--path",
        str(fer_slice / "fer2013.csv"),
        "--weights",
        str(tiny_weights_dir),
        "--tta",
    )
    assert result["dataset"] == "ferplus" and result["tta"] is True
    assert result["n"] + result["skipped"] == 200 and 0 < result["n"] < 200 + 1
    assert sum(map(sum, result["confusion"]["matrix"])) == result["n"]


def test_eval_table_and_png(capsys, fer_slice, tiny_weights_dir, tmp_path):
    code, out, err = run_eval(
        capsys,
        "emotion",
        "--dataset",
        "fer2013",
        "--path",
        str(fer_slice),
        "--weights",
        str(tiny_weights_dir),
        "--out-dir",
        str(tmp_path),
    )
    assert code == 0, err
    png = tmp_path / "eval_emotion_fer2013_PrivateTest.png"
    assert png.is_file() and str(png) in out
    assert cv2.imread(str(png)) is not None
    assert "accuracy" in out and "Disgust" in out and "confusion" in out


def test_write_card_keeps_the_card_and_adds_the_evaluation(capsys, fer_slice, tiny_weights_dir, tmp_path):
    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights_dir, weights)
    for extra in ([], ["--tta"]):
        code, _, err = run_eval(
            capsys,
            "emotion",
            "--dataset",
            "fer2013",
            "--path",
            str(fer_slice),
            "--weights",
            str(weights),
            "--json",
            "--write-card",
            *extra,
        )
        assert code == 0, err
    card = load_card("emotion", weights)
    assert card.details["note"] == "untrained test model"  # everything else kept
    plain, tta = (
        card.details["evaluations"]["fer2013/PrivateTest"],
        card.details["evaluations"]["fer2013/PrivateTest+tta"],
    )
    assert plain["n"] == 200 and plain["tta"] is False and tta["tta"] is True
    assert plain["command"].startswith("facelens eval emotion --dataset fer2013")
    assert {"accuracy", "macro_f1", "per_class", "split", "dataset"} <= set(plain)


def test_weights_as_keras_file_or_bare_checkpoint(capsys, fer_slice, tiny_weights_dir, tmp_path):
    beside = run_json(
        capsys,
        "emotion",
        "--dataset",
        "fer2013",
        "--path",
        str(fer_slice),
        "--weights",
        str(tiny_weights_dir / "emotion.keras"),
        "--limit",
        "50",
    )
    assert beside["n"] == 50 and beside["limit"] == 50
    checkpoint = tmp_path / "run" / "best.keras"  # a training run's checkpoint: no card beside it
    checkpoint.parent.mkdir()
    shutil.copyfile(tiny_weights_dir / "emotion.keras", checkpoint)
    code, out, err = run_eval(
        capsys,
        "emotion",
        "--dataset",
        "fer2013",
        "--path",
        str(fer_slice),
        "--weights",
        str(checkpoint),
        "--json",
        "--limit",
        "20",
    )
    assert code == 0, err
    assert "assuming the emotion training recipe" in err
    assert json.loads(out)["n"] == 20


# ----------------------------------------------------------------------------------------- UTKFace slice


def test_eval_utkface_slice_with_saved_split_has_per_group(capsys, tiny_weights_dir, tmp_path):
    source = shared_path("datasets", "utkface", "UTKFace")
    folder = tmp_path / "utk" / "UTKFace"
    folder.mkdir(parents=True)
    names = sorted(p.name for p in source.iterdir())[::600][:40]  # 40 real faces across ages and groups
    for name in names:
        (folder / name).symlink_to(source / name)
    split_file = tmp_path / "split.json"
    split_file.write_text(json.dumps({"seed": 0, "val": names[:5], "test": names[5:35]}))
    result = run_json(
        capsys,
        "race",
        "--dataset",
        "utkface",
        "--path",
        str(tmp_path / "utk"),
        "--weights",
        str(tiny_weights_dir),
        "--split-file",
        str(split_file),
    )
    assert REQUIRED_KEYS | GROUP_KEYS <= set(result)
    assert result["split"] == "test" and result["n"] == 30
    assert set(result["per_group"]) == {"gender", "race", "age"}
    assert sum(result["per_group_n"]["age"].values()) == 30
    assert set(result["per_group_gap"]["race"]) == {"best", "worst", "gap", "min_n"}


def test_utkface_without_a_split_file_is_refused(capsys, tiny_weights_dir, tmp_path):
    folder = tmp_path / "UTKFace"
    folder.mkdir()
    cv2.imwrite(str(folder / "30_0_1_20170116000000001.jpg.chip.jpg"), np.zeros((40, 40, 3), np.uint8))
    code, out, err = run_eval(
        capsys,
        "gender",
        "--dataset",
        "utkface",
        "--path",
        str(tmp_path),
        "--weights",
        str(tiny_weights_dir),
        "--split-file",
        str(tmp_path / "none.json"),
        "--json",
    )
    assert code == 2 and out == ""
    assert "UTKFace split file not found" in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------------------- FairFace / folders


def test_eval_fairface_maps_race_and_reports_its_seven_groups(capsys, tiny_weights_dir, tmp_path):
    from skimage import data

    from training.data.fairface import FAIRFACE_RACES

    chip = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[20:280, 110:370], (224, 224))
    (tmp_path / "val").mkdir()
    rows = ["file,age,gender,race,service_test"]
    for i in range(28):
        cv2.imwrite(str(tmp_path / "val" / f"{i}.jpg"), np.roll(chip, i, axis=1))
        rows.append(f"val/{i}.jpg,20-29,{('Male', 'Female')[i % 2]},{FAIRFACE_RACES[i % 7]},True")
    (tmp_path / "fairface_label_val.csv").write_text("\n".join(rows) + "\n")
    result = run_json(
        capsys, "race", "--dataset", "fairface", "--path", str(tmp_path), "--weights", str(tiny_weights_dir)
    )
    assert result["split"] == "val" and result["n"] == 28
    assert result["support"] == {"White": 4, "Black": 4, "Asian": 8, "Indian": 4, "Others": 8}
    assert set(result["per_group"]["race"]) == set(FAIRFACE_RACES)
    gender = run_json(
        capsys, "gender", "--dataset", "fairface", "--path", str(tmp_path), "--weights", str(tiny_weights_dir)
    )
    assert gender["support"] == {"Male": 14, "Female": 14}


def test_eval_folders(capsys, tiny_weights_dir, tmp_path):
    rng = np.random.default_rng(0)
    for split, name, count in (("train", "happy", 2), ("test", "happy", 3), ("test", "Sad", 2)):
        (tmp_path / split / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            cv2.imwrite(str(tmp_path / split / name / f"{i}.jpg"), rng.integers(0, 256, (48, 48), dtype=np.uint8))
    result = run_json(
        capsys, "emotion", "--dataset", "folders", "--path", str(tmp_path), "--weights", str(tiny_weights_dir)
    )
    assert result["split"] == "test" and result["n"] == 5
    assert result["support"]["Happy"] == 3 and result["support"]["Sad"] == 2


# ----------------------------------------------------------------------------------------- errors


def test_bad_path_is_exit_2_with_one_line_and_no_traceback(tiny_weights_dir, tmp_path):
    command = [
        sys.executable,
        "-m",
        "training.evaluate",
        "emotion",
        "--dataset",
        "fer2013",
        "--path",
        str(tmp_path / "missing.csv"),
        "--weights",
        str(tiny_weights_dir),
        "--json",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "missing.csv" in lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dataset", "fer2013", "--split", "Holdout"], "unknown FER2013 split 'Holdout'"),
        (["--dataset", "utkface"], "utkface has no emotion labels"),
        (["--dataset", "fer2013", "--weights", "/nonexistent/weights"], "not a weights folder"),
    ],
)
def test_expected_errors_are_one_line(capsys, tiny_weights_dir, tmp_path, argv, message):
    data = tmp_path / "fer2013.csv"
    data.write_text("emotion,pixels,Usage\n")
    full = ["emotion", "--path", str(data), "--weights", str(tiny_weights_dir), *argv]
    code, out, err = run_eval(capsys, *full)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err


def test_label_outside_the_models_classes_is_a_dataset_error():
    from training.evaluate import label_indices

    with pytest.raises(DatasetError, match="Contempt"):
        label_indices(np.array(["Happy", "Contempt"]), DEFAULT_CLASSES["emotion"])


# ----------------------------------------------------------------------------------------- shipped weights


@pytest.mark.parametrize("task", TASKS)
def test_shipped_weights_load_safely_and_expose_the_documented_classes(task):
    import keras

    from inference.models import load_model

    weights = ROOT / "weights"
    if not (weights / f"{task}.keras").is_file():
        pytest.skip(f"weights/{task}.keras is not there yet (written by `facelens train {task} --export weights`)")
    model = keras.saving.load_model(weights / f"{task}.keras", safe_mode=True, compile=False)
    card = load_card(task, weights)
    assert card.classes == DEFAULT_CLASSES[task]
    assert tuple(model.outputs[0].shape[1:]) == (len(card.classes),)
    assert tuple(model.inputs[0].shape[1:]) == card.input.shape
    assert load_model(task, weights).classes == DEFAULT_CLASSES[task]


def test_a_bare_checkpoint_gets_the_recipe_card_at_the_size_it_was_trained_at(tmp_path):
    import keras

    from training.evaluate import task_card

    inputs = keras.Input((40, 40, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(pooled)).save(tmp_path / "best.keras")
    card = task_card("emotion", tmp_path / "best.keras")  # e.g. a `facelens train --size 40` run's checkpoint
    assert card.input.size == 40 and card.input.color == "grey" and card.file == "best.keras"
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    assert task_card("emotion", tmp_path / "junk.keras").input.size == 48  # loading it reports the damage


def test_sign_test_matches_the_exact_binomial():
    from training.evaluate import sign_test_p

    assert sign_test_p(0, 0) == 1.0 and sign_test_p(5, 5) == 1.0
    assert sign_test_p(9, 18) == pytest.approx(0.1221, abs=1e-4)  # scipy.stats.binomtest(9, 27).pvalue
    assert sign_test_p(0, 10) == pytest.approx(2 / 1024)


def test_against_counts_the_faces_two_models_label_differently(capsys, fer_slice, tiny_weights_dir, tmp_path):
    """`--against` scores a second model on the same faces and says where the two differ and who is right."""
    import keras

    other = tmp_path / "other"
    other.mkdir()
    keras.utils.set_random_seed(7)
    model = keras.saving.load_model(tiny_weights_dir / "emotion.keras", compile=False)
    model.set_weights(
        [w + np.random.default_rng(7).normal(0, 0.5, w.shape).astype(w.dtype) for w in model.get_weights()]
    )
    model.save(other / "emotion.keras")
    load_card("emotion", tiny_weights_dir).save(other / "emotion.json")
    base = ["emotion", "--dataset", "fer2013", "--path", str(fer_slice), "--weights", str(tiny_weights_dir)]

    alone = run_json(capsys, "emotion", "--dataset", "fer2013", "--path", str(fer_slice), "--weights", str(other))
    result = run_json(capsys, *base, "--against", str(other))
    against = result["against"]
    assert against["accuracy"] == alone["accuracy"]
    assert 0 < against["differ"] <= result["n"]
    assert against["this_right"] + against["other_right"] <= against["differ"]
    # Only faces where they differ can separate the two accuracies.
    assert against["this_right"] - against["other_right"] == round((result["accuracy"] - alone["accuracy"]) * 200)
    from training.evaluate import sign_test_p

    assert against["sign_test_p"] == round(sign_test_p(against["this_right"], against["other_right"]), 3)

    same = run_json(capsys, *base, "--against", str(tiny_weights_dir))["against"]
    assert (same["differ"], same["this_right"], same["other_right"], same["sign_test_p"]) == (0, 0, 0, 1.0)

    code, out, err = run_eval(capsys, *base, "--against", str(other))
    assert code == 0 and f"the two differ on {against['differ']} faces" in out

    wider = tmp_path / "wider"  # the same network fed with another crop margin: not the same faces
    wider.mkdir()
    shutil.copyfile(other / "emotion.keras", wider / "emotion.keras")
    card = load_card("emotion", other)
    dataclasses.replace(card, input=dataclasses.replace(card.input, margin=0.4)).save(wider / "emotion.json")
    code, _, err = run_eval(capsys, *base, "--against", str(wider))
    assert code == 2 and "compare models of the same input and classes" in err and len(err.strip().splitlines()) == 1
