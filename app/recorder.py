"""Recording: the annotated video plus a per-frame CSV log, written on a thread of their own.

Crash safety is designed in, not hoped for: the video is fragmented MP4 (an empty `moov` up front and a
self-contained `moof`+`mdat` fragment per keyframe), with a keyframe forced every second of media time and
packets flushed as they are muxed, so after `kill -9` or a power cut every fragment already on disk plays
(everything up to about the last second). The CSV is flushed after every frame.

`write` hands the frame to a bounded queue and returns; the writer thread encodes. When the queue is full
`write` waits for room rather than dropping: a recording contains every frame it was given (the queue,
about half a second of frames, only absorbs jitter; it also bounds what a crash can lose on top).

Decisions worth knowing:
- Timing comes from the frames' timestamps (variable frame rate, 1/90000 s ticks), so a camera that
  delivers fewer frames than it promised, or frames the display skipped, still play at true speed.
- H.264 in yuv420p needs even sizes: an odd width or height is padded by one replicated pixel on the
  right/bottom edge (nothing is cropped, so CSV boxes stay valid in the video). Frames of another size
  than the recorder's are resized to it.
- The CSV has one row per face per frame, and one row with empty face fields for a frame with no faces (or
  no analysis yet), so every recorded frame appears in the log and its timeline has no holes.
- An explicit path is overwritten (the user named it); default names come from `unique_path`, which never
  overwrites.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import os
import queue
import threading
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from inference.errors import OutputError
from inference.types import ATTRIBUTES, FrameResult

TICKS_PER_S = 90000
KEYFRAME_EVERY_S = 1.0
QUEUE_SECONDS = 0.5
QUEUE_BYTES = 128 * 1024 * 1024
JOIN_TIMEOUT_S = 60.0
FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"}
BASE_COLUMNS = (
    "time_s",
    "frame",
    "face_id",
    "x",
    "y",
    "w",
    "h",
    *(name for attr in ATTRIBUTES for name in (attr, f"{attr}_p")),
    "result_frame",
)


class Annotator(Protocol):
    """What the recorder needs from inference.render.Renderer when it draws the overlay itself."""

    def annotate(self, frame_bgr: np.ndarray, result: FrameResult | None, stats: Any = None) -> np.ndarray: ...


def unique_path(folder: str | os.PathLike[str], stem: str, suffix: str, companions: Sequence[str] = ()) -> Path:
    """`folder/stem{suffix}`, or `stem-2`, `stem-3`, ... when taken; never an existing file. The name is
    reserved by creating it empty (O_EXCL), so two recorders started at once still get different files.
    `companions` are other suffixes that must be free under the same stem (".csv" beside a video)."""
    folder = Path(folder)
    if not suffix.startswith("."):
        suffix = "." + suffix
    for n in range(1, 100000):
        name = stem if n == 1 else f"{stem}-{n}"
        if any((folder / f"{name}{other}").exists() for other in companions):
            continue
        path = folder / f"{name}{suffix}"
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(f"cannot create a file in {folder}: {_reason(exc)}") from None
        return path
    raise OutputError(f"no free file name for {stem}{suffix} in {folder}")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno)
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _check_folder(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise OutputError(f"cannot write {path}: folder {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: {parent} is not a folder")
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder")


def check_writable(path: str | os.PathLike[str]) -> None:
    """Fail early (OutputError, one line) when `path` cannot be created: a missing or read-only folder, a
    file where a folder should be, a folder where the file should be. Creates nothing."""
    path = Path(path)
    _check_folder(path)
    parent = path.parent if str(path.parent) else Path(".")
    target = path if path.exists() else parent
    if not os.access(target, os.W_OK):
        raise OutputError(f"cannot write {path}: permission denied")


def check_video_path(path: str | os.PathLike[str]) -> None:
    """`check_writable` plus a container we can record to, decided by the suffix."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise OutputError(f"cannot record to {path}: use one of {', '.join(FORMATS)}")
    check_writable(path)


class _VideoFile:
    """The PyAV side: one H.264 stream (mpeg4 where the av build lacks libx264) in a fragmented file."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        import av

        check_video_path(path)
        fmt = FORMATS[path.suffix.lower()]
        self.path = path
        self.frame_size = size
        self.size = (size[0] + size[0] % 2, size[1] + size[1] % 2)  # even, for yuv420p
        try:
            self.container = av.open(
                str(path), mode="w", format=fmt, options=FRAGMENTED if fmt in ("mp4", "mov") else {}
            )
        except Exception as exc:
            raise OutputError(f"cannot write {path}: {_reason(exc)}") from None
        try:
            codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
            self.stream = self.container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
            self.stream.width, self.stream.height = self.size
            self.stream.pix_fmt = "yuv420p"
            self.stream.time_base = Fraction(1, TICKS_PER_S)
            self.stream.codec_context.time_base = Fraction(1, TICKS_PER_S)
            self.stream.codec_context.gop_size = max(1, round(fps * KEYFRAME_EVERY_S))
            if codec == "libx264":
                # zerolatency: no lookahead or B-frames, so each frame leaves the encoder at once and
                # reaches the disk with its fragment instead of waiting in x264's buffers.
                self.stream.codec_context.options = {
                    "preset": "veryfast",
                    "tune": "zerolatency",
                    "crf": "21",
                    "forced-idr": "1",
                }
            else:
                self.stream.codec_context.bit_rate = 4_000_000
        except Exception as exc:
            self.container.close()
            raise OutputError(f"cannot set up video encoding for {path}: {_reason(exc)}") from None
        self._av = av
        self._first_ts: float | None = None
        self._last_pts = -1
        self._last_key_ts = -float("inf")

    def write(self, image: np.ndarray, timestamp: float) -> None:
        if self._first_ts is None:
            self._first_ts = timestamp
        pts = max(self._last_pts + 1, round((timestamp - self._first_ts) * TICKS_PER_S))
        self._last_pts = pts
        frame = self._av.VideoFrame.from_ndarray(self._fit(image), format="bgr24")
        frame.pts = pts
        frame.time_base = Fraction(1, TICKS_PER_S)
        if timestamp - self._last_key_ts >= KEYFRAME_EVERY_S:
            frame.pict_type = self._av.video.frame.PictureType.I  # a new fragment about every second
            self._last_key_ts = timestamp
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def _fit(self, image: np.ndarray) -> np.ndarray:
        import cv2

        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        if (image.shape[1], image.shape[0]) != self.frame_size:
            image = cv2.resize(image, self.frame_size, interpolation=cv2.INTER_AREA)
        pad_x, pad_y = self.size[0] - self.frame_size[0], self.size[1] - self.frame_size[1]
        if pad_x or pad_y:
            image = cv2.copyMakeBorder(image, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE)
        return np.ascontiguousarray(image)

    def close(self) -> None:
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
        finally:
            self.container.close()
        if self._first_ts is None and self.path.is_file() and self.path.stat().st_size == 0:
            self.path.unlink()  # no frames, no video (also drops a name reserved by unique_path)


class _CsvLog:
    """The per-frame log: the base columns, then every class probability of each attribute in `classes`."""

    def __init__(self, path: Path, classes: Mapping[str, Sequence[str]]) -> None:
        _check_folder(path)
        self.path = path
        self.classes = {attr: tuple(classes[attr]) for attr in ATTRIBUTES if attr in classes}
        try:
            self.file = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {_reason(exc)}") from None
        self.columns = [*BASE_COLUMNS, *(f"{attr}_{c}" for attr, names in self.classes.items() for c in names)]
        self.writer = csv.writer(self.file)
        try:
            self.writer.writerow(self.columns)
            self.file.flush()
        except OSError as exc:
            with contextlib.suppress(OSError):  # closing flushes again, into the same full disk
                self.file.close()
            raise OutputError(f"cannot write {path}: {_reason(exc)}") from None

    def write(self, result: FrameResult | None, frame_index: int, timestamp: float) -> None:
        head = [f"{timestamp:.3f}", frame_index]
        result_frame = "" if result is None else result.index
        faces = () if result is None else result.faces
        if not faces:
            self.writer.writerow(self._empty_row(head, result_frame))
        for face in faces:
            box = face.box
            row: list[Any] = [*head, face.track_id, f"{box.x:.1f}", f"{box.y:.1f}", f"{box.w:.1f}", f"{box.h:.1f}"]
            for attr in ATTRIBUTES:
                pred = face.attribute(attr)
                row += ["", ""] if pred is None else [pred.label, f"{pred.confidence:.4f}"]
            row.append(result_frame)
            for attr, names in self.classes.items():
                pred = face.attribute(attr)
                row += [""] * len(names) if pred is None else [f"{pred.probs.get(c, 0.0):.4f}" for c in names]
            self.writer.writerow(row)
        self.file.flush()

    def _empty_row(self, head: list[Any], result_frame: Any) -> list[Any]:
        row = [*head, *[""] * (len(BASE_COLUMNS) - 3), result_frame]
        return row + [""] * (len(self.columns) - len(row))

    def close(self) -> None:
        self.file.close()


class Recorder:
    """Records frames (already annotated, or annotated here by `renderer`) to `path` and logs the results
    to a CSV. `path` None records only the log. `log`: True → beside the video as `.csv`, False → no log,
    or a path. Use as a context manager; `close` finishes both files and reports any write failure."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        fps: float,
        size: tuple[int, int],
        classes: Mapping[str, Sequence[str]],
        *,
        log: str | os.PathLike[str] | bool = True,
        renderer: Annotator | None = None,
    ) -> None:
        if fps <= 0 or size[0] <= 0 or size[1] <= 0:
            raise ValueError(f"need fps > 0 and a positive size, got fps={fps} size={size}")
        self.path = None if path is None else Path(path)
        if log is True:
            if self.path is None:
                raise ValueError("log=True needs a video path to put the CSV beside; pass a log path")
            log = self.path.with_suffix(".csv")
        self.log_path = None if log is False else Path(log)
        if self.path is not None and self.log_path is not None and self.path.resolve() == self.log_path.resolve():
            raise OutputError(f"video and log cannot both be {self.path}")
        self.fps = float(fps)
        self.size = (int(size[0]), int(size[1]))
        self.renderer = renderer
        self.frames_written = 0
        self._error: str | None = None
        self._closed = False
        self._video = _VideoFile(self.path, self.fps, self.size) if self.path is not None else None
        try:
            self._log = _CsvLog(self.log_path, classes) if self.log_path is not None else None
        except BaseException:
            if self._video is not None:
                self._video.close()
            raise
        frame_bytes = self.size[0] * self.size[1] * 3
        maxsize = max(2, min(round(self.fps * QUEUE_SECONDS), QUEUE_BYTES // frame_bytes))
        self._queue: queue.Queue[tuple | None] = queue.Queue(maxsize=maxsize)
        self._thread = threading.Thread(target=self._run, name="facelens-recorder", daemon=True)
        self._thread.start()

    @property
    def error(self) -> str | None:
        """Why writing failed (full disk, removed folder), or None; `write`/`close` raise it as OutputError."""
        return self._error

    def write(self, frame_bgr: np.ndarray, result: FrameResult | None, frame_index: int, timestamp: float) -> None:
        """Queue one frame; returns at once unless the writer is half a second behind, then waits."""
        if self._closed:
            raise OutputError("this recording is already finished")
        if self._error is not None:
            raise OutputError(self._error)
        image = frame_bgr if self.renderer is not None else np.array(frame_bgr, copy=True)
        self._queue.put((image, result, frame_index, timestamp))

    def _run(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                if self._error is not None:
                    continue  # keep draining so a writer that failed never blocks the caller
                try:
                    self._write(*item)
                except Exception as exc:
                    self._error = self._describe(exc)
        finally:
            self._finish()

    def _write(self, image: np.ndarray, result: FrameResult | None, frame_index: int, timestamp: float) -> None:
        if self._video is not None:
            if self.renderer is not None:
                image = self.renderer.annotate(image, result)
            self._video.write(image, timestamp)
        if self._log is not None:
            self._log.write(result, frame_index, timestamp)
        self.frames_written += 1

    def _finish(self) -> None:
        for part in (self._video, self._log):
            if part is None:
                continue
            try:
                part.close()
            except Exception as exc:
                if self._error is None:
                    self._error = self._describe(exc)

    def _describe(self, exc: BaseException) -> str:
        target = ", ".join(str(p) for p in (self.path, self.log_path) if p is not None)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return f"recording to {target} stopped: the disk is full"
        return f"recording to {target} failed: {_reason(exc)}"

    def close(self) -> None:
        """Finish both files (idempotent); raises OutputError if anything could not be written."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join(JOIN_TIMEOUT_S)
            if self._thread.is_alive():
                self._error = self._error or f"recording to {self.path} did not finish within {JOIN_TIMEOUT_S:.0f} s"
        if self._error is not None:
            raise OutputError(self._error)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # an error is already on its way out: finish the files, but do not mask it
            self.close()
        except OutputError:
            pass
