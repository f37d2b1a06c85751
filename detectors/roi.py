"""Search a video frame only around the faces already found, with a full-frame scan every few frames.

Detection is 75-90 % of a frame's analysis, yet between two frames of a video a face moves by a fraction of
its size. So on most frames we run the SAME detector on a small region around each known face (its box
enlarged, overlapping regions merged, each shrunk so the face is about `face_px` pixels) and map the boxes
back; every `full_every`-th frame or `full_every_s` of stream time, whichever comes first, whenever no face
is known, or after a pause longer than `max_gap_s`, the whole frame is scanned, and when a known face is not
found in its region (it moved fast, turned away or left) the whole frame is scanned at once. A face entering
the picture is thus found within 1/3 s at any analysis rate (10 frames at 30 fps, fewer when analysis is
slower).

It works with any `FaceDetector` (the protocol is unchanged): a region is just a smaller frame. Measured on
2 shared cores (load 3.5-5.9), process CPU ms of detection per frame, full scan every frame -> regions with a
full scan every 5th frame, and faces found (boxes; the demo against its true boxes):

    clip                                 Haar                          MTCNN
    demo 640x480, 1-2 faces, 300 fr      21.4 -> 11.3 (417 -> 416/417)   41.3 -> 34.6 (417 -> 417/417)
    liveportrait 512x512, 183 fr         27.2 -> 10.7 (178 -> 177)       48.0 -> 27.5 (183 -> 183)
    sadtalker 512x512, 200 fr            34.7 ->  9.8 (200 -> 200)       48.6 -> 26.0 (200 -> 200)
    hamilton 640x360, cuts, 275 fr       16.7 -> 11.7 (163 -> 170)       43.4 -> 40.5 (437 -> 433)

    (RegionSearch.detect and the detector's own full-frame detect run side by side on every frame)

Full scans are most of what is left: on the one-speaker clips above a full scan costs ~30 CPU ms (the
pyramid of a 360 px copy), a region ~3-4 ms. Scanning in full every 10th frame instead of every 5th
(single-thread CPU ms per frame, faces found; load < 1): liveportrait 12.2 -> 8.6 (177 -> 176 faces),
sadtalker 10.6 -> 6.8 (200 -> 200), hamilton (cuts: mostly full scans anyway) 11.3 -> 11.7 (170 -> 169).
Tried and dropped: replacing the full scan after a lost face by a wider region (liveportrait 170 faces) or
by nothing (165): both lose faces the full scan finds. Also tried: every 5th frame while the scene changes
(a full scan found a new face or followed a lost one), every 10th while it is quiet: the same faces as every
10th on all four clips (1080p group clip: 367 boxes either way, 373 with every 5th), at a little more cost.

MTCNN gains less: most of its cost per call is fixed (three networks, a pyramid), not per pixel, so with
many faces a region search can cost more than a full scan. The search therefore keeps running means of both
costs and scans in full whenever (regions x cost of one) would exceed a full scan (1080p group clip, 4-8
faces: MTCNN regions alone 134 CPU ms per frame vs 130 for full scans; with the cost check 119). Shrinking
regions further (face 32-40 px) did not make MTCNN cheaper; for Haar the benchmark helper measured that a
36 px face and pad 0.5 lost ~10 % of the demo's faces, so 48 px and pad 0.75 it is.

A detector that can refine known faces (`RefiningDetector`: MTCNN's RNet + ONet on the known boxes, no
pyramid) does that instead of searching regions: one call for all known faces. MTCNN, full scan every
10th frame, CPU ms per frame (next to a training job), full scans on every frame -> regions -> refine, and
how many of the every-frame scan's faces are found (IoU >= 0.5): liveportrait 49.7 -> 30.5 -> 16.9
(183/183 each); hamilton (cuts, several people) 57.1 -> 51.9 -> 33.1 (437 -> 431 -> 416 of 437).

Not for unrelated frames (photos): there every frame is a full scan, which is what `FrameAnalyzer` does
without a tracker.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from detectors.base import FaceDetector, RefiningDetector, VerifyingDetector
from inference.types import FaceBox


@dataclass(frozen=True, slots=True)
class RegionSettings:
    """full_every: every how many analysed frames the whole frame is scanned (1: always, i.e. regions off).
    full_every_s: ... and at least this often in stream time (slow analysis still finds a new face in time).
    pad: the region reaches this many face sides beyond each side of the known box (side x (1 + 2 pad)).
    face_px: regions are shrunk (never enlarged) so their smallest known face is about this many pixels.
    keep_iou: a box found in a region is the known face when it overlaps the face's last box at least this much.
    max_gap_s: a longer pause between two analysed frames (every-Nth analysis, a stall) forces a full scan."""

    full_every: int = 10
    full_every_s: float = 1.0 / 3.0
    pad: float = 0.75
    face_px: int = 48
    keep_iou: float = 0.1
    max_gap_s: float = 0.5

    def __post_init__(self) -> None:
        if self.full_every < 1:
            raise ValueError(f"full_every must be >= 1, got {self.full_every}")
        if self.full_every_s <= 0:
            raise ValueError(f"full_every_s must be > 0, got {self.full_every_s}")
        if self.pad < 0 or self.face_px < 24 or not 0.0 <= self.keep_iou <= 1.0 or self.max_gap_s <= 0:
            raise ValueError(f"bad region settings: {self}")


@dataclass(frozen=True, slots=True)
class Region:
    """A rectangle of the frame to search (integer pixels, end exclusive) and the side of its smallest face."""

    x0: int
    y0: int
    x1: int
    y1: int
    face_side: float

    def overlaps(self, other: Region) -> bool:
        return self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1

    def union(self, other: Region) -> Region:
        return Region(
            min(self.x0, other.x0),
            min(self.y0, other.y0),
            max(self.x1, other.x1),
            max(self.y1, other.y1),
            min(self.face_side, other.face_side),
        )


def plan_regions(boxes: Sequence[FaceBox], width: int, height: int, pad: float) -> list[Region]:
    """One region per known face, clipped to the frame; overlapping regions merged into their bounding box
    (one detector call instead of two, and a face between them is not found twice)."""
    regions = []
    for box in boxes:
        side = max(box.w, box.h)
        half = side * (0.5 + pad)
        cx, cy = box.center
        x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
        x1, y1 = min(width, int(np.ceil(cx + half))), min(height, int(np.ceil(cy + half)))
        if x1 > x0 and y1 > y0:
            regions.append(Region(x0, y0, x1, y1, side))
    merged = True
    while merged:  # a union can reach a third region: repeat until nothing overlaps (n is a handful)
        merged = False
        for i in range(len(regions)):
            for j in range(i + 1, len(regions)):
                if regions[i].overlaps(regions[j]):
                    regions[i] = regions[i].union(regions.pop(j))
                    merged = True
                    break
            if merged:
                break
    return regions


def detect_in_region(detector: FaceDetector, frame: np.ndarray, region: Region, face_px: int) -> list[FaceBox]:
    """The detector's boxes inside `region`, in full-frame pixels. The region is shrunk so its smallest face
    is ~`face_px` (search cost falls with the pixel count; the detectors find faces from ~24 px up). A
    verifying detector's unconfirmed candidates do: only those matching a known, confirmed face are kept."""
    crop = frame[region.y0 : region.y1, region.x0 : region.x1]
    height, width = crop.shape[:2]
    scale = min(1.0, face_px / max(region.face_side, 1.0))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    else:
        crop = np.ascontiguousarray(crop)
    sx, sy = width / crop.shape[1], height / crop.shape[0]
    find = detector.candidates if isinstance(detector, VerifyingDetector) else detector.detect
    return [FaceBox(region.x0 + b.x * sx, region.y0 + b.y * sy, b.w * sx, b.h * sy, b.score) for b in find(crop)]


class RegionSearch:
    """Decides per frame between a full scan and a region search, and remembers the faces found.

    Stateful per stream: `reset()` on a new source or a new detector. Not thread-safe; the analyzer calls it
    under its detector lock. `full_scans` and `region_scans` count what it did (for benchmarks)."""

    def __init__(self, settings: RegionSettings | None = None) -> None:
        self.settings = settings or RegionSettings()
        self.full_scans = 0
        self.region_scans = 0
        # Running means of the wall ms of a full scan and of one region's search with this detector. A region
        # search costs per region (MTCNN's fixed cost per call is ~10-15 ms), so with many faces a full scan
        # can be the cheaper one; then we scan in full.
        self._full_ms: float | None = None
        self._region_ms: float | None = None
        self.reset()

    def reset(self) -> None:
        self._known: list[FaceBox] = []
        self._since_full: int | None = None  # analysed frames since the last full scan; None: scan next
        self._last_time: float | None = None
        self._full_time: float | None = None  # stream time of the last full scan

    def detect(self, detector: FaceDetector, frame: np.ndarray, timestamp: float) -> list[FaceBox]:
        """Faces in `frame` (full-frame pixels, best score first), searched in full or around known faces."""
        gap = None if self._last_time is None else timestamp - self._last_time
        self._last_time = timestamp
        height, width = frame.shape[:2]
        due = self._full_scan_due(gap, timestamp)
        regions = [] if due else plan_regions(self._known, width, height, self.settings.pad)
        refining = isinstance(detector, RefiningDetector)
        calls = 1 if refining else len(regions)  # a refiner takes all known faces in one call
        if not regions or not self._regions_cheaper(calls):
            return self._full_scan(detector, frame, timestamp)
        self._since_full = (self._since_full or 0) + 1
        self.region_scans += 1
        start = time.perf_counter()
        if refining:
            candidates = list(detector.refine(frame, self._known))
        else:
            candidates = []
            for region in regions:
                candidates += detect_in_region(detector, frame, region, self.settings.face_px)
        self._region_ms = _mean(self._region_ms, (time.perf_counter() - start) * 1000.0 / calls)
        kept = self._match_known(candidates)
        if len(kept) < len(self._known):
            # A face moved out of its region, turned away or left: scan the whole frame now, so a moving face
            # is not dropped for a frame (measured: kept 177 instead of 170 of 178 faces on liveportrait for
            # ~2 CPU ms per frame on average), keeping faces the regions found that the full scan missed.
            return self._full_scan(detector, frame, timestamp, also=kept)
        kept.sort(key=lambda b: (b.score, b.area), reverse=True)
        self._known = kept
        return list(kept)

    def _full_scan(
        self, detector: FaceDetector, frame: np.ndarray, timestamp: float, also: Sequence[FaceBox] = ()
    ) -> list[FaceBox]:
        start = time.perf_counter()
        boxes = list(detector.detect(frame))
        self._full_ms = _mean(self._full_ms, (time.perf_counter() - start) * 1000.0)
        keep = self.settings.keep_iou
        boxes += [b for b in also if all(b.iou(f) < keep for f in boxes)]
        boxes.sort(key=lambda b: (b.score, b.area), reverse=True)
        self._known, self._since_full, self._full_time = boxes, 0, timestamp
        self.full_scans += 1
        return list(boxes)

    def _full_scan_due(self, gap: float | None, timestamp: float) -> bool:
        if not self._known or self._since_full is None or self.settings.full_every <= 1:
            return True
        if gap is None or gap < 0 or gap > self.settings.max_gap_s:
            return True
        if self._full_time is not None and timestamp - self._full_time >= self.settings.full_every_s - 1e-6:
            return True
        return self._since_full + 1 >= self.settings.full_every

    def _regions_cheaper(self, count: int) -> bool:
        if self._full_ms is None or self._region_ms is None:
            return True  # not measured yet: try
        return count * self._region_ms < self._full_ms

    def _match_known(self, candidates: Sequence[FaceBox]) -> list[FaceBox]:
        """For each known face, the unused candidate overlapping its last box most (at least keep_iou). Other
        candidates (a face part, a stranger at a region's edge) wait for the next full scan."""
        pairs = sorted(
            ((c.iou(k), ci, ki) for ci, c in enumerate(candidates) for ki, k in enumerate(self._known)),
            reverse=True,
        )
        used_c: set[int] = set()
        used_k: set[int] = set()
        kept = []
        for iou, ci, ki in pairs:
            if iou < self.settings.keep_iou:
                break
            if ci in used_c or ki in used_k:
                continue
            used_c.add(ci)
            used_k.add(ki)
            kept.append(candidates[ci])
        return kept


def _mean(old: float | None, new: float, weight: float = 0.2) -> float:
    """Exponential running mean (recent calls count most: the load and the faces change)."""
    return new if old is None else old + weight * (new - old)
