"""The desktop window end to end, offscreen: the demo streams through real threads, a real detector and tiny
real Keras models; menus are driven through their QActions the way a user's clicks or shortcuts drive them."""

from __future__ import annotations

import csv
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from detectors import base as detector_registry  # noqa: E402
from detectors.base import create_detector  # noqa: E402
from inference.errors import SourceError  # noqa: E402

STREAM_TIMEOUT_MS = 60_000  # generous: model loading on a loaded 2-core CI machine takes 10-30 s


class CountingDetector:
    """A second real detector for switching tests: Haar underneath, counting the frames it sees."""

    name = "counting"

    def __init__(self) -> None:
        self.inner = create_detector("haar")
        self.calls = 0
        self.closed = threading.Event()

    def detect(self, frame_bgr):
        self.calls += 1
        return self.inner.detect(frame_bgr)

    def close(self) -> None:
        self.closed.set()
        self.inner.close()


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> list[CountingDetector]:
    """Registers "counting" for this test only; the list holds every instance the app built."""
    detector_registry.available_detectors()  # load the built-ins first, so they keep their menu order
    made: list[CountingDetector] = []

    def factory() -> CountingDetector:
        made.append(CountingDetector())
        return made[-1]

    monkeypatch.setitem(detector_registry._REGISTRY, "counting", factory)
    return made


@pytest.fixture
def store(tmp_path: Path) -> QSettings:
    """Settings in an ini file under tmp_path, never the user's real ones; recordings go to tmp_path too."""
    settings = QSettings(str(tmp_path / "facelens.ini"), QSettings.Format.IniFormat)
    settings.setValue("recording/folder", str(tmp_path / "recordings"))
    settings.sync()
    return settings


@pytest.fixture(scope="module")
def tiny_models(tiny_weights_dir: Path):
    from inference.models import load_models

    return load_models(tiny_weights_dir)


@pytest.fixture
def make_window(qtbot, store, tiny_models):
    from app.gui.main_window import MainWindow

    def make(source: str | None = "demo", detector: str | None = "haar", models=tiny_models, settings=store):
        window = MainWindow(source, detector, settings=settings, models=models)
        qtbot.addWidget(window)
        window.show()
        return window

    return make


def wait_streaming(qtbot, window, frames: int = 10, attributes: bool = True) -> None:
    """Until `frames` more frames were painted and a result with faces (and labels) for this source exists."""
    start = window.view.frames_painted

    def ready() -> bool:
        result = window.analysis.latest(window._generation)
        faces_ok = result is not None and len(result.faces) > 0
        if faces_ok and attributes:
            faces_ok = all(face.emotion is not None and face.gender is not None for face in result.faces)
        return window.view.frames_painted >= start + frames and faces_ok

    qtbot.waitUntil(ready, timeout=STREAM_TIMEOUT_MS)


def count_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    return frames


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_demo_streams_with_weights_from_env_and_detector_switches_from_menu(
    qtbot, make_window, tiny_weights_dir, monkeypatch, counting
):
    monkeypatch.setenv("FACELENS_WEIGHTS", str(tiny_weights_dir))
    window = make_window(models=None)  # loads the models from FACELENS_WEIGHTS, off the GUI thread
    wait_streaming(qtbot, window)
    assert window.analysis.models_state == "ready"
    assert window.analysis.detector_name == "haar"
    image, view = window.view.image, window.view
    assert abs(image.width() / image.height() - 640 / 480) < 0.01  # scaled to the view, aspect kept
    assert image.width() == view.pixel_size()[0] or image.height() == view.pixel_size()[1]

    window.detector_actions["counting"].trigger()
    qtbot.waitUntil(
        lambda: window.analysis.detector_name == "counting" and counting and counting[0].calls >= 3,
        timeout=STREAM_TIMEOUT_MS,
    )
    assert window.detector_actions["counting"].isChecked()
    assert window.analysis.analyzer.detector is counting[0]
    wait_streaming(qtbot, window, frames=10)  # frames and labelled results keep coming with the new detector

    window.cycle_action.trigger()  # "D": the next detector in menu order, wrapping around to the first
    qtbot.waitUntil(lambda: window.analysis.detector_name == "haar", timeout=STREAM_TIMEOUT_MS)
    assert window.detector_actions["haar"].isChecked()
    qtbot.waitUntil(counting[0].closed.is_set, timeout=2000)  # the replaced detector was released
    assert not window.errors


def test_shortcuts_are_the_documented_keys(make_window):
    window = make_window()
    keys = {
        action: action.shortcut().toString()
        for action in (
            window.record_action,
            window.snapshot_action,
            window.explain_action,
            window.cycle_action,
            window.pause_action,
        )
    }
    assert list(keys.values()) == ["R", "S", "E", "D", "Space"]
    assert {s.toString() for s in window.fullscreen_action.shortcuts()} == {"F11", "Ctrl+F"}


def test_failing_detector_reports_and_the_previous_one_keeps_running(qtbot, make_window, monkeypatch):
    def broken():
        raise RuntimeError("no such model file")

    detector_registry.available_detectors()
    monkeypatch.setitem(detector_registry._REGISTRY, "broken", broken)
    window = make_window()
    wait_streaming(qtbot, window)

    window.detector_actions["broken"].trigger()
    qtbot.waitUntil(lambda: bool(window.errors), timeout=5000)
    assert "broken" in window.errors[-1] and "no such model file" in window.errors[-1]
    boxes = [box for box in window.findChildren(QMessageBox) if box.isVisible()]
    assert boxes and "no such model file" in boxes[0].text()  # shown, and the event loop was never blocked
    assert window.analysis.detector_name == "haar"
    assert window.detector_actions["haar"].isChecked()
    before = window.analysis.latest(window._generation).index
    wait_streaming(qtbot, window, frames=10)
    assert window.analysis.latest(window._generation).index > before


def test_record_two_seconds_writes_video_and_csv(qtbot, make_window, tmp_path):
    window = make_window()
    wait_streaming(qtbot, window)
    window.record_action.trigger()
    assert window.recording
    qtbot.wait(2000)
    window.record_action.trigger()
    assert not window.recording
    videos = list((tmp_path / "recordings").glob("*.mp4"))
    assert len(videos) == 1
    assert count_frames(videos[0]) >= 40
    rows = csv_rows(videos[0].with_suffix(".csv"))
    assert len(rows) >= 40
    assert any(row["emotion"] for row in rows) and any(row["face_id"] for row in rows)
    assert not window.errors


def test_closing_while_recording_finishes_the_file(qtbot, make_window, tmp_path):
    window = make_window()
    wait_streaming(qtbot, window, attributes=False)
    window.record_action.trigger()
    qtbot.wait(1000)
    window.close()
    videos = list((tmp_path / "recordings").glob("*.mp4"))
    assert len(videos) == 1
    assert count_frames(videos[0]) >= 15
    assert len(csv_rows(videos[0].with_suffix(".csv"))) >= 15
    assert not window.analysis._thread.is_alive() and not window.display._thread.is_alive()


def test_unwritable_recording_folder_is_an_error_not_a_crash(qtbot, make_window, store, tmp_path):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    store.setValue("recording/folder", str(blocker / "sub"))
    window = make_window()
    wait_streaming(qtbot, window, attributes=False)
    window.record_action.trigger()
    assert not window.recording
    assert window.errors and "recording folder" in window.errors[-1]
    wait_streaming(qtbot, window, frames=5, attributes=False)


def test_view_actions_change_the_renderer_and_the_analysis(qtbot, make_window):
    window = make_window()
    wait_streaming(qtbot, window)
    window.view_actions["emotion"].trigger()
    assert window.renderer.show["emotion"] is False
    qtbot.waitUntil(lambda: "emotion" not in window.analysis.analyzer.enabled, timeout=2000)
    qtbot.waitUntil(
        lambda: all(
            face.emotion is None and face.gender is not None
            for face in window.analysis.latest(window._generation).faces
        ),
        timeout=5000,
    )
    window.view_actions["bars"].trigger()
    assert window.renderer.bars is True
    window.view_actions["stats"].trigger()
    assert window.renderer.stats is False
    window.view_actions["mirror"].trigger()
    assert window.display.mirror is True


def test_snapshot_saves_the_annotated_frame(qtbot, make_window, tmp_path):
    window = make_window()
    wait_streaming(qtbot, window)
    window.snapshot_action.trigger()
    window.snapshot_action.trigger()
    assert window.png_writer.wait()  # written off the GUI thread
    qtbot.waitUntil(lambda: "Snapshot saved" in window.statusBar().currentMessage(), timeout=5_000)
    shots = sorted((tmp_path / "recordings").glob("*.png"))
    assert len(shots) == 2  # never overwrites
    image = cv2.imread(str(shots[0]))
    assert image.shape == (480, 640, 3)
    assert not np.array_equal(image, window.display._last[0].image)  # the overlay is in it


def test_a_snapshot_that_cannot_be_written_is_one_error_line_and_leaves_no_empty_file(
    qtbot, make_window, tmp_path, monkeypatch
):
    window = make_window()
    wait_streaming(qtbot, window)
    errors = []
    monkeypatch.setattr(window, "show_error", errors.append)
    window.png_writer.failed.disconnect()
    window.png_writer.failed.connect(window.show_error)

    def disk_full(self, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    path = window.snapshot()
    assert path is not None and window.png_writer.wait()
    qtbot.waitUntil(lambda: bool(errors), timeout=5_000)
    assert errors == [f"cannot write {path}: No space left on device"]
    assert not path.exists()  # the reserved name is given back, no 0-byte PNG
    assert window.isVisible() and window.snapshot_action.isEnabled()


def test_closing_right_after_a_snapshot_keeps_the_png_whole(qtbot, make_window, monkeypatch):
    from app.gui import workers

    window = make_window()
    wait_streaming(qtbot, window, attributes=False)
    slow_write = workers.write_png
    monkeypatch.setattr(workers, "write_png", lambda *args: time.sleep(0.5) or slow_write(*args))
    path = window.snapshot()
    window.close()  # while the writer still sleeps
    assert cv2.imread(str(path)).shape == (480, 640, 3)


def test_explain_saves_an_occlusion_map_per_model_for_the_faces_on_screen(qtbot, make_window, tmp_path, monkeypatch):
    from inference import explain
    from inference.explain import TILE

    window = make_window()
    wait_streaming(qtbot, window)
    window.set_paused(True)  # the faces on screen stay put while the worker explains them
    faces = len(window.display.last_faces()[1])
    gate, explain_face = threading.Event(), explain.explain_face
    monkeypatch.setattr(explain, "explain_face", lambda *args: gate.wait(10) and explain_face(*args))
    assert window.explain_faces()
    assert not window.explain_faces()  # one job at a time: the second press is refused, not queued
    gate.set()
    qtbot.waitUntil(lambda: len(list((tmp_path / "recordings").glob("*.png"))) == 1, timeout=STREAM_TIMEOUT_MS)
    qtbot.waitUntil(lambda: "Explanation saved" in window.statusBar().currentMessage(), timeout=5_000)
    (panel_path,) = (tmp_path / "recordings").glob("*.png")
    panel = cv2.imread(str(panel_path))
    assert panel.shape[:2] == (faces * (TILE + 40), 4 * TILE)  # the face, then emotion, gender and race maps
    assert window.explain_view.isVisible() and window.explain_view.windowTitle().endswith(panel_path.name)
    window.set_view("race", False)
    assert window.explain_faces()
    qtbot.waitUntil(lambda: len(list((tmp_path / "recordings").glob("*.png"))) == 2, timeout=STREAM_TIMEOUT_MS)
    assert window.png_writer.wait()  # the name is reserved before the PNG is written
    newest = max((tmp_path / "recordings").glob("*.png"), key=lambda path: path.stat().st_mtime_ns)
    assert cv2.imread(str(newest)).shape[1] == 3 * TILE  # a switched-off model is not explained


def test_pause_holds_the_picture(qtbot, make_window):
    window = make_window()
    wait_streaming(qtbot, window, attributes=False)
    window.pause_action.trigger()
    qtbot.wait(200)
    painted = window.view.frames_painted
    qtbot.wait(500)
    assert window.view.frames_painted - painted <= 2  # at most a redraw with a late result
    window.pause_action.trigger()
    wait_streaming(qtbot, window, frames=10, attributes=False)


def test_settings_persist_between_runs(qtbot, make_window, store, counting):
    first = make_window()
    wait_streaming(qtbot, first, attributes=False)
    first.view_actions["bars"].trigger()
    first.view_actions["race"].trigger()
    first.detector_actions["counting"].trigger()
    qtbot.waitUntil(lambda: first.analysis.detector_name == "counting", timeout=5000)
    first.resize(700, 600)
    first.close()

    second = make_window(source=None, detector=None)
    assert second.source_spec == "demo"  # the last source
    assert second.analysis.requested_detector == "counting"
    assert second.detector_actions["counting"].isChecked()
    assert second.view_actions["bars"].isChecked() and second.renderer.bars is True
    assert not second.view_actions["race"].isChecked() and second.renderer.show["race"] is False
    assert (second.width(), second.height()) == (700, 600)


def test_without_a_camera_the_demo_starts_with_a_notice(qtbot, make_window, monkeypatch):
    import app.gui.main_window as main_window

    real_open = main_window.open_source

    def no_camera(spec: str):
        if spec.isdigit():
            raise SourceError(f"no camera at index {spec}")
        return real_open(spec)

    monkeypatch.setattr(main_window, "open_source", no_camera)
    window = make_window(source=None)
    assert window.source_spec == "demo"
    assert window.notice.isVisible() and "No camera" in window.notice.label.text()
    assert window.notice.open_button.isVisible()
    wait_streaming(qtbot, window, attributes=False)
    assert window.prefs.source is None  # a fallback is not remembered as the user's choice


def test_missing_weights_show_an_error_and_boxes_still_display(qtbot, make_window, tmp_path, monkeypatch):
    monkeypatch.setenv("FACELENS_WEIGHTS", str(tmp_path / "no-weights"))
    window = make_window(models=None)
    qtbot.waitUntil(lambda: bool(window.errors), timeout=STREAM_TIMEOUT_MS)
    assert "not found" in window.errors[-1]
    assert window.analysis.models_state == "failed"
    wait_streaming(qtbot, window, attributes=False)
    faces = window.analysis.latest(window._generation).faces
    assert all(face.emotion is None for face in faces)


def test_a_bad_file_keeps_the_current_source(qtbot, make_window, tmp_path):
    window = make_window()
    wait_streaming(qtbot, window, attributes=False)
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    assert window.open_source_spec(str(bad)) is False
    assert window.errors and "broken.mp4" in window.errors[-1]
    assert window.source_spec == "demo"
    wait_streaming(qtbot, window, frames=5, attributes=False)
