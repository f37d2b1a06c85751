"""`facelens train emotion|gender|race`: data → model → fit with checkpoints/resume → export + card.

Training on a 2-core CPU takes hours, so a run is built to be stopped and resumed: every epoch writes
`last.keras` (with optimizer state) and `state.json`; `--resume` continues from them, `--time-budget` stops
cleanly after N minutes, and the best epoch on the validation split is what gets exported.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from inference.cards import DEFAULT_CLASSES, TASKS, ModelCard  # noqa: E402
from inference.errors import DatasetError, FaceLensError, WeightsError  # noqa: E402
from training.auxiliary import MAIN_OUTPUT, aux_of, aux_targets, parse_aux, with_heads  # noqa: E402
from training.precision import as_precision  # noqa: E402
from training.run_state import RunState, adopt_settings, command_line, given_options, settings_of  # noqa: E402
from training.splits import UTK_SPLIT_FILE  # noqa: E402
from training.tasks import TASK_CONFIGS  # noqa: E402

AVERAGE_FILE = "average.npz"  # running mean of the weights of each epoch since --average-from


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="facelens train", description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=TASKS)
    parser.add_argument("--data", type=Path, help="dataset path (default: the task's dataset in ../shared)")
    parser.add_argument("--arch", help="architecture name from training.architectures")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--patience", type=int, default=10, help="early stopping on validation accuracy")
    parser.add_argument("--run-dir", type=Path, help="checkpoints, log and plot (default runs/<task>)")
    parser.add_argument("--resume", action="store_true", help="continue from <run-dir>/last.keras")
    parser.add_argument(
        "--init-from",
        type=Path,
        help="start a new run from this trained .keras (fine-tuning; --arch is ignored); a multi-task run's "
        "best.keras may start a run for any of its heads; FILE#INDEX takes one network of an ensemble",
    )
    parser.add_argument(
        "--new-head",
        action="store_true",
        help="with --init-from a network trained for another task: keep its trunk and start this task's head "
        "from random weights (its own head stays as an auxiliary one if --aux names it)",
    )
    parser.add_argument("--time-budget", type=float, default=0, help="stop cleanly after this many minutes")
    parser.add_argument(
        "--export",
        type=Path,
        help="write the best model + card into this folder (default <run-dir>/export; the app's own models "
        "are replaced only when this names their folder)",
    )
    parser.add_argument(
        "--split-file", type=Path, help="UTKFace split file (default <export>/splits, made there if absent)"
    )
    parser.add_argument("--size", type=int, help="face size in px (default: the task's recipe)")
    parser.add_argument("--limit", type=int, default=0, help="use only this many training faces (smoke runs)")
    parser.add_argument("--ferplus-weight", type=float, default=0.3, help="share of FER+ votes in emotion targets")
    parser.add_argument("--balance-power", type=float, default=0.5, help="0 plain loss .. 1 fully balanced")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for TensorFlow (0 = all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--teacher",
        type=Path,
        action="append",
        default=[],
        help="distil from this trained .keras (repeat for several; their mirror-averaged mean is the teacher)",
    )
    parser.add_argument("--teacher-weight", type=float, default=0.5, help="share of the teachers in the targets")
    parser.add_argument(
        "--extra-faces",
        type=Path,
        help="gender/race: also train on FER2013's Training faces (this CSV or folder), labelled by the --teacher "
        "models' probabilities (self-training; the dataset's own faces keep --teacher-weight)",
    )
    parser.add_argument(
        "--aux", help="UTKFace labels to predict alongside the task while training, e.g. race,age (multi-task)"
    )
    parser.add_argument("--aux-weight", type=float, default=0.3, help="loss weight of each auxiliary head")
    parser.add_argument(
        "--average-from",
        type=int,
        default=0,
        help="from this epoch on, also keep the mean of each epoch's weights (with a constant learning rate and "
        "no early stopping); the export is that mean when it beats the best epoch on validation",
    )
    parser.add_argument(
        "--export-average",
        action="store_true",
        help="export the weight average even when a single epoch scored higher alone (for an ensemble member: "
        "choose between the two by the ensemble's validation score)",
    )
    parser.add_argument(
        "--train-on-val",
        action="store_true",
        help="also train on the validation faces: the final refit of a recipe already chosen on validation, with "
        "more faces; needs --export-average, since no unseen faces remain to choose an epoch with (the card says "
        "so, and its validation scores are not held out)",
    )
    parser.add_argument(
        "--cutmix",
        type=float,
        default=0.0,
        help="share of training faces that get a patch of another face pasted in, their targets mixed by area "
        "(CutMix; 0 = off)",
    )
    parser.add_argument(
        "--mixup",
        type=float,
        default=0.0,
        help="share of training faces blended whole with another face, their targets mixed in the same "
        "proportion (mixup; 0 = off; with --cutmix, a face gets one or the other)",
    )
    parser.add_argument(
        "--precision",
        choices=("float32", "bfloat16"),
        default="float32",
        help="compute precision while training (bfloat16 keeps float32 weights and is faster on CPUs with AMX or "
        "AVX-512 BF16); the exported model is float32 either way",
    )
    tokens = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(tokens)
    args.command, args.given = command_line(tokens), given_options(tokens)
    if args.size is not None and args.size < 8:
        parser.error(f"--size must be at least 8 px, got {args.size}")
    if args.aux_weight < 0:
        parser.error(f"--aux-weight must not be negative, got {args.aux_weight}")
    if args.average_from < 0:
        parser.error(f"--average-from must be an epoch number (1 or more), got {args.average_from}")
    if not 0.0 <= args.teacher_weight <= 1.0:
        parser.error(f"--teacher-weight must be within 0..1, got {args.teacher_weight}")
    for name in ("cutmix", "mixup"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            parser.error(f"--{name} must be within 0..1, got {getattr(args, name)}")
    if args.cutmix + args.mixup > 1.0 + 1e-9:  # 0.7 + 0.3 must pass despite rounding
        parser.error(f"--cutmix and --mixup are shares of the same faces; together {args.cutmix + args.mixup} > 1")
    if args.new_head and not args.init_from:
        parser.error("--new-head needs --init-from: the network whose trunk the new head reads")
    if args.extra_faces and not args.teacher:
        parser.error("--extra-faces needs --teacher: the teachers label the extra faces")
    if args.extra_faces and args.task == "emotion":
        parser.error("--extra-faces adds FER2013 faces to UTKFace tasks; emotion trains on FER2013 already")
    return args


def balance_keys(dataset: str, faces) -> np.ndarray:
    """The cells class balancing evens out: the label for FER2013; (label, race, age band) for UTKFace, so rare
    groups weigh more, not just rare labels."""
    if dataset == "fer2013":
        return faces.labels.astype(str)
    return np.array(
        [f"{y}|{r}|{a}" for y, r, a in zip(faces.labels, faces.groups["race"], faces.groups["age"], strict=True)]
    )


def load_faces(
    task: str,
    data: str | None,
    spec,
    split_file: Path | None,
    weights_dir: Path,
    ferplus_weight: float = 0.0,
    train_on_val: bool = False,
):
    """(train, val, balancing keys) for the task from its dataset, or from a face pack (`training.pack`)
    when `data` is a `.npz` file: one loader, so a run on a lent GPU sees the faces a run here would.
    With `train_on_val` the training faces include the validation ones (which stay the validation faces too)."""
    from training.pack import is_pack, read_pack
    from training.task_data import fer_split, joined, utk_splits

    config = TASK_CONFIGS[task]
    path = Path(data or config.default_path)
    if is_pack(path):
        train, val, keys = read_pack(path, task, spec)
    elif config.dataset == "fer2013":
        from training.data.fer import load_fer2013

        fer = load_fer2013(path)
        train = fer_split(fer, "Training", spec, ferplus_weight=ferplus_weight)
        # Faces trained on get the training faces' targets (FER+ votes blended in), even when they validate too.
        val = fer_split(fer, "PublicTest", spec, ferplus_weight=ferplus_weight if train_on_val else 0.0)
        keys = balance_keys(config.dataset, train)
    else:
        parts = utk_splits(path, spec, task, split_file or weights_dir / UTK_SPLIT_FILE)
        train, val = parts["train"], parts["val"]
        keys = balance_keys(config.dataset, train)
    if train_on_val:
        train, keys = joined(train, val), np.concatenate([keys, balance_keys(config.dataset, val)])
    if len(val.labels) == 0 or len(train.labels) == 0:
        raise DatasetError(
            f"{path}: too few faces to hold out a validation split ({len(train.labels)} train, "
            f"{len(val.labels)} val); training needs both"
        )
    return train, val, keys


def load_training_data(args: argparse.Namespace, spec, weights_dir: Path):
    """(train, val) SplitData for the task, with soft targets and balancing weights filled in."""
    from training.augment import balanced_weights

    train, val, keys = load_faces(
        args.task, args.data, spec, args.split_file, weights_dir, args.ferplus_weight, args.train_on_val
    )
    n_classes = len(DEFAULT_CLASSES[args.task])
    if train.soft_targets is None:
        train.soft_targets = np.eye(n_classes, dtype=np.float32)[train.labels]
    weights = balanced_weights(keys, args.balance_power)
    if args.limit:
        rng = np.random.default_rng(args.seed)
        pick = np.sort(rng.choice(len(train.labels), min(args.limit, len(train.labels)), replace=False))
        train.images, train.labels = train.images[pick], train.labels[pick]
        train.soft_targets = train.soft_targets[pick]
        train.groups = {name: [names[i] for i in pick] for name, names in train.groups.items()}
        weights = weights[pick]
        val_pick = np.arange(min(len(val.labels), max(args.limit // 4, 16)))
        val.images, val.labels = val.images[val_pick], val.labels[val_pick]
        val.groups = {name: [names[i] for i in val_pick] for name, names in val.groups.items()}
    if args.teacher:
        from training.distill import blend_targets, load_teacher, teacher_probabilities

        teachers = [load_teacher(t, spec.shape, n_classes, args.task) for t in args.teacher]
        extra = np.empty((0, *spec.shape), np.uint8)
        if args.extra_faces:
            from training.extra_faces import unlabelled_fer_faces

            extra = unlabelled_fer_faces(args.extra_faces, spec, args.limit, args.seed)
        labelled = len(train.images)
        probabilities = teacher_probabilities(teachers, np.concatenate([train.images, extra]))
        train.soft_targets = blend_targets(train.soft_targets, probabilities[:labelled], args.teacher_weight)
        if len(extra):
            from training.extra_faces import with_extra_faces

            train, weights = with_extra_faces(train, weights, extra, probabilities[labelled:])
            print(
                f"{args.task}: {len(extra)} extra faces from {args.extra_faces}, labelled by teachers", file=sys.stderr
            )
    return train, val, weights


def hardware_description() -> str:
    import keras

    devices = "CPU"
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        devices = f"{len(gpus)} GPU" if gpus else "CPU"
    elif keras.backend.backend() == "jax":
        import jax

        devices = ", ".join(sorted({d.device_kind for d in jax.devices()}))
    return (
        f"{devices}; {os.cpu_count()} CPU cores; {platform.machine()}; keras {keras.__version__} "
        f"({keras.backend.backend()})"
    )


def make_callbacks(run_dir: Path, state: RunState, args: argparse.Namespace, started: float, prefix: str = ""):
    """`prefix` names the task's own output in Keras's logs ("probs_" when auxiliary heads add outputs), so
    checkpoints, early stopping and the learning-rate schedule follow the task, not the auxiliary labels."""
    import keras

    class Bookkeeping(keras.callbacks.Callback):
        """Records progress for --resume and honours --time-budget at epoch boundaries."""

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            state.data["epoch"] = epoch + 1
            state.data["seconds"] = state.data.get("seconds_before", 0.0) + time.time() - started
            acc = float(logs.get(f"val_{prefix}accuracy", 0.0))
            if acc > state.data["best"]:
                state.data.update(best=acc, best_epoch=epoch + 1)
            state.save()
            if args.time_budget and time.time() - started > args.time_budget * 60:
                print(
                    f"time budget of {args.time_budget} min reached after epoch {epoch + 1}; resume with --resume",
                    file=sys.stderr,
                )
                self.model.stop_training = True

    best = keras.callbacks.ModelCheckpoint(
        run_dir / "best.keras", monitor=f"val_{prefix}accuracy", mode="max", save_best_only=True
    )
    best.best = state.data["best"] or best.best
    callbacks = [
        keras.callbacks.ModelCheckpoint(run_dir / "last.keras"),
        best,
        keras.callbacks.CSVLogger(run_dir / "log.csv", append=True),
    ]
    if args.average_from:
        from training.averaging import WeightAverage

        average = WeightAverage(run_dir / AVERAGE_FILE)

        class Averaging(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch + 1 >= args.average_from:
                    average.add(self.model.get_weights(), epoch + 1)

        # Averaging wants the optimizer to keep exploring at one step size for the whole window.
        callbacks.append(Averaging())
    else:
        callbacks += [
            keras.callbacks.EarlyStopping(monitor=f"val_{prefix}accuracy", mode="max", patience=args.patience),
            keras.callbacks.ReduceLROnPlateau(
                monitor=f"val_{prefix}loss", mode="min", factor=0.5, patience=4, min_lr=2e-5
            ),
        ]
    return [*callbacks, Bookkeeping()]


def finish_average(model, run_dir: Path, state: RunState, train_images: np.ndarray, val_data, prefix: str) -> None:
    """The averaged weights, with batch-norm statistics measured for them, scored on validation and saved as
    `<run-dir>/average.keras`; the score goes to state.json so the export can pick the better of the two."""
    from training.averaging import WeightAverage, measure_batch_norm

    average = WeightAverage(run_dir / AVERAGE_FILE)
    if not average.count:
        return
    average.apply_to(model)
    measure_batch_norm(model, train_images)
    scores = model.evaluate(*val_data, batch_size=256, verbose=0, return_dict=True)
    model.save(run_dir / "average.keras")
    state.data["average"] = {
        "first_epoch": average.first_epoch,
        "last_epoch": average.last_epoch,
        "epochs": average.count,
        "val_accuracy": round(float(scores[f"{prefix}accuracy"]), 4),
    }
    state.save()
    print(
        f"weight average of epochs {average.first_epoch}-{average.last_epoch}: validation accuracy "
        f"{state.data['average']['val_accuracy']:.4f} (best single epoch {state.data['best']:.4f})",
        file=sys.stderr,
    )


def plot_curves(log_csv: Path, out_png: Path, title: str, prefix: str = "", average: dict | None = None) -> None:
    """Loss and accuracy per epoch of the task's output, train vs validation, from the run log; with a weight
    average's record, its validation accuracy as a line over the epochs it covers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    log = pd.read_csv(log_csv)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        ax.plot(log["epoch"] + 1, log[prefix + metric], label="train")
        ax.plot(log["epoch"] + 1, log[f"val_{prefix}{metric}"], label="validation")
        if average and metric == "accuracy":
            span = [average["first_epoch"], average["last_epoch"]]
            ax.plot(span, [average["val_accuracy"]] * 2, "k--", label="validation, weight average")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)


def average_record(state: RunState, args: argparse.Namespace) -> dict | None:
    """The run's weight-average record (epochs, validation accuracy), when this run averages."""
    return state.data.get("average") if args.average_from else None


def exported_average(state: RunState, args: argparse.Namespace) -> dict | None:
    """The run's weight-average record when the average, not the best epoch, is what gets exported."""
    average = average_record(state, args)
    wanted = getattr(args, "export_average", False) or (average and average["val_accuracy"] > state.data["best"])
    return average if average and wanted else None


def export_model(run_dir: Path, weights_dir: Path, task: str, spec, state: RunState, args) -> Path:
    """Best checkpoint (or the weight average, when it scores higher on validation) → `<weights_dir>/<task>.keras`
    without optimizer state, plus its card."""
    import keras

    from training.auxiliary import main_output_only

    average = average_record(state, args)
    use_average = exported_average(state, args) is not None
    source = run_dir / ("average.keras" if use_average else "best.keras")
    model = main_output_only(keras.saving.load_model(source, compile=False, safe_mode=True))
    model = as_precision(model, "float32")
    weights_dir.mkdir(parents=True, exist_ok=True)
    target = weights_dir / f"{task}.keras"
    tmp = weights_dir / f".{task}.tmp.keras"
    model.save(tmp)
    os.replace(tmp, target)
    config = TASK_CONFIGS[task]
    card = ModelCard(
        task,
        DEFAULT_CLASSES[task],
        spec,
        target.name,
        {
            "architecture": model.name,
            "parameters": int(model.count_params()),
            "training": {
                "dataset": config.dataset,
                "data_path": str(args.data or config.default_path),
                "epochs_run": state.data["epoch"],
                "best_epoch": state.data["best_epoch"],
                "val_accuracy": average["val_accuracy"] if use_average else round(state.data["best"], 4),
                "train_seconds": round(state.data["seconds"]),
                "hardware": hardware_description(),
                "batch_size": args.batch_size,
                "ferplus_weight": args.ferplus_weight if task == "emotion" else None,
                "balance_power": args.balance_power,
                "precision": args.precision,
                "command": state.data["commands"][0],
            },
        },
    )
    if average:
        card.details["training"]["weight_average"] = {**average, "exported": use_average}
    if args.train_on_val:  # its validation scores are on faces it trained on
        card.details["training"]["validation_seen"] = True
    if len(state.data["commands"]) > 1:
        card.details["training"]["resumed_with"] = state.data["commands"][1:]
    if args.teacher:
        from training.ensemble import member_record

        card.details["training"]["teachers"] = [{"file": str(t), **member_record(Path(t), task)} for t in args.teacher]
        card.details["training"]["teacher_weight"] = args.teacher_weight
    if args.extra_faces:
        card.details["training"]["extra_faces"] = {
            "dataset": "fer2013",
            "path": str(args.extra_faces),
            "faces": int(state.data.get("extra_faces", 0)),
            "labels": "the teachers' mirror-averaged probabilities",
        }
    if args.aux:
        card.details["training"]["auxiliary_heads"] = list(parse_aux(args.aux, task))
        card.details["training"]["aux_weight"] = args.aux_weight
    if args.init_from:
        from training.ensemble import member_record

        parent = Path(args.init_from)
        card.details["training"]["init_from"] = {"file": str(parent), **member_record(parent, task)}
        if args.new_head:  # the parent was trained for another task: only its trunk carried over
            card.details["training"]["new_head"] = True
    card.save(weights_dir / f"{task}.json")
    return target


def initial_model(args: argparse.Namespace, spec, n_classes: int, aux: tuple[str, ...] = ()):
    """A fresh network of the chosen architecture, or a trained one to fine-tune.

    Why fine-tuning: a run that was still improving when it hit its epoch limit has lost its optimizer
    state once its run folder is gone; continuing from the exported weights at a lower learning rate
    recovers most of what more epochs would have given, without the hours of a run from scratch.
    """
    from training.architectures import ARCHITECTURES

    if args.init_from:
        from training.trained import load_trained

        return load_trained(Path(args.init_from), "--init-from", spec.shape, n_classes, args.task, aux, args.new_head)
    architecture = args.arch or TASK_CONFIGS[args.task].architecture
    if architecture not in ARCHITECTURES:
        raise DatasetError(f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[architecture](spec.shape, n_classes)


def compile_model(model, learning_rate: float, aux: tuple[str, ...], aux_weight: float) -> None:
    """Cross-entropy on the task (soft targets allowed), plus `aux_weight` x cross-entropy per auxiliary head."""
    import keras

    optimizer = keras.optimizers.Adam(learning_rate)
    if not aux:
        model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
        return
    heads = [MAIN_OUTPUT, *(f"aux_{name}" for name in aux)]
    model.compile(
        optimizer=optimizer,
        loss={head: "categorical_crossentropy" for head in heads},
        loss_weights={head: 1.0 if head == MAIN_OUTPUT else aux_weight for head in heads},
        metrics={MAIN_OUTPUT: ["accuracy"]},
    )


def run(args: argparse.Namespace) -> int:
    import keras

    from training.dataset import FaceBatches

    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    config = TASK_CONFIGS[args.task]
    run_dir = args.run_dir or Path("runs") / args.task
    run_dir.mkdir(parents=True, exist_ok=True)
    resuming = args.resume and (run_dir / "last.keras").is_file()
    state = RunState(run_dir / "state.json", fresh=not resuming)
    if resuming:
        for note in adopt_settings(args, state.data.get("settings", {}), args.given):
            print(f"resuming: {note}", file=sys.stderr)
        if "settings" not in state.data:  # a run from before settings were stored: this command states them
            state.data["settings"] = settings_of(args)
            print("resuming: this run predates stored settings; recorded this command's", file=sys.stderr)
    else:
        if args.resume:
            print("nothing to resume; starting a new run", file=sys.stderr)
        state.data["settings"] = settings_of(args)
    if args.export_average and not args.average_from:
        raise DatasetError("--export-average needs a run that averages its weights (--average-from N)")
    if args.train_on_val and not args.export_average:
        raise DatasetError(
            "--train-on-val trains on the validation faces, so they cannot choose what to export: "
            "average the weights and export the mean (--average-from N --export-average)"
        )
    state.record_command(args.command)
    spec = replace(config.spec, size=args.size) if args.size else config.spec
    weights_dir = args.export or run_dir / "export"  # never over the shipped models unless asked to
    keras.utils.set_random_seed(args.seed)

    aux = parse_aux(args.aux, args.task)
    train, val, weights = load_training_data(args, spec, weights_dir)
    state.data["extra_faces"] = train.extra
    n_classes = len(DEFAULT_CLASSES[args.task])
    train_targets, val_targets = train.soft_targets, np.eye(n_classes, dtype=np.float32)[val.labels]
    if aux:
        train_targets = {MAIN_OUTPUT: train_targets, **aux_targets(train.groups, aux, train.extra)}
        val_targets = {MAIN_OUTPUT: val_targets, **aux_targets(val.groups, aux)}
    prefix = f"{MAIN_OUTPUT}_" if aux else ""
    seen = " (trained on too: not held out)" if args.train_on_val else ""
    print(
        f"{args.task}: {len(train.labels)} training faces, {len(val.labels)} validation faces{seen}, "
        f"input {spec.size}x{spec.size} {spec.color}",
        file=sys.stderr,
    )
    if resuming:
        model = keras.saving.load_model(run_dir / "last.keras")
        if tuple(model.input_shape[1:]) != spec.shape:
            raise WeightsError(
                f"{run_dir / 'last.keras'} takes {model.input_shape[1:]} faces, not {spec.shape}: "
                f"resume with the run's --size {model.input_shape[1]}"
            )
        if aux_of(model) != tuple(sorted(aux)):
            raise WeightsError(
                f"{run_dir / 'last.keras'} was trained with --aux {','.join(aux_of(model)) or '(none)'}: "
                "resume with the run's --aux"
            )
        print(
            f"resuming from epoch {state.data['epoch']} (best val accuracy {state.data['best']:.4f})", file=sys.stderr
        )
        state.save()  # the checks above passed, so a legacy run's recorded settings are its own
    else:
        (run_dir / "log.csv").unlink(missing_ok=True)
        model = with_heads(initial_model(args, spec, n_classes, aux), args.task, aux)
        model = as_precision(model, args.precision)
        compile_model(model, args.lr or config.learning_rate, aux, args.aux_weight)
    state.data["seconds_before"] = state.data.get("seconds", 0.0)
    epochs = args.epochs or config.epochs
    from training.augment import AugmentConfig

    batches = FaceBatches(
        train.images,
        train_targets,
        weights,
        args.batch_size,
        AugmentConfig(),
        args.seed,
        state.data["epoch"],
        cutmix=args.cutmix or 0.0,
        mixup=args.mixup or 0.0,
    )
    val_data = (val.images.astype(np.float32), val_targets)
    started = time.time()
    model.fit(
        batches,
        validation_data=val_data,
        epochs=epochs,
        initial_epoch=state.data["epoch"],
        callbacks=make_callbacks(run_dir, state, args, started, prefix),
        verbose=1 if sys.stderr.isatty() else 2,
    )
    if args.average_from:
        finish_average(model, run_dir, state, train.images, val_data, prefix)
    if (run_dir / "log.csv").is_file():
        title = f"{args.task} ({model.name}, {spec.size} px)"
        average = average_record(state, args)
        plot_curves(run_dir / "log.csv", run_dir / "curves.png", title, prefix, average)
    target = export_model(run_dir, weights_dir, args.task, spec, state, args)
    average = exported_average(state, args)
    chosen = (
        f"the weight average ({average['val_accuracy']:.4f})"
        if average
        else f"epoch {state.data['best_epoch']} ({state.data['best']:.4f})"
    )
    print(f"best on validation: {chosen}; exported {target}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except FaceLensError as exc:
        print(f"facelens train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    from training.hugepages import restart_with_huge_pages

    restart_with_huge_pages()
    sys.exit(main())
