"""`python -m training.ensemble_search`: every subset's validation score from one int8 pass per network."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import small_model


@pytest.fixture
def three_networks(tmp_path):
    files = []
    for seed, size in ((1, 48), (2, 40), (3, 40)):  # two trained at a smaller size, shrunk like in an ensemble
        path = tmp_path / f"net{seed}.keras"
        small_model(seed, shape=(size, size, 1), name=f"net{seed}").save(path)
        files.append(str(path))
    return files


def search(argv, capsys) -> dict:
    from training import ensemble_search

    assert ensemble_search.main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_subset_scores_what_its_built_ensemble_scores_in_eval(tmp_path, fer_csv, three_networks, capsys):
    from training import ensemble, evaluate

    members = [arg for path in three_networks for arg in ("--member", path)]
    result = search(["emotion", *members, "--data", str(fer_csv)], capsys)
    assert result["split"] == "PublicTest" and result["engine"] == "tflite-int8"
    rows = result["subsets"]
    assert len(rows) == 7  # 2^3 - 1
    assert [row["correct"] for row in rows] == sorted((row["correct"] for row in rows), reverse=True)
    single_flops = {row["members"][0]: row["mflops_per_face"] for row in rows if len(row["members"]) == 1}
    for row in rows:
        assert row["n"] == 7 and row["mflops_per_face"] == pytest.approx(
            sum(single_flops[m] for m in row["members"]), abs=0.2
        )

    for row in (r for r in rows if len(r["members"]) == 2):  # each pair, built and scored the long way
        out = tmp_path / "pair"
        pair = [arg for path in row["members"] for arg in ("--member", path)]
        assert ensemble.main(["emotion", *pair, "--out", str(out), "--data", str(fer_csv)]) == 0
        capsys.readouterr()
        argv = ["emotion", "--dataset", "fer2013", "--path", str(fer_csv), "--split", "PublicTest"]
        assert evaluate.main([*argv, "--weights", str(out), "--engine", "tflite-int8", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["accuracy"] == row["accuracy"]


def test_a_subset_of_small_networks_sees_faces_prepared_at_its_own_size(tmp_path, fer_csv, three_networks, capsys):
    """A pair of 40 px networks builds into a 40 px ensemble, so it must be scored on faces prepared at 40 px,
    not on the largest candidate's 48 px faces shrunk (those differ by a few faces on real data)."""
    from pathlib import Path

    from training import ensemble
    from training.ensemble_search import load_candidates
    from training.eval_data import load_eval_set
    from training.evaluate import load_attribute_model, predict, resolve_weights

    candidates, _ = load_candidates("emotion", [Path(p) for p in three_networks], fer_csv)
    assert [c.size for c in candidates] == [48, 40, 40]
    assert sorted(candidates[0].probs) == [48] and sorted(candidates[1].probs) == [40, 48]
    pair = ["--member", three_networks[1], "--member", three_networks[2], "--out", str(tmp_path / "pair")]
    assert ensemble.main(["emotion", *pair, "--data", str(fer_csv)]) == 0
    weights = resolve_weights("emotion", tmp_path / "pair")
    faces = load_eval_set("fer2013", "emotion", fer_csv, "PublicTest", weights.card.input, weights.card.classes)
    built = predict(load_attribute_model("emotion", weights, "tflite-int8"), faces.images)
    searched = (candidates[1].probs[40] + candidates[2].probs[40]) / 2
    np.testing.assert_allclose(searched, built, atol=1e-6)
    assert np.abs((candidates[1].probs[48] + candidates[2].probs[48]) / 2 - built).max() > 1e-4


def test_max_size_top_and_mirror(fer_csv, three_networks, capsys):
    members = [arg for path in three_networks for arg in ("--member", path)]
    argv = ["emotion", *members, "--data", str(fer_csv)]
    plain = search([*argv, "--max-size", "1"], capsys)["subsets"]
    assert len(plain) == 3 and all(len(row["members"]) == 1 for row in plain)
    assert len(search([*argv, "--top", "2"], capsys)["subsets"]) == 2
    mirrored = search([*argv, "--max-size", "1", "--mirror"], capsys)["subsets"]
    flops = {row["members"][0]: row["mflops_per_face"] for row in plain}
    for row in mirrored:  # every network also runs on the mirror image: twice the FLOPs
        assert row["mflops_per_face"] == pytest.approx(2 * flops[row["members"][0]], abs=0.2)


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--member", "nowhere.keras", "--member", "nowhere2.keras"], "not found: nowhere.keras"), ([], "two or more")],
)
def test_bad_members_get_exit_code_2_and_one_line(fer_csv, three_networks, capsys, extra, message):
    from training import ensemble_search

    members = extra or ["--member", three_networks[0]]
    assert ensemble_search.main(["emotion", *members, "--data", str(fer_csv)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
