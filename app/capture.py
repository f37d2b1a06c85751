"""The capture thread and the hand-over points between it and its consumers.

Display and analysis run at different speeds, so the capture thread never waits for either: it puts each
frame into a `LatestFrameSlot`, where a newer frame simply replaces an older one nobody took yet
(latest-frame-wins), and consumers ask for "anything newer than what I had". Headless analysis wants every
frame instead, so the same thread can feed a bounded `FrameQueue`, where it waits for room (decoding then
overlaps analysis without ever dropping a frame).

After vidgear's CamGear: a named daemon thread, stop through a `threading.Event`, the thread that reads the
source also releases it (in `finally`), joins with a timeout, and no busy-spin at the end of a stream (the
thread ends and closes its sink, which wakes every waiting consumer).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from app.sources import FrameSource
from inference.errors import FaceLensError

# When a paced (non-live) source falls this far behind its schedule (slow decode, a suspended laptop),
# restart the schedule from now instead of rushing through the backlog.
MAX_LAG_S = 0.25


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured frame. `timestamp` is seconds since the stream started: media time (index / fps) for
    files, photos and the demo, so analysis results do not depend on how fast they were played; wall-clock
    time for cameras."""

    index: int
    timestamp: float
    image: np.ndarray


class FrameSink(Protocol):
    def put(self, frame: Frame) -> None: ...

    def close(self) -> None: ...


class LatestFrameSlot:
    """Holds only the newest frame. `put` never blocks; frames replaced before anyone took them are counted
    in `dropped`. Any number of consumers can wait for a frame newer than the one they have."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._taken = True
        self._closed = False
        self.dropped = 0

    def put(self, frame: Frame) -> None:
        with self._cond:
            if not self._taken:
                self.dropped += 1
            self._frame, self._taken = frame, False
            self._cond.notify_all()

    def latest(self) -> Frame | None:
        """The newest frame without waiting (None before the first)."""
        with self._cond:
            if self._frame is not None:
                self._taken = True
            return self._frame

    def wait_newer(self, after_index: int = -1, timeout: float | None = None) -> Frame | None:
        """The newest frame whose index is above `after_index`, waiting up to `timeout` s for one; None on
        timeout, or at once when the stream has ended and nothing newer will come."""
        with self._cond:

            def newer() -> bool:
                return self._frame is not None and self._frame.index > after_index

            self._cond.wait_for(lambda: newer() or self._closed, timeout)
            if not newer():
                return None
            self._taken = True
            return self._frame

    def close(self) -> None:
        """No more frames will come; wakes every waiter. The last frame stays readable."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


class FrameQueue:
    """A bounded FIFO for consumers that need every frame in order: `put` waits for room instead of
    dropping, so memory stays bounded while decoding runs ahead of a slower consumer."""

    def __init__(self, maxsize: int = 8) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self._cond = threading.Condition()
        self._items: collections.deque[Frame] = collections.deque()
        self._maxsize = maxsize
        self._closed = False

    def put(self, frame: Frame) -> None:
        """Append, waiting while full; after `close` the frame is discarded (the consumer has gone)."""
        with self._cond:
            while len(self._items) >= self._maxsize and not self._closed:
                self._cond.wait()
            if not self._closed:
                self._items.append(frame)
                self._cond.notify_all()

    def get(self, timeout: float | None = None) -> Frame | None:
        """The next frame; None at the end of the stream (closed and empty) or on timeout."""
        with self._cond:
            self._cond.wait_for(lambda: self._items or self._closed, timeout)
            if not self._items:
                return None
            frame = self._items.popleft()
            self._cond.notify_all()
            return frame

    def close(self) -> None:
        """End of stream for the consumer (it still gets what is queued); wakes a waiting producer."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __iter__(self):
        while (frame := self.get()) is not None:
            yield frame


class CaptureThread:
    """Reads `source` on its own thread into `sink` (a LatestFrameSlot or a FrameQueue).

    With `realtime=True` files, photos and the demo are paced at their own fps; cameras are always read as
    fast as they deliver. With `realtime=False` everything is read as fast as possible (headless analysis,
    benchmarks). The source is opened by the caller (so open errors surface at once) and read and released
    here. When the stream ends (`error` None) or fails (`error` set), the sink is closed, `finished` is set
    and `on_end(error)` is called, all from this thread; `on_frame(frame)` is called after every put.
    """

    def __init__(
        self,
        source: FrameSource,
        sink: FrameSink,
        realtime: bool = True,
        *,
        on_frame: Callable[[Frame], None] | None = None,
        on_end: Callable[[str | None], None] | None = None,
        name: str | None = None,
    ) -> None:
        self.source = source
        self.sink = sink
        self.realtime = realtime
        self.on_frame = on_frame
        self.on_end = on_end
        self.error: str | None = None
        self.frames_read = 0
        self.late_restarts = 0  # times a paced source fell behind and its schedule was restarted
        self.finished = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name or f"facelens-capture[{source.name}]", daemon=True)

    @property
    def dropped(self) -> int:
        """Frames the sink discarded because a newer one arrived first (0 for a FrameQueue)."""
        return int(getattr(self.sink, "dropped", 0))

    def start(self) -> CaptureThread:
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> bool:
        """Ask the thread to end and wait up to `timeout` s; True when it has ended (source released).
        A blocking camera read cannot be interrupted, hence the timeout."""
        self._stop.set()
        self.sink.close()  # wakes the thread if it waits for room in a FrameQueue
        return self.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        if self._thread.ident is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        pace = self.realtime and not self.source.is_live
        period = 1.0 / self.source.fps if self.source.fps > 0 else 0.0
        start = time.monotonic()
        schedule_origin, schedule_index = start, 0
        index = 0
        try:
            while not self._stop.is_set():
                if pace:
                    due = schedule_origin + (index - schedule_index) * period
                    delay = due - time.monotonic()
                    if delay < -MAX_LAG_S:
                        schedule_origin, schedule_index = time.monotonic(), index
                        self.late_restarts += 1
                    elif delay > 0 and self._stop.wait(delay):
                        break
                image = self.source.read()
                if image is None:
                    break
                if self.source.is_live:
                    timestamp = time.monotonic() - start
                else:
                    timestamp = index * period
                frame = Frame(index, timestamp, image)
                self.sink.put(frame)
                self.frames_read += 1
                index += 1
                if self.on_frame is not None:
                    self.on_frame(frame)
        except FaceLensError as exc:
            self.error = str(exc)
        except Exception as exc:  # report any read failure to the consumer instead of dying silently
            self.error = f"reading {self.source.name} failed: {type(exc).__name__}: {exc}"
        finally:
            try:
                self.source.close()
            finally:
                self.sink.close()
                self.finished.set()
                if self.on_end is not None:
                    self.on_end(self.error)
