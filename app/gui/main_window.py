"""The FaceLens window: video view, menus, status bar and the wiring of the worker threads.

The window only decides and shows; frames are read, analysed, annotated and recorded on the threads in
`app.gui.workers`. Expected failures (a source that will not open, a detector that fails to load, missing
weights, an unwritable folder) become a window-modal message box and the app keeps running with what it had.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from app.capture import CaptureThread, LatestFrameSlot
from app.gui.settings import APPLICATION, ORGANIZATION, GuiSettings, open_settings
from app.gui.video_view import NoticeBar, VideoView
from app.gui.workers import AnalysisWorker, DisplayWorker, ExplainJob, Feed, PausableSource, PngWriter, to_qimage
from app.recorder import Recorder, unique_path
from app.sources import list_cameras, open_source
from detectors.base import available_detectors
from inference.cards import TASKS, load_card
from inference.errors import DetectorError, FaceLensError, OutputError, WeightsError
from inference.render import Renderer
from inference.types import ATTRIBUTES

if TYPE_CHECKING:
    from app.sources import FrameSource
    from inference.models import AttributeModel

log = logging.getLogger(__name__)

DEFAULT_DETECTOR = "haar"
STATUS_PERIOD_MS = 250
OPEN_FILTER = (
    "Videos and photos (*.mp4 *.m4v *.mov *.avi *.mkv *.webm *.mpg *.mpeg *.wmv "
    "*.jpg *.jpeg *.png *.bmp *.webp *.tif *.tiff);;All files (*)"
)
VIEW_LABELS: dict[str, str] = {
    "emotion": "&Emotion",
    "gender": "&Gender",
    "race": "&Race",
    "bars": "Probability &bars",
    "stats": "&Stats overlay",
    "mirror": "&Mirror",
}


class MainWindow(QMainWindow):
    """Start with `source` (camera index, path or "demo"; None: the last one, else camera 0, else the demo)
    and `detector` (None: the last one, else Haar). `settings` defaults to the user's QSettings; `models`
    are already loaded attribute models (None: load them from the weights in the background)."""

    stream_ended = Signal(int, str)  # generation, error ("" at a normal end); emitted from the capture thread

    def __init__(
        self,
        source: str | None = None,
        detector: str | None = None,
        *,
        settings: QSettings | None = None,
        models: Mapping[str, AttributeModel] | None = None,
        weights_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.setWindowTitle("FaceLens")
        self._store = settings if settings is not None else open_settings()
        self.prefs = GuiSettings.load(self._store)
        self._weights_dir = weights_dir
        names = available_detectors()
        wanted = detector or self.prefs.detector
        detector_name = wanted if wanted in names else (DEFAULT_DETECTOR if DEFAULT_DETECTOR in names else names[0])

        self.renderer = Renderer(
            show={a: self.prefs.view[a] for a in ATTRIBUTES},
            bars=self.prefs.view["bars"],
            stats=self.prefs.view["stats"],
        )
        self.feed = Feed()
        self.analysis = AnalysisWorker(self.feed, detector_name, models=models, weights_dir=weights_dir)
        self.display = DisplayWorker(self.feed, self.analysis, self.renderer)
        self.explainer = ExplainJob()
        self.png_writer = PngWriter()
        self.explain_view: QDialog | None = None  # created by the first explanation
        self.view = VideoView(self)
        self.notice = NoticeBar(self)
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.notice)
        layout.addWidget(self.view, 1)
        self.setCentralWidget(central)
        self.display.display_fps = self.view.fps.rate

        self.source: PausableSource | None = None
        self.source_spec: str | None = None
        self._capture: CaptureThread | None = None
        self._generation = 0
        self.recorder: Recorder | None = None
        self._recording_since = 0.0
        self._error_box: QMessageBox | None = None
        self.errors: list[str] = []  # every message shown in a dialog this session, newest last

        self._build_menus(names)
        self._build_status_bar()
        self._connect()
        self._apply_view()
        if self.prefs.geometry is not None:
            self.restoreGeometry(self.prefs.geometry)
        else:
            self.resize(960, 780)

        self.analysis.start()
        self.display.start()
        self._start_initial_source(source)
        self._status_timer = QTimer(self)
        self._status_timer.setInterval(STATUS_PERIOD_MS)
        self._status_timer.timeout.connect(self._update_status)
        self._status_timer.start()

    # --- construction ------------------------------------------------------------------------------------
    def _action(
        self, text: str, slot, shortcut: str | QKeySequence | list | None = None, checkable: bool = False
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            if isinstance(shortcut, list):
                action.setShortcuts(shortcut)
            else:
                action.setShortcut(shortcut)
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        self.addAction(action)  # shortcuts work in full screen too, where the menu bar is hidden
        return action

    def _build_menus(self, detector_names: list[str]) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.open_action = self._action("&Open video or photo…", self.open_file, QKeySequence.StandardKey.Open)
        file_menu.addAction(self.open_action)
        self.cameras_menu = QMenu("&Cameras", self)
        self.cameras_menu.aboutToShow.connect(self._rebuild_cameras_menu)
        file_menu.addMenu(self.cameras_menu)
        self.demo_action = self._action("&Demo", lambda: self.open_source_spec("demo"))
        file_menu.addAction(self.demo_action)
        file_menu.addSeparator()
        self.record_action = self._action("Start &recording", self.toggle_recording, "R")
        self.snapshot_action = self._action("&Snapshot", self.snapshot, "S")
        self.explain_action = self._action("&Explain faces", self.explain_faces, "E")
        self.folder_action = self._action("Recording &folder…", self.choose_recording_folder)
        for action in (self.record_action, self.snapshot_action, self.explain_action, self.folder_action):
            file_menu.addAction(action)
        file_menu.addSeparator()
        self.quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        file_menu.addAction(self.quit_action)

        self.detector_menu = self.menuBar().addMenu("&Detector")
        self.detector_group = QActionGroup(self)
        self.detector_group.setExclusive(True)
        self.detector_actions: dict[str, QAction] = {}
        for name in detector_names:
            action = QAction(name, self, checkable=True)
            action.setData(name)
            action.triggered.connect(lambda _checked=False, n=name: self.select_detector(n))
            self.detector_group.addAction(action)
            self.detector_menu.addAction(action)
            self.detector_actions[name] = action
        self.detector_actions[self.analysis.requested_detector].setChecked(True)
        self.detector_menu.addSeparator()
        self.cycle_action = self._action("&Next detector", self.cycle_detector, "D")
        self.detector_menu.addAction(self.cycle_action)

        view_menu = self.menuBar().addMenu("&View")
        self.view_actions: dict[str, QAction] = {}
        for name, label in VIEW_LABELS.items():
            action = self._action(label, lambda checked, n=name: self.set_view(n, checked), checkable=True)
            action.setChecked(self.prefs.view[name])
            self.view_actions[name] = action
            view_menu.addAction(action)
            if name == "race":
                view_menu.addSeparator()
        view_menu.addSeparator()
        self.pause_action = self._action("&Pause", self.set_paused, Qt.Key.Key_Space, checkable=True)
        self.fullscreen_action = self._action("&Full screen", self.set_fullscreen, ["F11", "Ctrl+F"], checkable=True)
        view_menu.addAction(self.pause_action)
        view_menu.addAction(self.fullscreen_action)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.status_labels: dict[str, QLabel] = {}
        for key in ("models", "source", "detector", "display", "analysis", "faces", "recording"):
            label = QLabel(self)
            label.setContentsMargins(6, 0, 6, 0)
            bar.addPermanentWidget(label)
            self.status_labels[key] = label
        self.status_labels["recording"].setStyleSheet("color: #e0202a; font-weight: bold;")

    def _connect(self) -> None:
        self.display.frame_ready.connect(self._on_frame_ready)
        self.analysis.detector_changed.connect(self._on_detector_changed)
        self.analysis.detector_failed.connect(self._on_detector_failed)
        self.analysis.models_failed.connect(self._on_models_failed)
        self.analysis.models_loaded.connect(self._on_models_loaded)
        self.stream_ended.connect(self._on_stream_ended)
        self.view.resized.connect(self._on_view_resized)
        self.notice.demo_requested.connect(lambda: self.open_source_spec("demo"))
        self.notice.open_requested.connect(self.open_file)
        self.explainer.finished.connect(self._on_explained)
        self.explainer.failed.connect(self.show_error)
        self.png_writer.saved.connect(self._on_png_saved)
        self.png_writer.failed.connect(self.show_error)

    # --- sources -----------------------------------------------------------------------------------------
    def _start_initial_source(self, explicit: str | None) -> None:
        """--source, else the last source, else camera 0; the demo when none of those opens, with a notice."""
        candidates = [explicit] if explicit else list(dict.fromkeys(s for s in (self.prefs.source, "0") if s))
        failures: list[str] = []
        for spec in candidates:
            try:
                self._start_source(spec, open_source(spec), remember=bool(explicit) or spec != "0")
                return
            except FaceLensError as exc:
                failures.append(str(exc))
        self._start_source("demo", open_source("demo"), remember=False)
        if explicit:
            text = f"Could not open {explicit}: {failures[0]}. Showing the built-in demo instead."
        else:
            text = f"No camera could be opened: {failures[-1]}. Showing the built-in demo; open a video or photo?"
        self.notice.show_message(text, offer_demo=False)
        self.statusBar().showMessage(failures[-1], 15000)

    def open_source_spec(self, spec: str) -> bool:
        """Switch to another source; when it cannot be opened the current one keeps playing."""
        try:
            source = open_source(spec)
        except FaceLensError as exc:
            self.notice.show_message(f"{exc}", offer_demo=self.source_spec != "demo")
            self.show_error(str(exc))
            return False
        self._start_source(spec, source, remember=True)
        self.notice.hide()
        return True

    def _start_source(self, spec: str, source: FrameSource, remember: bool) -> None:
        if self.recorder is not None:
            self.stop_recording()
        self._stop_capture()
        self.source = PausableSource(source)
        self.source_spec = spec
        slot = LatestFrameSlot()
        self._generation = generation = self.feed.replace(slot)
        self._capture = CaptureThread(
            self.source, slot, realtime=True, on_end=lambda error: self.stream_ended.emit(generation, error or "")
        )
        self._capture.start()
        self.pause_action.setChecked(False)
        self.statusBar().clearMessage()
        self.view.fps.reset()
        self.setWindowTitle(f"FaceLens — {source.name}")
        if remember:
            self.prefs.source = spec
            self.prefs.save(self._store)

    def _stop_capture(self) -> None:
        if self._capture is None:
            return
        self.source.release()
        if not self._capture.stop(timeout=2.0):
            log.warning("capture of %s did not stop within 2 s", self.source.name)
        self._capture = None

    @Slot(int, str)
    def _on_stream_ended(self, generation: int, error: str) -> None:
        if generation != self._generation:
            return  # a source we already left
        if self.recorder is not None:
            self.stop_recording()
        if error:
            self.notice.show_message(f"{error}", offer_demo=True)
            self.show_error(error)
        else:
            self.statusBar().showMessage(f"End of {self.source.name}", 10000)

    @Slot()
    def open_file(self) -> None:
        start = str(Path(self.source_spec).parent) if self.source_spec and os.sep in self.source_spec else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open a video or photo", start, OPEN_FILTER)
        if path:
            self.open_source_spec(path)

    @Slot()
    def _rebuild_cameras_menu(self) -> None:
        """Cameras come and go (USB), so the list is probed each time the menu opens."""
        self.cameras_menu.clear()
        cameras = list_cameras()
        if not cameras:
            none = self.cameras_menu.addAction("No camera found")
            none.setEnabled(False)
            return
        group = QActionGroup(self.cameras_menu)
        for index, name in cameras:
            action = self.cameras_menu.addAction(f"{name} ({index})")
            action.setCheckable(True)
            action.setChecked(self.source_spec == str(index))
            group.addAction(action)
            action.triggered.connect(lambda _checked=False, i=index: self.open_source_spec(str(i)))

    # --- detectors and models ----------------------------------------------------------------------------
    def select_detector(self, name: str) -> None:
        if name == self.analysis.requested_detector:
            return
        self.analysis.request_detector(name)
        self.detector_actions[name].setChecked(True)
        self.statusBar().showMessage(f"Loading detector {name}…", 5000)

    @Slot()
    def cycle_detector(self) -> None:
        names = list(self.detector_actions)
        current = self.analysis.requested_detector
        following = names[(names.index(current) + 1) % len(names)] if current in names else names[0]
        self.select_detector(following)

    @Slot(str)
    def _on_detector_changed(self, name: str) -> None:
        if name in self.detector_actions and name == self.analysis.requested_detector:
            self.detector_actions[name].setChecked(True)
        self.prefs.detector = name
        self.prefs.save(self._store)
        self.statusBar().showMessage(f"Detector: {name}", 3000)

    @Slot(str, str)
    def _on_detector_failed(self, name: str, message: str) -> None:
        running = self.analysis.detector_name or self.analysis.requested_detector
        if running in self.detector_actions:
            self.detector_actions[running].setChecked(True)
        suffix = f" Still using {running}." if running and running != name else ""
        self.show_error(f"{message}{suffix}")

    @Slot(str)
    def _on_models_failed(self, message: str) -> None:
        self.show_error(f"{message}\nShowing face boxes only (no emotion, gender or race).")

    @Slot(list)
    def _on_models_loaded(self, tasks: list) -> None:
        self.statusBar().showMessage(f"Models loaded: {', '.join(tasks)}", 3000)

    # --- view --------------------------------------------------------------------------------------------
    def set_view(self, name: str, on: bool) -> None:
        self.prefs.view[name] = bool(on)
        self.view_actions[name].setChecked(bool(on))
        self._apply_view()
        self.prefs.save(self._store)

    def _apply_view(self) -> None:
        view = self.prefs.view
        self.renderer.show = {attr: view[attr] for attr in ATTRIBUTES}
        self.renderer.bars = view["bars"]
        self.renderer.stats = view["stats"]
        self.display.mirror = view["mirror"]
        self.analysis.set_enabled({attr for attr in ATTRIBUTES if view[attr]})
        self.display.refresh()

    @Slot(bool)
    def set_paused(self, paused: bool) -> None:
        if self.source is not None:
            self.source.set_paused(paused)
        self.pause_action.setChecked(paused)
        self.statusBar().showMessage("Paused" if paused else "Playing", 2000)

    @Slot(bool)
    def set_fullscreen(self, on: bool) -> None:
        if on:
            self.showFullScreen()
        else:
            self.showNormal()

    @Slot(int, int)
    def _on_view_resized(self, width: int, height: int) -> None:
        self.display.target_size = (width, height)
        self.display.refresh()

    @Slot()
    def _on_frame_ready(self) -> None:
        image = self.display.take_image()
        if image is not None:
            image.setDevicePixelRatio(self.view.devicePixelRatioF())
            self.view.set_image(image)

    # --- recording and snapshots -------------------------------------------------------------------------
    @property
    def recording(self) -> bool:
        return self.recorder is not None

    @Slot()
    def toggle_recording(self) -> None:
        if self.recorder is None:
            self.start_recording()
        else:
            self.stop_recording()

    def _output_path(self, suffix: str, companions: tuple[str, ...] = ()) -> Path:
        folder = Path(self.prefs.recording_folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the recording folder {folder}: {exc.strerror or exc}") from None
        return unique_path(folder, time.strftime("facelens-%Y%m%d-%H%M%S"), suffix, companions)

    def start_recording(self) -> bool:
        if self.source is None or self.recorder is not None:
            return False
        path = None
        try:
            path = self._output_path(".mp4", (".csv",))
            self.recorder = Recorder(path, self.source.fps, self.source.size, self._classes())
        except FaceLensError as exc:
            if path is not None and path.exists() and path.stat().st_size == 0:
                path.unlink()  # the name unique_path reserved
            self.show_error(str(exc))
            return False
        self._recording_since = time.monotonic()
        self.display.set_recorder(self.recorder)
        self.record_action.setText("Stop &recording")
        self.statusBar().showMessage(f"Recording to {path}", 5000)
        return True

    def stop_recording(self) -> Path | None:
        """Finish the video and CSV (the frames still queued are written first)."""
        recorder, self.recorder = self.recorder, None
        if recorder is None:
            return None
        self.display.set_recorder(None)
        self.record_action.setText("Start &recording")
        try:
            recorder.close()
        except OutputError as exc:
            self.show_error(str(exc))
            return None
        self.statusBar().showMessage(f"Saved {recorder.path} ({recorder.frames_written} frames)", 10000)
        return recorder.path

    def _classes(self) -> dict[str, tuple[str, ...]]:
        """The CSV columns: the loaded models' classes, or (while they load) their cards'."""
        classes = self.analysis.classes()
        if classes:
            return classes
        found = {}
        for task in TASKS:
            try:
                found[task] = load_card(task, self._weights_dir).classes
            except WeightsError:
                pass
        return found

    @Slot()
    def snapshot(self) -> Path | None:
        """Save the frame on screen, overlay included, as a PNG in the recording folder (written on a thread
        of its own: the path is reserved now, the file is complete when the status bar says so)."""
        image = self.display.last_annotated()
        if image is None:
            self.statusBar().showMessage("No frame to save yet", 3000)
            return None
        return self._save_png(image, "Snapshot")

    @Slot()
    def explain_faces(self) -> bool:
        """Start saving where each model looked on the faces on screen (`facelens image --explain` for the
        live picture); the PNG lands in the recording folder when the worker is done."""
        shown = self.display.last_faces()
        models = self.analysis.enabled_models()
        if shown is None or not shown[1]:
            message = "No faces to explain yet"
        elif not models:
            message = "No attribute model is running"
        elif not self.explainer.start(*shown, models):
            message = "Still explaining the previous faces"
        else:
            self.statusBar().showMessage(f"Explaining {len(shown[1])} face(s)…", 5000)
            return True
        self.statusBar().showMessage(message, 3000)
        return False

    @Slot(object)
    def _on_explained(self, panel: np.ndarray) -> None:
        """Save the panel and show it in a window of its own (reused by the next explanation), so the stream
        keeps its place and the user sees the result without opening the file."""
        path = self._save_png(panel, "Explanation")
        if self.explain_view is None:
            self.explain_view = QDialog(self)
            self.explain_view.setModal(False)
            self._explain_label = QLabel(self.explain_view)
            QVBoxLayout(self.explain_view).addWidget(self._explain_label)
        self.explain_view.setWindowTitle(f"Where the models looked{f' — {path.name}' if path else ''}")
        self._explain_label.setPixmap(QPixmap.fromImage(to_qimage(panel)))
        self.explain_view.show()
        self.explain_view.raise_()

    @Slot(str, object)
    def _on_png_saved(self, what: str, path: Path) -> None:
        self.statusBar().showMessage(f"{what} saved: {path}", 5000)

    def _save_png(self, image: np.ndarray, what: str) -> Path | None:
        """Reserve a new PNG name in the recording folder and write `image` there off the GUI thread; an
        error (no folder, full disk) is one dialog line, now or when the writer fails."""
        try:
            path = self._output_path(".png")
        except FaceLensError as exc:
            self.show_error(str(exc))
            return None
        self.png_writer.save(image, path, what)
        return path

    @Slot()
    def choose_recording_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Recording folder", str(self.prefs.recording_folder))
        if folder:
            self.prefs.recording_folder = Path(folder)
            self.prefs.save(self._store)

    # --- status and errors -------------------------------------------------------------------------------
    @Slot()
    def _update_status(self) -> None:
        labels = self.status_labels
        paused = self.source is not None and self.source.paused
        labels["source"].setText(f"Source: {self.source.name if self.source else '—'}{' (paused)' if paused else ''}")
        running, requested = self.analysis.detector_name, self.analysis.requested_detector
        loading = f" (loading {requested}…)" if requested and requested != running else ""
        labels["detector"].setText(f"Detector: {running or '…'}{loading}")
        labels["display"].setText(f"Display {self.view.fps.rate():.1f} fps")
        labels["analysis"].setText(f"Analysis {self.analysis.fps.rate():.1f} fps")
        result = self.analysis.latest(self._generation)
        labels["faces"].setText(f"Faces: {len(result.faces) if result else 0}")
        state = self.analysis.models_state
        labels["models"].setText({"loading": "Loading models…", "failed": "No attribute models"}.get(state, ""))
        labels["models"].setVisible(state != "ready")
        if self.recorder is not None:
            error = self.display.record_error
            if error:
                self.stop_recording()
                self.show_error(error)
            else:
                elapsed = int(time.monotonic() - self._recording_since)
                labels["recording"].setText(f"● REC {elapsed // 60:02d}:{elapsed % 60:02d}")
        if self.recorder is None:
            labels["recording"].setText("")

    def show_error(self, message: str) -> None:
        """A window-modal message box that does not block the event loop; messages arriving while one is
        open are added to it rather than stacking dialogs."""
        self.errors.append(message)
        self.statusBar().showMessage(message.splitlines()[0], 10000)
        box = self._error_box
        if box is not None and box.isVisible():
            box.setText(f"{box.text()}\n\n{message}")
            return
        box = QMessageBox(QMessageBox.Icon.Warning, "FaceLens", message, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda _result: setattr(self, "_error_box", None))
        self._error_box = box
        box.open()

    # --- shutdown ----------------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        """Finish a recording properly, remember the settings, stop every thread."""
        self._status_timer.stop()
        self.stop_recording()
        self.prefs.geometry = self.saveGeometry()
        # The running detector, read directly: its "changed" signal may still be queued if the user
        # switched detectors and closed within the same moment.
        self.prefs.detector = self.analysis.detector_name or self.prefs.detector
        self.prefs.save(self._store)
        self._stop_capture()
        self.display.stop()
        self.analysis.stop()
        if not self.png_writer.wait():
            log.warning("a PNG was still being written when the window closed")
        super().closeEvent(event)


def run_gui(source: str | None = None, detector: str | None = None) -> int:
    """The desktop app (the CLI's default command); returns the Qt exit code."""
    if detector is not None and detector not in available_detectors():
        raise DetectorError(f"unknown detector {detector!r}; choose one of: {', '.join(available_detectors())}")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    window = MainWindow(source, detector)
    window.show()
    # Ctrl+C in the terminal closes the window properly (finishing a recording). Python only sees the signal
    # when it runs, so a timer hands it control a few times a second.
    signal.signal(signal.SIGINT, lambda *_: window.close())
    wake = QTimer(window)
    wake.timeout.connect(lambda: None)
    wake.start(200)
    return app.exec()
