"""How well ONet's second opinion (`detectors.verify`) separates Haar's face boxes from its other boxes.

Every Haar box (our settings, unverified) on the hand-labelled dlib_faces photos
(benchmark/dlib_faces/boxes_xywh.csv), on the photos in images/ (*.jpg) and on every `--every`-th frame of the
clips in videos/ (*.mp4) of the media folder (default ../shared/media) is scored by ONet. A box counts as a
face when it overlaps a labelled face (dlib_faces) or, elsewhere, a face that MTCNN finds on the full-size
frame, at IoU >= 0.4 (Haar and MTCNN frame a face a little differently). Prints, per threshold, how many
boxes of each kind stay, and the cost of one ONet call per frame.

    python -m detectors.verify_bench [--media DIR] [--every N] [--margin M] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from detectors.haar import UNVERIFIED, HaarDetector
from detectors.quality import load_boxes
from detectors.region_bench import read_frames
from detectors.verify import FaceVerifier
from inference.errors import DatasetError, FaceLensError
from inference.types import FaceBox

DEFAULT_MEDIA = Path(__file__).resolve().parents[2] / "shared/media"
FACE_IOU = 0.4
THRESHOLDS = (0.1, 0.3, 0.5, 0.7, 0.9)


def labelled_frames(media: Path, every: int) -> Iterator[tuple[str, np.ndarray, list[FaceBox] | None]]:
    """(name, BGR frame, its labelled faces or None when MTCNN is to say where the faces are)."""
    boxes_csv = media / "benchmark/dlib_faces/boxes_xywh.csv"
    labelled = load_boxes(boxes_csv) if boxes_csv.is_file() else {}
    for photo, truth in labelled.items():
        yield photo.name, _read(photo), [item.box for item in truth]
    for photo in sorted((media / "images").glob("*.jpg")):
        yield photo.name, _read(photo), None
    for clip in sorted((media / "videos").glob("*.mp4")):
        frames, _ = read_frames(clip)
        for index in range(0, len(frames), every):
            yield f"{clip.name}#{index}", frames[index], None


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"cannot read {path}")
    return image


def score_boxes(media: Path, every: int, margin: float) -> tuple[list[dict], list[float]]:
    """One row per Haar box (source, side, is it a face, ONet's probability) and the ms of each ONet call."""
    from detectors.mtcnn_detector import MTCNNDetector, MTCNNSettings

    haar = HaarDetector(UNVERIFIED, name="haar-unverified")
    reference = MTCNNDetector(MTCNNSettings(max_side=None))
    verifier = FaceVerifier(margin)
    rows, call_ms = [], []
    for name, frame, truth in labelled_frames(media, every):
        boxes = haar.detect(frame)
        if not boxes:
            continue
        faces = truth if truth is not None else reference.detect(frame)
        start = time.perf_counter()
        probabilities = verifier.face_probability(frame, boxes)
        call_ms.append(1000.0 * (time.perf_counter() - start))
        for box, p in zip(boxes, probabilities, strict=True):
            is_face = any(box.iou(face) >= FACE_IOU for face in faces)
            rows.append({"source": name, "side": round(box.w), "face": is_face, "probability": float(p)})
    return rows, call_ms


def summary(rows: Sequence[dict], call_ms: Sequence[float]) -> dict:
    faces = [r["probability"] for r in rows if r["face"]]
    others = [r["probability"] for r in rows if not r["face"]]
    return {
        "face_boxes": len(faces),
        "other_boxes": len(others),
        "face_probability_range": [min(faces, default=None), max(faces, default=None)],
        "other_probability_range": [min(others, default=None), max(others, default=None)],
        "kept": {
            str(t): {"face_boxes": sum(p >= t for p in faces), "other_boxes": sum(p >= t for p in others)}
            for t in THRESHOLDS
        },
        "onet_call_ms_median": float(np.median(call_ms)) if call_ms else None,
        "others": sorted(
            ({key: r[key] for key in ("source", "side", "probability")} for r in rows if not r["face"]),
            key=lambda r: r["probability"],
            reverse=True,
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m detectors.verify_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=DEFAULT_MEDIA, help="folder with benchmark/, images/, videos/")
    parser.add_argument("--every", type=int, default=15, help="score every N-th frame of each clip")
    parser.add_argument("--margin", type=float, default=0.0, help="enlarge each box by this much per side for ONet")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if not args.media.is_dir():
        print(f"error: media folder not found: {args.media}", file=sys.stderr)
        return 2
    try:
        result = summary(*score_boxes(args.media, max(1, args.every), args.margin))
    except FaceLensError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['face_boxes']} face boxes, {result['other_boxes']} other boxes (margin {args.margin})")
    print(
        f"ONet probability: faces {_range(result['face_probability_range'])}, "
        f"others {_range(result['other_probability_range'])}"
    )
    print(f"{'threshold':>10}{'faces kept':>12}{'others kept':>13}")
    for threshold, kept in result["kept"].items():
        print(f"{threshold:>10}{kept['face_boxes']:>12}{kept['other_boxes']:>13}")
    print(f"one ONet call per frame: {result['onet_call_ms_median']:.1f} ms (median)")
    for other in result["others"]:
        print(f"  other box {other['source']} side {other['side']} px: {other['probability']:.3f}")
    return 0


def _range(values: Sequence[float | None]) -> str:
    low, high = values
    return "-" if low is None else f"{low:.2f}-{high:.2f}"


if __name__ == "__main__":
    raise SystemExit(main())
