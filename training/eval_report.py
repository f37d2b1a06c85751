"""How an evaluation result is shown to a person: a plain-text table and a confusion-matrix PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from inference.errors import OutputError


def _fmt(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:6.1%}"


def format_report(result: dict[str, Any]) -> str:
    """The result as a readable table: headline, per class, per group (with the best–worst gap), confusion."""
    lines = [
        f"{result['task']} on {result['dataset']} {result['split']}: {result['n']} faces"
        + (f" ({result['skipped']} skipped)" if result.get("skipped") else "")
        + (", test-time flip averaging" if result.get("tta") else ""),
        f"weights: {result['weights']}",
        f"accuracy {result['accuracy']:.2%}   macro F1 {result['macro_f1']:.4f}",
        "",
        f"{'class':<16}{'n':>7}{'accuracy':>10}",
    ]
    for label in result["confusion"]["labels"]:
        lines.append(f"{label:<16}{result['support'][label]:>7}{_fmt(result['per_class'].get(label)):>10}")
    for grouping, accuracy in result.get("per_group", {}).items():
        counts = result["per_group_n"][grouping]
        gap = result["per_group_gap"][grouping]
        lines += ["", f"{'by ' + grouping:<16}{'n':>7}{'accuracy':>10}"]
        lines += [f"{group:<16}{counts[group]:>7}{_fmt(acc):>10}" for group, acc in accuracy.items()]
        if gap["gap"] is not None:
            lines.append(
                f"best–worst gap {gap['gap']:.1%} ({gap['best']} vs {gap['worst']}, groups of >= {gap['min_n']} faces)"
            )
    against = result.get("against")
    if against:
        lines += [
            "",
            f"against {against['weights']} (accuracy {against['accuracy']:.2%}): the two differ on "
            f"{against['differ']} faces, this model right on {against['this_right']}, the other on "
            f"{against['other_right']} (sign test p = {against['sign_test_p']:.3f})",
        ]
    labels = result["confusion"]["labels"]
    width = max(6, max(len(label[:8]) for label in labels) + 1)
    lines += [
        "",
        "confusion (rows: true, columns: predicted)",
        " " * 16 + "".join(f"{label[:8]:>{width}}" for label in labels),
    ]
    for label, row in zip(labels, result["confusion"]["matrix"], strict=True):
        lines.append(f"{label:<16}" + "".join(f"{count:>{width}}" for count in row))
    return "\n".join(lines)


def plot_confusion(result: dict[str, Any], path: Path) -> Path:
    """Row-normalised confusion matrix with counts, so rare classes are as readable as common ones."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = result["confusion"]["labels"]
    counts = np.array(result["confusion"]["matrix"], dtype=np.float64)
    rates = np.divide(
        counts,
        counts.sum(axis=1, keepdims=True),
        out=np.zeros_like(counts),
        where=counts.sum(axis=1, keepdims=True) > 0,
    )
    size = 2.6 + 0.7 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                f"{rates[i, j]:.0%}\n{int(counts[i, j])}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if rates[i, j] > 0.5 else "black",
            )
    tta = " +flip" if result.get("tta") else ""
    ax.set_title(
        f"{result['task']} · {result['dataset']} {result['split']}{tta}\n"
        f"n={result['n']}  accuracy {result['accuracy']:.1%}  macro F1 {result['macro_f1']:.3f}",
        fontsize=9,
    )
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the confusion-matrix plot: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
    return Path(path)
