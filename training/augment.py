"""On-the-fly augmentation in NumPy/OpenCV, so the same code feeds Keras on any backend (TensorFlow on this
CPU, JAX on a lent GPU) and the shipped model carries no training-only layers."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random changes: mild enough that a face stays a plausible detector crop."""

    flip: bool = True
    rotation_deg: float = 10.0
    shift: float = 0.08
    zoom: tuple[float, float] = (0.9, 1.1)
    brightness: float = 0.25
    contrast: tuple[float, float] = (0.75, 1.25)


def augment_batch(images: np.ndarray, rng: np.random.Generator, config: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """(n, h, w, c) uint8/float faces → float32 faces, each with its own flip, rotation, shift, zoom,
    brightness and contrast; borders repeat edge pixels the way `crop_face` does at frame edges."""
    n, height, width, channels = images.shape
    out = np.empty((n, height, width, channels), dtype=np.float32)
    angles = rng.uniform(-config.rotation_deg, config.rotation_deg, n)
    scales = rng.uniform(*config.zoom, n)
    shifts = rng.uniform(-config.shift, config.shift, (n, 2)) * (width, height)
    flips = rng.random(n) < 0.5 if config.flip else np.zeros(n, bool)
    gains = rng.uniform(*config.contrast, n)
    offsets = rng.uniform(-config.brightness, config.brightness, n) * 255.0
    center = (width / 2.0, height / 2.0)
    for i in range(n):
        matrix = cv2.getRotationMatrix2D(center, float(angles[i]), float(scales[i]))
        matrix[:, 2] += shifts[i]
        face = images[i].astype(np.float32)
        if flips[i]:
            face = face[:, ::-1]
        warped = cv2.warpAffine(face, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out[i] = warped.reshape(height, width, channels)
    mean = out.mean(axis=(1, 2, 3), keepdims=True)
    out = (out - mean) * gains[:, None, None, None] + mean + offsets[:, None, None, None]
    return np.clip(out, 0.0, 255.0, out=out).astype(np.float32, copy=False)  # float64 gains promoted it


MIXUP_ALPHA = 0.4  # Beta(α, α) of a mixup face's kept share: Zhang et al. (ICLR 2018) used 0.1-0.4 on ImageNet


def mix_batch(
    faces: np.ndarray,
    targets: dict[str, np.ndarray],
    weights: np.ndarray | None,
    rng: np.random.Generator,
    cutmix: float = 0.0,
    mixup: float = 0.0,
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None]:
    """Mixes each face with another face of the batch: a share `cutmix` of the faces get a random rectangle
    of their partner pasted in (CutMix, Yun et al., ICCV 2019), a further share `mixup` are blended whole with
    it (mixup, Zhang et al., ICLR 2018). A mixed face's targets (every head) and loss weight become the mix of
    the two faces' in the proportion of the partner's pixels actually taken.

    Why: the from-scratch UTKFace networks fit their ~19,000 training faces (the XL gender network reached
    97.7% training accuracy at 93.5% validation); a face partly covered by, or blended with, another person's
    forces the network to read every region instead of memorising whole faces, and costs nothing at run time.
    Returns new arrays; the inputs are not changed."""
    n, height, width = faces.shape[:3]
    draw = rng.random(n)
    pasted, blended = draw < cutmix, (draw >= cutmix) & (draw < cutmix + mixup)
    if n < 2 or not (pasted.any() or blended.any()):
        return faces, targets, weights
    partner = rng.permutation(n)
    share = rng.uniform(0.0, 1.0, n)  # a pasted face keeps lambda ~ Beta(1, 1) of its area
    cut_h = np.round(height * np.sqrt(1.0 - share)).astype(int)
    cut_w = np.round(width * np.sqrt(1.0 - share)).astype(int)
    cy, cx = rng.integers(0, height, n), rng.integers(0, width, n)
    blend = rng.beta(MIXUP_ALPHA, MIXUP_ALPHA, n).astype(np.float32)
    out = faces.copy()
    kept = np.ones(n, dtype=np.float32)
    for i in np.flatnonzero(pasted):
        y0, y1 = max(cy[i] - cut_h[i] // 2, 0), min(cy[i] + (cut_h[i] + 1) // 2, height)
        x0, x1 = max(cx[i] - cut_w[i] // 2, 0), min(cx[i] + (cut_w[i] + 1) // 2, width)
        out[i, y0:y1, x0:x1] = faces[partner[i], y0:y1, x0:x1]
        kept[i] = 1.0 - (y1 - y0) * (x1 - x0) / float(height * width)  # the area actually pasted, after clipping
    for i in np.flatnonzero(blended):
        out[i] = blend[i] * faces[i] + (1.0 - blend[i]) * faces[partner[i]]
        kept[i] = blend[i]
    keep = kept[:, None]
    mixed_targets = {name: keep * y + (1.0 - keep) * y[partner] for name, y in targets.items()}
    mixed_weights = None if weights is None else kept * weights + (1.0 - kept) * weights[partner]
    return out, mixed_targets, mixed_weights


def balanced_weights(keys: np.ndarray, power: float = 0.5) -> np.ndarray:
    """Per-sample loss weights ∝ (1 / frequency of the sample's key) ** power, mean 1.

    power 0 = plain loss, 1 = fully balanced. Keys can be a class or a (class, group) cell so rare
    groups — Disgust, the elderly, 'Others' — count for more without being oversampled into overfitting."""
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    weights = (len(keys) / (len(counts) * counts[inverse].astype(np.float64))) ** power
    return (weights / weights.mean()).astype(np.float32)
