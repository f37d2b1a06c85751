"""Where each model looked: occlusion maps for the faces of a photo (`facelens image PHOTO --explain FILE`).

The seed projects showed CNN feature maps; a grid of activations says little to someone asking "why did it
say Female?". An occlusion map answers that directly, for any model and engine (it only calls `predict`):
hide one patch of the face at a time behind the face's mean colour, and measure how far the probability of
the label the model chose falls. Where hiding hurts most is what the decision rested on. The occluded copies
of a face (81: 9 x 9 patch positions) go through the model as one batch, which `predict` runs 32 at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from inference.preprocess import crop_face, prepare_faces
from inference.types import ATTRIBUTES, FaceBox

PATCH_FRACTION = 0.25  # a patch is a quarter of the face's side: an eye, the mouth, a cheek
STEPS = 9  # patch positions per side, overlapping so every pixel is hidden by several patches
TILE = 180  # px per face tile in the panel


@dataclass(frozen=True, slots=True)
class Explanation:
    """One model's decision on one face: the label, its probability on the whole face, and the occlusion map
    (face-sized, each pixel the mean fall of that probability when a patch covering it was hidden)."""

    attribute: str
    label: str
    probability: float
    heat: np.ndarray


def occlusion_map(
    predict: Callable[[np.ndarray], np.ndarray], face: np.ndarray, class_index: int | None = None, steps: int = STEPS
) -> tuple[np.ndarray, np.ndarray]:
    """(the whole face's probabilities, the map): how far class `class_index`'s probability (default: the
    class the model chose) falls when each part of `face` (size x size x channels, the model's input) is
    hidden, averaged over the patches covering each pixel; 0 where hiding never hurt. The whole face rides in
    the same batch as its occluded copies, so explaining a face costs one `predict` call per model."""
    size = face.shape[0]
    side = max(1, round(size * PATCH_FRACTION))
    starts = np.linspace(0, size - side, steps).round().astype(int)
    positions = [(int(y), int(x)) for y in starts for x in starts]
    fill = face.reshape(-1, face.shape[-1]).mean(axis=0)
    copies = np.repeat(face[None], len(positions) + 1, axis=0)  # the last copy stays whole
    for k, (y, x) in enumerate(positions):
        copies[k, y : y + side, x : x + side] = fill
    probabilities = np.asarray(predict(copies))
    whole = probabilities[-1]
    chosen = probabilities[:, int(np.argmax(whole)) if class_index is None else class_index]
    falls = np.maximum(chosen[-1] - chosen[:-1], 0.0)
    total = np.zeros((size, size), np.float64)
    count = np.zeros((size, size), np.float64)
    for fall, (y, x) in zip(falls, positions, strict=True):
        total[y : y + side, x : x + side] += fall
        count[y : y + side, x : x + side] += 1
    return whole, (total / np.maximum(count, 1)).astype(np.float32)


def explain_face(models: Mapping[str, object], frame: np.ndarray, box: FaceBox) -> list[Explanation]:
    """Each model's label for the face in `box` and where it looked, in ATTRIBUTES order. `models` maps an
    attribute to anything with `predict`, `classes` and `spec` (an `AttributeModel`)."""
    explanations = []
    for attribute in (a for a in ATTRIBUTES if a in models):
        model = models[attribute]
        face = prepare_faces([crop_face(frame, box, model.spec.margin)], model.spec)[0]
        probabilities, heat = occlusion_map(model.predict, face)
        chosen = int(np.argmax(probabilities))
        explanations.append(Explanation(attribute, model.classes[chosen], float(probabilities[chosen]), heat))
    return explanations


def explanation_panel(
    frame: np.ndarray,
    boxes: Sequence[FaceBox],
    explanations: Sequence[list[Explanation]],
    names: Sequence[str] | None = None,
) -> np.ndarray:
    """One row per face: the face as the detector framed it, then each model's occlusion map over it
    (red: hiding this part changed the decision most), captioned with the label, its probability and the
    largest fall, since each map's colours are scaled to its own largest fall. `names` caption the faces as
    the caller numbers them (default "face 0", "face 1", ... as `facelens image` prints them)."""
    names = names if names is not None else [f"face {index}" for index in range(len(boxes))]
    rows = []
    for name, box, row in zip(names, boxes, explanations, strict=True):
        crop = cv2.resize(crop_face(frame, box, 0.0), (TILE, TILE), interpolation=cv2.INTER_AREA)
        if crop.ndim == 2:
            crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
        tiles = [_captioned(crop, name, "")]
        for explanation in row:
            tiles.append(_captioned(_overlay(crop, explanation.heat), *_caption(explanation)))
        rows.append(np.hstack(tiles))
    width = max(row.shape[1] for row in rows)
    rows = [np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0)), constant_values=255) for row in rows]
    return np.vstack(rows)


def _caption(explanation: Explanation) -> tuple[str, str]:
    top = f"{explanation.attribute}: {explanation.label} {explanation.probability:.0%}"
    return top, f"hidden: up to -{100 * float(explanation.heat.max()):.0f} points"


def _overlay(crop: np.ndarray, heat: np.ndarray) -> np.ndarray:
    scaled = heat / max(float(heat.max()), 1e-6)
    colours = cv2.applyColorMap(cv2.resize((scaled * 255).astype(np.uint8), (TILE, TILE)), cv2.COLORMAP_JET)
    return cv2.addWeighted(crop, 0.45, colours, 0.55, 0.0)


def _captioned(tile: np.ndarray, first: str, second: str) -> np.ndarray:
    caption = np.full((40, tile.shape[1], 3), 255, np.uint8)
    for line, text in enumerate((first, second)):
        cv2.putText(caption, text, (4, 16 + 18 * line), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([tile, caption])
