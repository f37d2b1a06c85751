"""Score every combination of candidate networks on the validation split, from one int8 pass per network.

Why: choosing an ensemble means comparing subsets of the networks at hand, and building and scoring each
subset with `training.ensemble` and `facelens eval` costs a conversion and a full pass per subset (2^n - 1 of
them). A subset's output is the mean of its networks' probabilities, so one pass per network and face size is
enough. Each network runs as the app runs it: an int8 TFLite model, fed faces prepared at the subset's largest
network size and shrunk for the smaller ones exactly as `build_ensemble` does, so a subset's score here is its
built ensemble's `facelens eval` score up to float rounding. The split is fixed to the one checkpoints are
chosen on (FER2013 PublicTest, UTKFace val): a search on the test split would turn its score into a selection
score.

Every subset is listed, so the table also shows how far the best one stands above the rest — with many
candidates the top row's lead over its neighbours is mostly luck, which the selection rule (a tie of a few
faces goes to the cheaper model) is there to absorb.

    python -m training.ensemble_search race --member 'weights/race.keras#0' --member runs/r/export/race.keras \
        [--max-size 3] [--top 20] [--mirror] [--data PATH] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from inference.cards import DEFAULT_CLASSES, TASKS  # noqa: E402
from inference.errors import FaceLensError  # noqa: E402
from training.ensemble import load_networks, member_outputs  # noqa: E402
from training.tasks import TASK_CONFIGS, VALIDATION_SPLIT  # noqa: E402

CHUNK = 64  # faces per interpreter call: one interpreter for full chunks, one for the remainder


@dataclass
class Candidate:
    """One network: its --member label, its input size, its FLOPs per face, and its probabilities on every
    validation face prepared at each candidate size it can take (its own and every larger one, shrunk)."""

    label: str
    size: int
    flops: int
    probs: dict[int, np.ndarray]


def network_probabilities(network, shape: tuple[int, ...], faces: np.ndarray, mirror: bool) -> np.ndarray:
    """`network`'s probabilities (mirror-averaged if asked) on faces of `shape`, through the int8 engine."""
    import keras

    from inference.lite import LiteRunner, convert

    inputs, outputs = member_outputs([network], mirror, shape)
    probs = outputs[0] if len(outputs) == 1 else keras.layers.Average()(outputs)
    run = LiteRunner(convert(keras.Model(inputs, probs), shape, quantize=True), shape)
    return np.concatenate([run(faces[i : i + CHUNK].astype(np.float32)) for i in range(0, len(faces), CHUNK)])


def load_candidates(
    task: str, members: list[Path], data: Path, mirror: bool = False
) -> tuple[list[Candidate], np.ndarray]:
    """Every member network's validation probabilities, and the true class indices.

    A built ensemble takes its largest member's face size and shrinks it for the others, and a face
    prepared at 96 px then shrunk is not the face prepared at 64 px (race: a few validation faces either
    way), so every network is run at each candidate size from its own up, and a subset is scored at its own
    largest size."""
    from training.cost import count_flops
    from training.eval_data import load_eval_set, utk_split_file
    from training.evaluate import label_indices

    labels, networks, records = load_networks(task, members)
    for label, record in zip(labels, records, strict=True):
        if record.get("validation_seen"):
            print(
                f"note: {label} was trained on the validation faces too: its scores here are not held out",
                file=sys.stderr,
            )
    config = TASK_CONFIGS[task]
    split_file = utk_split_file(None) if config.dataset == "utkface" else None
    views = 2 if mirror else 1
    candidates = [
        Candidate(label, int(network.input_shape[1]), views * count_flops(network), {})
        for label, network in zip(labels, networks, strict=True)
    ]
    truth = None
    for size in sorted({c.size for c in candidates}):
        spec = replace(config.spec, size=size)
        faces = load_eval_set(
            config.dataset, task, data, VALIDATION_SPLIT[config.dataset], spec, DEFAULT_CLASSES[task], split_file
        )
        truth = label_indices(faces.labels, DEFAULT_CLASSES[task]) if truth is None else truth
        shape = faces.images.shape[1:]
        for candidate, network in zip(candidates, networks, strict=True):
            if candidate.size <= size:
                candidate.probs[size] = network_probabilities(network, shape, faces.images, mirror)
    return candidates, truth


def score_subsets(
    task: str, candidates: list[Candidate], truth: np.ndarray, max_size: int | None = None
) -> list[dict[str, Any]]:
    """Every subset of up to `max_size` networks, best accuracy first (fewer FLOPs first among equals)."""
    from training.metrics import score

    classes = DEFAULT_CLASSES[task]
    rows = []
    for count in range(1, min(max_size or len(candidates), len(candidates)) + 1):
        for subset in itertools.combinations(range(len(candidates)), count):
            face_size = max(candidates[i].size for i in subset)  # what its built ensemble would take
            probs = np.mean([candidates[i].probs[face_size] for i in subset], axis=0)
            predicted = probs.argmax(axis=1)
            result = score(truth, predicted, classes)
            worst = min(result["per_class"], key=result["per_class"].get)
            rows.append(
                {
                    "members": [candidates[i].label for i in subset],
                    "correct": int((predicted == truth).sum()),
                    "n": result["n"],
                    "accuracy": result["accuracy"],
                    "macro_f1": result["macro_f1"],
                    "worst_class": worst,
                    "worst_class_accuracy": result["per_class"][worst],
                    "mflops_per_face": round(sum(candidates[i].flops for i in subset) / 1e6, 1),
                }
            )
    return sorted(rows, key=lambda row: (-row["correct"], row["mflops_per_face"]))


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'correct':>7} {'accuracy':>8} {'macro F1':>8} {'worst class':>20} {'MFLOPs':>7}  members"]
    for row in rows:
        worst = f"{row['worst_class']} {100 * row['worst_class_accuracy']:.1f}%"
        lines.append(
            f"{row['correct']:>7} {100 * row['accuracy']:>7.2f}% {100 * row['macro_f1']:>7.1f}% {worst:>20} "
            f"{row['mflops_per_face']:>7.1f}  {' + '.join(row['members'])}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m training.ensemble_search", description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=TASKS)
    parser.add_argument(
        "--member", action="append", type=Path, default=[], help=".keras file or FILE#INDEX (repeat, 2 or more)"
    )
    parser.add_argument("--max-size", type=int, help="largest subset scored (default: all the networks)")
    parser.add_argument("--top", type=int, default=0, help="print only the best N subsets (default: all)")
    parser.add_argument("--mirror", action="store_true", help="average every network over the mirror image too")
    parser.add_argument("--data", type=Path, help="dataset folder or file (default: the task's in ../shared)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    if args.max_size is not None and args.max_size < 1:
        parser.error("--max-size must be 1 or more")
    try:
        if len(args.member) < 2:
            raise FaceLensError("a search needs two or more --member networks")
        data = args.data or Path(TASK_CONFIGS[args.task].default_path)
        candidates, truth = load_candidates(args.task, args.member, data, args.mirror)
    except FaceLensError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = score_subsets(args.task, candidates, truth, args.max_size)
    shown = rows[: args.top] if args.top else rows
    if args.json:
        split = VALIDATION_SPLIT[TASK_CONFIGS[args.task].dataset]
        print(json.dumps({"task": args.task, "split": split, "engine": "tflite-int8", "subsets": shown}))
    else:
        print(table(shown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
