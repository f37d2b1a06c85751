"""Detection quality and speed of a detector, so "faster" can never silently mean "misses faces".

Recall and precision at IoU >= 0.5 on hand-labelled photos (dlib's example set in
../shared/media/benchmark/dlib_faces: boxes_xywh.csv with split,file,x,y,w,h,ignore), next to OpenCV's
default Haar settings as the baseline, plus the median time to detect on one 640x480 frame.

    python -m detectors.quality [--detector haar|mtcnn|haar-unverified|opencv-default] [--boxes CSV] [--json]

Matching is greedy and one-to-one, highest IoU first. A box marked `ignore` is neither a miss when nothing
finds it nor makes a detection that lands on it a false one (faces too small or blurred to demand).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detectors.base import FaceDetector, create_detector
from inference.errors import DatasetError, FaceLensError
from inference.types import FaceBox

IOU_THRESHOLD = 0.5
BASELINE = "opencv-default"
UNVERIFIED_HAAR = "haar-unverified"
DEFAULT_BOXES = Path(__file__).resolve().parents[2] / "shared/media/benchmark/dlib_faces/boxes_xywh.csv"
TIMING_SIZE = (640, 480)


@dataclass(frozen=True, slots=True)
class LabelledBox:
    box: FaceBox
    ignore: bool


def load_boxes(boxes_csv: Path) -> dict[Path, list[LabelledBox]]:
    """Photo path -> its labelled faces; photo files are relative to the CSV's folder."""
    boxes_csv = Path(boxes_csv)
    if not boxes_csv.is_file():
        raise DatasetError(f"face boxes CSV not found: {boxes_csv}")
    labelled: dict[Path, list[LabelledBox]] = {}
    with boxes_csv.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"file", "x", "y", "w", "h"} - set(reader.fieldnames or ())
        if missing:
            raise DatasetError(f"{boxes_csv} lacks column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            try:
                box = FaceBox(float(row["x"]), float(row["y"]), float(row["w"]), float(row["h"]))
                ignore = str(row.get("ignore") or "0").strip().lower() in ("1", "true", "yes")
            except (TypeError, ValueError) as exc:
                raise DatasetError(f"{boxes_csv}:{line}: bad box ({exc})") from exc
            labelled.setdefault(boxes_csv.parent / row["file"], []).append(LabelledBox(box, ignore))
    if not labelled:
        raise DatasetError(f"{boxes_csv} has no boxes")
    return labelled


def match(
    detections: Sequence[FaceBox], truth: Sequence[LabelledBox], threshold: float = IOU_THRESHOLD
) -> tuple[int, int, int]:
    """(true positives, false positives, misses) for one photo."""
    pairs = sorted(
        ((det.iou(lab.box), i, j) for i, det in enumerate(detections) for j, lab in enumerate(truth)),
        reverse=True,
    )
    used_det: set[int] = set()
    used_truth: set[int] = set()
    hits = ignored = 0
    for iou, i, j in pairs:
        if iou < threshold:
            break
        if i in used_det or j in used_truth:
            continue
        used_det.add(i)
        used_truth.add(j)
        if truth[j].ignore:
            ignored += 1
        else:
            hits += 1
    # A detection left over that still covers an ignored face (e.g. a second box on it) is not held against us.
    for i, det in enumerate(detections):
        if i not in used_det and any(lab.ignore and det.iou(lab.box) >= threshold for lab in truth):
            used_det.add(i)
            ignored += 1
    false_positives = len(detections) - hits - ignored
    misses = sum(not lab.ignore for lab in truth) - hits
    return hits, false_positives, misses


def evaluate(detector: FaceDetector, boxes_csv: Path) -> dict:
    """Recall and precision of `detector` over every photo in `boxes_csv` (plus counts and ms per photo)."""
    labelled = load_boxes(boxes_csv)
    hits = false_positives = misses = 0
    seconds = 0.0
    for photo, truth in labelled.items():
        image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetError(f"cannot read benchmark photo {photo}")
        start = time.perf_counter()
        found = detector.detect(image)
        seconds += time.perf_counter() - start
        h, f, m = match(found, truth)
        hits, false_positives, misses = hits + h, false_positives + f, misses + m
    faces = hits + misses
    detections = hits + false_positives
    return {
        "detector": detector.name,
        "photos": len(labelled),
        "faces": faces,
        "detections": detections,
        "true_positives": hits,
        "false_positives": false_positives,
        "misses": misses,
        "recall": hits / faces if faces else 1.0,
        "precision": hits / detections if detections else 1.0,
        "ms_per_photo": 1000.0 * seconds / len(labelled),
    }


def time_detector(detector: FaceDetector, repeats: int = 20) -> dict[str, float]:
    """Median wall and CPU milliseconds for one 640x480 frame (the astronaut photo, one face), after two
    warm-up calls. CPU time (all threads of this process) is the steadier number on a shared machine:
    other processes stretch wall time but not our own CPU time."""
    from skimage import data

    frame = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), TIMING_SIZE)
    for _ in range(2):
        detector.detect(frame)
    wall, cpu = [], []
    for _ in range(max(1, repeats)):
        start, start_cpu = time.perf_counter(), time.process_time()
        detector.detect(frame)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {
        "ms_per_640x480_frame": 1000.0 * float(np.median(wall)),
        "cpu_ms_per_640x480_frame": 1000.0 * float(np.median(cpu)),
    }


def build(name: str) -> FaceDetector:
    """A registered detector, the OpenCV-defaults baseline (not offered in the app: it is slow), or our Haar
    without ONet's second opinion (to measure what that opinion changes)."""
    from detectors.haar import OPENCV_DEFAULTS, UNVERIFIED, HaarDetector

    if name == BASELINE:
        return HaarDetector(OPENCV_DEFAULTS, name=BASELINE)
    if name == UNVERIFIED_HAAR:
        return HaarDetector(UNVERIFIED, name=UNVERIFIED_HAAR)
    return create_detector(name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m detectors.quality", description=__doc__.splitlines()[0])
    choices = f"haar, mtcnn, {UNVERIFIED_HAAR} or {BASELINE}"
    parser.add_argument("--detector", default="haar", help=f"{choices} (default: haar)")
    parser.add_argument("--boxes", type=Path, default=DEFAULT_BOXES, help="labelled boxes CSV")
    parser.add_argument("--repeats", type=int, default=20, help="timed 640x480 frames per detector")
    parser.add_argument("--json", action="store_true", help="print one JSON object keyed by detector name")
    args = parser.parse_args(argv)

    names = [args.detector] + ([BASELINE] if args.detector != BASELINE else [])
    results = []
    try:
        for name in names:
            detector = build(name)
            try:
                row = evaluate(detector, args.boxes)
                row.update(time_detector(detector, args.repeats))
            finally:
                detector.close()
            results.append(row)
    except FaceLensError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({r["detector"]: r for r in results}, indent=2))
    else:
        print(f"{'detector':<18}{'recall':>16}{'precision':>18}{'ms/640x480':>12}{'cpu ms':>8}")
        for r in results:
            recall = f"{r['recall']:.3f} ({r['true_positives']}/{r['faces']})"
            precision = f"{r['precision']:.3f} ({r['true_positives']}/{r['detections']})"
            print(
                f"{r['detector']:<18}{recall:>16}{precision:>18}{r['ms_per_640x480_frame']:>12.1f}"
                f"{r['cpu_ms_per_640x480_frame']:>8.1f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
