"""`facelens eval emotion|gender|race --dataset D --path P`: score a model on faces it never trained on.

The model is loaded by `inference.models.load_model` and called through `AttributeModel.predict`, and faces are
prepared by the same functions the app uses, so the number reported is the number the app delivers.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import shlex
import shutil
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from inference.cards import DEFAULT_CLASSES, TASKS, ModelCard, card_path, default_weights_dir, load_card  # noqa: E402
from inference.engines import ENGINE_HELP, ENGINES  # noqa: E402
from inference.errors import DatasetError, FaceLensError, WeightsError  # noqa: E402
from training.eval_data import DATASETS, EvalSet, load_eval_set, utk_split_file  # noqa: E402
from training.tasks import VALIDATION_SPLIT  # noqa: E402

CHUNK = 512  # faces converted to float32 and predicted at a time, so a large split never needs GBs at once


@dataclass(frozen=True)
class Weights:
    """Which model to evaluate: its card, the .keras file, and the card file on disk (None when the card was
    inferred because a bare checkpoint was given)."""

    card: ModelCard
    model_file: Path
    card_file: Path | None

    @property
    def folder(self) -> Path:
        return self.model_file.parent


def saved_input_size(model_file: Path) -> int | None:
    """The face size a `.keras` archive was built for, read from its config without loading the model
    (None when the archive does not say, e.g. it is no Keras file: loading it reports that properly)."""
    try:
        with zipfile.ZipFile(model_file) as archive:
            config = json.loads(archive.read("config.json"))
        shapes = [
            layer["config"]["batch_shape"]
            for layer in config["config"]["layers"]
            if layer.get("class_name") == "InputLayer"
        ]
        return int(shapes[0][1]) if len(shapes) == 1 else None
    except (OSError, KeyError, IndexError, TypeError, ValueError, zipfile.BadZipFile):
        return None


def task_card(task: str, model_file: Path) -> ModelCard:
    """The card a checkpoint of the task's training recipe would get (for run-folder checkpoints), at the
    face size the checkpoint was trained at (`facelens train --size`)."""
    from training.tasks import TASK_CONFIGS

    spec = TASK_CONFIGS[task].spec
    size = saved_input_size(model_file)
    return ModelCard(
        task,
        DEFAULT_CLASSES[task],
        dataclasses.replace(spec, size=size) if size else spec,
        model_file.name,
        {"note": "card inferred from the task's training recipe"},
    )


def resolve_weights(task: str, weights: Path | None) -> Weights:
    """A weights folder (with `<task>.json`) or a `.keras` file (card beside it, else the task's recipe)."""
    weights = Path(weights) if weights is not None else default_weights_dir()
    if weights.is_dir():
        card = load_card(task, weights)
        return Weights(card, weights / card.file, card_path(task, weights))
    if weights.is_file() and weights.suffix == ".keras":
        beside = card_path(task, weights.parent)
        if beside.is_file():
            return Weights(load_card(task, weights.parent), weights, beside)
        print(
            f"facelens eval: note: no {beside.name} beside {weights}; assuming the {task} training recipe's "
            f"classes and input",
            file=sys.stderr,
        )
        return Weights(task_card(task, weights), weights, None)
    raise WeightsError(f"{weights}: not a weights folder (with {task}.json) or a .keras file")


def load_attribute_model(task: str, weights: Weights, engine: str = "auto"):
    """Load through `inference.models.load_model` (so faces are scored exactly as the app runs them),
    staging a folder when the file is not the card's own."""
    from inference.models import load_model

    if weights.card_file is not None and weights.card.file == weights.model_file.name:
        return load_model(task, weights.folder, engine=engine)
    if not weights.model_file.is_file():
        raise WeightsError(f"model weights not found: {weights.model_file}")
    with tempfile.TemporaryDirectory(prefix="facelens-eval-") as tmp:
        staged = Path(tmp) / f"{task}.keras"
        try:
            staged.symlink_to(weights.model_file.resolve())
        except OSError:
            shutil.copyfile(weights.model_file, staged)
        dataclasses.replace(weights.card, file=staged.name).save(Path(tmp) / f"{task}.json")
        return load_model(task, Path(tmp), engine=engine)


def predict(model, images: np.ndarray, tta: bool = False) -> np.ndarray:
    """Class probabilities for prepared faces; with `tta`, the mean over each face and its mirror image."""
    out = np.empty((len(images), len(model.classes)), dtype=np.float32)
    for start in range(0, len(images), CHUNK):
        faces = images[start : start + CHUNK].astype(np.float32)
        probs = model.predict(faces)
        if tta:
            probs = (probs + model.predict(np.ascontiguousarray(faces[:, :, ::-1]))) / 2.0
        out[start : start + CHUNK] = probs
    return out


def label_indices(labels: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    position = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(labels.tolist()) - set(position))
    if unknown:
        raise DatasetError(
            f"dataset labels {', '.join(unknown)} are not among the model's classes {', '.join(classes)}"
        )
    return np.array([position[label] for label in labels.tolist()], dtype=np.int64)


def evaluate(args: argparse.Namespace, weights: Weights) -> dict[str, Any]:
    """Load data (cheap checks first), then the model, predict and score."""
    from training.metrics import score

    split_file = args.split_file or (utk_split_file(weights.folder) if args.dataset == "utkface" else None)
    data: EvalSet = load_eval_set(
        args.dataset, args.task, args.path, args.split, weights.card.input, weights.card.classes, split_file
    )
    if args.limit:
        data.images, data.labels = data.images[: args.limit], data.labels[: args.limit]
        if data.groups:
            data.groups = {k: v[: args.limit] for k, v in data.groups.items()}
    truth = label_indices(data.labels, weights.card.classes)
    model = load_attribute_model(args.task, weights, getattr(args, "engine", "auto"))
    started = time.perf_counter()
    probs = predict(model, data.images, args.tta)
    seconds = time.perf_counter() - started
    result = {"task": args.task, "dataset": args.dataset, "split": data.split}
    result.update(score(truth, probs.argmax(axis=1), model.classes, data.groups))
    if getattr(args, "against", None):
        result["against"] = compare_with(args, weights, resolve_weights(args.task, args.against), data, truth, probs)
    result.update(
        skipped=data.skipped,
        tta=bool(args.tta),
        engine=model.engine,
        weights=str(weights.model_file),
        model=weights.card.details.get("architecture"),
        predict_seconds=round(seconds, 2),
    )
    if args.limit:
        result["limit"] = args.limit
    if weights.card.details.get("training", {}).get("validation_seen") and data.split == VALIDATION_SPLIT.get(
        args.dataset
    ):
        result["held_out"] = False  # a refit trained on these faces: this is not a validation score
        print(f"note: {weights.model_file} was trained on the {data.split} faces too: not held out", file=sys.stderr)
    if args.dataset == "utkface" and data.split != "all":
        result["split_file"] = str(split_file)
    return result


def sign_test_p(wins: int, losses: int) -> float:
    """Two-sided exact sign test: how likely a split at least this uneven is if either model were as likely to be
    the one right on a face where they differ."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)


def compare_with(
    args: argparse.Namespace, weights: Weights, other: Weights, data: EvalSet, truth: np.ndarray, probs: np.ndarray
) -> dict[str, Any]:
    """Where another model's predictions on the same faces differ and which of the two is right there. Why: two
    models a few faces apart in accuracy may differ on few faces or on many, and only that count says whether
    the gap is more than noise (a sign test on the faces each alone gets right)."""
    if other.card.classes != weights.card.classes or other.card.input != weights.card.input:
        raise WeightsError(
            f"{other.model_file} takes {other.card.input.size} px {other.card.input.color} faces with classes "
            f"{', '.join(other.card.classes)}: compare models of the same input and classes"
        )
    theirs = predict(load_attribute_model(args.task, other, getattr(args, "engine", "auto")), data.images, args.tta)
    mine, theirs = probs.argmax(axis=1), theirs.argmax(axis=1)
    differ = mine != theirs
    this_right, other_right = int((differ & (mine == truth)).sum()), int((differ & (theirs == truth)).sum())
    return {
        "weights": str(other.model_file),
        "accuracy": round(float((theirs == truth).mean()), 4),
        "differ": int(differ.sum()),
        "this_right": this_right,
        "other_right": other_right,
        "sign_test_p": round(sign_test_p(this_right, other_right), 3),
    }


CARD_KEYS = (
    "dataset",
    "split",
    "n",
    "accuracy",
    "macro_f1",
    "per_class",
    "support",
    "per_group",
    "per_group_n",
    "per_group_gap",
    "skipped",
    "tta",
    "engine",
)


def write_card(weights: Weights, result: dict[str, Any], command: str) -> str:
    """Store the result under card["evaluations"]["<dataset>/<split>"] ("+tta" appended for flip averaging, so
    both numbers can stand side by side), keeping everything else in the card."""
    if weights.card_file is None:
        raise WeightsError(f"--write-card needs a model card beside {weights.model_file}")
    card = load_card(weights.card.task, weights.card_file.parent)  # re-read: keep anything written meanwhile
    key = f"{result['dataset']}/{result['split']}" + ("+tta" if result["tta"] else "")
    entry = {k: result[k] for k in CARD_KEYS if k in result}
    entry.update(command=command, date=datetime.date.today().isoformat())
    card.details.setdefault("evaluations", {})[key] = entry
    card.save(weights.card_file)
    return key


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="facelens eval", description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=TASKS)
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--path", required=True, type=Path, help="dataset file or folder")
    parser.add_argument(
        "--split",
        help="fer2013/ferplus: PrivateTest (default), PublicTest, Training; "
        "utkface: test (default), val, train, all; fairface: val (default), "
        "train; folders: test if present, else all",
    )
    parser.add_argument("--weights", type=Path, help="weights folder or .keras file (default: shipped weights)")
    parser.add_argument("--split-file", type=Path, help="UTKFace split (default <weights>/splits/utk-faces-split.json)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--out-dir", type=Path, default=Path("."), help="where the confusion-matrix PNG goes")
    parser.add_argument(
        "--tta", action="store_true", help="average each face with its mirror image (mirror-averaged models do already)"
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help=ENGINE_HELP,
    )
    parser.add_argument("--write-card", action="store_true", help="store the result in the model card")
    parser.add_argument("--limit", type=int, default=0, help="score only the first N faces (quick checks)")
    parser.add_argument(
        "--against",
        type=Path,
        help="another weights folder or .keras file: count the faces where its predictions differ and which is right",
    )
    args = parser.parse_args(argv)
    if args.limit and args.write_card:
        parser.error("--write-card records full evaluations only; drop --limit")
    return args


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    command = "facelens eval " + shlex.join(argv)
    try:
        weights = resolve_weights(args.task, args.weights)
        if args.write_card and weights.card_file is None:
            raise WeightsError(f"--write-card needs a model card beside {weights.model_file}")
        result = evaluate(args, weights)
        if args.write_card:
            key = write_card(weights, result, command)
            print(f"stored in the {args.task} card under evaluations[{key!r}]", file=sys.stderr)
        if args.json:
            print(json.dumps(result, indent=2))
            return 0
        from training.eval_report import format_report, plot_confusion

        print(format_report(result))
        png = plot_confusion(result, args.out_dir / f"eval_{args.task}_{args.dataset}_{result['split']}.png")
        print(f"\nconfusion matrix plot: {png}")
    except FaceLensError as exc:
        print(f"facelens eval: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
