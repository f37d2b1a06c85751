"""Where frames come from: a camera, a video file, a photo, or the built-in demo, behind one small protocol.

Sources are opened on the caller's thread so that "no camera" or "unreadable file" is raised at once, as a
one-line SourceError the CLI and the GUI can show; reading and closing then belong to the capture thread.
Each source reads its first frame while opening, which proves the file really decodes and gives the true
frame size (container metadata can lie).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from app import demo
from inference.errors import SourceError

DEFAULT_FPS = 30.0
# A photo is served as an endless stream at this rate, so the GUI treats it like any other source and the
# tracker's smoothing settles on it; 10 fps keeps a still picture cheap to redisplay and re-analyse.
PHOTO_FPS = 10.0
PROBE_INDICES = range(4)
IMAGE_SUFFIXES = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".png",
        ".bmp",
        ".webp",
        ".tif",
        ".tiff",
        ".ppm",
        ".pgm",
        ".pbm",
        ".jp2",
        ".sr",
        ".ras",
        ".pnm",
        ".pxm",
        ".hdr",
        ".pic",
        ".exr",
    }
)


@runtime_checkable
class FrameSource(Protocol):
    """A stream of BGR frames. `read` returns None at the end (never for cameras or the demo). A live
    source (a camera) is read as fast as it delivers; the others are paced at `fps` by whoever plays them."""

    name: str
    fps: float
    size: tuple[int, int]  # (width, height)
    is_live: bool
    frame_count: int | None  # None: endless or unknown

    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """OpenCV prints multi-line WARN logs when a camera or file fails to open; our SourceError says it in
    one line, so mute them for the duration of an open."""
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(previous)


def _sane_fps(value: float) -> float:
    """Containers and drivers report 0, NaN or 1000 when they do not know; fall back to 30."""
    return float(value) if math.isfinite(value) and 1.0 <= value <= 240.0 else DEFAULT_FPS


class _CaptureSource:
    """Shared reading for cameras and video files: the first frame is read at open and served first."""

    is_live = False

    def __init__(self, capture: cv2.VideoCapture, name: str) -> None:
        self._capture = capture
        self.name = name
        ok, first = capture.read()
        if not ok or first is None:
            capture.release()
            raise SourceError(self._unreadable_message())
        self._pending: np.ndarray | None = first
        self.size = (int(first.shape[1]), int(first.shape[0]))
        self.fps = _sane_fps(capture.get(cv2.CAP_PROP_FPS))

    def _unreadable_message(self) -> str:
        raise NotImplementedError

    def read(self) -> np.ndarray | None:
        if self._pending is not None:
            frame, self._pending = self._pending, None
            return frame
        if self._capture is None:
            return None
        ok, frame = self._capture.read()
        return frame if ok else self._end_of_stream()

    def _end_of_stream(self) -> np.ndarray | None:
        return None

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class CameraSource(_CaptureSource):
    """A camera by OpenCV index; read as fast as the driver delivers (reads block until a frame is there)."""

    is_live = True
    frame_count = None

    def __init__(self, index: int) -> None:
        self.index = index
        with _quiet_opencv():
            capture = cv2.VideoCapture(index)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"no camera at index {index} (none connected, or it is busy or not permitted)")
        super().__init__(capture, f"camera {index}")

    def _unreadable_message(self) -> str:
        return f"camera {self.index} opened but delivers no frames"

    def _end_of_stream(self) -> np.ndarray | None:
        raise SourceError(f"camera {self.index} stopped delivering frames (unplugged?)")


class VideoSource(_CaptureSource):
    """A video file, decoded in order; `fps` and `frame_count` come from its container."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        _check_file(self.path)
        with _quiet_opencv():
            capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise SourceError(self._unreadable_message())
        super().__init__(capture, self.path.name)
        count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if math.isfinite(count) and count > 0 else None

    def _unreadable_message(self) -> str:
        return f"cannot read video {self.path}: not a video format OpenCV can decode"


class PhotoSource:
    """A still image served as a stream at a nominal rate: endless by default (the GUI keeps showing it
    and the overlay settles), or exactly `frames` copies (headless analysis wants one)."""

    is_live = False

    def __init__(self, path: str | os.PathLike[str], fps: float = PHOTO_FPS, frames: int | None = None) -> None:
        self.path = Path(path)
        self.image = read_image(self.path)
        self.name = self.path.name
        self.fps = float(fps)
        self.size = (int(self.image.shape[1]), int(self.image.shape[0]))
        self.frame_count = frames
        self._served = 0
        self._closed = False

    def read(self) -> np.ndarray | None:
        if self._closed or (self.frame_count is not None and self._served >= self.frame_count):
            return None
        self._served += 1
        return self.image.copy()  # consumers may draw on their frame

    def close(self) -> None:
        self._closed = True


class DemoSource:
    """The built-in animated demo (see app.demo): endless, 640x480 at 30 fps, or exactly `frames` long."""

    is_live = False

    def __init__(self, frames: int | None = None) -> None:
        demo.sprites()  # build now so a broken install fails at open, not in the capture thread
        self.name = "demo"
        self.fps = demo.FPS
        self.size = (demo.WIDTH, demo.HEIGHT)
        self.frame_count = frames
        self._next = 0
        self._closed = False

    def read(self) -> np.ndarray | None:
        if self._closed or (self.frame_count is not None and self._next >= self.frame_count):
            return None
        frame = demo.render_frame(self._next, self.fps)
        self._next += 1
        return frame

    def close(self) -> None:
        self._closed = True


def _check_file(path: Path) -> None:
    if not path.exists():
        raise SourceError(f"no such file: {path}")
    if path.is_dir():
        raise SourceError(f"{path} is a folder, not a video or photo")
    if not os.access(path, os.R_OK):
        raise SourceError(f"cannot read {path}: permission denied")


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """A photo as BGR uint8 (grey and alpha images converted), or a one-line SourceError."""
    path = Path(path)
    _check_file(path)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f"cannot read image {path}: not an image format OpenCV can decode")
    return image


def is_camera_spec(spec: str) -> bool:
    return spec.strip().isdigit()


def open_source(spec: str, *, photo_frames: int | None = None) -> FrameSource:
    """Open "demo", a camera index ("0"), a photo (by its suffix) or a video file. `photo_frames` limits a
    photo to that many frames (None: endless, for the GUI)."""
    spec = str(spec).strip()
    if not spec:
        raise SourceError("empty source: give a camera index, a video or photo path, or 'demo'")
    if spec.lower() == "demo":
        return DemoSource()
    if is_camera_spec(spec):
        return CameraSource(int(spec))
    path = Path(spec).expanduser()
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return PhotoSource(path, frames=photo_frames)
    return VideoSource(path)


def list_cameras() -> list[tuple[int, str]]:
    """(OpenCV index, human name) of the cameras present. Qt knows the names; it lives in PySide6-Addons
    (QtMultimedia) and needs libpulse, so without it we probe the first few OpenCV indices instead."""
    cameras = _qt_cameras()
    return cameras if cameras else _probe_opencv_cameras()


def _qt_cameras() -> list[tuple[int, str]]:
    try:
        from PySide6.QtMultimedia import QMediaDevices
    except Exception:  # missing module or missing system library: fall back to probing
        return []
    try:
        devices = QMediaDevices.videoInputs()
    except Exception:
        return []
    cameras = []
    for position, device in enumerate(devices):
        ident = bytes(device.id()).decode(errors="replace")
        # On Linux the id is the V4L2 node (/dev/videoN), whose N is OpenCV's index; elsewhere use the order.
        digits = ident.rsplit("video", 1)[-1] if "video" in ident else ""
        index = int(digits) if digits.isdigit() else position
        cameras.append((index, device.description() or f"camera {index}"))
    return cameras


def _probe_opencv_cameras() -> list[tuple[int, str]]:
    cameras = []
    for index in PROBE_INDICES:
        if sys.platform.startswith("linux") and not Path(f"/dev/video{index}").exists():
            continue  # on Linux a missing node means no camera; skip the slow open
        with _quiet_opencv():
            capture = cv2.VideoCapture(index)
            found = capture.isOpened()
            capture.release()
        if found:
            cameras.append((index, f"camera {index}"))
    return cameras
