"""Classification scores for `facelens eval` and the model cards, in plain NumPy (no scikit-learn dependency).

Conventions: rows of the confusion matrix are true labels, columns predictions, both in the model card's class
order. Macro F1 averages F1 over the classes that occur in the truth or the predictions (scikit-learn's default),
so a class absent from a small test slice neither helps nor hurts. Per-group gaps only compare groups with at
least `MIN_GROUP_N` faces, so a handful of faces cannot dominate the reported best–worst gap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

MIN_GROUP_N = 20


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def macro_f1(matrix: np.ndarray) -> float:
    true_pos = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    present = (support + predicted) > 0
    denominator = support + predicted
    f1 = np.divide(2 * true_pos, denominator, out=np.zeros_like(true_pos), where=denominator > 0)
    return float(f1[present].mean()) if present.any() else 0.0


def group_accuracy(correct: np.ndarray, groups: Sequence[str]) -> tuple[dict[str, float], dict[str, int]]:
    """Accuracy and face count per group name, groups in sorted order."""
    names = np.asarray(groups)
    accuracy, counts = {}, {}
    for name in sorted(set(names.tolist())):
        mask = names == name
        accuracy[name] = float(correct[mask].mean())
        counts[name] = int(mask.sum())
    return accuracy, counts


def group_gap(accuracy: Mapping[str, float], counts: Mapping[str, int], min_n: int = MIN_GROUP_N) -> dict[str, Any]:
    """Best and worst group (among groups with >= min_n faces) and the accuracy difference between them."""
    eligible = [g for g in accuracy if counts[g] >= min_n]
    if not eligible:
        return {"best": None, "worst": None, "gap": None, "min_n": min_n}
    best = max(eligible, key=lambda g: accuracy[g])
    worst = min(eligible, key=lambda g: accuracy[g])
    return {"best": best, "worst": worst, "gap": round(accuracy[best] - accuracy[worst], 4), "min_n": min_n}


def score(
    truth: np.ndarray, predicted: np.ndarray, classes: Sequence[str], groups: Mapping[str, Sequence[str]] | None = None
) -> dict[str, Any]:
    """accuracy, macro_f1, per_class (accuracy = recall per true label), support, confusion and, when groups
    are given, per_group / per_group_n / per_group_gap. Integer labels index `classes`."""
    truth = np.asarray(truth, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    if truth.shape != predicted.shape or truth.size == 0:
        raise ValueError(f"need equally many (>0) true and predicted labels, got {truth.shape} and {predicted.shape}")
    matrix = confusion_matrix(truth, predicted, len(classes))
    support = matrix.sum(axis=1)
    correct = truth == predicted
    result: dict[str, Any] = {
        "n": int(truth.size),
        "accuracy": round(float(correct.mean()), 4),
        "macro_f1": round(macro_f1(matrix), 4),
        "per_class": {c: round(float(matrix[i, i] / support[i]), 4) for i, c in enumerate(classes) if support[i]},
        "support": {c: int(support[i]) for i, c in enumerate(classes)},
        "confusion": {"labels": list(classes), "matrix": matrix.tolist()},
    }
    if groups:
        per_group, per_group_n, gaps = {}, {}, {}
        for grouping, names in groups.items():
            if len(names) != truth.size:
                raise ValueError(f"{len(names)} {grouping} groups for {truth.size} faces")
            accuracy, counts = group_accuracy(correct, names)
            per_group[grouping] = {g: round(a, 4) for g, a in accuracy.items()}
            per_group_n[grouping] = counts
            gaps[grouping] = group_gap(accuracy, counts)
        result.update(per_group=per_group, per_group_n=per_group_n, per_group_gap=gaps)
    return result
