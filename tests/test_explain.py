"""Occlusion maps (inference/explain.py): they light up exactly where a decision rests, and the panel
`facelens image --explain` writes has a row per face and a tile per model."""

from __future__ import annotations

import numpy as np

from inference.explain import TILE, explain_face, explanation_panel, occlusion_map
from inference.preprocess import InputSpec
from inference.types import FaceBox


class TopLeftModel:
    """A stand-in model that decides 'bright' vs 'dark' from the top-left quarter of the face alone."""

    task = "emotion"
    classes = ("dark", "bright")
    spec = InputSpec(size=32, color="grey", margin=0.0)

    calls = 0

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        corner = batch[:, :16, :16, 0].mean(axis=(1, 2))
        bright = 1.0 / (1.0 + np.exp(-(corner - 128.0) / 10.0))
        return np.stack([1.0 - bright, bright], axis=1)


def face_with_bright_corner() -> np.ndarray:
    face = np.full((32, 32, 1), 100.0, np.float32)
    face[:16, :16] = 160.0
    return face


def test_occlusion_map_lights_up_only_where_the_decision_rests() -> None:
    whole, heat = occlusion_map(TopLeftModel().predict, face_with_bright_corner(), class_index=1)
    assert heat.shape == (32, 32) and whole[1] > 0.95
    assert heat[:8, :8].min() > 0.03  # hiding the corner makes 'bright' much less likely
    assert heat[24:, :].max() == 0.0 and heat[:, 24:].max() == 0.0  # no patch there touches the corner


def test_explain_face_reports_the_chosen_label_and_a_panel_row_per_face() -> None:
    frame = np.full((64, 96, 3), 100, np.uint8)
    frame[8:24, 8:24] = 160  # the top-left quarter of the face box below
    box = FaceBox(8.0, 8.0, 32.0, 32.0)
    models = {"emotion": TopLeftModel()}
    (explanation,) = explain_face(models, frame, box)
    assert (explanation.attribute, explanation.label) == ("emotion", "bright")
    assert explanation.probability > 0.95 and explanation.heat.shape == (32, 32)
    assert explanation.heat[:8, :8].mean() > explanation.heat[24:, 24:].mean()
    assert models["emotion"].calls == 1  # the whole face rides in the batch of its occluded copies
    panel = explanation_panel(frame, [box, box], [[explanation], [explanation]])
    assert panel.shape[1] == 2 * TILE and panel.shape[0] == 2 * (TILE + 40) and panel.dtype == np.uint8
