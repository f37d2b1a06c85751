"""Render weights/README.md (the human half of the model cards) from the machine-readable cards.

Every number in that file is copied from a card, and every card number was written by a command recorded
next to it (`facelens train`, `facelens eval --write-card`, `python -m training.cost --write-card`), so the
prose can never drift from what was measured.

    python -m training.card_report [--weights DIR] [--out weights/README.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from inference.cards import TASKS, ModelCard, default_weights_dir, load_card
from inference.errors import FaceLensError

INTENDED_USE = {
    "emotion": "Live feedback on the facial expression of a cooperative, mostly frontal face (demos, teaching, "
    "media annotation). Expressions are not feelings: the model reads posed or spontaneous facial movement.",
    "gender": "Annotating perceived gender presentation in media and demos. It outputs only the two labels "
    "UTKFace provides and says nothing about anyone's gender identity.",
    "race": "Auditing datasets and demos for the spread of perceived appearance groups, with the error rates "
    "below in mind. The five UTKFace groups are coarse social categories, not biology.",
}
KNOWN_LIMITS = {
    "emotion": "Trained on FER2013's 48x48 grey web images (mostly adults, frontal). Disgust has only 547 "
    "training faces and Fear is often confused with Sad and Surprise (see the confusion matrix). Side views, "
    "occlusions (masks, hands) and strong lighting lower accuracy. FER2013's own labels are noisy: FER+ "
    "annotators disagree with about a quarter of them.",
    "gender": "Children (0-12) are the weakest group by far: their faces carry few of the cues the model uses. "
    "UTKFace labels are binary; the model cannot express anything else.",
    "race": "'Others' (Hispanic, Latino, Middle Eastern, ...) is the rarest and least accurate class. The groups "
    "come from UTKFace's annotators' judgement of appearance; mixed and ambiguous faces get one label anyway.",
}
NEVER = (
    "Never use these outputs to make decisions about people (hiring, access, policing, "
    "surveillance, identification); they are estimates with the error rates shown."
)


def pct(value: float) -> str:
    return f"{100 * value:.1f}%"


ENGINE_WORDS = {
    "tflite-int8": "int8 TFLite (int8 weights, activations quantized per face)",
    "tflite": "float32 TFLite",
    "tf": "float32 tf.function",
}


def engine_text(engine: str | None) -> str:
    """', run as <engine in words>' for a known engine, else nothing (cards written before engines were kept)."""
    return f", run as {ENGINE_WORDS[engine]}" if engine in ENGINE_WORDS else ""


def evaluation_section(key: str, result: dict[str, Any]) -> list[str]:
    lines = [
        f"#### {key}: {pct(result['accuracy'])} accuracy, macro F1 {result['macro_f1']:.3f} (n = {result['n']})",
        "",
    ]
    per_class = result.get("per_class", {})
    if per_class:
        lines += [
            "| " + " | ".join(per_class) + " |",
            "|" + "---:|" * len(per_class),
            "| " + " | ".join(pct(v) for v in per_class.values()) + " |",
            "",
        ]
    for grouping, table in (result.get("per_group") or {}).items():
        counts = (result.get("per_group_n") or {}).get(grouping, {})
        gap = (result.get("per_group_gap") or {}).get(grouping)
        cells = [f"{name} {pct(acc)}" + (f" ({counts[name]})" if name in counts else "") for name, acc in table.items()]
        gap_text = f" — gap {100 * gap['gap']:.1f} pt ({gap['best']} vs {gap['worst']})" if gap else ""
        lines.append(f"- by {grouping}{gap_text}: " + ", ".join(cells))
    if result.get("per_group"):
        lines.append("")
    run_as = engine_text(result.get("engine"))
    lines += [f"Command: `{result.get('command', '?')}` ({result.get('date', '')}{run_as})", ""]
    return lines


def validation_text(training: dict[str, Any]) -> str:
    """The validation score, or why there is no held-out one (a refit on train + val faces)."""
    score = pct(training.get("val_accuracy") or 0)
    if training.get("validation_seen"):
        return f"trained on the validation faces too, so its validation accuracy ({score}) is not held out"
    return f"validation accuracy {score}"


def training_text(training: dict[str, Any]) -> str:
    """One run's record, followed by the run it was fine-tuned from, so a model's whole training is told."""
    if not training:
        return "no training record was found beside this file"
    # A run folder's checkpoint is known only by its state.json (no dataset or hardware): say so.
    source = training.get("dataset") or f"run folder `{training.get('run_dir', '?')}`"
    average = training.get("weight_average") or {}
    chosen = (
        f"the weight average of epochs {average['first_epoch']}-{average['last_epoch']}"
        if average.get("exported")
        else f"best epoch {training.get('best_epoch')}"
    )
    text = (
        f"{source} ({training.get('epochs_run')} epochs, {chosen}, {validation_text(training)}), "
        f"{training.get('train_seconds', 0) / 3600:.2f} h"
    )
    if training.get("hardware"):
        text += f" on {training['hardware']}"
    if training.get("command"):
        text += f"; `{training['command']}`"
    if training.get("resumed_with"):
        text += ", resumed with " + ", ".join(f"`{command}`" for command in training["resumed_with"])
    parent = training.get("init_from")
    if parent:
        text += f"; fine-tuned from `{Path(parent.get('file', '?')).name}`: " + training_text(parent)
    return text


def model_section(card: ModelCard) -> list[str]:
    d = card.details
    training = d.get("training", {})
    cost = d.get("cost", {})
    spec = card.input
    lines = [f"## {card.task}: `{card.file}`", ""]
    lines += [
        f"- **Classes, in output order:** {', '.join(card.classes)}",
        f"- **Input:** {spec.size}x{spec.size} {spec.color}, pixel values 0..255 (the model rescales). "
        f"Crop: the detector's box, squared around its centre, enlarged by margin {spec.margin} "
        "(see Crop policy). Prepared by `inference.preprocess.prepare_faces`, the same function training uses.",
        f"- **Architecture:** `{d.get('architecture', '?')}`, {d.get('parameters', 0):,} parameters"
        + (f", {cost['flops_per_face'] / 1e6:.1f} MFLOPs per face" if "flops_per_face" in cost else ""),
    ]
    if cost:
        spread = cost.get("total_ms_per_face_batch8_rounds_range")
        rounds = (
            f", the median of {cost['rounds']} rounds, whose totals ranged {spread[0]:.2f}-{spread[1]:.2f} ms"
            if spread and cost.get("rounds", 1) > 1
            else ""
        )
        lines.append(
            f"- **Cost on this CPU:** {cost.get('ms_per_face_batch8', float('nan')):.2f} ms per face at "
            f"batch 8{engine_text(cost.get('engine'))}; all three models together "
            f"{cost.get('total_ms_per_face_batch8_all_three', float('nan')):.2f} ms per face{rounds} "
            f"({cost.get('hardware', '')}, load {cost.get('load_average_1min', '?')}; "
            f"`{cost.get('command', '')}`)"
        )
    if d.get("members"):
        count = len(d["members"])
        what = f"{count} networks' probabilities" if count > 1 else "one network's probabilities"
        if d.get("mirror_averaged"):
            what += " on each face and on its mirror image (flip averaging inside the model: one compiled call)"
        lines.append(
            f"- **Training:** the mean of {what} ({validation_text(training)}); training took "
            f"{training.get('train_seconds', 0) / 3600:.2f} h; `{training.get('command')}`. Members:"
        )
        lines += [
            f"  - `{member.get('architecture')}` ({member.get('parameters', 0):,} parameters): "
            + training_text(member.get("training", {}))
            for member in d["members"]
        ]
    elif training:
        lines.append("- **Training:** " + training_text(training))
    lines += [
        f"- **Intended use:** {INTENDED_USE[card.task]} {NEVER}",
        f"- **Known limits:** {KNOWN_LIMITS[card.task]}",
        "",
        "### Test results",
        "",
    ]
    evaluations = d.get("evaluations", {})
    if not evaluations:
        lines += ["Not evaluated yet: run `facelens eval ... --write-card`.", ""]
    for key, result in evaluations.items():
        lines += evaluation_section(key, result)
    return lines


HEADER = """# FaceLens model cards

The human half of the cards; the machine-readable half is `<task>.json` beside each model. This file is
generated from those JSON files by `python -m training.card_report` — edit the cards' commands, not this text.

All three models were trained by FaceLens's own `facelens train` on public research datasets
(FER2013 + FER+ votes; UTKFace), which are licensed for non-commercial research only. Nothing is downloaded
at run time. Test faces were never used for training or for choosing a checkpoint: FER2013 PrivateTest
(PublicTest chose the epoch); UTKFace's seeded, stratified test split in `splits/utk-faces-split.json`
(its val split chose the epoch).

**Crop policy.** At run time a face is the detector's box, squared, plus the model's margin. FER2013 faces
and UTKFace chips are both about one Haar box wide (measured: the cascade's box on a padded FER face is 0.97 of
the image; on a UTKFace chip 1.02, shifted 9% down), so the models use margin 0 and training crops UTKFace
chips with the Haar box itself (`training.data.utk.haar_box`). MTCNN boxes are mapped to Haar geometry
by the detector, so both detectors feed the models the same framing.
"""


def render(weights_dir: Path | None) -> str:
    lines = [HEADER]
    for task in TASKS:
        try:
            card = load_card(task, weights_dir)
        except FaceLensError:
            continue
        lines += model_section(card)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.card_report", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="weights folder (default: the shipped weights)")
    parser.add_argument("--out", type=Path, help="write here instead of <weights>/README.md")
    args = parser.parse_args(argv)
    folder = args.weights or default_weights_dir()
    out = args.out or folder / "README.md"
    try:
        out.write_text(render(folder))
    except OSError as exc:
        print(f"card_report: error: cannot write {out}: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
