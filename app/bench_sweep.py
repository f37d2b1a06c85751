"""How analysis cost grows: frames per second and milliseconds per frame for 1, 4 and 8 faces at 480p, 720p
and 1080p, for each detector (`facelens bench --sweep`, printed as the README's Markdown table).

The test frames are synthetic but the faces are real: the demo's two portrait sprites (`app.demo`) pasted in
a grid on the demo's background at each size, so every cell of the table sees the same faces, and the truth
boxes are known (the table says how many faces the detector actually found, because a detector that finds
nothing is cheap for the wrong reason). Faces are about a fifth of the frame height — a person at a webcam —
but smaller when eight must fit. Each configuration cycles through a few slightly shifted variants, so the
tracker sees faces that move a little, as in a real stream.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from app import demo
from inference.types import ATTRIBUTES, FaceBox

RESOLUTIONS: tuple[tuple[int, int], ...] = ((640, 480), (1280, 720), (1920, 1080))
FACE_COUNTS: tuple[int, ...] = (1, 4, 8)
DEFAULT_CELL_SECONDS = 2.0
MIN_FRAMES = 5
WARMUP_FRAMES = 2
FACE_HEIGHT_FRACTION = 0.22
# Face px per grid cell px: sprites are SPRITE_RATIO (2.2) faces wide with a soft transparent edge, and at
# this spacing a neighbour's opaque part stops short of the face next to it.
CELL_PER_FACE = 1.6
JITTER_PX: tuple[tuple[int, int], ...] = ((0, 0), (3, 2), (6, 0), (3, -2))
IOU_FOUND = 0.5


def grid(faces: int, width: int, height: int) -> tuple[int, int]:
    """(columns, rows) giving the largest square cell for `faces` faces, fewest empty cells on ties."""
    best = max(
        ((cols, math.ceil(faces / cols)) for cols in range(1, faces + 1)),
        key=lambda cr: (min(width / cr[0], height / cr[1]), -(cr[0] * cr[1] - faces)),
    )
    return best


def synthetic_frame(width: int, height: int, faces: int, variant: int = 0) -> tuple[np.ndarray, list[FaceBox]]:
    """A BGR frame with `faces` real faces in a grid, and their true boxes."""
    cols, rows = grid(faces, width, height)
    cell_w, cell_h = width / cols, height / rows
    face_px = min(FACE_HEIGHT_FRACTION * height, min(cell_w, cell_h) / CELL_PER_FACE)
    dx, dy = JITTER_PX[variant % len(JITTER_PX)]
    canvas = demo.background(width, height).copy()
    sprites = list(demo.sprites().values())
    boxes = []
    for i in range(faces):
        row, col = divmod(i, cols)
        cx, cy = (col + 0.5) * cell_w + dx, (row + 0.5) * cell_h + dy
        demo._paste(canvas, sprites[i % len(sprites)], cx, cy, face_px)
        boxes.append(FaceBox(cx - face_px / 2.0, cy - face_px / 2.0, face_px, face_px))
    return canvas, boxes


def found(detections: Sequence[FaceBox], truth: Sequence[FaceBox]) -> int:
    """How many true faces some detection overlaps at IoU >= 0.5."""
    return sum(1 for t in truth if any(t.iou(d) >= IOU_FOUND for d in detections))


def measure_cell(analyzer: Any, width: int, height: int, faces: int, seconds: float) -> dict[str, Any]:
    """Analyse one configuration back to back for `seconds` (at least MIN_FRAMES frames) on this thread:
    the cost of analysis alone, without the capture and display threads of the live benchmark."""
    frames = [synthetic_frame(width, height, faces, v) for v in range(len(JITTER_PX))]
    analyzer.reset()
    for i in range(WARMUP_FRAMES):  # compiles the model bucket for this face count, untimed
        analyzer.analyze(frames[i % len(frames)][0], i, i / demo.FPS)
    analyzer.reset()
    totals: list[float] = []
    stages: dict[str, list[float]] = {key: [] for key in ("detect", "preprocess", "models", "track")}
    hits: list[int] = []
    start, cpu_start = time.perf_counter(), time.process_time()
    index = 0
    while index < MIN_FRAMES or time.perf_counter() - start < seconds:
        image, truth = frames[index % len(frames)]
        result = analyzer.analyze(image, index, index / demo.FPS)
        timings = result.timings
        totals.append(timings["total"])
        for key in ("detect", "preprocess", "track"):
            stages[key].append(timings.get(key, 0.0))
        stages["models"].append(sum(timings.get(attr, 0.0) for attr in ATTRIBUTES))
        hits.append(found(analyzer.last_boxes, truth))
        index += 1
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "detector": analyzer.detector.name,
        "width": width,
        "height": height,
        "faces": faces,
        "found": round(float(np.mean(hits)), 2),
        "frames": index,
        "analysis_fps": round(index / elapsed, 2),
        "ms_per_frame": round(float(np.mean(totals)), 2),
        # Process CPU time (every thread) per frame: the work itself, much less sensitive than wall time to
        # other programs sharing the CPU; on an idle machine wall time is about this divided by the cores used.
        "cpu_ms_per_frame": round(cpu * 1000.0 / index, 2),
        **{f"{key}_ms": round(float(np.mean(values)), 2) for key, values in stages.items()},
    }


def run_sweep(
    models: Mapping[str, Any],
    detector: str | None = None,
    seconds: float | None = None,
    resolutions: Iterable[tuple[int, int]] = RESOLUTIONS,
    face_counts: Iterable[int] = FACE_COUNTS,
) -> dict[str, Any]:
    """Every (detector, resolution, face count) cell; `detector` None runs every registered detector."""
    from app.bench import build_analyzer, load_average
    from detectors.base import available_detectors

    names = [detector] if detector else available_detectors()
    seconds = seconds or DEFAULT_CELL_SECONDS
    load_before = load_average()
    rows = []
    for name in names:
        analyzer = build_analyzer(name, models)
        try:
            for width, height in resolutions:
                for faces in face_counts:
                    rows.append(measure_cell(analyzer, width, height, faces, seconds))
        finally:
            analyzer.detector.close()
    return {
        "mode": "sweep",
        "seconds_per_cell": seconds,
        "rows": rows,
        "load_before": load_before,
        "load_after": load_average(),
    }


def format_sweep(report: Mapping[str, Any]) -> str:
    """The README table (Markdown) and the machine it was measured on."""
    machine = report["machine"]
    lines = [
        "| detector | frame | faces (found) | analysis fps | ms / frame | CPU ms / frame | detect ms | preprocess ms "
        "| models ms |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['detector']} | {r['width']}x{r['height']} | {r['faces']} ({r['found']:g}) | "
            f"{r['analysis_fps']:.1f} | {r['ms_per_frame']:.1f} | {r['cpu_ms_per_frame']:.1f} | {r['detect_ms']:.1f} | "
            f"{r['preprocess_ms']:.1f} | {r['models_ms']:.1f} |"
        )
    engines = ", ".join(f"{task} {engine}" for task, engine in machine["model_engines"].items())
    lines += [
        "",
        f"Machine: {machine['cpu_count']} CPUs ({machine['cpu']}), {machine['platform']}, "
        f"GPU used: {'yes' if machine['gpu_used'] else 'no'}; models: {engines}; "
        f"load average {report['load_before']} before, {report['load_after']} after; "
        f"{report['seconds_per_cell']:g} s per cell, analysis thread only.",
    ]
    return "\n".join(lines)
