"""The GUI's threads: capture feeds a latest-frame slot; analysis and display each take the newest frame.

Nothing slow runs on the GUI thread. Three loops run beside it:
- capture (`app.capture.CaptureThread`) reads the source at its own rate into a `LatestFrameSlot`;
- `AnalysisWorker` takes the newest frame whenever it is free and runs `FrameAnalyzer.analyze` on it
  (latest-frame-wins: a slow detector skips frames for analysis, never for display);
- `DisplayWorker` takes every frame, draws the newest result on it (boxes moved along with
  `FaceTracker.follow`), hands it to the recorder and leaves a `QImage` in a one-place mailbox for the view.

Slow loads (the attribute CNNs at start, MTCNN on a detector switch) run on short-lived loader threads and are
applied by the analysis loop between two frames, so the previous detector keeps running while a new one loads
and a load that fails changes nothing but an error signal. Parameters crossing threads sit behind one lock
each; signals carry plain data only, never QPixmap.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from app.capture import Frame, LatestFrameSlot
from app.recorder import Recorder
from detectors.base import FaceDetector, available_detectors, create_detector
from inference.analyzer import FrameAnalyzer
from inference.errors import FaceLensError, OutputError
from inference.render import Renderer
from inference.tracking import FaceTracker
from inference.types import Face, FrameResult

if TYPE_CHECKING:
    from inference.models import AttributeModel

log = logging.getLogger(__name__)

POLL_S = 0.05  # how long a loop waits for a frame before it looks at its stop flag and pending changes again
# How long the display waits for a frame before it looks for a new analysis result: a result is drawn on the
# frame on screen within this time instead of on the next captured frame (up to a frame interval later).
RESULT_POLL_S = 0.004
FRAME_KEY = "facelens-frame"  # QImage text key naming the source frame an image shows
JOIN_S = 3.0


class FpsMeter:
    """Events per second over the last `window` seconds: a deque of monotonic timestamps (after supervision's
    FPSMonitor). Thread-safe enough for one writer and any readers: deque appends and copies are atomic."""

    def __init__(self, window: float = 1.0) -> None:
        self.window = window
        self._times: collections.deque[float] = collections.deque(maxlen=512)

    def tick(self, now: float | None = None) -> None:
        self._times.append(time.monotonic() if now is None else now)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        times = [t for t in list(self._times) if now - t <= self.window]
        if len(times) < 2:
            return 0.0
        span = max(times[-1] - times[0], 1e-6)
        return (len(times) - 1) / span

    def reset(self) -> None:
        self._times.clear()


class PausableSource:
    """Wraps a FrameSource so the GUI can pause it: `read` waits while paused, which holds the capture thread
    (files stop advancing; the capture thread restarts its pacing schedule on resume). `close` also wakes a
    paused read, so stopping never waits for a resume."""

    def __init__(self, source: Any) -> None:
        self.inner = source
        self.name, self.fps, self.size = source.name, source.fps, source.size
        self.is_live, self.frame_count = source.is_live, source.frame_count
        self._running = threading.Event()
        self._running.set()
        self._released = threading.Event()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def set_paused(self, paused: bool) -> None:
        if paused:
            self._running.clear()
        else:
            self._running.set()

    def release(self) -> None:
        """Let a paused read return (None) so the capture thread can stop."""
        self._released.set()
        self._running.set()

    def read(self) -> np.ndarray | None:
        while not self._running.wait(POLL_S):
            pass
        if self._released.is_set():
            return None
        return self.inner.read()

    def close(self) -> None:
        self._released.set()
        self.inner.close()


class Feed:
    """The current frame slot and its generation. A new source gets a new slot and generation, so results
    and frame indices of the previous source are never mixed with the new one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slot = LatestFrameSlot()
        self._slot.close()
        self._generation = 0

    def replace(self, slot: LatestFrameSlot) -> int:
        with self._lock:
            self._slot, self._generation = slot, self._generation + 1
            return self._generation

    def current(self) -> tuple[LatestFrameSlot, int]:
        with self._lock:
            return self._slot, self._generation


def wait_frame(
    feed: Feed, after: tuple[int, int], stop: threading.Event, timeout: float = POLL_S
) -> tuple[Frame | None, int]:
    """The newest frame after `after` = (generation, index), waiting up to `timeout`; (None, gen) when there
    is none yet. An ended stream (closed slot) is waited on through `stop` (POLL_S) so loops never spin."""
    slot, generation = feed.current()
    last = after[1] if after[0] == generation else -1
    frame = slot.wait_newer(last, timeout=timeout)
    if frame is None and slot.closed:
        stop.wait(POLL_S)
    return frame, generation


@dataclass(frozen=True)
class Analysed:
    """A result and the source generation it belongs to."""

    generation: int
    result: FrameResult


class ThreadOwner:
    """One named daemon thread running `self._run`, stopped through an Event and joined with a timeout, so
    a worker that hangs can never keep the window from closing."""

    _stop: threading.Event
    _thread: threading.Thread

    def _init_thread(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = JOIN_S) -> bool:
        self._stop.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()


class AnalysisWorker(QObject, ThreadOwner):
    """Runs the analyzer on the newest frame, on its own thread.

    Detector switches and the model load are requested from the GUI thread, performed on loader threads and
    applied between frames; `detector_failed` reports a detector that could not be built (the running one
    stays), `models_failed` weights that could not be loaded (analysis then runs detection only)."""

    detector_changed = Signal(str)
    detector_failed = Signal(str, str)
    models_loaded = Signal(list)
    models_failed = Signal(str)

    def __init__(
        self,
        feed: Feed,
        detector: str,
        models: Mapping[str, AttributeModel] | None = None,
        weights_dir: Path | None = None,
        tracker_factory: Callable[[], FaceTracker] = FaceTracker,
    ) -> None:
        super().__init__()
        self._feed = feed
        self._initial_detector = detector
        self._given_models = None if models is None else dict(models)
        self._weights_dir = weights_dir
        self.tracker = tracker_factory()
        self.analyzer: FrameAnalyzer | None = None
        self.fps = FpsMeter(window=2.0)
        self._lock = threading.Lock()
        self._latest: Analysed | None = None
        self._pending_detector: tuple[int, str, FaceDetector] | None = None
        self._pending_models: dict[str, AttributeModel] | None = None
        self._request_id = 0
        self._requested: str = detector
        self._enabled: set[str] | None = None
        self._detector_name = ""
        self.models_state = "loading"  # then "ready", or "failed" (detection only)
        self._init_thread("facelens-analysis")

    # --- GUI-thread API -------------------------------------------------------------------------------------

    @property
    def detector_name(self) -> str:
        """The detector analysing frames now ('' until the first is loaded)."""
        return self._detector_name

    @property
    def requested_detector(self) -> str:
        return self._requested

    def request_detector(self, name: str) -> None:
        """Switch to detector `name` without stopping the stream; building it happens off the GUI thread."""
        with self._lock:
            self._request_id += 1
            request = self._request_id
            self._requested = name
        threading.Thread(
            target=self._load_detector, args=(request, name), name=f"facelens-load-{name}", daemon=True
        ).start()

    def set_enabled(self, attributes: set[str]) -> None:
        """Which attribute models to run (a switched-off model costs nothing)."""
        with self._lock:
            self._enabled = set(attributes)
            if self.analyzer is not None:
                self.analyzer.enabled = set(attributes)

    def latest(self, generation: int) -> FrameResult | None:
        """The newest result for the source of `generation`, or None."""
        latest = self._latest
        return latest.result if latest is not None and latest.generation == generation else None

    def classes(self) -> dict[str, tuple[str, ...]]:
        analyzer = self.analyzer
        return {} if analyzer is None else dict(analyzer.classes)

    def enabled_models(self) -> dict[str, AttributeModel]:
        """The loaded models the View menu has switched on ({} while they load)."""
        analyzer = self.analyzer
        if analyzer is None:
            return {}
        return {attr: model for attr, model in analyzer.models.items() if attr in analyzer.enabled}

    # --- loader threads ------------------------------------------------------------------------------------
    def _load_detector(self, request: int, name: str) -> None:
        try:
            detector = create_detector(name)
        except FaceLensError as exc:
            with self._lock:
                current = request == self._request_id
                if current:
                    self._requested = self._detector_name
            if current:
                self.detector_failed.emit(name, str(exc))
            return
        with self._lock:
            stale, self._pending_detector = self._pending_detector, (request, name, detector)
            if request != self._request_id:
                stale, self._pending_detector = (request, name, detector), stale
        if stale is not None:
            stale[2].close()

    def _load_models(self) -> None:
        if self._given_models is not None:
            models = self._given_models
        else:
            try:
                from inference.models import load_models  # TensorFlow: imported off the GUI thread

                models = load_models(self._weights_dir)
            except FaceLensError as exc:
                self.models_state = "failed"
                self.models_failed.emit(str(exc))
                return
        with self._lock:
            self._pending_models = models

    # --- the analysis loop --------------------------------------------------------------------------------
    def _run(self) -> None:
        detector = self._first_detector()
        if detector is None:
            return
        self.analyzer = FrameAnalyzer(detector, {}, self.tracker)
        self.detector_changed.emit(self._detector_name)
        loader = threading.Thread(target=self._load_models, name="facelens-load-models", daemon=True)
        loader.start()
        after = (-1, -1)
        try:
            while not self._stop.is_set():
                self._apply_pending()
                frame, generation = wait_frame(self._feed, after, self._stop)
                if frame is None:
                    continue
                if generation != after[0]:
                    self.analyzer.reset()
                after = (generation, frame.index)
                result = self.analyzer.analyze(frame.image, frame.index, frame.timestamp)
                self._latest = Analysed(generation, result)
                self.fps.tick()
        except Exception as exc:  # a bug, but the window should say so rather than silently stop analysing
            log.exception("analysis stopped")
            self.detector_failed.emit(self._detector_name, f"analysis stopped: {type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                pending, self._pending_detector = self._pending_detector, None
            for det in (self.analyzer.detector, pending[2] if pending else None):
                if det is not None:
                    det.close()

    def _first_detector(self) -> FaceDetector | None:
        """The requested detector, else the first built-in that loads (each failure reported)."""
        names = [self._initial_detector] + [n for n in available_detectors() if n != self._initial_detector]
        for name in names:
            try:
                detector = create_detector(name)
            except FaceLensError as exc:
                self.detector_failed.emit(name, str(exc))
                continue
            self._detector_name = self._requested = name
            return detector
        return None

    def _apply_pending(self) -> None:
        """Swap in what the loaders finished (runs between frames, on this thread)."""
        with self._lock:
            pending, self._pending_detector = self._pending_detector, None
            models, self._pending_models = self._pending_models, None
            enabled = self._enabled
        if pending is not None:
            _, name, detector = pending
            self.analyzer.set_detector(detector).close()
            self._detector_name = name
            self.detector_changed.emit(name)
        if models is not None:
            analyzer = FrameAnalyzer(self.analyzer.detector, models, self.tracker)
            if enabled is not None:
                analyzer.enabled = set(enabled) & set(models)
            self.analyzer = analyzer
            self.models_state = "ready"
            self.models_loaded.emit(sorted(models))


def to_qimage(image_bgr: np.ndarray) -> QImage:
    """A QImage that owns its pixels (copied), so it outlives the numpy array it came from."""
    image = np.ascontiguousarray(image_bgr)
    height, width = image.shape[:2]
    return QImage(image.data, width, height, image.strides[0], QImage.Format.Format_BGR888).copy()


def fit_to(image: np.ndarray, area: tuple[int, int] | None) -> np.ndarray:
    """`image` resized to the largest size with its aspect ratio inside `area` (w, h); as is when None or
    when it already fits exactly. Area averaging when shrinking keeps thin overlay lines and text legible."""
    if area is None:
        return image
    height, width = image.shape[:2]
    scale = min(area[0] / width, area[1] / height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == (width, height) or scale <= 0:
        return image
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interpolation)


def mirrored(image: np.ndarray, result: FrameResult | None) -> tuple[np.ndarray, FrameResult | None]:
    """The frame flipped left-right and the result's boxes with it (text is drawn afterwards, so it reads)."""
    width = image.shape[1]
    flipped = cv2.flip(image, 1)
    if result is None:
        return flipped, None
    faces = tuple(replace(face, box=replace(face.box, x=width - face.box.x - face.box.w)) for face in result.faces)
    return flipped, replace(result, faces=faces)


class DisplayWorker(QObject, ThreadOwner):
    """Annotates every captured frame with the newest analysis, records it, and offers it to the view.

    The view gets at most one frame in flight: the newest QImage waits in a mailbox and `frame_ready` is
    emitted only when the mailbox was empty, so a busy GUI thread drops frames instead of queueing them."""

    frame_ready = Signal()

    def __init__(self, feed: Feed, analysis: AnalysisWorker, renderer: Renderer) -> None:
        super().__init__()
        self._feed = feed
        self._analysis = analysis
        self.renderer = renderer
        self.mirror = False
        # The view's size in device pixels: frames are scaled to fit it here, so the GUI thread only blits.
        self.target_size: tuple[int, int] | None = None
        self.fps = FpsMeter()
        # Frames actually painted per second, for the stats overlay; the view measures it, the window wires it.
        self.display_fps: Callable[[], float] = lambda: 0.0
        self.render_ms = collections.deque(maxlen=120)
        self._lock = threading.Lock()
        self._mailbox: QImage | None = None
        self._last: tuple[Frame, np.ndarray, FrameResult | None] | None = None
        self._recorder: Recorder | None = None
        self._record_lock = threading.Lock()  # separate: a full recorder queue may block a write for a moment
        self.record_error: str | None = None
        self._dirty = threading.Event()
        self._init_thread("facelens-display")

    def refresh(self) -> None:
        """Redraw the current frame (settings changed, or a new result for a still frame)."""
        self._dirty.set()

    def take_image(self) -> QImage | None:
        with self._lock:
            image, self._mailbox = self._mailbox, None
            return image

    def last_annotated(self) -> np.ndarray | None:
        """The frame on screen with its overlay (BGR), for snapshots."""
        last = self._last
        return None if last is None else last[1]

    def last_faces(self) -> tuple[np.ndarray, tuple[Face, ...]] | None:
        """The frame on screen without overlay or mirroring, and its faces with their boxes where they are drawn."""
        last = self._last
        if last is None or last[2] is None:
            return None
        frame, _, result = last
        return frame.image, self._analysis.tracker.follow(result, frame.timestamp).faces

    def set_recorder(self, recorder: Recorder | None) -> Recorder | None:
        """Start feeding `recorder` (None: stop); returns the previous one, which gets no frame after this."""
        with self._record_lock:
            old, self._recorder = self._recorder, recorder
            self.record_error = None
            return old

    def _run(self) -> None:
        after = (-1, -1)
        frame: Frame | None = None
        while not self._stop.is_set():
            new, generation = wait_frame(self._feed, after, self._stop, RESULT_POLL_S)
            if new is not None:
                frame, after = new, (generation, new.index)
                self._dirty.clear()
                self._show(frame, generation, record=True)
            elif frame is not None and after[0] == generation and self._dirty.is_set():
                self._dirty.clear()
                self._show(frame, generation, record=False)
            elif self._analysis_is_newer(frame, generation):
                self._show(frame, generation, record=False)

    def _analysis_is_newer(self, frame: Frame | None, generation: int) -> bool:
        """A result that arrived since the last draw is drawn at once on the frame on screen (not on the next
        captured frame, up to a frame interval later), and a still stream (paused, ended, a photo) shows it."""
        if frame is None or self._last is None:
            return False
        result = self._analysis.latest(generation)
        return result is not None and result is not self._last[2]

    def _show(self, frame: Frame, generation: int, record: bool) -> None:
        start = time.perf_counter()
        result = self._analysis.latest(generation)
        shown = result
        if result is not None:
            shown = self._analysis.tracker.follow(result, frame.timestamp)
        image = frame.image
        if self.mirror:
            image, shown = mirrored(image, shown)
        stats = {"display fps": self.display_fps(), "analysis fps": self._analysis.fps.rate()}
        if result is not None:
            stats["analysis ms"] = float(result.timings.get("total", 0.0))
        annotated = self.renderer.annotate(image, shown, stats)
        self.render_ms.append((time.perf_counter() - start) * 1000.0)
        self._last = (frame, annotated, result)
        if record:
            self._record(annotated, shown, frame)
        qimage = to_qimage(fit_to(annotated, self.target_size))
        # The view counts display fps over distinct source frames; a redraw for a new result is not a new frame.
        qimage.setText(FRAME_KEY, f"{generation}:{frame.index}")
        with self._lock:
            was_empty = self._mailbox is None
            self._mailbox = qimage
        self.fps.tick()
        if was_empty:
            self.frame_ready.emit()

    def _record(self, annotated: np.ndarray, result: FrameResult | None, frame: Frame) -> None:
        with self._record_lock:
            recorder = self._recorder
            if recorder is None or self.record_error is not None:
                return
            try:
                recorder.write(annotated, result, frame.index, frame.timestamp)
            except FaceLensError as exc:
                self.record_error = str(exc)


def write_png(image: np.ndarray, path: Path, what: str) -> None:
    """Encode `image` and write it to `path` (a name `unique_path` reserved); on failure the reserved, empty
    file is removed, so a full disk leaves no broken PNG behind, and the error is one line."""
    try:
        ok, data = cv2.imencode(".png", image)
        if not ok:
            raise OutputError(f"cannot encode the {what.lower()} as PNG for {path}")
        try:
            path.write_bytes(data.tobytes())
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    except OutputError:
        path.unlink(missing_ok=True)
        raise


class PngWriter(QObject):
    """Writes snapshots and explanation panels on short-lived threads. Why: encoding a PNG is slow work for
    the GUI thread: 13 ms for a 640x480 frame and 87 ms for a 1080p one here (`cv2.imencode` while a
    training run shared the CPU), up to three frames of a 30 fps stream. `saved` carries (what, path);
    `failed` one line."""

    saved = Signal(str, object)
    failed = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self._pending: set[threading.Thread] = set()
        self._lock = threading.Lock()

    def save(self, image: np.ndarray, path: Path, what: str) -> None:
        """Start writing; the caller must not change `image` afterwards (frames and panels never are)."""
        thread = threading.Thread(target=self._run, args=(image, path, what), name="facelens-png", daemon=True)
        with self._lock:
            self._pending.add(thread)
        thread.start()

    def wait(self, timeout: float = JOIN_S) -> bool:
        """Let the writes in flight finish (on close, so quitting right after a snapshot keeps it whole);
        False if one is still running after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            pending = list(self._pending)
        for thread in pending:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in pending)

    def _run(self, image: np.ndarray, path: Path, what: str) -> None:
        try:
            write_png(image, path, what)
        except FaceLensError as exc:
            self.failed.emit(str(exc))
        else:
            self.saved.emit(what, path)
        finally:
            with self._lock:
                self._pending.discard(threading.current_thread())


class ExplainJob(QObject):
    """Occlusion maps (`inference.explain`) of the faces on screen, on a short-lived thread: each model sees
    every face 82 times (81 occluded copies and the whole face); the demo's two faces took 2.9-3.5 s with
    three models next to a training run, far too long for the GUI thread. One job at a time; `finished`
    carries the panel (a BGR array), `failed` one line."""

    finished = Signal(object)
    failed = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self._busy = threading.Lock()

    def start(self, frame: np.ndarray, faces: tuple[Face, ...], models: Mapping[str, AttributeModel]) -> bool:
        """Begin explaining; False (nothing started) while the previous job runs."""
        if not self._busy.acquire(blocking=False):
            return False
        threading.Thread(
            target=self._run, args=(frame.copy(), faces, dict(models)), name="facelens-explain", daemon=True
        ).start()
        return True

    def _run(self, frame: np.ndarray, faces: tuple[Face, ...], models: dict[str, AttributeModel]) -> None:
        from inference.explain import explain_face, explanation_panel

        try:
            boxes = [face.box for face in faces]
            explanations = [explain_face(models, frame, box) for box in boxes]
            panel = explanation_panel(frame, boxes, explanations, [f"#{face.track_id}" for face in faces])
        except Exception as exc:  # a model failing mid-stream must cost an error line, not the GUI
            log.exception("explaining faces failed")
            self.failed.emit(f"cannot explain the faces: {type(exc).__name__}: {exc}")
        else:
            self.finished.emit(panel)
        finally:
            self._busy.release()
