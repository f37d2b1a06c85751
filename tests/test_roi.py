"""Region detection between full scans (detectors/roi.py) and its use by the analyzer: the plan of regions,
boxes mapped back to full-frame pixels, when full scans happen, and faces kept (real Haar, real frames)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from skimage import data

from app import demo
from detectors.haar import HaarDetector
from detectors.roi import Region, RegionSearch, RegionSettings, detect_in_region, plan_regions
from inference.analyzer import FULL_SCAN_EVERY, FrameAnalyzer
from inference.tracking import FaceTracker
from inference.types import FaceBox

HEAD = (slice(20, 230), slice(140, 310))  # the astronaut's head in skimage's 512x512 photo (face ~90x120 px)


class SpyDetector:
    """Delegates to a real detector and records the size of every image it was asked to search."""

    def __init__(self, inner) -> None:
        self.inner, self.name = inner, inner.name
        self.shapes: list[tuple[int, int]] = []

    def detect(self, frame_bgr: np.ndarray) -> list[FaceBox]:
        self.shapes.append(frame_bgr.shape[:2])
        return self.inner.detect(frame_bgr)

    def close(self) -> None:
        self.inner.close()

    def full_scans(self, frame_shape: tuple[int, int]) -> int:
        return sum(shape == frame_shape for shape in self.shapes)


@pytest.fixture(scope="module")
def haar():
    detector = HaarDetector()
    yield detector
    detector.close()


@pytest.fixture(scope="module")
def head() -> np.ndarray:
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[HEAD]


def scene(head: np.ndarray, corners: list[tuple[int, int]]) -> np.ndarray:
    """The demo background (640x480) with the astronaut's head pasted with its top-left corner at each point."""
    canvas = demo.background().copy()
    h, w = head.shape[:2]
    for x, y in corners:
        canvas[y : y + h, x : x + w] = head
    return canvas


def test_plan_regions_enlarges_clips_and_merges_overlaps() -> None:
    far = plan_regions([FaceBox(100, 100, 40, 40), FaceBox(500, 300, 60, 60)], 640, 480, pad=0.75)
    assert far == [Region(70, 70, 170, 170, 40.0), Region(455, 255, 605, 405, 60.0)]
    near = plan_regions([FaceBox(100, 100, 40, 40), FaceBox(150, 110, 40, 40)], 640, 480, pad=0.75)
    assert near == [Region(70, 70, 220, 180, 40.0)]
    # Three in a row merge into one even when the first and the last do not overlap; the edge clips.
    row = plan_regions([FaceBox(x, 0, 40, 40) for x in (0, 60, 120)], 640, 480, pad=0.75)
    assert row == [Region(0, 0, 190, 70, 40.0)]
    assert plan_regions([FaceBox(700, 500, 20, 20)], 640, 480, pad=0.75) == []


def test_region_boxes_are_in_full_frame_pixels(haar, head) -> None:
    frame = scene(head, [(300, 200)])
    full = haar.detect(frame)
    assert len(full) == 1
    region = plan_regions(full, 640, 480, pad=0.75)[0]
    found = detect_in_region(haar, frame, region, face_px=48)
    assert len(found) == 1 and found[0].iou(full[0]) >= 0.7


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        RegionSettings(full_every=0)
    with pytest.raises(ValueError):
        RegionSettings(face_px=10)
    with pytest.raises(ValueError):
        RegionSettings(full_every_s=0.0)


def test_demo_faces_are_kept_with_a_full_scan_every_fifth_frame(haar) -> None:
    spy = SpyDetector(haar)
    search = RegionSearch(RegionSettings(full_every=5))
    found = truth = 0
    frames = 40
    for i in range(frames):
        frame, boxes = demo.render_frame(i), demo.face_boxes(i)
        got = search.detect(spy, frame, i / demo.FPS)
        truth += len(boxes)
        found += sum(any(b.iou(g) >= 0.5 for g in got) for b in boxes)
    assert found >= truth - 1, f"regions found {found} of {truth} faces"
    assert search.full_scans + search.region_scans == frames
    assert frames / 5 <= search.full_scans <= frames / 5 + 3
    assert spy.full_scans((480, 640)) == search.full_scans
    small = [shape for shape in spy.shapes if shape != (480, 640)]
    assert small and max(h * w for h, w in small) < 0.1 * 480 * 640, "region searches should be small images"


def test_a_new_face_is_found_within_full_every_frames(haar, head) -> None:
    search = RegionSearch(RegionSettings(full_every=5))
    one, two = scene(head, [(40, 40)]), scene(head, [(40, 40), (420, 240)])
    for i in range(3):
        assert len(search.detect(haar, one, i / 30)) == 1
    counts = [len(search.detect(haar, two, (3 + i) / 30)) for i in range(5)]
    assert counts[-1] == 2 and counts[0] == 1, counts  # not seen by the regions, then by the next full scan


def test_slow_analysis_still_scans_in_full_every_third_of_a_second(haar, head) -> None:
    search = RegionSearch(RegionSettings(full_every=100, full_every_s=0.3))
    frame = scene(head, [(300, 200)])
    for i in range(10):  # 10 analyses a second: full scans at 0.0, 0.3, 0.6, 0.9 s
        search.detect(haar, frame, i / 10)
    assert (search.full_scans, search.region_scans) == (4, 6)


def test_a_face_that_jumps_is_found_on_the_same_frame(haar, head) -> None:
    search = RegionSearch(RegionSettings(full_every=5))
    search.detect(haar, scene(head, [(40, 40)]), 0.0)
    moved = search.detect(haar, scene(head, [(420, 240)]), 1 / 30)
    assert len(moved) == 1 and moved[0].x > 400
    assert search.full_scans == 2


def test_only_full_scans_ask_onet_for_a_second_opinion(head, monkeypatch) -> None:
    """Between full scans a region's boxes are only matched against faces a full scan already confirmed,
    so Haar's unconfirmed candidates do there and ONet runs once per full scan, not once per region."""
    detector = HaarDetector()
    calls = []
    verifier = detector._verifier

    def counted(frame, boxes, min_probability):
        calls.append(len(boxes))
        return verifier.keep_faces(frame, boxes, min_probability)

    monkeypatch.setattr(detector, "_verifier", SimpleNamespace(keep_faces=counted))
    search = RegionSearch(RegionSettings(full_every=5))
    # Whether two region searches beat one full scan is decided on measured wall-clock time, which a busy
    # machine can tip either way; this test is about who asks ONet, so the regions always win here.
    monkeypatch.setattr(search, "_regions_cheaper", lambda count: True)
    frame = scene(head, [(40, 40), (420, 240)])
    found = [len(search.detect(detector, frame, i / 30)) for i in range(10)]
    assert found == [2] * 10
    assert (search.full_scans, search.region_scans) == (2, 8)
    assert len(calls) == search.full_scans


def test_a_pause_forces_a_full_scan(haar, head) -> None:
    search = RegionSearch(RegionSettings(full_every=5, max_gap_s=0.5))
    frame = scene(head, [(300, 200)])
    search.detect(haar, frame, 0.0)
    search.detect(haar, frame, 0.1)
    assert (search.full_scans, search.region_scans) == (1, 1)
    search.detect(haar, frame, 2.0)
    assert (search.full_scans, search.region_scans) == (2, 1)


def test_analyzer_searches_regions_only_with_a_tracker(haar, head) -> None:
    frame = scene(head, [(300, 200)])
    tracked_spy, photo_spy, off_spy = SpyDetector(haar), SpyDetector(haar), SpyDetector(haar)
    tracked = FrameAnalyzer(tracked_spy, {}, FaceTracker())
    photos = FrameAnalyzer(photo_spy, {})
    off = FrameAnalyzer(off_spy, {}, FaceTracker(), full_scan_every=1)
    for i in range(2 * FULL_SCAN_EVERY):
        for analyzer in (tracked, photos, off):
            result = analyzer.analyze(frame, i, i / 30)
            assert len(analyzer.last_boxes) == 1 and len(result.faces) == 1
    assert tracked_spy.full_scans((480, 640)) == 2
    assert photo_spy.full_scans((480, 640)) == off_spy.full_scans((480, 640)) == 2 * FULL_SCAN_EVERY


def test_analyzer_rescans_in_full_after_a_detector_swap_or_reset(haar, head) -> None:
    frame = scene(head, [(300, 200)])
    first, second = SpyDetector(haar), SpyDetector(haar)
    analyzer = FrameAnalyzer(first, {}, FaceTracker())
    analyzer.analyze(frame, 0, 0.0)
    analyzer.analyze(frame, 1, 1 / 30)
    assert first.full_scans((480, 640)) == 1 and len(first.shapes) == 2
    analyzer.set_detector(second)
    analyzer.analyze(frame, 2, 2 / 30)
    assert second.shapes == [(480, 640)]
    analyzer.reset()
    analyzer.analyze(frame, 0, 0.0)
    assert second.shapes == [(480, 640)] * 2


class SquareDetector:
    """A detector double with a fixed cost per call plus a cost per pixel (like MTCNN: ~10 ms a call, ~20 ms
    for a 640x480 frame): finds white squares on black, like faces in a frame."""

    name = "squares"

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.calls = 0

    def detect(self, frame_bgr: np.ndarray) -> list[FaceBox]:
        import time

        self.calls += 1
        time.sleep(self.delay_s * (1.0 + frame_bgr.size / (640 * 480 * 3)))
        grey = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        contours, _ = cv2.findContours((grey > 128).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        return [FaceBox(*map(float, cv2.boundingRect(c)), 1.0) for c in contours]


def squares(corners: list[tuple[int, int]], side: int = 40) -> np.ndarray:
    frame = np.zeros((480, 640, 3), np.uint8)
    for x, y in corners:
        frame[y : y + side, x : x + side] = 255
    return frame


def test_many_regions_that_cost_more_than_a_full_scan_give_full_scans() -> None:
    """A detector whose calls cost mostly the same (like MTCNN's) gains nothing from four regions: after
    measuring both, the search scans in full; with one face, regions stay cheaper."""
    many = squares([(40, 40), (400, 40), (40, 380), (400, 380)])
    detector = SquareDetector(delay_s=0.01)
    search = RegionSearch(RegionSettings(full_every=100))
    for i in range(6):
        assert len(search.detect(detector, many, i / 30)) == 4
    assert search.region_scans == 1 and search.full_scans == 5 and detector.calls == 1 + 4 + 4
    one = RegionSearch(RegionSettings(full_every=100))
    for i in range(6):
        assert one.detect(detector, squares([(300, 200)]), i / 30)[0].iou(FaceBox(300, 200, 40, 40)) > 0.9
    assert one.full_scans == 1 and one.region_scans == 5


class FakeRefiner:
    """A detector that can refine: records which path the region search takes."""

    name = "fake"

    def __init__(self, inner) -> None:
        self.inner = inner
        self.detect_shapes: list[tuple[int, int]] = []
        self.refined: list[int] = []

    def detect(self, frame_bgr: np.ndarray) -> list[FaceBox]:
        self.detect_shapes.append(frame_bgr.shape[:2])
        return self.inner.detect(frame_bgr)

    def refine(self, frame_bgr: np.ndarray, known) -> list[FaceBox]:
        self.refined.append(len(known))
        return list(known)  # the faces stay where they were

    def close(self) -> None:
        pass


def test_a_refining_detector_is_asked_about_known_faces_instead_of_regions(haar, head) -> None:
    fake = FakeRefiner(haar)
    search = RegionSearch(RegionSettings(full_every=5))
    frame = scene(head, [(40, 40), (420, 240)])
    for i in range(5):
        assert len(search.detect(fake, frame, i / 30)) == 2
    assert fake.detect_shapes == [frame.shape[:2]]  # one full scan, no region crops
    assert fake.refined == [2, 2, 2, 2]  # then one call with both faces per frame


def test_region_bench_reports_cost_and_faces_found_for_a_clip(tmp_path, capsys) -> None:
    from detectors import region_bench

    clip = tmp_path / "demo.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (demo.WIDTH, demo.HEIGHT))
    for i in range(12):
        writer.write(demo.render_frame(90 + i))
    writer.release()
    assert region_bench.main([str(clip), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["frames"] == 12 and row["full_scans"] + row["region_scans"] == 12
    assert row["full_faces"] >= 12 and 0 < row["regions_found_of_full"] <= row["full_faces"]
    assert row["full_cpu_ms"] > 0 and row["regions_cpu_ms"] > 0
    assert region_bench.main([str(tmp_path / "missing.mp4")]) == 2
    assert "cannot open video" in capsys.readouterr().err
