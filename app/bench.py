"""`facelens bench`: how fast FaceLens runs on this machine, reported against the targets of issue 4.

Three measurements, one command:
- live (default): the desktop app's threaded pipeline on a paced source (`app.bench_pipeline.run_live`):
  display, capture and analysis fps, end-to-end latency, how far overlays lag, per-stage times, memory;
- `--headless`: `facelens analyze` throughput, every frame in order (`app.bench_pipeline.run_headless`);
- `--sweep`: how analysis cost grows with faces and frame size (`app.bench_sweep`).

Stage times are milliseconds per frame (a stage that did not run on a frame, such as the models on a frame
without faces, counts as 0, so the analysis stages add up to the analysis total). Every report carries the
machine and its load average, because on a 2-core CPU shared with other work the numbers move a lot.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from app.bench_pipeline import (
    ANALYSIS_STAGES,
    AnalysisLog,
    HeadlessRun,
    LiveRun,
    TimedSource,
    measure_encode,
    run_headless,
    run_live,
    warm_up,
)
from app.sources import open_source
from inference.engines import ENGINE_HELP, ENGINES

DEFAULT_SECONDS = 10.0
# Targets of issue 4 for this machine class (2 CPU cores, no GPU), printed beside the measurements.
TARGET_ANALYSIS_FPS = {"haar": 25.0, "mtcnn": 8.0}
TARGET_LATENCY_P50_MS = {"haar": 60.0}


# --- small measuring helpers ------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else None


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def peak_memory_mib() -> float | None:
    """The process's peak resident memory (ru_maxrss: KiB on Linux, bytes on macOS); None where unknown."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def load_average() -> float | None:
    """The 1-minute load average: on a 2-core machine anything above 2 means the numbers are pessimistic."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(models: Mapping[str, Any]) -> dict[str, Any]:
    """What the numbers were measured on; the README quotes them with every table."""
    import tensorflow as tf

    devices = {task: getattr(model, "device", "CPU:0") for task, model in models.items()}
    return {
        "cpu_count": os.cpu_count(),
        "cpu": _cpu_name(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "opencv": cv2.__version__,
        "gpu_used": any(str(device).upper().startswith("GPU") for device in devices.values()),
        "model_engines": {task: getattr(model, "engine", "?") for task, model in models.items()},
        "model_devices": devices,
    }


# --- reports -----------------------------------------------------------------------------------------------
def _stage_summary(lists: Mapping[str, Sequence[float]]) -> tuple[dict[str, float | None], dict[str, float | None]]:
    means = {key: _round(_mean(values)) for key, values in lists.items()}
    p95 = {key: _round(percentile(values, 95)) for key, values in lists.items()}
    return means, p95


def _common_report(
    mode: str, spec: str, source: TimedSource, detector: str, elapsed: float, cpu_s: float, log: AnalysisLog
) -> dict[str, Any]:
    analyzed = len(log.results)
    faces = sum(log.detections)
    return {
        "mode": mode,
        "source": spec,
        "source_size": list(source.size),
        "source_fps": _round(source.fps),
        "detector": detector,
        "seconds": _round(elapsed, 3),
        "frames": len(source.captured_at),
        "frames_analyzed": analyzed,
        "faces": faces,
        "faces_per_frame": _round(faces / analyzed) if analyzed else 0.0,
        "max_faces": max(log.detections, default=0),
        "analysis_fps": _round(analyzed / elapsed) if elapsed > 0 else 0.0,
        "ms_per_face": _round(log.model_ms_per_face()),
        "cpu_cores_used": _round(cpu_s / elapsed) if elapsed > 0 else None,
    }


def live_report(run: LiveRun, spec: str, detector: str, encode_ms: float | None) -> dict[str, Any]:
    report = _common_report("live", spec, run.source, detector, run.elapsed_s, run.cpu_s, run.analysis)
    stage_lists: dict[str, Sequence[float]] = {"read": run.source.read_ms}
    analysis = run.analysis.stage_ms()
    stage_lists.update({key: analysis[key] for key in ANALYSIS_STAGES})
    stage_lists.update({"follow": run.follow_ms, "render": run.render_ms, "convert": run.convert_ms})
    stages, stages_p95 = _stage_summary(stage_lists)
    stages["encode"] = _round(encode_ms)
    stages["analysis_total"] = _round(_mean(analysis["total"]))
    stages_p95["analysis_total"] = _round(percentile(analysis["total"], 95))
    ready_lat = [
        (ready - run.source.captured_at[r.index]) * 1000.0
        for r, ready in zip(run.analysis.results, run.analysis.ready_at, strict=True)
    ]
    report.update(
        {
            "capture_fps": _round(len(run.source.captured_at) / run.elapsed_s),
            "display_fps": _round(run.displayed / run.elapsed_s),
            "frames_displayed": run.displayed,
            "frames_not_displayed": run.dropped_for_display,
            "latency_ms_p50": _round(percentile(run.latency_ms, 50), 1),
            "latency_ms_p95": _round(percentile(run.latency_ms, 95), 1),
            "analysis_latency_ms_p50": _round(percentile(ready_lat, 50), 1),
            "frames_behind_p50": _round(percentile(run.behind_frames, 50), 1),
            "frames_behind_p95": _round(percentile(run.behind_frames, 95), 1),
            "frames_behind_max": max(run.behind_frames, default=None),
            "stages": stages,
            "stages_p95": stages_p95,
        }
    )
    return report


def headless_report(run: HeadlessRun, spec: str, detector: str) -> dict[str, Any]:
    report = _common_report("headless", spec, run.source, detector, run.elapsed_s, run.cpu_s, run.analysis)
    analysis = run.analysis.stage_ms()
    stage_lists: dict[str, Sequence[float]] = {"read": run.source.read_ms}
    stage_lists.update({key: analysis[key] for key in ANALYSIS_STAGES})
    stages, stages_p95 = _stage_summary(stage_lists)
    stages["analysis_total"] = _round(_mean(analysis["total"]))
    report.update(
        {
            # In-order throughput, decode and detection overlapping the models: what `facelens analyze` achieves.
            # The stages' times overlap, so their sum (analysis_total) is work per frame, not its wall time.
            "frames_per_s": report["analysis_fps"],
            "stages": stages,
            "stages_p95": stages_p95,
        }
    )
    return report


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_report(report: Mapping[str, Any]) -> str:
    """The readable (non-JSON) report: headline numbers against the targets, then the stage table."""
    machine = report["machine"]
    width, height = report["source_size"]
    detector = report["detector"]
    lines = [
        f"FaceLens bench ({report['mode']}): {report['source']} {width}x{height} @ {_fmt(report['source_fps'])} fps, "
        f"detector {detector}, {_fmt(report['seconds'])} s",
        f"machine: {machine['cpu_count']} CPUs ({machine['cpu']}), {machine['platform']}, "
        f"GPU used: {'yes' if machine['gpu_used'] else 'no'}, models: "
        + ", ".join(f"{task} {engine}" for task, engine in machine["model_engines"].items()),
        f"load average: {_fmt(report['load_before'], 2)} before, {_fmt(report['load_after'], 2)} after "
        f"(above {machine['cpu_count']} = other work shares the CPU; the numbers are then pessimistic)",
        "",
    ]
    rows: list[tuple[str, str, str]] = []
    target_fps = TARGET_ANALYSIS_FPS.get(detector)
    if report["mode"] == "live":
        rows += [
            ("source fps (captured)", _fmt(report["capture_fps"]), _fmt(report["source_fps"])),
            ("display fps", _fmt(report["display_fps"]), f"= source ({_fmt(report['source_fps'])})"),
        ]
    rows.append(("analysis fps", _fmt(report["analysis_fps"]), f">= {target_fps:g}" if target_fps else ""))
    if report["mode"] == "live":
        target_lat = TARGET_LATENCY_P50_MS.get(detector)
        rows += [
            (
                "latency ms p50 / p95",
                f"{_fmt(report['latency_ms_p50'], 0)} / {_fmt(report['latency_ms_p95'], 0)}",
                f"p50 <= {target_lat:g}" if target_lat else "",
            ),
            (
                "overlay behind, frames p50 / p95 / max",
                f"{_fmt(report['frames_behind_p50'], 0)} / {_fmt(report['frames_behind_p95'], 0)} / "
                f"{_fmt(report['frames_behind_max'])}",
                "",
            ),
        ]
    else:
        rows.append(("analysis work ms per frame (stages overlap)", _fmt(report["stages"]["analysis_total"]), ""))
    rows += [
        ("faces per frame (max)", f"{_fmt(report['faces_per_frame'], 2)} ({report['max_faces']})", ""),
        ("model ms per face", _fmt(report["ms_per_face"], 2), ""),
        ("CPU cores used (of the machine's)", f"{_fmt(report['cpu_cores_used'], 2)} ({machine['cpu_count']})", ""),
        ("peak memory MiB", _fmt(report["peak_memory_mib"], 0), ""),
    ]
    lines.append(f"{'':<40}{'measured':>16}  target")
    lines += [f"{name:<40}{value:>16}  {target}" for name, value, target in rows]
    lines += ["", f"{'stage (ms per frame)':<40}{'mean':>8}{'p95':>8}"]
    for key, mean in report["stages"].items():
        lines.append(f"{key:<40}{_fmt(mean, 2):>8}{_fmt(report['stages_p95'].get(key), 2):>8}")
    return "\n".join(lines)


# --- command line ------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facelens bench",
        description="Measure FaceLens's speed on this machine: the GUI's pipeline (display and analysis fps, "
        "latency, per-stage times), or headless throughput (--headless), or how cost grows with faces and "
        "resolution (--sweep).",
    )
    parser.add_argument("--source", default="demo", help="camera index, video or photo path, or 'demo' (default)")
    parser.add_argument(
        "--detector", help="face detector: haar (default) or mtcnn; --sweep runs every detector unless given"
    )
    parser.add_argument(
        "--seconds",
        type=_positive_float,
        help=f"how long to measure (default {DEFAULT_SECONDS:g}; with --sweep, per table cell, default 2)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--weights", type=Path, metavar="DIR", help="folder with the models and their cards")
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help=ENGINE_HELP,
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--headless",
        action="store_true",
        help="measure 'facelens analyze' throughput: every frame in order, no pacing, no display",
    )
    mode.add_argument("--sweep", action="store_true", help="analysis cost for 1/4/8 faces at 480p/720p/1080p")
    return parser


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value}")
    return value


def build_analyzer(detector: Any, models: Mapping[str, Any]) -> Any:
    """A tracked FrameAnalyzer (as `facelens analyze` and the GUI build it) for a FaceDetector or a name."""
    from detectors.base import create_detector
    from inference.analyzer import FrameAnalyzer
    from inference.tracking import FaceTracker

    if isinstance(detector, str):
        detector = create_detector(detector)
    return FrameAnalyzer(detector, models, FaceTracker())


def _measure(args: argparse.Namespace, source: Any, detector: Any, models: Mapping[str, Any]) -> dict[str, Any]:
    from inference.render import Renderer

    seconds = args.seconds or DEFAULT_SECONDS
    analyzer = build_analyzer(detector, models)
    warm_up(source, analyzer)
    load_before = load_average()
    if args.headless:
        report = headless_report(run_headless(source, analyzer, seconds), args.source, detector.name)
    else:
        run = run_live(source, analyzer, Renderer(), seconds)
        encode_ms = measure_encode(run.encode_sample, source.fps, source.size, analyzer.classes)
        report = live_report(run, args.source, detector.name, encode_ms)
    report["load_before"], report["load_after"] = load_before, load_average()
    return report


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run `facelens bench`. FaceLensErrors (bad source, detector or weights) propagate to the CLI, which
    prints them as one line with exit code 2; the source and the detector are checked before the models
    load, so a typo costs no waiting."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    out = sys.stdout if out is None else out
    from detectors.base import available_detectors, create_detector

    source = detector = None
    try:
        if args.sweep:
            if args.detector and args.detector not in available_detectors():
                create_detector(args.detector)  # raises the registry's one-line DetectorError
        else:
            source = open_source(args.source)
            detector = create_detector(args.detector or "haar")
        from inference.models import load_models

        models = load_models(args.weights, engine=args.engine)
        if args.sweep:
            from app.bench_sweep import format_sweep, run_sweep

            report = run_sweep(models, args.detector, args.seconds)
        else:
            report = _measure(args, source, detector, models)
    finally:
        for held in (source, detector):
            if held is not None:
                held.close()
    report["machine"] = machine_info(models)
    report["peak_memory_mib"] = _round(peak_memory_mib(), 1)
    if args.json:
        text = json.dumps(report)
    else:
        text = format_sweep(report) if args.sweep else format_report(report)
    out.write(text + "\n")
    return 0


if __name__ == "__main__":  # `python -m app.bench`: through the CLI, for its one-line errors and exit codes
    from app.cli import main as cli_main

    raise SystemExit(cli_main(["bench", *sys.argv[1:]]))
