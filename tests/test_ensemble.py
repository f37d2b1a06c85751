"""`python -m training.ensemble`: members' mean as one safe-mode Keras model, with a card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import small_model


def test_the_ensemble_is_the_mean_of_its_members_and_carries_their_records(tmp_path, fer_csv, capsys):
    import keras

    from training import ensemble

    first_dir, second_dir, out = tmp_path / "a", tmp_path / "b", tmp_path / "out"
    first_dir.mkdir()
    second_dir.mkdir()
    first, second = small_model(1, name="tiny"), small_model(2, name="small")
    first.save(first_dir / "best.keras")
    second.save(second_dir / "best.keras")
    (second_dir / "state.json").write_text(json.dumps({"epoch": 12, "best_epoch": 9, "best": 0.61, "seconds": 3600}))

    argv = ["emotion", "--member", str(first_dir / "best.keras"), "--member", str(second_dir / "best.keras")]
    assert ensemble.main([*argv, "--out", str(out), "--data", str(fer_csv)]) == 0
    model = keras.saving.load_model(out / "emotion.keras", safe_mode=True)
    faces = np.random.default_rng(3).integers(0, 256, (5, 48, 48, 1)).astype(np.float32)
    expected = (first(faces).numpy() + second(faces).numpy()) / 2
    np.testing.assert_allclose(model(faces).numpy(), expected, rtol=1e-5, atol=1e-6)

    card = json.loads((out / "emotion.json").read_text())
    assert card["architecture"] == "ensemble(tiny + small)" and card["file"] == "emotion.keras"
    assert card["parameters"] == first.count_params() + second.count_params()
    assert card["members"][1]["training"]["best_epoch"] == 9
    assert card["training"]["epochs_run"] == "? + 12" and card["training"]["train_seconds"] == 3600
    assert 0.0 <= card["training"]["val_accuracy"] <= 1.0  # scored on PublicTest, the members' selection split


def test_members_with_different_inputs_are_refused_in_one_line(tmp_path, capsys):
    from training import ensemble

    small_model(1).save(tmp_path / "grey.keras")
    small_model(2, shape=(64, 64, 3)).save(tmp_path / "rgb.keras")
    argv = ["emotion", "--member", str(tmp_path / "grey.keras"), "--member", str(tmp_path / "rgb.keras")]
    assert ensemble.main([*argv, "--out", str(tmp_path / "out")]) == 2
    assert "different inputs" in capsys.readouterr().err
    assert ensemble.main(["emotion", "--member", str(tmp_path / "grey.keras"), "--out", str(tmp_path / "o")]) == 2


def test_a_multi_task_checkpoint_joins_through_its_head_for_the_task(tmp_path, fer_csv, capsys):
    """A run's best.keras or average.keras keeps its auxiliary heads; as a member it must count with the head
    for the ensemble's task only, and a checkpoint without that head is one line, not a traceback."""
    import keras

    from training import ensemble
    from training.auxiliary import with_heads

    multi = with_heads(small_model(1), "emotion", ("gender", "race"))
    plain = small_model(2)
    multi.save(tmp_path / "average.keras")
    plain.save(tmp_path / "plain.keras")
    argv = ["emotion", "--member", str(tmp_path / "average.keras"), "--member", str(tmp_path / "plain.keras")]
    assert ensemble.main([*argv, "--out", str(tmp_path / "out"), "--data", str(fer_csv)]) == 0
    model = keras.saving.load_model(tmp_path / "out" / "emotion.keras", safe_mode=True)
    faces = np.random.default_rng(3).integers(0, 256, (4, 48, 48, 1)).astype(np.float32)
    expected = (multi(faces)["probs"].numpy() + plain(faces).numpy()) / 2
    np.testing.assert_allclose(model(faces).numpy(), expected, rtol=1e-5, atol=1e-6)

    race_run = with_heads(small_model(3, classes=5), "race", ("gender",))
    race_run.save(tmp_path / "race_best.keras")
    argv = ["emotion", "--member", str(tmp_path / "race_best.keras"), "--member", str(tmp_path / "plain.keras")]
    assert ensemble.main([*argv, "--out", str(tmp_path / "out2"), "--data", str(fer_csv)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no emotion head" in err[0]


def test_mirror_averaging_is_one_model_equal_to_flip_tta(tmp_path, fer_csv):
    import keras

    from inference.lite import LiteRunner, convert
    from training import ensemble

    net = small_model(4, name="tiny")
    net.save(tmp_path / "best.keras")
    out = tmp_path / "out"
    argv = ["emotion", "--member", str(tmp_path / "best.keras"), "--mirror", "--out", str(out), "--data", str(fer_csv)]
    assert ensemble.main(argv) == 0
    model = keras.saving.load_model(out / "emotion.keras", safe_mode=True)
    faces = np.random.default_rng(5).integers(0, 256, (3, 48, 48, 1)).astype(np.float32)
    expected = (net(faces).numpy() + net(np.ascontiguousarray(faces[:, :, ::-1])).numpy()) / 2
    assert not np.allclose(net(faces).numpy(), expected, atol=1e-4)  # the mirror view really differs
    np.testing.assert_allclose(model(faces).numpy(), expected, rtol=1e-5, atol=1e-6)
    lite = LiteRunner(convert(model, (48, 48, 1)), (48, 48, 1))  # what the app runs on a CPU
    np.testing.assert_allclose(lite(faces), expected, rtol=1e-4, atol=1e-5)
    card = json.loads((out / "emotion.json").read_text())
    assert card["architecture"] == "mirror-averaged tiny" and card["mirror_averaged"] is True


def test_members_trained_at_another_size_give_the_card_their_size(tmp_path, fer_csv):
    from inference.cards import load_card
    from training import ensemble

    small_model(6, shape=(40, 40, 1)).save(tmp_path / "best.keras")
    argv = ["emotion", "--member", str(tmp_path / "best.keras"), "--mirror", "--out", str(tmp_path / "out")]
    assert ensemble.main([*argv, "--data", str(fer_csv)]) == 0  # validation faces are prepared at 40 px too
    card = load_card("emotion", tmp_path / "out")
    assert card.input.size == 40 and card.input.color == "grey"


def test_members_of_different_sizes_share_the_largest_input_shrunk_for_the_others(tmp_path, fer_csv):
    import keras
    import tensorflow as tf

    from inference.cards import load_card
    from inference.lite import LiteRunner, convert
    from training import ensemble

    large, small = small_model(7, shape=(48, 48, 1), name="large"), small_model(8, shape=(40, 40, 1), name="small")
    large.save(tmp_path / "large.keras")
    small.save(tmp_path / "small.keras")
    argv = ["emotion", "--member", str(tmp_path / "small.keras"), "--member", str(tmp_path / "large.keras")]
    assert ensemble.main([*argv, "--out", str(tmp_path / "out"), "--data", str(fer_csv)]) == 0
    model = keras.saving.load_model(tmp_path / "out" / "emotion.keras", safe_mode=True)
    assert model.input_shape == (None, 48, 48, 1) and load_card("emotion", tmp_path / "out").input.size == 48
    faces = np.random.default_rng(9).integers(0, 256, (3, 48, 48, 1)).astype(np.float32)
    shrunk = tf.image.resize(faces, (40, 40), method="bilinear").numpy()
    expected = (small(shrunk).numpy() + large(faces).numpy()) / 2
    np.testing.assert_allclose(model(faces).numpy(), expected, rtol=1e-5, atol=1e-6)
    lite = LiteRunner(convert(model, (48, 48, 1), quantize=True), (48, 48, 1))  # the resize runs on TFLite too
    np.testing.assert_allclose(lite(faces), expected, atol=0.02)


def test_training_time_counts_the_runs_a_member_was_fine_tuned_from():
    from training.ensemble import lineage_seconds

    record = {"train_seconds": 600, "init_from": {"train_seconds": 3000, "init_from": {"train_seconds": 400}}}
    assert lineage_seconds(record) == 4000 and lineage_seconds({}) == 0
    teacher = {"command": "train seed 1", "train_seconds": 2000}
    student = {"command": "train --teacher", "train_seconds": 900, "teachers": [teacher, {"train_seconds": 100}]}
    assert lineage_seconds(student) == 3000  # a distilled model's cost includes its teachers'
    assert lineage_seconds(student, dict(teacher)) == 3000  # a teacher that is also a member counts once

    # A student of a shipped ensemble, fine-tuned from one of its networks and ensembled with the other:
    # the ensemble teacher counts as its two runs, not as their total on top of them.
    plain, wide = {"command": "train plain", "train_seconds": 2000}, {"command": "train wide", "train_seconds": 5000}
    shipped = {"command": "ensemble", "train_seconds": 7000, "members": [plain, wide]}
    tuned = {"command": "train --init-from #0", "train_seconds": 500, "init_from": dict(plain), "teachers": [shipped]}
    assert lineage_seconds(shipped) == 7000
    assert lineage_seconds(tuned, dict(wide)) == 7500


def test_an_ensemble_given_as_member_contributes_its_networks_with_their_records(tmp_path, fer_csv):
    import keras

    from training import ensemble

    nets = [small_model(seed, name=name) for seed, name in ((7, "tiny"), (8, "small"), (9, "wide"))]
    for index, net in enumerate(nets):
        (tmp_path / str(index)).mkdir()
        net.save(tmp_path / str(index) / "best.keras")
        state = {"epoch": 10 + index, "best_epoch": index, "best": 0.5, "seconds": 100 * (index + 1)}
        (tmp_path / str(index) / "state.json").write_text(json.dumps(state))
    first = tmp_path / "first"
    pair = ["--member", str(tmp_path / "0" / "best.keras"), "--member", str(tmp_path / "1" / "best.keras")]
    assert ensemble.main(["emotion", *pair, "--mirror", "--out", str(first), "--data", str(fer_csv)]) == 0

    out = tmp_path / "out"
    argv = ["emotion", "--member", str(first / "emotion.keras"), "--member", str(tmp_path / "2" / "best.keras")]
    assert ensemble.main([*argv, "--out", str(out), "--data", str(fer_csv)]) == 0
    model = keras.saving.load_model(out / "emotion.keras", safe_mode=True)
    faces = np.random.default_rng(4).integers(0, 256, (4, 48, 48, 1)).astype(np.float32)
    expected = sum(net(faces).numpy() for net in nets) / 3  # flat: no nested mean, and no mirror view now
    np.testing.assert_allclose(model(faces).numpy(), expected, rtol=1e-5, atol=1e-6)

    card = json.loads((out / "emotion.json").read_text())
    assert card["architecture"] == "ensemble(tiny + small + wide)" and card["mirror_averaged"] is False
    assert [m["training"]["epochs_run"] for m in card["members"]] == [10, 11, 12]
    assert card["members"][1]["file"].endswith("emotion.keras#small[1]")
    assert card["training"]["train_seconds"] == 600


def test_one_network_of_an_ensemble_can_be_picked_by_index(tmp_path, fer_csv, capsys):
    import keras

    from training import ensemble

    nets = [small_model(seed, name=name) for seed, name in ((11, "tiny"), (12, "small"), (13, "wide"))]
    for index, net in enumerate(nets):
        (tmp_path / str(index)).mkdir()
        net.save(tmp_path / str(index) / "best.keras")
        state = {"epoch": 20 + index, "best_epoch": index, "best": 0.5, "seconds": 10}
        (tmp_path / str(index) / "state.json").write_text(json.dumps(state))
    pair_dir = tmp_path / "pair"
    pair = ["--member", str(tmp_path / "0" / "best.keras"), "--member", str(tmp_path / "1" / "best.keras")]
    assert ensemble.main(["emotion", *pair, "--out", str(pair_dir), "--data", str(fer_csv)]) == 0

    out = tmp_path / "out"
    third = str(tmp_path / "2" / "best.keras")
    argv = ["emotion", "--member", f"{pair_dir / 'emotion.keras'}#1", "--member", third]
    assert ensemble.main([*argv, "--out", str(out), "--data", str(fer_csv)]) == 0
    model = keras.saving.load_model(out / "emotion.keras", safe_mode=True)
    faces = np.random.default_rng(5).integers(0, 256, (4, 48, 48, 1)).astype(np.float32)
    expected = (nets[1](faces).numpy() + nets[2](faces).numpy()) / 2  # the first network is left out
    np.testing.assert_allclose(model(faces).numpy(), expected, rtol=1e-5, atol=1e-6)
    card = json.loads((out / "emotion.json").read_text())
    assert card["architecture"] == "ensemble(small + wide)"
    assert [m["training"]["epochs_run"] for m in card["members"]] == [21, 22]

    for bad in (f"{pair_dir / 'emotion.keras'}#2", f"{third}#0"):  # past the end; not an ensemble
        assert ensemble.main(["emotion", "--member", bad, "--member", third, "--out", str(tmp_path / "x")]) == 2
        message = capsys.readouterr().err.strip()
        assert message.startswith("error: ") and "#" in message and "\n" not in message


def test_one_network_of_an_ensemble_can_start_a_training_run(tmp_path, fer_csv):
    """`facelens train --init-from FILE#INDEX` trains on a shipped ensemble's network after its run folder
    is gone: it gets that network's weights and own name, and the card's record of how it was trained."""
    from inference.errors import WeightsError
    from training import ensemble
    from training.trained import load_trained

    nets = [small_model(seed, name=name) for seed, name in ((21, "tiny"), (22, "small"))]
    for index, net in enumerate(nets):
        (tmp_path / str(index)).mkdir()
        net.save(tmp_path / str(index) / "best.keras")
        state = {"epoch": 30 + index, "best_epoch": index, "best": 0.5, "seconds": 10}
        (tmp_path / str(index) / "state.json").write_text(json.dumps(state))
    pair = ["--member", str(tmp_path / "0" / "best.keras"), "--member", str(tmp_path / "1" / "best.keras")]
    assert ensemble.main(["emotion", *pair, "--out", str(tmp_path / "pair"), "--data", str(fer_csv)]) == 0
    shipped = tmp_path / "pair" / "emotion.keras"

    picked = load_trained(Path(f"{shipped}#1"), "--init-from", (48, 48, 1), 7, "emotion")
    assert picked.name == "small"
    for before, after in zip(nets[1].get_weights(), picked.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    assert ensemble.member_record(Path(f"{shipped}#1"), "emotion")["epochs_run"] == 31
    with pytest.raises(WeightsError, match="^--init-from .*no #2"):
        load_trained(Path(f"{shipped}#2"), "--init-from", (48, 48, 1), 7, "emotion")
