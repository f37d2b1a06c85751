"""`facelens bench`: the command runs the real pipeline briefly and reports what it promises.

Benchmarks are not timed tests: these check the report's shape and that its numbers are consistent
(something was displayed and analysed, p95 >= p50, stages add up), never how fast this machine is.
"""

from __future__ import annotations

import json

import pytest

from app import bench
from app.bench_sweep import grid, synthetic_frame

LIVE_KEYS = {
    "analysis_fps",
    "display_fps",
    "capture_fps",
    "source_fps",
    "latency_ms_p50",
    "latency_ms_p95",
    "frames_behind_p50",
    "frames_behind_p95",
    "ms_per_face",
    "faces_per_frame",
    "stages",
    "source",
    "detector",
    "frames",
    "faces",
    "peak_memory_mib",
    "machine",
}
STAGES = {"read", "detect", "preprocess", "emotion", "gender", "race", "track", "follow", "render", "convert", "encode"}


def test_bench_one_second_emits_the_documented_json(tiny_weights_dir, capsys):
    code = bench.main(["--seconds", "1", "--json", "--weights", str(tiny_weights_dir)])
    assert code == 0
    report = json.loads(capsys.readouterr().out)

    assert LIVE_KEYS <= set(report)
    assert report["source"] == "demo" and report["detector"] == "haar" and report["mode"] == "live"
    assert STAGES <= set(report["stages"])
    assert all(v is None or v >= 0 for v in report["stages"].values())
    assert report["display_fps"] > 0 and report["analysis_fps"] > 0 and report["source_fps"] == 30.0
    assert 0 < report["frames_displayed"] <= report["frames"]
    assert report["faces"] > 0  # the demo always shows a face at its start
    assert report["latency_ms_p95"] >= report["latency_ms_p50"] > 0
    assert report["frames_behind_p95"] >= report["frames_behind_p50"] >= 0
    assert report["ms_per_face"] > 0
    analysis_stages = sum(report["stages"][k] for k in ("detect", "preprocess", "emotion", "gender", "race", "track"))
    assert analysis_stages == pytest.approx(report["stages"]["analysis_total"], rel=0.2, abs=1.0)
    machine = report["machine"]
    assert machine["cpu_count"] >= 1 and machine["platform"] and machine["gpu_used"] in (True, False)
    assert set(machine["model_engines"]) == {"emotion", "gender", "race"}
    assert report["peak_memory_mib"] > 0


@pytest.mark.parametrize(("faces", "expected"), [(1, (1, 1)), (4, (2, 2)), (8, (4, 2))])
def test_sweep_grid_fits_the_faces_in_the_largest_cells(faces, expected):
    assert grid(faces, 640, 480) == expected


@pytest.mark.parametrize(("width", "height", "faces"), [(640, 480, 8), (1920, 1080, 4)])
def test_synthetic_frames_hold_real_detectable_faces(width, height, faces):
    from app.bench_sweep import found
    from detectors.haar import HaarDetector

    image, truth = synthetic_frame(width, height, faces, variant=1)
    assert image.shape == (height, width, 3)
    assert len(truth) == faces
    assert all(0 <= b.x and b.x + b.w <= width and 0 <= b.y and b.y + b.h <= height for b in truth)
    assert all(a.iou(b) == 0 for i, a in enumerate(truth) for b in truth[i + 1 :])
    detector = HaarDetector()
    try:
        assert found(detector.detect(image), truth) == faces
    finally:
        detector.close()


def test_bench_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--seconds", "0"])
    with pytest.raises(SystemExit):
        bench.main(["--headless", "--sweep"])
    assert "seconds" in capsys.readouterr().err
