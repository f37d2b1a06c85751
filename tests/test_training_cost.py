"""training.cost: FLOPs counted by hand-checkable rules, timing through the app's inference path, card write-back."""

from __future__ import annotations

import json
import shutil

import keras
import pytest

from inference.cards import TASKS, load_card
from training.cost import count_flops, main, measure


def test_flops_are_two_times_the_multiply_adds_of_conv_and_dense_layers():
    inputs = keras.Input((10, 10, 2))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same")(x)  # 10*10*8 outputs x 3*3*2 MACs = 14,400
    x = keras.layers.Conv2D(4, 3, strides=2, padding="valid")(x)  # 4*4*4 outputs x 3*3*8 = 4,608
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)  # 4*4*4 x 3*3 = 576
    x = keras.layers.SeparableConv2D(6, 1)(x)  # depthwise 4*4*4 x 1 = 64, pointwise 4*4*6 x 4 = 384
    x = keras.layers.GlobalAveragePooling2D()(x)  # not counted
    outputs = keras.layers.Dense(3, activation="softmax")(x)  # 6*3 = 18
    model = keras.Model(inputs, outputs)
    assert count_flops(model) == 2 * (14_400 + 4_608 + 576 + 64 + 384 + 18)


def test_nested_models_are_counted_once():
    inner_in = keras.Input((4,))
    inner = keras.Model(inner_in, keras.layers.Dense(5)(inner_in))
    outer_in = keras.Input((4,))
    outer = keras.Model(outer_in, keras.layers.Dense(2)(inner(outer_in)))
    assert count_flops(outer) == 2 * (4 * 5 + 5 * 2)


def test_a_nested_model_called_twice_counts_twice():
    inner_in = keras.Input((4,))
    inner = keras.Model(inner_in, keras.layers.Dense(5)(inner_in))
    outer_in = keras.Input((4,))
    twice = keras.layers.Average()([inner(outer_in), inner(keras.layers.Dense(4)(outer_in))])
    assert count_flops(keras.Model(outer_in, twice)) == 2 * (2 * 4 * 5 + 4 * 4)


def test_measure_through_the_inference_path(tiny_weights_dir):
    from inference.models import load_model

    numbers = measure(load_model("gender", tiny_weights_dir), batch=8, repeats=5)
    assert numbers["ms_per_face_batch8"] > 0
    assert numbers["flops_per_face"] == count_flops(keras.saving.load_model(tiny_weights_dir / "gender.keras"))
    assert numbers["parameters"] > 0


def test_cli_json_and_write_card(tiny_weights_dir, tmp_path, capsys):
    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights_dir, weights)
    assert main(["--weights", str(weights), "--json", "--repeats", "3", "--rounds", "3", "--write-card"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["models"]) == set(TASKS)
    total = sum(m["ms_per_face_batch8"] for m in report["models"].values())
    assert report["total_ms_per_face_batch8"] == pytest.approx(total, abs=1e-3)
    low, high = report["total_ms_per_face_batch8_rounds_range"]
    assert report["rounds"] == 3 and 0 < low <= high
    for numbers in report["models"].values():  # a model's best call is no slower than its median one
        assert numbers["ms_per_face_batch8_best"] <= numbers["ms_per_face_batch8"]
    card = load_card("race", weights)
    assert card.details["note"] == "untrained test model"
    assert card.details["cost"]["flops_per_face"] == report["models"]["race"]["flops_per_face"]
    assert card.details["cost"]["total_ms_per_face_batch8_all_three"] == report["total_ms_per_face_batch8"]
    assert card.details["cost"]["total_ms_per_face_batch8_rounds_range"] == [low, high]


def test_cli_missing_weights_is_exit_2(tmp_path, capsys):
    assert main(["--weights", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model card not found" in err[0]


def test_the_cpu_is_named_with_its_model_and_widest_simd_level():
    from training.cost import cpu_description

    milan = "processor\t: 0\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: sse4_2 avx avx2 fma\n"
    assert cpu_description(milan).startswith("AMD EPYC (family 25 model 1, avx2), ")
    genoa = milan.replace("model\t\t: 1", "model\t\t: 17").replace("fma", "fma avx512f avx512_vnni")
    assert cpu_description(genoa).startswith("AMD EPYC (family 25 model 17, avx512_vnni), ")
    assert cpu_description("model name\t: Some CPU\n").startswith("Some CPU, ")
