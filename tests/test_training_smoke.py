"""One-epoch training runs on tiny generated datasets: the real `facelens train` code path end to end (data →
fit with checkpoints → export + card), resuming, and the UTKFace split file written beside the weights."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import tiny_utkface

from inference.cards import DEFAULT_CLASSES, load_card
from training.splits import UTK_SPLIT_FILE

pytestmark = pytest.mark.slow  # real (tiny) Keras training: ~5-15 s each on a busy 2-core CPU


def tiny_fer_csv(path: Path, n_train: int = 64, n_public: int = 16, n_private: int = 16) -> Path:
    """FER2013-format CSV whose classes differ by brightness, so even one epoch has something to learn."""
    rng = np.random.default_rng(0)
    lines = ["emotion,pixels,Usage"]
    for usage, n in (("Training", n_train), ("PublicTest", n_public), ("PrivateTest", n_private)):
        for i in range(n):
            label = i % 7
            pixels = np.clip(rng.normal(30 + 30 * label, 20, 48 * 48), 0, 255).astype(int)
            lines.append(f"{label},{' '.join(map(str, pixels))},{usage}")
    path.write_text("\n".join(lines) + "\n")
    return path


def tiny_gender_run(tmp_path: Path, *options: str) -> tuple[list[str], Path, Path]:
    """`facelens train gender` arguments for a tiny generated UTKFace set in `tmp_path`, plus `options`;
    returns them with the run folder and the export folder."""
    tiny_utkface(tmp_path)
    weights, run_dir = tmp_path / "weights", tmp_path / "run"
    common = ["gender", "--data", str(tmp_path), "--run-dir", str(run_dir), "--export", str(weights)]
    return [*common, "--batch-size", "16", *options], run_dir, weights


def test_one_epoch_writes_a_safe_loadable_model_and_card_then_resumes(tmp_path, capsys):
    import keras

    from inference.models import load_model
    from training.tasks import TASK_CONFIGS
    from training.train import main

    csv = tiny_fer_csv(tmp_path / "fer2013.csv")
    run_dir, weights = tmp_path / "run", tmp_path / "weights"
    common = [
        "emotion",
        "--data",
        str(csv),
        "--run-dir",
        str(run_dir),
        "--export",
        str(weights),
        "--limit",
        "64",
        "--batch-size",
        "32",
    ]
    assert main([*common, "--epochs", "1"]) == 0
    model = keras.saving.load_model(weights / "emotion.keras", safe_mode=True, compile=False)
    assert tuple(model.inputs[0].shape[1:]) == TASK_CONFIGS["emotion"].spec.shape
    card = load_card("emotion", weights)
    assert card.classes == DEFAULT_CLASSES["emotion"]
    assert card.input == TASK_CONFIGS["emotion"].spec
    assert card.details["training"]["epochs_run"] == 1
    assert json.loads((run_dir / "state.json").read_text())["epoch"] == 1
    assert (run_dir / "last.keras").is_file() and (run_dir / "curves.png").is_file()
    probs = load_model("emotion", weights).predict(np.full((3, 48, 48, 1), 90.0, np.float32))
    assert probs.shape == (3, 7)

    capsys.readouterr()
    assert main([*common, "--epochs", "2", "--resume", "--seed", "5"]) == 0
    err = capsys.readouterr().err
    assert "resuming from epoch 1" in err and "--seed stays 0 (the run's own)" in err
    state = json.loads((run_dir / "state.json").read_text())
    assert state["epoch"] == 2 and state["settings"]["seed"] == 0 and state["settings"]["limit"] == 64
    assert len((run_dir / "log.csv").read_text().strip().splitlines()) == 1 + 2  # header + one row per epoch
    training = load_card("emotion", weights).details["training"]
    assert training["epochs_run"] == 2
    # The card names the command that started the run, then the resume, each as typed.
    assert training["command"] == "facelens train " + shlex.join([*common, "--epochs", "1"])
    assert training["resumed_with"] == [
        "facelens train " + shlex.join([*common, "--epochs", "2", "--resume", "--seed", "5"])
    ]


def test_utkface_training_writes_its_split_beside_the_weights_in_the_run_by_default(tmp_path):
    from training.train import main

    tiny_utkface(tmp_path)  # two strata of 24 faces: 10% of each go to val and to test
    weights = tmp_path / "run" / "export"  # no --export: the shipped models stay as they are
    shipped = Path(__file__).resolve().parents[1] / "weights" / "gender.keras"
    before = shipped.stat().st_mtime_ns
    argv = [
        "gender",
        "--data",
        str(tmp_path),
        "--run-dir",
        str(tmp_path / "run"),
        "--epochs",
        "1",
        "--batch-size",
        "16",
    ]
    assert main(argv) == 0
    assert shipped.stat().st_mtime_ns == before
    split = json.loads((weights / UTK_SPLIT_FILE).read_text())
    assert len(split["test"]) == len(split["val"]) == 4 and not set(split["test"]) & set(split["val"])
    assert load_card("gender", weights).classes == DEFAULT_CLASSES["gender"]


def test_a_bfloat16_run_resumes_in_bfloat16_and_exports_a_float32_model(tmp_path):
    import keras

    from training.train import main

    argv, run_dir, weights = tiny_gender_run(tmp_path, "--precision", "bfloat16", "--aux", "race")
    assert main([*argv, "--epochs", "1"]) == 0
    checkpoint = keras.saving.load_model(run_dir / "last.keras", compile=False)
    assert checkpoint.get_layer("probs").dtype_policy.name == "float32"
    assert "mixed_bfloat16" in {layer.dtype_policy.name for layer in checkpoint.layers}
    assert main([*argv, "--epochs", "2", "--resume", "--precision", "float32"]) == 0
    assert json.loads((run_dir / "state.json").read_text())["settings"]["precision"] == "bfloat16"
    exported = keras.saving.load_model(weights / "gender.keras", compile=False, safe_mode=True)
    assert {layer.dtype_policy.name for layer in exported.layers} == {"float32"}
    assert load_card("gender", weights).details["training"]["precision"] == "bfloat16"


def test_missing_training_data_is_exit_2_with_one_line(tmp_path, capsys):
    from training.train import main

    code = main(
        [
            "emotion",
            "--data",
            str(tmp_path / "absent.csv"),
            "--run-dir",
            str(tmp_path / "run"),
            "--export",
            str(tmp_path / "w"),
            "--epochs",
            "1",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("facelens train: error:") and "absent.csv" in err[-1]
    assert not (tmp_path / "w" / "emotion.keras").exists()


def test_too_few_faces_for_a_validation_split_is_exit_2(tmp_path, capsys):
    from training.train import main

    folder = tmp_path / "UTKFace"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"30_{i}_0_2017011600000000{i}.jpg.chip.jpg"), np.full((60, 60, 3), 90, np.uint8))
    argv = ["gender", "--data", str(tmp_path), "--run-dir", str(tmp_path / "run"), "--export", str(tmp_path / "w")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and "validation split" in err[-1] and "Traceback" not in "".join(err)


def test_init_from_fine_tunes_a_trained_model_and_records_its_parent(tmp_path, capsys):
    from training.train import main

    csv = tiny_fer_csv(tmp_path / "fer2013.csv")
    common = ["emotion", "--data", str(csv), "--limit", "64", "--batch-size", "32", "--epochs", "1"]
    parent = tmp_path / "parent"
    assert main([*common, "--run-dir", str(tmp_path / "run1"), "--export", str(parent)]) == 0
    child = tmp_path / "child"
    argv = [*common, "--run-dir", str(tmp_path / "run2"), "--export", str(child), "--lr", "1e-5"]
    assert main([*argv, "--init-from", str(parent / "emotion.keras")]) == 0
    parent_card, child_card = load_card("emotion", parent), load_card("emotion", child)
    assert child_card.details["architecture"] == parent_card.details["architecture"]
    record = child_card.details["training"]["init_from"]
    assert record["file"] == str(parent / "emotion.keras")
    assert record["epochs_run"] == 1 and record["val_accuracy"] == parent_card.details["training"]["val_accuracy"]

    capsys.readouterr()
    assert main([*argv, "--init-from", str(tmp_path / "absent.keras")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("facelens train: error: --init-from") and "absent.keras" in err[-1]


def test_fine_tuning_at_another_size_records_it_and_resume_keeps_the_run_size(tmp_path, capsys):
    import keras

    from training.train import main

    csv = tiny_fer_csv(tmp_path / "fer2013.csv", n_train=32, n_public=8, n_private=8)
    common = ["emotion", "--data", str(csv), "--batch-size", "16", "--epochs", "1"]
    parent = tmp_path / "parent"
    assert main([*common, "--arch", "facelens_tiny", "--run-dir", str(tmp_path / "r1"), "--export", str(parent)]) == 0
    child = tmp_path / "child"
    argv = [*common, "--size", "40", "--init-from", str(parent / "emotion.keras"), "--run-dir", str(tmp_path / "r2")]
    assert main([*argv, "--export", str(child)]) == 0
    assert load_card("emotion", child).input.size == 40
    model = keras.saving.load_model(child / "emotion.keras", safe_mode=True)
    assert model.input_shape == (None, 40, 40, 1)

    # A resume keeps the run's own size and parent, though its command names neither.
    resume = [*common, "--epochs", "2", "--resume", "--run-dir", str(tmp_path / "r2"), "--export", str(child)]
    assert main(resume) == 0
    assert keras.saving.load_model(child / "emotion.keras").input_shape == (None, 40, 40, 1)
    assert load_card("emotion", child).details["training"]["init_from"]["file"] == str(parent / "emotion.keras")

    # A run recorded before its settings were stored cannot know them: the error names the size to pass.
    state_file = tmp_path / "r2" / "state.json"
    state_file.write_text(json.dumps({k: v for k, v in json.loads(state_file.read_text()).items() if k != "settings"}))
    capsys.readouterr()
    resume[resume.index("2")] = "3"
    assert main(resume) == 2  # the run was at 40 px; the recipe's 48 px faces would not fit it
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("facelens train: error:") and "--size 40" in err[-1]
    assert main([*resume, "--size", "40"]) == 0


def test_distilling_from_a_teacher_records_it_and_a_wrong_teacher_is_exit_2(tmp_path, capsys):
    import keras

    from training.train import main

    csv = tiny_fer_csv(tmp_path / "fer2013.csv", n_train=32, n_public=8, n_private=8)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((48, 48, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255.0)(inputs))
    keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(pooled)).save(tmp_path / "teacher.keras")
    common = ["emotion", "--data", str(csv), "--run-dir", str(tmp_path / "run"), "--epochs", "1", "--batch-size", "16"]
    teacher = ["--teacher", str(tmp_path / "teacher.keras"), "--teacher-weight", "0.4"]
    assert main([*common, *teacher, "--export", str(tmp_path / "w")]) == 0
    training = load_card("emotion", tmp_path / "w").details["training"]
    assert training["teacher_weight"] == 0.4 and training["teachers"][0]["file"].endswith("teacher.keras")

    keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(pooled)).save(tmp_path / "gender.keras")
    wrong = ["--teacher", str(tmp_path / "gender.keras"), "--export", str(tmp_path / "w2")]
    assert main([*common, *wrong]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("facelens train: error: --teacher") and "this task needs" in err[-1]
    assert not (tmp_path / "w2" / "emotion.keras").exists()


def test_auxiliary_heads_train_resume_and_are_dropped_from_the_export(tmp_path, capsys):
    import keras

    from training.train import main

    common, run_dir, weights = tiny_gender_run(tmp_path, "--aux", "race,age", "--aux-weight", "0.2")
    assert main([*common, "--epochs", "1"]) == 0
    model = keras.saving.load_model(weights / "gender.keras", safe_mode=True, compile=False)
    assert model.output_shape == (None, 2) and not any(layer.name.startswith("aux_") for layer in model.layers)
    training = load_card("gender", weights).details["training"]
    assert training["auxiliary_heads"] == ["race", "age"] and training["aux_weight"] == 0.2
    assert json.loads((run_dir / "state.json").read_text())["best"] > 0  # followed the gender output's accuracy
    assert "val_probs_accuracy" in (run_dir / "log.csv").read_text().splitlines()[0]

    assert main([*common, "--epochs", "2", "--resume"]) == 0
    assert "resuming from epoch 1" in capsys.readouterr().err
    assert json.loads((run_dir / "state.json").read_text())["epoch"] == 2
    resume_without_aux = [arg for arg in common if arg not in ("--aux", "race,age")]
    assert main([*resume_without_aux, "--epochs", "3", "--resume"]) == 0  # the run keeps its own heads
    assert load_card("gender", weights).details["training"]["auxiliary_heads"] == ["race", "age"]
    state_file = run_dir / "state.json"  # a run recorded before its settings were stored: the error names them
    state_file.write_text(json.dumps({k: v for k, v in json.loads(state_file.read_text()).items() if k != "settings"}))
    capsys.readouterr()
    assert main([*resume_without_aux, "--epochs", "4", "--resume"]) == 2
    assert "trained with --aux age,race" in capsys.readouterr().err.strip().splitlines()[-1]
    assert "settings" not in json.loads(state_file.read_text())  # a refused command's settings are not recorded
    assert main([*common, "--epochs", "3", "--resume"]) == 0  # the right ones are, from then on
    assert "predates stored settings" in capsys.readouterr().err
    assert json.loads(state_file.read_text())["settings"]["aux"] == "race,age"

    for bad in ("gender", "height"):
        assert main([*common, "--epochs", "1", "--aux", bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("facelens train: error: --aux") and bad in err[-1]

    # The gender run's race head starts a race run, with gender now an auxiliary head.
    race = ["race", "--data", str(tmp_path), "--run-dir", str(tmp_path / "race"), "--export", str(weights)]
    race += ["--batch-size", "16", "--epochs", "1", "--init-from", str(run_dir / "best.keras"), "--aux", "gender"]
    assert main(race) == 0
    model = keras.saving.load_model(weights / "race.keras", safe_mode=True, compile=False)
    assert model.output_shape == (None, 5)
    assert load_card("race", weights).details["training"]["init_from"]["run_dir"] == str(run_dir)
    from training.ensemble import member_record  # a run folder's checkpoint names its own parent too

    assert member_record(tmp_path / "race" / "best.keras", "race")["init_from"]["run_dir"] == str(run_dir)


def test_weight_averaging_scores_the_mean_resumes_it_and_records_it_in_the_card(tmp_path, capsys):
    import keras

    from training.card_report import training_text
    from training.train import main

    common, run_dir, weights = tiny_gender_run(tmp_path, "--aux", "race", "--average-from", "2")
    assert main([*common, "--epochs", "3"]) == 0
    assert "weight average of epochs 2-3: validation accuracy" in capsys.readouterr().err
    state = json.loads((run_dir / "state.json").read_text())
    assert state["average"]["epochs"] == 2 and 0 <= state["average"]["val_accuracy"] <= 1
    average = keras.saving.load_model(run_dir / "average.keras", safe_mode=True, compile=False)
    last = keras.saving.load_model(run_dir / "last.keras", safe_mode=True, compile=False)
    assert not np.allclose(average.get_layer("probs").get_weights()[0], last.get_layer("probs").get_weights()[0])
    training = load_card("gender", weights).details["training"]
    record = training["weight_average"]
    assert record["epochs"] == 2 and record["exported"] == (record["val_accuracy"] > state["best"])
    told = "the weight average of epochs 2-3" if record["exported"] else f"best epoch {state['best_epoch']}"
    assert told in training_text(training)
    exported = keras.saving.load_model(weights / "gender.keras", safe_mode=True, compile=False)
    assert exported.output_shape == (None, 2)

    assert main([*common[:-2], "--epochs", "4", "--resume"]) == 0  # the run keeps averaging, from its own epoch
    resumed = json.loads((run_dir / "state.json").read_text())["average"]
    assert (resumed["first_epoch"], resumed["last_epoch"], resumed["epochs"]) == (2, 4, 3)


def test_export_average_exports_the_mean_whatever_the_single_epochs_scored(tmp_path, capsys):
    """For an ensemble member the mean may be the better choice even when one epoch scored higher alone:
    `--resume --export-average` exports it and says so in the card; without averaging it is exit 2."""
    import keras

    from training.train import main

    common, run_dir, weights = tiny_gender_run(tmp_path, "--average-from", "1")
    assert main([*common, "--epochs", "2"]) == 0
    state = json.loads((run_dir / "state.json").read_text())
    state["best"] = 1.0  # a single epoch that no mean can beat
    (run_dir / "state.json").write_text(json.dumps(state))
    assert main([*common[:-2], "--epochs", "2", "--resume"]) == 0
    assert load_card("gender", weights).details["training"]["weight_average"]["exported"] is False
    assert main([*common[:-2], "--epochs", "2", "--resume", "--export-average"]) == 0
    card = load_card("gender", weights).details["training"]
    assert card["weight_average"]["exported"] is True
    exported = keras.saving.load_model(weights / "gender.keras", safe_mode=True, compile=False)
    average = keras.saving.load_model(run_dir / "average.keras", safe_mode=True, compile=False)
    np.testing.assert_array_equal(
        exported.get_layer("probs").get_weights()[0], average.get_layer("probs").get_weights()[0]
    )

    plain, _, _ = tiny_gender_run(tmp_path / "plain")
    capsys.readouterr()
    assert main([*plain, "--epochs", "1", "--export-average"]) == 2
    assert "--export-average needs a run that averages" in capsys.readouterr().err


def test_a_refit_on_train_and_val_trains_on_both_exports_the_mean_and_says_its_validation_is_seen(tmp_path, capsys):
    """A final refit adds the validation faces to the training ones; with them seen, only the weight average
    may be exported, and the card, the card report and an ensemble built from it say validation is not held out."""
    from training.card_report import training_text
    from training.ensemble import member_record
    from training.train import main

    common, run_dir, weights = tiny_gender_run(tmp_path, "--average-from", "1")
    assert main([*common, "--epochs", "1", "--train-on-val"]) == 2
    assert "--train-on-val trains on the validation faces" in capsys.readouterr().err

    assert main([*common, "--epochs", "1", "--train-on-val", "--export-average"]) == 0
    err = capsys.readouterr().err
    split = json.loads((weights / UTK_SPLIT_FILE).read_text())
    n_val = len(split["val"])
    n_train = split["n_total"] - n_val - len(split["test"])
    assert f"{n_train + n_val} training faces, {n_val} validation faces (trained on too" in err
    training = load_card("gender", weights).details["training"]
    assert training["validation_seen"] is True and training["weight_average"]["exported"] is True
    assert "validation accuracy" in training_text(training) and "not held out" in training_text(training)
    assert member_record(run_dir / "best.keras", "gender")["validation_seen"] is True
    assert json.loads((run_dir / "state.json").read_text())["settings"]["train_on_val"] is True

    from training.evaluate import main as evaluate

    base = ["gender", "--dataset", "utkface", "--path", str(tmp_path), "--weights", str(weights), "--json"]
    capsys.readouterr()
    assert evaluate([*base, "--split", "val"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["held_out"] is False and "trained on the val faces too" in out.err
    assert evaluate([*base, "--split", "test"]) == 0
    assert "held_out" not in json.loads(capsys.readouterr().out)
