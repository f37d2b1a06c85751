"""MTCNN's RNet and ONet under TFLite must give mtcnn's stage code exactly what its Keras networks give."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from detectors.mtcnn_detector import MTCNNDetector, mtcnn_weights
from detectors.mtcnn_lite import ONET, RNET, StageNetwork, network_runner


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FACELENS_CACHE", str(tmp_path))


def keras_network(network):
    from mtcnn.stages.stage_onet import StageONet
    from mtcnn.stages.stage_rnet import StageRNet

    stage = StageRNet if network is RNET else StageONet
    return stage(weights=str(mtcnn_weights(network.weights)))._model


@pytest.mark.parametrize("network", [RNET, ONET], ids=["rnet", "onet"])
def test_each_head_matches_the_keras_network(network) -> None:
    patches = np.random.default_rng(1).uniform(-1.0, 1.0, (5, *network.input_shape)).astype(np.float32)
    expected = [np.asarray(head) for head in keras_network(network)(patches)]
    heads = StageNetwork(network)(patches)
    assert [tuple(head.shape) for head in heads] == [(5, width) for width in network.heads]
    for head, want in zip(heads, expected, strict=True):
        np.testing.assert_allclose(np.asarray(head), want, atol=1e-4)


def test_no_patches_give_empty_heads() -> None:
    """A full scan whose PNet proposed nothing still hands RNet an (empty) batch."""
    heads = StageNetwork(RNET)(np.empty((0, *RNET.input_shape), np.float32))
    assert [tuple(head.shape) for head in heads] == [(0, 4), (0, 2)]


def test_a_second_start_reuses_the_checked_conversion_without_building_the_network(tmp_path, monkeypatch) -> None:
    from detectors import mtcnn_lite

    patches = np.random.default_rng(2).uniform(-1.0, 1.0, (3, *ONET.input_shape)).astype(np.float32)
    first = network_runner(ONET)(patches)
    assert len(list((tmp_path / "tflite").glob("*.npz"))) == 1

    def no_build(network):
        raise AssertionError(f"{network.weights} was built although its conversion is cached")

    monkeypatch.setattr(mtcnn_lite, "_build", no_build)
    np.testing.assert_allclose(network_runner(ONET)(patches), first, atol=1e-6)


def test_the_detector_runs_both_patch_networks_on_tflite_and_finds_the_astronaut() -> None:
    detector = MTCNNDetector()
    _, rnet, onet = detector._mtcnn.stages
    assert isinstance(rnet._model, StageNetwork) and isinstance(onet._model, StageNetwork)
    astronaut = np.ascontiguousarray(data.astronaut()[:, :, ::-1])
    faces = detector.detect(astronaut)
    assert len(faces) == 1 and faces[0].score >= 0.99
    assert detector.refine(astronaut, faces)[0].iou(faces[0]) >= 0.9
