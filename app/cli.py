"""`facelens`: the desktop app by default, headless commands for scripts, tests and benchmarks.

Exit codes: 0 success; 2 bad input (a FaceLensError: no camera, unreadable file, unknown detector,
unwritable output, missing or corrupt weights) with ONE line on stderr and no traceback; 130 after Ctrl-C
(output files are finished first); 1 for anything unexpected, with its traceback, because that is a bug.
Heavy imports (TensorFlow, Qt) happen inside the command that needs them, so `--help` and input errors are
instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from inference.errors import FaceLensError

PROG = "facelens"
# Subcommands owned by other packages: everything after the name is theirs to parse.
DELEGATED = {
    "train": ("training.train", "train an emotion, gender or race model"),
    "eval": ("training.evaluate", "evaluate a model on a dataset (accuracy report)"),
    "bench": ("app.bench", "measure speed (display/analysis fps, latency, per-stage times)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Realtime face attributes (emotion, gender, race) on a webcam, video or photo. "
        "Without a command, opens the desktop app.",
    )
    parser.add_argument("--source", help="what the app opens first: camera index, video or photo path, or 'demo'")
    parser.add_argument("--detector", help="face detector for the app (haar, mtcnn)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    analyze = commands.add_parser(
        "analyze",
        help="annotate a video, camera or the demo headless, with a summary",
        description="Analyze every frame of SOURCE in order (not in real time).",
    )
    analyze.add_argument("source", metavar="SOURCE", help="video or photo path, camera index, or 'demo'")
    _common(analyze)
    analyze.add_argument(
        "--record",
        type=Path,
        metavar="OUT",
        help="write the annotated video (.mp4/.mov/.m4v/.mkv); a per-frame CSV goes beside it unless --log says where",
    )
    analyze.add_argument("--log", type=Path, metavar="OUT.csv", help="write the per-frame, per-face CSV log here")
    analyze.add_argument(
        "--every",
        type=_positive,
        default=1,
        metavar="N",
        help="analyze every Nth frame; the frames between reuse the last result, moved with the "
        "tracker (default 1: every frame)",
    )
    analyze.add_argument(
        "--max-frames",
        type=_positive,
        metavar="N",
        help="stop after N frames (the demo runs one 12 s loop unless given)",
    )
    analyze.add_argument("--bars", action="store_true", help="draw per-class probability bars in the recording")
    analyze.add_argument("--json", action="store_true", help="print the summary as one JSON object")

    image = commands.add_parser(
        "image",
        help="annotate one photo and print per-face results",
        description="Detect every face in PHOTO and print emotion, gender and race.",
    )
    image.add_argument("photo", type=Path, metavar="PHOTO")
    _common(image, detector="mtcnn")
    image.add_argument("--out", type=Path, metavar="FILE", help="save the annotated photo (.png/.jpg)")
    image.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list: box, and each attribute's label, probability and all probabilities",
    )
    image.add_argument("--bars", action="store_true", help="draw per-class probability bars in --out")
    image.add_argument(
        "--explain",
        type=Path,
        metavar="FILE",
        help="save where each model looked (.png/.jpg): per face, an occlusion map for each model's label",
    )

    for name, (_module, text) in DELEGATED.items():
        commands.add_parser(name, help=text, add_help=False)
    return parser


def _common(parser: argparse.ArgumentParser, detector: str = "haar") -> None:
    """`detector`: the default. Video runs on Haar, which keeps up with the frame rate; a photo is scanned once,
    so it gets MTCNN, which finds more faces for about the same start-up time (README, Detection quality)."""
    other = "mtcnn" if detector == "haar" else "haar"
    parser.add_argument("--detector", default=detector, help=f"face detector: {detector} (default) or {other}")
    parser.add_argument(
        "--weights",
        type=Path,
        metavar="DIR",
        help="folder with the models and their cards (default: the installed weights package)",
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] in DELEGATED:
        module = importlib.import_module(DELEGATED[argv[0]][0])
        return int(module.main(argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    if args.command == "analyze":
        from app.headless import run_analyze

        return run_analyze(
            args.source,
            detector=args.detector,
            record=args.record,
            log=args.log,
            every=args.every,
            weights=args.weights,
            max_frames=args.max_frames,
            bars=args.bars,
            as_json=args.json,
        )
    if args.command == "image":
        from app.headless import run_image

        return run_image(
            args.photo,
            out_path=args.out,
            as_json=args.json,
            detector=args.detector,
            weights=args.weights,
            bars=args.bars,
            explain_path=args.explain,
        )
    return _gui(args.source, args.detector)


def _check_display() -> None:
    """Qt aborts the process (no exception, exit 134) when it finds no display; say so in one line instead."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise FaceLensError(
            f"no display for the desktop app (DISPLAY and WAYLAND_DISPLAY are unset); "
            f"'{PROG} analyze' and '{PROG} image' work without one"
        )


def _gui(source: str | None, detector: str | None) -> int:
    _check_display()
    try:
        from app.gui.main_window import run_gui
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] == "PySide6" or "libGL" in str(exc) or "libEGL" in str(exc):
            raise FaceLensError(
                f"cannot start the desktop app ({exc}); the headless commands "
                f"'{PROG} analyze' and '{PROG} image' still work"
            ) from None
        raise
    return int(run_gui(source, detector) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `facelens` command line; returns the exit code (the console script exits with it)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter would bury our one line
    args = list(sys.argv[1:] if argv is None else argv)
    if argv is None and args[:1] == ["train"]:  # this process is the command itself, so it may re-exec
        from training.hugepages import restart_with_huge_pages

        restart_with_huge_pages()
    try:
        return _dispatch(args)
    except FaceLensError as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # argparse (usage errors: 2, --help: 0) and delegated commands
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except Exception:
        traceback.print_exc()
        return 1
