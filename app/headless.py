"""The headless commands behind `facelens analyze` and `facelens image`.

`analyze` is a three-stage pipeline across threads, because decoding (OpenCV), inference (TensorFlow) and
encoding (PyAV) all release the GIL: a capture thread decodes ahead into a bounded queue, this thread
analyses, and the recorder's thread renders and encodes. Every frame is read in order (never skipped) and
every frame is recorded; with `every=N` only each Nth frame is analysed and the others reuse the newest
result moved along with the tracker (`FaceTracker.follow`), as the GUI does between analyses.

Everything a user can get wrong (source, detector, output path, weights) is checked before the first frame,
cheapest first, so a typo costs no model loading.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import cv2
import numpy as np

from app.capture import CaptureThread, Frame, FrameQueue, LatestFrameSlot
from app.demo import FPS as DEMO_FPS
from app.demo import LOOP_S
from app.pipeline import run_ahead
from app.recorder import Recorder, check_video_path, check_writable
from app.sources import DemoSource, FrameSource, open_source, read_image
from inference.errors import FaceLensError, OutputError, SourceError
from inference.types import ATTRIBUTES, FrameResult

if TYPE_CHECKING:  # the analyzer module is imported with the models, after the cheap checks
    from inference.analyzer import Detection

DEMO_FRAMES = int(LOOP_S * DEMO_FPS)  # `analyze demo` without --max-frames runs one loop of the animation
PREFETCH_FRAMES = 8


class Progress:
    """A one-line progress readout on a terminal (at most 5 updates a second); silent when stderr is a pipe
    or a file, so logs and tests see only the summary."""

    def __init__(self, total: int | None, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(stream, "isatty", lambda: False)())
        self._start = time.monotonic()
        self._last = 0.0
        self._shown = False

    def update(self, done: int, faces: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._last < 0.2:
            return
        self._last = now
        rate = done / max(now - self._start, 1e-9)
        if self.total:
            head = f"{done}/{self.total} frames {100.0 * done / self.total:3.0f}%"
            eta = f" eta {max(0.0, (self.total - done) / rate):.0f}s" if rate > 0 else ""
        else:
            head, eta = f"{done} frames", ""
        self.stream.write(f"\ranalyze: {head}  {rate:5.1f} fps  {faces} faces{eta}\033[K")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()


@dataclass
class Summary:
    """What `analyze` reports at the end (printed, or as JSON with --json)."""

    source: str
    frames: int = 0
    analyzed: int = 0
    face_detections: int = 0
    max_faces: int = 0
    track_ids: set[int] = field(default_factory=set)
    wall_s: float = 0.0
    stage_ms: dict[str, float] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)

    def add(self, result: FrameResult, analyzed: bool) -> None:
        self.frames += 1
        if analyzed:
            self.analyzed += 1
            self.face_detections += len(result.faces)
            self.max_faces = max(self.max_faces, len(result.faces))
            self.track_ids.update(face.track_id for face in result.faces)
            for key, ms in result.timings.items():
                self.stage_ms[key] = self.stage_ms.get(key, 0.0) + ms

    def to_dict(self) -> dict[str, Any]:
        analyzed = max(self.analyzed, 1)
        return {
            "source": self.source,
            "frames": self.frames,
            "analyzed_frames": self.analyzed,
            "face_detections": self.face_detections,
            "max_faces_per_frame": self.max_faces,
            "distinct_faces": len(self.track_ids),
            # Analysed frames per second of the loop's wall time: with detection one thread ahead of the
            # models, the stages' times overlap, so their sum (stage_ms.total) is work per frame, not wall time.
            "analysis_fps": round(self.analyzed / self.wall_s, 2) if self.wall_s > 0 else None,
            "overall_fps": round(self.frames / self.wall_s, 2) if self.wall_s > 0 else None,
            "wall_s": round(self.wall_s, 3),
            "stage_ms": {key: round(ms / analyzed, 2) for key, ms in self.stage_ms.items()},
            "outputs": self.outputs,
        }

    def text(self) -> str:
        d = self.to_dict()
        stages = ", ".join(f"{k} {v:.1f}" for k, v in d["stage_ms"].items() if k != "total")
        lines = [
            f"{d['source']}: {d['frames']} frames ({d['analyzed_frames']} analyzed), "
            f"{d['face_detections']} faces detected, {d['distinct_faces']} distinct, "
            f"at most {d['max_faces_per_frame']} in a frame",
            f"analysis {d['analysis_fps'] or 0:.1f} fps ({d['stage_ms'].get('total', 0.0):.1f} ms/frame: {stages}); "
            f"wall {d['wall_s']:.1f} s ({d['overall_fps'] or 0:.1f} fps overall)",
        ]
        lines += [f"wrote {path}" for path in d["outputs"]]
        return "\n".join(lines)


@contextlib.contextmanager
def quiet_native_logs() -> Iterator[None]:
    """TensorFlow and LiteRT print INFO banners (oneDNN, XNNPACK) straight to file descriptor 2 while loading,
    whatever TF_CPP_MIN_LOG_LEVEL says, which would bury the one-line error or summary a user reads. Send fd 2
    to a temporary file meanwhile; replay it only when loading fails unexpectedly (it may explain why)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable stderr: nothing to protect
        yield
        return
    replay = False
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except FaceLensError:
            raise
        except Exception:  # a bug or a broken install: the native log may say why (not so for Ctrl-C)
            replay = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if replay:
                captured.seek(0)
                sys.stderr.write(captured.read().decode(errors="replace"))


def build_analyzer(detector_name: str, weights: Path | None, tracked: bool = True):
    """Detector, models and tracker → a FrameAnalyzer (TensorFlow is imported here, not at CLI start).
    The detector is closed again if the models fail to load."""
    with quiet_native_logs():
        return _build_analyzer(detector_name, weights, tracked)


def _build_analyzer(detector_name: str, weights: Path | None, tracked: bool):
    from detectors.base import create_detector
    from inference.analyzer import FrameAnalyzer

    detector = create_detector(detector_name)
    try:
        from inference.models import load_models

        models = load_models(weights)
        tracker = None
        if tracked:
            from inference.tracking import FaceTracker

            tracker = FaceTracker()
        return FrameAnalyzer(detector, models, tracker)
    except BaseException:
        detector.close()
        raise


def _open_for_analysis(spec: str, max_frames: int | None) -> FrameSource:
    if spec.strip().lower() == "demo":
        return DemoSource(frames=max_frames or DEMO_FRAMES)
    return open_source(spec, photo_frames=1)


def _frames(source: FrameSource, max_frames: int | None) -> Iterator[Frame]:
    """Every frame of a file/photo/demo in order (decoded ahead on a capture thread); for a camera the newest
    frame each time (a camera cannot wait for us). Stops the thread however the caller leaves."""
    sink = LatestFrameSlot() if source.is_live else FrameQueue(PREFETCH_FRAMES)
    capture = CaptureThread(source, sink, realtime=False, name="facelens-analyze-reader").start()
    count, last = 0, -1
    try:
        while max_frames is None or count < max_frames:
            frame = sink.wait_newer(last) if isinstance(sink, LatestFrameSlot) else sink.get()
            if frame is None:
                break
            last = frame.index
            count += 1
            yield frame
    finally:
        capture.stop()
    if capture.error:
        raise SourceError(capture.error)


def run_analyze(
    spec: str,
    *,
    detector: str = "haar",
    record: Path | None = None,
    log: Path | None = None,
    every: int = 1,
    weights: Path | None = None,
    max_frames: int | None = None,
    bars: bool = False,
    as_json: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    if every < 1:
        raise ValueError("every must be >= 1")
    if record is not None:
        check_video_path(record)
    if log is not None:
        check_writable(log)
    source = _open_for_analysis(spec, max_frames)
    try:
        analyzer = build_analyzer(detector, weights)
    except BaseException:
        source.close()
        raise
    summary = Summary(source=source.name)
    try:
        recorder = None
        if record is not None or log is not None:
            renderer = _renderer(bars) if record is not None else None
            recorder = Recorder(
                record,
                source.fps,
                source.size,
                analyzer.classes,
                log=log if log is not None else record is not None,
                renderer=renderer,
            )
            summary.outputs += [str(p) for p in (recorder.path, recorder.log_path) if p is not None]
        total = source.frame_count if max_frames is None else min(max_frames, source.frame_count or max_frames)
        with recorder if recorder is not None else contextlib.nullcontext():  # finished on every way out
            _analyze_loop(source, analyzer, recorder, every, max_frames, summary, Progress(total, err or sys.stderr))
    finally:
        analyzer.detector.close()
    (out or sys.stdout).write((json.dumps(summary.to_dict()) if as_json else summary.text()) + "\n")
    return 0


def _analyze_loop(
    source: FrameSource,
    analyzer,
    recorder: Recorder | None,
    every: int,
    max_frames: int | None,
    summary: Summary,
    progress: Progress,
) -> None:
    start = time.perf_counter()
    last: FrameResult | None = None

    def detect(numbered: tuple[int, Frame]) -> Detection | None:
        count, frame = numbered  # count, not index: a camera's indices have gaps
        return analyzer.detect(frame.image, frame.timestamp) if count % every == 0 else None

    try:
        # Detection runs one thread ahead of classification (app.pipeline), the reader one more ahead.
        stages = run_ahead(enumerate(_frames(source, max_frames)), detect, name="facelens-analyze-detect")
        with contextlib.closing(stages):  # stops the reader and the detector thread on every way out
            for (_, frame), detection in stages:
                if detection is not None:
                    last = result = analyzer.classify(frame.image, detection, frame.index, frame.timestamp)
                else:
                    result = analyzer.tracker.follow(last, frame.timestamp) if analyzer.tracker else last
                summary.add(result, detection is not None)
                if recorder is not None:
                    recorder.write(frame.image, result, frame.index, frame.timestamp)
                progress.update(summary.frames, summary.face_detections)
    finally:
        progress.close()
        summary.wall_s = time.perf_counter() - start


def _renderer(bars: bool):
    from inference.render import Renderer

    return Renderer(bars=bars, stats=False)


def face_records(result: FrameResult) -> list[dict[str, Any]]:
    """Per-face results as plain data (the `image --json` output)."""
    records = []
    for face in result.faces:
        box = face.box
        record: dict[str, Any] = {
            "face": face.track_id,
            "box": {
                "x": round(box.x, 1),
                "y": round(box.y, 1),
                "w": round(box.w, 1),
                "h": round(box.h, 1),
                "score": round(box.score, 4),
            },
        }
        for attr in ATTRIBUTES:
            pred = face.attribute(attr)
            record[attr] = (
                None
                if pred is None
                else {
                    "label": pred.label,
                    "p": round(pred.confidence, 4),
                    "probs": {name: round(float(p), 4) for name, p in pred.probs.items()},
                }
            )
        records.append(record)
    return records


def face_table(records: list[dict[str, Any]]) -> str:
    """The readable `image` output: one line per face."""
    if not records:
        return "no faces found"
    header = f"{'face':>4}  {'box (x, y, w, h)':<22}" + "".join(f"  {attr:<16}" for attr in ATTRIBUTES)
    lines = [header]
    for r in records:
        b = r["box"]
        box = f"{b['x']:.0f}, {b['y']:.0f}, {b['w']:.0f}, {b['h']:.0f}"
        cells = "".join(
            f"  {'-':<16}" if r[attr] is None else f"  {r[attr]['label'] + ' ' + format(r[attr]['p'], '.0%'):<16}"
            for attr in ATTRIBUTES
        )
        lines.append(f"{r['face']:>4}  {box:<22}{cells}")
    return "\n".join(lines)


def run_image(
    photo: Path,
    *,
    out_path: Path | None = None,
    as_json: bool = False,
    detector: str = "haar",
    weights: Path | None = None,
    bars: bool = False,
    explain_path: Path | None = None,
    out: TextIO | None = None,
) -> int:
    """Annotate one photo; `explain_path` also saves each model's occlusion map per face (`inference.explain`),
    unless no face was found."""
    image = read_image(photo)
    for path in (out_path, explain_path):
        if path is not None:
            check_writable(path)
            if not cv2.haveImageWriter(str(path)):
                raise OutputError(f"cannot write {path}: unknown image format {path.suffix!r} (use .png or .jpg)")
    analyzer = build_analyzer(detector, weights, tracked=False)  # one photo: raw, unsmoothed predictions
    try:
        result = analyzer.analyze(image, 0, 0.0)
    finally:
        analyzer.detector.close()
    if out_path is not None:
        _write_image(out_path, _renderer(bars).annotate(image, result))
    if explain_path is not None and result.faces:
        from inference.explain import explain_face, explanation_panel

        boxes = [face.box for face in result.faces]
        explanations = [explain_face(analyzer.models, image, box) for box in boxes]
        _write_image(explain_path, explanation_panel(image, boxes, explanations))
    records = face_records(result)
    (out or sys.stdout).write((json.dumps(records, indent=2) if as_json else face_table(records)) + "\n")
    return 0


def _write_image(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise OutputError(f"cannot write {path}")
