"""The measured runs behind `facelens bench`: the GUI's threaded pipeline (live) and `analyze`'s (headless).

Live: a capture thread paced at the source's rate feeds a latest-frame slot; an analysis thread runs
`FrameAnalyzer` on the newest frame; a display loop on the caller's thread draws every captured frame with the
newest result (boxes moved by `FaceTracker.follow`) and makes the pixel copy a QImage would hold — the same
steps as `app.gui.workers`, without Qt, so the benchmark runs anywhere and includes the contention between
those threads on a small CPU, which is what a user sees.

Headless: every frame in order, decoded ahead into a bounded queue, analysed as fast as possible.

A frame's capture time is when the source returned it; end-to-end latency runs from there to the moment the
first displayed frame carrying that frame's analysis is drawn and converted.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from app.capture import CaptureThread, Frame, FrameQueue, LatestFrameSlot
from app.pipeline import run_ahead
from app.sources import FrameSource
from inference.errors import SourceError
from inference.types import ATTRIBUTES, FrameResult

WARMUP_ANALYSES = 2  # compiles whatever the first real frame needs (MTCNN's graphs, a model bucket) untimed
POLL_S = 0.05
# As app.gui.workers.RESULT_POLL_S: the display waits this long for a frame, then draws a newer result on the
# frame on screen (not importable from there: that module needs Qt).
RESULT_POLL_S = 0.004
PREFETCH_FRAMES = 8
ENCODE_SAMPLE_FRAMES = 30  # rendered frames kept to measure the recorder's encoding cost after the run
ENCODE_SAMPLE_BYTES = 96 * 1024 * 1024
ANALYSIS_STAGES = ("detect", "preprocess", *ATTRIBUTES, "track")


class TimedSource:
    """Wraps a FrameSource: stamps when each frame left the source (the start of end-to-end latency) and
    how long reading it took (decoding, or drawing the demo). Frame i of the capture thread is the i-th
    frame this returns, so `captured_at[i]` belongs to frame index i."""

    def __init__(self, source: FrameSource) -> None:
        self.inner = source
        self.name, self.fps, self.size = source.name, source.fps, source.size
        self.is_live, self.frame_count = source.is_live, source.frame_count
        self.captured_at: list[float] = []
        self.read_ms: list[float] = []

    def read(self) -> np.ndarray | None:
        start = time.perf_counter()
        image = self.inner.read()
        now = time.perf_counter()
        if image is not None:
            self.read_ms.append((now - start) * 1000.0)
            self.captured_at.append(now)
        return image

    def close(self) -> None:
        self.inner.close()


@dataclass
class AnalysisLog:
    """Every result of a run plus when it was ready, and the detection count behind it."""

    results: list[FrameResult] = field(default_factory=list)
    ready_at: list[float] = field(default_factory=list)
    detections: list[int] = field(default_factory=list)

    def add(self, result: FrameResult, analyzer: Any) -> None:
        self.results.append(result)
        self.ready_at.append(time.perf_counter())
        self.detections.append(len(analyzer.last_boxes))  # faces fed to the models, not those remembered

    def stage_ms(self) -> dict[str, list[float]]:
        return {key: [r.timings.get(key, 0.0) for r in self.results] for key in (*ANALYSIS_STAGES, "total")}

    def model_ms_per_face(self) -> float | None:
        faces = sum(self.detections)
        model_ms = sum(r.timings.get(attr, 0.0) for r in self.results for attr in ATTRIBUTES)
        return model_ms / faces if faces else None


# --- the pipelines -----------------------------------------------------------------------------------------
def warm_up(source: FrameSource, analyzer: Any) -> None:
    """Analyse the source's first frame a few times, untimed, then forget the tracks: what is measured
    afterwards is the steady state a user sees after start-up (the peer numbers are taken the same way)."""
    image = source.read()
    if image is None:
        raise SourceError(f"{source.name} delivered no frame")
    for i in range(WARMUP_ANALYSES):
        analyzer.analyze(image, i, 0.0)
    analyzer.reset()


@dataclass
class LiveRun:
    """Raw measurements of one live run (see `run_live`)."""

    elapsed_s: float
    cpu_s: float  # process CPU time over the run, all threads: how much of the machine the app used
    source: TimedSource
    analysis: AnalysisLog
    displayed: int
    follow_ms: list[float]
    render_ms: list[float]
    convert_ms: list[float]
    latency_ms: list[float]
    behind_frames: list[int]
    dropped_for_display: int
    encode_sample: list[tuple[np.ndarray, FrameResult | None, int, float]]


def run_live(source: FrameSource, analyzer: Any, renderer: Any, seconds: float) -> LiveRun:
    """The GUI's pipeline for `seconds` (or until a file ends): capture → slot → analysis thread, and a
    display loop on this thread. Raises SourceError when reading fails and whatever analysis raised."""
    timed = TimedSource(source)
    slot = LatestFrameSlot()
    stop = threading.Event()
    log = AnalysisLog()  # the display reads its newest result; list appends are atomic
    failure: list[BaseException] = []

    def analyse() -> None:
        last = -1
        try:
            while not stop.is_set():
                frame = slot.wait_newer(last, timeout=POLL_S)
                if frame is None:
                    if slot.closed:
                        return
                    continue
                last = frame.index
                result = analyzer.analyze(frame.image, frame.index, frame.timestamp)
                log.add(result, analyzer)
        except BaseException as exc:  # handed to the display loop, which re-raises it on the main thread
            failure.append(exc)
            stop.set()

    capture = CaptureThread(timed, slot, realtime=True, name="facelens-bench-capture")
    worker = threading.Thread(target=analyse, name="facelens-bench-analysis", daemon=True)
    display = _DisplayLoop(analyzer, renderer, timed.captured_at, source.size)
    start, cpu_start = time.perf_counter(), time.process_time()
    capture.start()
    worker.start()
    try:
        display.run(slot, stop, start, start + seconds, log)
    finally:
        end, cpu_end = time.perf_counter(), time.process_time()
        stop.set()
        capture.stop()
        worker.join(5.0)
    if failure:
        raise failure[0]
    if capture.error:
        raise SourceError(capture.error)
    return LiveRun(
        elapsed_s=end - start,
        cpu_s=cpu_end - cpu_start,
        source=timed,
        analysis=log,
        displayed=display.displayed,
        follow_ms=display.follow_ms,
        render_ms=display.render_ms,
        convert_ms=display.convert_ms,
        latency_ms=display.latency_ms,
        behind_frames=display.behind,
        dropped_for_display=display.skipped,
        encode_sample=display.sample,
    )


class _DisplayLoop:
    """What the GUI's display worker does with each captured frame, timed: newest result, `follow`,
    `annotate` with the on-screen stats, and the pixel copy of `to_qimage` (as an RGB conversion); like the
    GUI, it also redraws the frame on screen when a result arrives between two frames."""

    def __init__(self, analyzer: Any, renderer: Any, captured_at: list[float], size: tuple[int, int]) -> None:
        self.analyzer = analyzer
        self.renderer = renderer
        self.captured_at = captured_at
        self.displayed = 0
        self.skipped = 0
        self.follow_ms: list[float] = []
        self.render_ms: list[float] = []
        self.convert_ms: list[float] = []
        self.latency_ms: list[float] = []
        self.behind: list[int] = []
        self.sample: list[tuple[np.ndarray, FrameResult | None, int, float]] = []
        frame_bytes = max(1, size[0] * size[1] * 3)
        self._sample_cap = max(2, min(ENCODE_SAMPLE_FRAMES, ENCODE_SAMPLE_BYTES // frame_bytes))

    def run(self, slot: LatestFrameSlot, stop: threading.Event, start: float, deadline: float, log: AnalysisLog):
        last_index = -1
        current: Frame | None = None
        self._last_result = -1
        while not stop.is_set() and time.perf_counter() < deadline:
            frame = slot.wait_newer(last_index, timeout=RESULT_POLL_S)
            if frame is None:
                if slot.closed:
                    return
                if current is not None and log.results and log.results[-1].index != self._last_result:
                    self._draw(current, log, start, new_frame=False)  # a result arrived between two frames
                continue
            self.skipped += max(0, frame.index - last_index - 1)
            last_index = frame.index
            current = frame
            self._draw(frame, log, start, new_frame=True)

    def _draw(self, frame: Frame, log: AnalysisLog, start: float, new_frame: bool) -> None:
        tracker = self.analyzer.tracker
        t0 = time.perf_counter()
        result = log.results[-1] if log.results else None
        shown = tracker.follow(result, frame.timestamp) if result is not None and tracker is not None else result
        t1 = time.perf_counter()
        now = t1 - start
        stats = {
            "display fps": self.displayed / now if now > 0 else 0.0,
            "analysis fps": len(log.results) / now if now > 0 else 0.0,
        }
        if result is not None:
            stats["analysis ms"] = float(result.timings.get("total", 0.0))
        annotated = self.renderer.annotate(frame.image, shown, stats)
        t2 = time.perf_counter()
        np.ascontiguousarray(cv2.cvtColor(annotated, cv2.COLOR_BGR2RGB))  # the QImage's own pixels
        t3 = time.perf_counter()
        self.follow_ms.append((t1 - t0) * 1000.0)
        self.render_ms.append((t2 - t1) * 1000.0)
        self.convert_ms.append((t3 - t2) * 1000.0)
        if new_frame:  # redraws of a frame on screen are neither displayed frames nor recorded
            self.displayed += 1
            if result is not None:
                self.behind.append(frame.index - result.index)
            self._keep_sample(annotated, shown, frame)
        if result is not None and result.index != self._last_result:  # the first drawing of that analysis
            self._last_result = result.index
            self.latency_ms.append((t3 - self.captured_at[result.index]) * 1000.0)

    def _keep_sample(self, annotated: np.ndarray, shown: FrameResult | None, frame: Frame) -> None:
        if len(self.sample) >= self._sample_cap:
            self.sample.pop(0)
        self.sample.append((annotated, shown, frame.index, frame.timestamp))


@dataclass
class HeadlessRun:
    elapsed_s: float
    cpu_s: float
    source: TimedSource
    analysis: AnalysisLog


def run_headless(source: FrameSource, analyzer: Any, seconds: float) -> HeadlessRun:
    """`facelens analyze` without outputs: every frame in order, decoded ahead into a bounded queue on a
    capture thread, detected one frame ahead on another, classified here as fast as possible, for `seconds`
    or until the source ends."""
    timed = TimedSource(source)
    queue = FrameQueue(PREFETCH_FRAMES)
    log = AnalysisLog()
    capture = CaptureThread(timed, queue, realtime=False, name="facelens-bench-reader")
    start, cpu_start = time.perf_counter(), time.process_time()
    capture.start()
    try:
        # as in `facelens analyze`: detection one frame ahead of the models, on its own thread
        stages = run_ahead(
            iter(queue.get, None),
            lambda frame: analyzer.detect(frame.image, frame.timestamp),
            name="facelens-bench-detect",
        )
        with contextlib.closing(stages):
            for frame, detection in stages:
                log.add(analyzer.classify(frame.image, detection, frame.index, frame.timestamp), analyzer)
                if time.perf_counter() - start >= seconds:
                    break
    finally:
        end, cpu_end = time.perf_counter(), time.process_time()
        capture.stop()
    if capture.error:
        raise SourceError(capture.error)
    return HeadlessRun(end - start, cpu_end - cpu_start, timed, log)


def measure_encode(
    sample: Sequence[tuple[np.ndarray, FrameResult | None, int, float]],
    fps: float,
    size: tuple[int, int],
    classes: Mapping[str, Sequence[str]],
) -> float | None:
    """Milliseconds per frame the recorder spends on rendered frames (H.264 video + CSV log, start-up and
    flush included), measured after the run on a sample so it does not disturb the live numbers. The files
    go to a temporary folder that is deleted at once."""
    from app.recorder import Recorder

    if not sample:
        return None
    with tempfile.TemporaryDirectory(prefix="facelens-bench-") as folder:
        start = time.perf_counter()
        with Recorder(Path(folder) / "bench.mp4", fps, size, classes) as recorder:
            for annotated, result, index, timestamp in sample:
                recorder.write(annotated, result, index, timestamp)
        return (time.perf_counter() - start) * 1000.0 / len(sample)
