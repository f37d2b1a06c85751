"""Frame sources: the demo (deterministic, real faces a Haar cascade finds), video files, photos, cameras."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from conftest import shared_path

from app import demo
from app.sources import (
    CameraSource,
    DemoSource,
    PhotoSource,
    VideoSource,
    list_cameras,
    open_source,
)
from inference.errors import SourceError
from inference.types import FaceBox


def haar_faces(image: np.ndarray) -> list[FaceBox]:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return [FaceBox(*map(float, box)) for box in cascade.detectMultiScale(grey, 1.1, 5, minSize=(40, 40))]


def test_demo_stream_shape_rate_and_determinism():
    first, second = DemoSource(), open_source(" demo ")
    assert (first.size, first.fps, first.is_live, first.frame_count) == ((640, 480), 30.0, False, None)
    frames_a = [first.read() for _ in range(5)]
    frames_b = [second.read() for _ in range(5)]
    for a, b, index in zip(frames_a, frames_b, range(5), strict=True):
        assert a.shape == (480, 640, 3) and a.dtype == np.uint8
        assert np.array_equal(a, b)
        assert np.array_equal(a, demo.render_frame(index))
    assert not np.array_equal(frames_a[0], frames_a[4]), "the demo must move"


def test_demo_with_a_length_ends_and_close_stops_it():
    source = DemoSource(frames=3)
    assert [source.read() is not None for _ in range(4)] == [True, True, True, False]
    endless = DemoSource()
    endless.close()
    assert endless.read() is None


def test_demo_schedule_has_zero_one_and_two_faces_of_detectable_size():
    counts = {len(demo.face_boxes(i)) for i in range(0, int(demo.LOOP_S * demo.FPS), 5)}
    assert counts == {0, 1, 2}
    sizes = [box.w for i in range(0, 360, 5) for box in demo.face_boxes(i)]
    assert min(sizes) >= 80


@pytest.mark.parametrize("index", [0, 45, 90, 150, 200, 250])  # one and two faces, near and far
def test_demo_faces_are_found_by_opencv_haar(index):
    frame = demo.render_frame(index)
    truth = demo.face_boxes(index)
    found = haar_faces(frame)
    assert truth, f"frame {index} should show a face"
    for box in truth:
        assert any(box.iou(f) >= 0.4 for f in found), f"face {box} missed in frame {index}: {found}"


@pytest.mark.parametrize(
    ("name", "fps", "count", "size"),
    [
        ("face_recognition__short_hamilton_clip.mp4", 29.97, 275, (640, 360)),
        ("sadtalker__WDA_KatieHill_000.mp4", 25.0, 200, (512, 512)),
        ("facenet-pytorch__video.mp4", 25.0, 105, (1920, 1080)),
    ],
)
def test_video_source_reports_fps_count_and_size(name, fps, count, size):
    source = open_source(str(shared_path("media", "videos", name)))
    try:
        assert isinstance(source, VideoSource)
        assert source.fps == pytest.approx(fps, abs=0.01)
        assert source.frame_count == count
        assert source.size == size
        assert not source.is_live
        assert source.read().shape == (size[1], size[0], 3)
    finally:
        source.close()


def test_video_source_reads_every_frame_then_none():
    source = VideoSource(shared_path("media", "videos", "sadtalker__WDA_KatieHill_000.mp4"))
    frames = 0
    while source.read() is not None:
        frames += 1
    assert frames == source.frame_count == 200
    assert source.read() is None
    source.close()
    assert source.read() is None


def test_photo_source_is_an_endless_or_counted_still(tmp_path):
    image = demo.render_frame(200)
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), image)
    endless = open_source(str(path))
    assert isinstance(endless, PhotoSource)
    assert (endless.size, endless.is_live, endless.frame_count) == ((640, 480), False, None)
    first = endless.read()
    first[:] = 0  # a consumer drawing on its frame must not change the next one
    assert np.array_equal(endless.read(), image)
    single = open_source(str(path), photo_frames=1)
    assert single.read() is not None and single.read() is None


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda d: d / "missing.mp4", "no such file"),
        (lambda d: d / "missing.jpg", "no such file"),
        (lambda d: d, "is a folder"),
        (lambda d: _write(d / "fake.mp4", b"not a video at all" * 100), "cannot read video"),
        (lambda d: _write(d / "fake.png", b"\x89PNG broken"), "cannot read image"),
        (lambda d: _write(d / "empty.mp4", b""), "cannot read video"),
    ],
)
def test_bad_files_raise_one_line_source_errors_naming_the_file(tmp_path, make, needle):
    path = make(tmp_path)
    with pytest.raises(SourceError) as info:
        open_source(str(path))
    message = str(info.value)
    assert needle in message and str(path) in message and "\n" not in message


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_missing_camera_is_one_line_and_opencv_stays_quiet(capfd):
    with pytest.raises(SourceError, match=r"^no camera at index 97 \(") as info:
        open_source("97")
    assert "\n" not in str(info.value)
    assert "WARN" not in capfd.readouterr().err
    with pytest.raises(SourceError):
        CameraSource(98)


def test_empty_spec_is_rejected():
    with pytest.raises(SourceError, match="empty source"):
        open_source("  ")


def test_list_cameras_returns_index_name_pairs_quickly():
    start = time.perf_counter()
    cameras = list_cameras()
    assert time.perf_counter() - start < 5.0
    assert all(isinstance(i, int) and isinstance(name, str) and name for i, name in cameras)
    assert len({i for i, _ in cameras}) == len(cameras)
