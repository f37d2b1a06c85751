"""What the region search (`detectors.roi`) saves on real video, and what it misses.

For each clip and detector: process CPU ms of detection per frame with a full scan on every frame, and with
the region search at its defaults; and how many of the every-frame scan's faces the region search also
reports (IoU >= 0.5, one-to-one). Frames are decoded first, so only detection is timed; OpenCV runs on one
thread so CPU ms do not include a second core spinning.

    python -m detectors.region_bench CLIP [CLIP ...] [--detector haar|mtcnn] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from detectors.base import FaceDetector, create_detector
from detectors.quality import LabelledBox, match
from detectors.roi import RegionSearch, RegionSettings
from inference.errors import FaceLensError, SourceError
from inference.types import FaceBox


def read_frames(path: Path) -> tuple[list[np.ndarray], float]:
    """Every frame of a video (BGR) and its frame rate."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise SourceError(f"cannot open video {path}")
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    if not frames:
        raise SourceError(f"no frames could be read from {path}")
    return frames, fps


def run_search(
    detector: FaceDetector, frames: Sequence[np.ndarray], fps: float, settings: RegionSettings
) -> tuple[list[list[FaceBox]], float, RegionSearch]:
    """Boxes per frame, CPU ms per frame, and the search (for its full/region counts)."""
    search = RegionSearch(settings)
    start = time.process_time()
    boxes = [search.detect(detector, frame, index / fps) for index, frame in enumerate(frames)]
    return boxes, (time.process_time() - start) * 1000.0 / len(frames), search


def compare(detector: FaceDetector, path: Path) -> dict:
    frames, fps = read_frames(path)
    detector.detect(frames[0])  # warm-up (MTCNN traces its networks on first use)
    full, full_ms, _ = run_search(detector, frames, fps, RegionSettings(full_every=1))
    regions, regions_ms, search = run_search(detector, frames, fps, RegionSettings())
    found = sum(match(got, [LabelledBox(box, False) for box in ref])[0] for ref, got in zip(full, regions, strict=True))
    return {
        "clip": path.name,
        "detector": detector.name,
        "frames": len(frames),
        "full_cpu_ms": round(full_ms, 1),
        "regions_cpu_ms": round(regions_ms, 1),
        "full_faces": sum(map(len, full)),
        "regions_faces": sum(map(len, regions)),
        "regions_found_of_full": found,
        "full_scans": search.full_scans,
        "region_scans": search.region_scans,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m detectors.region_bench", description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+", type=Path, help="video files")
    parser.add_argument("--detector", default="haar", help="haar or mtcnn (default: haar)")
    parser.add_argument("--json", action="store_true", help="one JSON object per clip, one per line")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    try:
        detector = create_detector(args.detector)
        try:
            for clip in args.clips:
                row = compare(detector, clip)
                if args.json:
                    print(json.dumps(row), flush=True)
                else:
                    print(
                        f"{row['clip'][:32]:<32} {row['detector']}: CPU ms/frame {row['full_cpu_ms']:.1f} -> "
                        f"{row['regions_cpu_ms']:.1f}; faces {row['full_faces']} -> {row['regions_faces']} "
                        f"({row['regions_found_of_full']} of the full scans'); full scans {row['full_scans']} "
                        f"of {row['frames']}",
                        flush=True,
                    )
        finally:
            detector.close()
    except FaceLensError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
