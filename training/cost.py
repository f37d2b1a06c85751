"""What the models cost per face: parameters, FLOPs and milliseconds on this machine, for the model cards.

FLOPs follow the common convention FLOPs = 2 × multiply-adds (MACs) of the convolution and dense layers for one
face; bias adds, batch normalisation (folded into the convolution at inference), activations and pooling are
not counted — they are a few percent at most for these CNNs. Time is measured through the app's own compiled
inference path (`AttributeModel.predict`) at batch 8: the median of many calls, divided by 8, in rounds that
take the three models in turns (each model's number is its median over the rounds).

    python -m training.cost [--weights DIR] [--rounds N] [--json] [--write-card]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from inference.cards import TASKS, default_weights_dir, load_card  # noqa: E402
from inference.engines import ENGINE_HELP, ENGINES  # noqa: E402
from inference.errors import FaceLensError  # noqa: E402

FLOPS_CONVENTION = "2 x multiply-adds of Conv/Dense layers per face (bias, BN, activations, pooling not counted)"


def _layers(model) -> Iterator[Any]:
    """Every leaf layer, descending into nested models — once per call of a nested model, so a network
    run on a face and on its mirror image inside one model counts twice."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            for _ in range(max(1, len(layer._inbound_nodes))):
                yield from _layers(layer)
        else:
            yield layer


def layer_macs(layer) -> int:
    """Multiply-adds of one layer for one input sample, from its weights' shapes and its output shape."""
    from keras import layers

    def volume(shape) -> int:
        return math.prod(int(d) for d in shape[1:])

    if isinstance(layer, layers.SeparableConv2D):
        kh, kw, c_in, multiplier = layer.depthwise_kernel.shape
        out = layer.output.shape
        positions = volume(out) // int(layer.filters)
        return positions * int(c_in * multiplier) * (int(kh * kw) + int(layer.filters))
    if isinstance(layer, layers.DepthwiseConv2D):
        kh, kw = layer.kernel.shape[:2]
        return volume(layer.output.shape) * int(kh * kw)
    if isinstance(layer, layers.Conv2DTranspose):
        kh, kw, c_out, _ = layer.kernel.shape
        return volume(layer.input.shape) * int(kh * kw * c_out)
    if isinstance(layer, (layers.Conv1D, layers.Conv2D, layers.Conv3D)):
        # kernel (*k, c_in / groups, c_out): every output element costs prod(k) * c_in / groups MACs
        return volume(layer.output.shape) * math.prod(int(d) for d in layer.kernel.shape[:-1])
    if isinstance(layer, layers.Dense):
        return volume(layer.output.shape) * int(layer.kernel.shape[0])
    return 0


def count_flops(model) -> int:
    """FLOPs per face (2 × MACs of conv/dense layers)."""
    return 2 * sum(layer_macs(layer) for layer in _layers(model))


def _keras_and_call(model, batch: int):
    """(keras model, compiled batch call) for a keras.Model or an inference.models.AttributeModel."""
    import keras

    if isinstance(model, keras.Model):
        import tensorflow as tf

        shape = tuple(int(d) for d in model.inputs[0].shape[1:])
        graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(
            tf.TensorSpec((batch, *shape), tf.float32)
        )
        return model, shape, lambda x: np.asarray(graph(tf.constant(x)))
    keras_model = keras.saving.load_model(model.path, compile=False, safe_mode=True)
    return keras_model, model.spec.shape, model.predict


def measure(model, batch: int = 8, repeats: int = 200, warmup: int = 5) -> dict[str, Any]:
    """Parameters, FLOPs per face and the median milliseconds per face of one compiled call on `batch` faces.

    `model` is a keras.Model or an AttributeModel (then timed through its own `predict`, i.e. what the app runs).
    The median, not the mean, so a burst of other load on the machine does not decide the number."""
    keras_model, shape, call = _keras_and_call(model, batch)
    faces = np.random.default_rng(0).uniform(0, 255, (batch, *shape)).astype(np.float32)
    for _ in range(warmup):
        call(faces)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call(faces)
        times.append(time.perf_counter() - started)
    per_call_ms = statistics.median(times) * 1000.0
    return {
        "parameters": int(keras_model.count_params()),
        "flops_per_face": count_flops(keras_model),
        f"ms_per_face_batch{batch}": round(per_call_ms / batch, 4),
        f"ms_per_face_batch{batch}_best": round(min(times) * 1000.0 / batch, 4),
        "repeats": repeats,
    }


SIMD_LEVELS = ("avx512_vnni", "avx_vnni", "avx512f", "avx2", "avx")  # widest first; int8 kernels differ most


def cpu_description(cpuinfo: str | None = None) -> str:
    """The CPU the milliseconds were measured on, with its family/model and widest SIMD level: two machines
    that both said 'AMD EPYC, 2 cores' ran the same int8 models ~5x apart here (1.44 vs 7-8 ms per face for
    all three; the slower has AVX2, no AVX-512), so a card's number is comparable only with the CPU named."""
    try:
        text = Path("/proc/cpuinfo").read_text() if cpuinfo is None else cpuinfo
    except OSError:
        text = ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or platform.processor() or platform.machine()
    flags = set(fields.get("flags", "").split())
    detail = [f"family {fields['cpu family']} model {fields['model']}"] if "cpu family" in fields else []
    detail += [level for level in SIMD_LEVELS if level in flags][:1]
    suffix = f" ({', '.join(detail)})" if detail else ""
    return f"{name}{suffix}, {os.cpu_count()} cores"


def measure_all(
    weights_dir: Path | None, batch: int, repeats: int, engine: str = "auto", rounds: int = 1
) -> dict[str, Any]:
    """Each model measured once per round, the three taking turns, and its number the median over rounds.

    Why rounds: on a shared 2-core VM the other tenants' load comes in spells of seconds to minutes that a
    median of 200 calls does not outlast (the same int8 set measured 2.03-6.02 ms in nine runs within half an
    hour on 2026-12-03); interleaved rounds put every model through the same spells, and the spread of the
    rounds' totals is kept, so a card shows how steady its number was."""
    from inference.models import load_model

    models = {task: load_model(task, weights_dir, engine=engine) for task in TASKS}
    key = f"ms_per_face_batch{batch}"
    measured: dict[str, list[dict[str, Any]]] = {task: [] for task in TASKS}
    for _ in range(rounds):
        for task, model in models.items():
            measured[task].append(measure(model, batch, repeats))
    per_model = {}
    for task, runs in measured.items():
        per_model[task] = {**runs[0], key: round(statistics.median(run[key] for run in runs), 4)}
        per_model[task][f"{key}_best"] = min(run[f"{key}_best"] for run in runs)
        per_model[task]["engine"] = models[task].engine
    round_totals = [sum(measured[task][i][key] for task in TASKS) for i in range(rounds)]
    return {
        "models": per_model,
        f"total_{key}": round(sum(m[key] for m in per_model.values()), 4),
        "rounds": rounds,
        f"total_{key}_rounds_range": [round(min(round_totals), 4), round(max(round_totals), 4)],
        "batch": batch,
        "flops_convention": FLOPS_CONVENTION,
        "hardware": cpu_description(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "date": datetime.date.today().isoformat(),
    }


def write_cards(weights_dir: Path | None, report: dict[str, Any], command: str) -> None:
    """Store each model's numbers (and the total of all three) under card["cost"], keeping the rest."""
    folder = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    key = f"ms_per_face_batch{report['batch']}"
    for task, numbers in report["models"].items():
        card = load_card(task, folder)
        card.details["cost"] = {
            **numbers,
            f"total_{key}_all_three": report[f"total_{key}"],
            "rounds": report["rounds"],
            f"total_{key}_rounds_range": report[f"total_{key}_rounds_range"],
            "flops_convention": report["flops_convention"],
            "hardware": report["hardware"],
            "load_average_1min": report["load_average_1min"],
            "date": report["date"],
            "command": command,
        }
        card.save(folder / f"{task}.json")


def format_table(report: dict[str, Any]) -> str:
    key = f"ms_per_face_batch{report['batch']}"
    header = f"{'model':<10}{'params':>10}{'MFLOPs':>10}{'ms/face':>10}  {'engine':<12}"
    lines = [f"{header}   (batch {report['batch']}, {report['hardware']}, load {report['load_average_1min']})"]
    for task, m in report["models"].items():
        lines.append(
            f"{task:<10}{m['parameters']:>10,}{m['flops_per_face'] / 1e6:>10.1f}{m[key]:>10.3f}  {m.get('engine', '?')}"
        )
    low, high = report[f"total_{key}_rounds_range"]
    spread = f"  (median of {report['rounds']} rounds; rounds {low:.3f}-{high:.3f})" if report["rounds"] > 1 else ""
    lines.append(f"{'total':<10}{'':>20}{report[f'total_{key}']:>10.3f}{spread}")
    lines.append(f"FLOPs = {report['flops_convention']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m training.cost", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="weights folder (default: the shipped weights)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per model per round")
    parser.add_argument(
        "--rounds", type=int, default=5, help="times each model is measured, in turns; its number is the median"
    )
    parser.add_argument("--engine", choices=ENGINES, default="auto", help=ENGINE_HELP)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--write-card", action="store_true", help="store the numbers in each card under 'cost'")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.repeats < 1:
        parser.error("--rounds and --repeats must be at least 1")
    try:
        report = measure_all(args.weights, args.batch, args.repeats, args.engine, args.rounds)
        if args.write_card:
            write_cards(args.weights, report, "python -m training.cost " + shlex.join(argv))
    except FaceLensError as exc:
        print(f"training.cost: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
