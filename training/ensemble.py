"""Average the class probabilities of several trained models of one task into one shippable `.keras` model.

Why: on a 2-core CPU a second, different network is cheaper to train than a bigger one to convergence, and
two independently trained networks make partly different mistakes, so their mean is usually more accurate
than either. The result is a single Keras functional model (stock `Average` layer: loads with
`safe_mode=True`), so the app, `facelens eval` and `training.cost` treat it like any other model, and it
runs as ONE compiled call per batch. All members must share the task's colour; sizes may differ.

    python -m training.ensemble emotion --member weights/emotion.keras --member runs/emotion_small/best.keras \
        --out DIR

A member is a `.keras` file; its training record comes from the card beside it (`<task>.json`) or, for a
run-folder checkpoint, from the run's `state.json`. The ensemble's card lists every member's record.

A member that is itself an ensemble made here (e.g. the shipped `weights/gender.keras`) contributes its
networks, each with its record from that ensemble's card, instead of being nested whole: so a shipped model
can be recombined with new networks after the runs that made it are gone, and `--mirror` alone decides
whether the result averages the mirror view. `FILE#INDEX` takes only that network of such an ensemble
(0-based, in its card's member order), so one member of a shipped model can be swapped for a new one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from inference.cards import DEFAULT_CLASSES, TASKS, ModelCard, card_path
from inference.errors import FaceLensError, WeightsError
from training.auxiliary import with_heads
from training.precision import as_precision
from training.tasks import TASK_CONFIGS, VALIDATION_SPLIT


def member_record(model_file: Path, task: str) -> dict[str, Any]:
    """What we know about how a member was trained: its card's training block, or its run's state; for
    `FILE#INDEX`, the record the ensemble's card kept for that network."""
    path, index = split_selection(Path(model_file))
    if index is not None:
        records = kept_records(path, task)
        return records[index] if index < len(records) else {}
    card = card_of(model_file, task)
    if card:
        record = dict(card.get("training", {}))
        kept = records_in(card)
        if kept:  # an ensemble: its networks' own records, so its lineage can be counted run by run
            record["members"] = kept
        return record
    state = model_file.parent / "state.json"
    if state.is_file():
        data = json.loads(state.read_text())
        record: dict[str, Any] = {
            "epochs_run": data.get("epoch"),
            "best_epoch": data.get("best_epoch"),
            "val_accuracy": round(float(data.get("best", 0.0)), 4),
            "train_seconds": round(float(data.get("seconds", 0.0))),
            "run_dir": str(model_file.parent),
            **({"command": data["commands"][0]} if data.get("commands") else {}),
        }
        # The run's own parent and teachers, so a model's lineage (and its total training time) stays whole.
        settings = data.get("settings") or {}
        if settings.get("init_from"):
            parent = Path(settings["init_from"])
            record["init_from"] = {"file": str(parent), **member_record(parent, task)}
        if settings.get("train_on_val"):
            record["validation_seen"] = True
        if settings.get("teacher"):
            record["teachers"] = [{"file": t, **member_record(Path(t), task)} for t in settings["teacher"]]
        return record
    return {}


MEMBER_PREFIX = "member"


def base_name(model_name: str) -> str:
    """A network's own name, without the `member<i>_` prefix an ensemble gave it."""
    head, _, rest = model_name.partition("_")
    return rest if head.startswith(MEMBER_PREFIX) and head[len(MEMBER_PREFIX) :].isdigit() and rest else model_name


def networks_of(model) -> list:
    """The member networks of an ensemble built by `build_ensemble`, in member order; [] for a plain network."""
    import keras

    inner = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if not inner or not all(base_name(m.name) != m.name for m in inner):
        return []
    return sorted(inner, key=lambda m: int(m.name.partition("_")[0][len(MEMBER_PREFIX) :]))


def kept_records(path: Path, task: str) -> list[dict[str, Any]]:
    """The training record an ensemble's card kept for each of its networks, in member order ([] if none)."""
    return records_in(card_of(path, task))


def records_in(card: dict[str, Any]) -> list[dict[str, Any]]:
    """The training record an ensemble's card kept for each of its networks ([] for a single network's card)."""
    return [dict(entry.get("training", {})) for entry in card.get("members", [])]


def card_of(model_file: Path, task: str) -> dict[str, Any]:
    """The card beside `model_file` that describes it ({} if none): the task's own, else another task's (a
    network grown out of another task's, `facelens train --new-head`, keeps its parent's record)."""
    for name in dict.fromkeys([task, *TASKS]):
        beside = card_path(name, model_file.parent)
        card = json.loads(beside.read_text()) if beside.is_file() else {}
        if card.get("file") == model_file.name:
            return card
    return {}


def expand_member(path: Path, model, task: str) -> list[tuple[str, Any, dict[str, Any]]]:
    """(file label, network, training record) for each network in a member file: the file itself for a plain
    network, or each network of an ensemble with the record its card kept for it."""
    networks = networks_of(model)
    if not networks:
        return [(str(path), model, member_record(path, task))]
    records = kept_records(path, task)
    records = records if len(records) == len(networks) else []
    return [
        (f"{path}#{base_name(net.name)}[{index}]", net, records[index] if records else {})
        for index, net in enumerate(networks)
    ]


def split_selection(member: Path) -> tuple[Path, int | None]:
    """`FILE#INDEX` -> (FILE, INDEX); a plain file (even one whose name holds a '#') -> (file, None)."""
    head, mark, index = str(member).rpartition("#")
    if member.is_file() or not mark or not index.isdigit():
        return member, None
    return Path(head), int(index)


def select_networks(expanded: list, index: int | None, member: Path) -> list:
    """All of a member's networks, or only the one `FILE#INDEX` picked out of an ensemble."""
    if index is None:
        return expanded
    if len(expanded) < 2:
        raise WeightsError(f"{member}: the file is one network, not an ensemble to pick #{index} from")
    if index >= len(expanded):
        raise WeightsError(f"{member}: the ensemble has networks #0-#{len(expanded) - 1}, no #{index}")
    return [expanded[index]]


def mirror_image(inputs, width: int):
    """The faces flipped left-right, built from stock layers (a fixed anti-diagonal Dense along the width
    axis between two Permutes) so the saved model still loads with `safe_mode=True`; exact, and ~0.2 % of
    a face CNN's multiply-adds."""
    import keras
    import numpy as np

    rows = keras.layers.Permute((1, 3, 2), name="mirror_in")(inputs)  # (h, c, w): width last
    flip = keras.layers.Dense(width, use_bias=False, trainable=False, name="mirror")
    flipped = flip(rows)
    flip.set_weights([np.fliplr(np.eye(width, dtype=np.float32))])
    return keras.layers.Permute((1, 3, 2), name="mirror_out")(flipped)


def chosen_epoch(record: dict[str, Any]) -> str:
    """The epoch a member's weights come from, or the span of epochs its exported weight average covers."""
    average = record.get("weight_average") or {}
    if average.get("exported"):
        return f"mean of {average['first_epoch']}-{average['last_epoch']}"
    return str(record.get("best_epoch", "?"))


def lineage_runs(record: dict[str, Any]) -> dict[str, int]:
    """Training seconds of every run a model took to make, by run: its own, the run it was fine-tuned
    from and, for a distilled model, its teachers' (and so on back). Keyed by the run's command, so a
    network that is both a teacher and an ensemble member is counted once. An ensemble (a record with
    `members`) is the sum of its networks' runs, never its own total on top of them."""
    if record.get("members"):
        return lineage_seconds_by_run(*record["members"])
    runs = {str(record.get("command") or record.get("run_dir") or id(record)): int(record.get("train_seconds") or 0)}
    for earlier in [record.get("init_from"), *record.get("teachers", [])]:
        if earlier:
            runs.update(lineage_runs(earlier))
    return runs


def lineage_seconds_by_run(*records: dict[str, Any]) -> dict[str, int]:
    """Training seconds of every run behind these models, by run, each run once."""
    runs: dict[str, int] = {}
    for record in records:
        runs.update(lineage_runs(record))
    return runs


def lineage_seconds(*records: dict[str, Any]) -> int:
    """Total training seconds behind these models, each run counted once."""
    return sum(lineage_seconds_by_run(*records).values())


def build_ensemble(members: list, name: str = "ensemble", mirror: bool = False):
    """One model whose output is the mean of the members' probabilities for the same input — and, with
    `mirror`, for its mirror image too (test-time flip averaging inside the model, so the app, eval and the
    cost benchmark all run it as one compiled call).

    Members may be trained at different face sizes (`facelens train --size`): the ensemble takes the
    largest and shrinks it for the others with a bilinear Resizing layer, the one resize TFLite runs
    natively (area and antialiased resizes do not convert). Measured on the UTKFace validation faces,
    64 px members score the same on 96 px faces shrunk this way as on faces prepared at 64 px (race
    82.07 vs 82.03%, gender 92.68 vs 92.64%)."""
    import keras

    inputs, probs = member_outputs(members, mirror)
    if len(probs) == 1:
        raise WeightsError("an ensemble needs at least two members, or one member with mirror averaging")
    return keras.Model(inputs, keras.layers.Average(name="probs")(probs), name=name)


def member_outputs(members: list, mirror: bool = False, shape: tuple[int, ...] | None = None) -> tuple[Any, list]:
    """(input, each member's probabilities on it and, with `mirror`, on its mirror image): the members'
    shared graph, fed the largest member input (or `shape`) and resized for the smaller ones — one function,
    so an ensemble and `training.ensemble_search`'s single networks see a face identically."""
    import keras

    shapes = {tuple(m.input_shape[1:]) for m in members}
    if len({s[-1] for s in shapes}) != 1:  # grey and colour faces cannot share one input
        raise WeightsError(f"ensemble members take different inputs: {sorted(shapes)}")
    outputs = {m.output_shape[-1] for m in members}
    if len(outputs) != 1:
        raise WeightsError(f"ensemble members predict different numbers of classes: {sorted(outputs, key=str)}")
    shape = tuple(shape or max(shapes))
    inputs = keras.Input(shape, name="face")
    views = [inputs, mirror_image(inputs, shape[1])] if mirror else [inputs]
    resized = {shape[:2]: views}
    for size in {m.input_shape[1:3] for m in members} - {shape[:2]}:
        resize = keras.layers.Resizing(*size, interpolation="bilinear", name=f"to_{size[0]}px")
        resized[size] = [resize(view) for view in views]
    return inputs, [m(view) for m in members for view in resized[tuple(m.input_shape[1:3])]]


def validation_accuracy(task: str, out_dir: Path, data: Path) -> float:
    """The ensemble's accuracy on the split its members' checkpoints were chosen on (never the test split)."""
    from training.eval_data import utk_split_file
    from training.evaluate import evaluate, resolve_weights

    dataset = TASK_CONFIGS[task].dataset
    split_file = utk_split_file(None) if dataset == "utkface" else None  # the shipped split, like training's
    args = argparse.Namespace(
        task=task,
        dataset=dataset,
        path=data,
        split=VALIDATION_SPLIT[dataset],
        split_file=split_file,
        tta=False,
        limit=0,
    )
    return round(float(evaluate(args, resolve_weights(task, out_dir))["accuracy"]), 4)


def load_networks(task: str, member_files: list[Path]) -> tuple[list[str], list, list[dict[str, Any]]]:
    """(labels, networks, training records) for `--member` arguments: each file's networks (all of an
    ensemble's, or the one `FILE#INDEX` picks), float32, named uniquely so they can share one graph."""
    import keras

    expanded = []
    for member in member_files:
        path, index = split_selection(member)
        if not path.is_file():
            raise WeightsError(f"model weights not found: {path}")
        model = as_precision(keras.saving.load_model(path, compile=False, safe_mode=True), "float32")
        # A multi-task run's checkpoint (best.keras, average.keras) joins through its head for this task.
        networks = expand_member(path, with_heads(model, task, ()), task)
        expanded += select_networks(networks, index, member)
    labels, members, records = (list(column) for column in zip(*expanded, strict=True))
    for index, model in enumerate(members):
        model.name = f"{MEMBER_PREFIX}{index}_{base_name(model.name)}"  # unique layer names inside the ensemble
    return labels, members, records


def run(
    task: str, member_files: list[Path], out_dir: Path, command: str, data: Path | None = None, mirror: bool = False
) -> Path:
    """Build, save and card the ensemble; its validation accuracy is measured on `data` (default: the
    task's dataset in ../shared)."""

    if not member_files:
        raise WeightsError("an ensemble needs at least two --member models, or one with --mirror")
    labels, members, records = load_networks(task, member_files)
    ensemble = build_ensemble(members, mirror=mirror)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{task}.keras"
    tmp = out_dir / f".{task}.tmp.keras"
    ensemble.save(tmp)
    os.replace(tmp, target)
    architecture = " + ".join(base_name(m.name) for m in members)
    architecture = f"ensemble({architecture})" if len(members) > 1 else architecture
    architecture = f"mirror-averaged {architecture}" if mirror else architecture
    config = TASK_CONFIGS[task]
    card = ModelCard(
        task,
        DEFAULT_CLASSES[task],
        replace(config.spec, size=int(ensemble.input_shape[1])),  # members may be trained at another --size
        target.name,
        {
            "architecture": architecture,
            "mirror_averaged": mirror,
            "parameters": int(ensemble.count_params()),
            "members": [
                {
                    "file": label,
                    "architecture": base_name(m.name),
                    "parameters": int(m.count_params()),
                    "training": record,
                }
                for label, m, record in zip(labels, members, records, strict=True)
            ],
            "training": {
                "dataset": config.dataset,
                "data_path": config.default_path,
                "epochs_run": " + ".join(str(r.get("epochs_run", "?")) for r in records),
                "best_epoch": " + ".join(chosen_epoch(r) for r in records),
                "val_accuracy": None,
                "train_seconds": lineage_seconds(*records),
                "hardware": next((r["hardware"] for r in records if r.get("hardware")), None),
                "command": command,
            },
        },
    )
    if any(record.get("validation_seen") for record in records):
        card.details["training"]["validation_seen"] = True  # its validation accuracy below is not held out
    card.save(out_dir / f"{task}.json")
    accuracy = validation_accuracy(task, out_dir, data or Path(config.default_path))
    card.details["training"]["val_accuracy"] = accuracy
    card.save(out_dir / f"{task}.json")
    return target


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m training.ensemble", description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=TASKS)
    parser.add_argument(
        "--member",
        action="append",
        type=Path,
        default=[],
        help=".keras file, or FILE#INDEX for one network of an ensemble (repeat)",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for <task>.keras and <task>.json")
    parser.add_argument("--data", type=Path, help="dataset for the validation accuracy (default: the task's)")
    parser.add_argument(
        "--mirror", action="store_true", help="also average each member over the mirror image (one member is enough)"
    )
    args = parser.parse_args(argv)
    try:
        target = run(
            args.task, args.member, args.out, "python -m training.ensemble " + " ".join(argv), args.data, args.mirror
        )
    except FaceLensError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {target} and its card")
    return 0


if __name__ == "__main__":
    sys.exit(main())
