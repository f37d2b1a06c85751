"""The capture thread and its sinks: latest-frame-wins, ordered bounded queue, pacing, clean stops, errors."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from app.capture import CaptureThread, Frame, FrameQueue, LatestFrameSlot
from app.sources import DemoSource
from inference.errors import SourceError


class CountingSource:
    """A tiny real source (numbered grey frames) that records which thread closed it."""

    name = "counting"
    is_live = False

    def __init__(self, frames: int | None = None, fps: float = 30.0, fail_at: int | None = None) -> None:
        self.fps = fps
        self.size = (8, 6)
        self.frame_count = frames
        self.fail_at = fail_at
        self.served = 0
        self.closed_by: str | None = None

    def read(self) -> np.ndarray | None:
        if self.fail_at is not None and self.served == self.fail_at:
            raise SourceError("camera 0 stopped delivering frames (unplugged?)")
        if self.frame_count is not None and self.served >= self.frame_count:
            return None
        self.served += 1
        return np.full((6, 8, 3), self.served % 256, np.uint8)

    def close(self) -> None:
        self.closed_by = threading.current_thread().name


def frame(i: int) -> Frame:
    return Frame(i, i / 30, np.zeros((2, 2, 3), np.uint8))


def test_slot_keeps_only_the_newest_and_counts_what_nobody_saw():
    slot = LatestFrameSlot()
    for i in range(3):
        slot.put(frame(i))
    assert slot.wait_newer(-1, timeout=0).index == 2
    assert slot.dropped == 2
    slot.put(frame(3))
    assert slot.latest().index == 3
    assert slot.dropped == 2  # frame 3 was seen through latest()


def test_slot_wait_times_out_and_close_wakes_waiters():
    slot = LatestFrameSlot()
    slot.put(frame(5))
    start = time.monotonic()
    assert slot.wait_newer(5, timeout=0.05) is None
    assert 0.04 <= time.monotonic() - start < 0.5
    woken = []
    waiter = threading.Thread(target=lambda: woken.append(slot.wait_newer(5)))
    waiter.start()
    time.sleep(0.05)
    slot.close()
    waiter.join(1.0)
    assert woken == [None] and not waiter.is_alive()
    assert slot.wait_newer(-1).index == 5  # the last frame stays readable after the end


def test_slow_consumer_sees_increasing_indices_with_gaps_and_never_blocks_the_producer():
    source = DemoSource()
    slot = LatestFrameSlot()
    capture = CaptureThread(source, slot, realtime=False).start()
    seen, last = [], -1
    try:
        for _ in range(8):
            got = slot.wait_newer(last, timeout=2.0)
            assert got is not None
            seen.append(got.index)
            last = got.index
            time.sleep(0.03)  # a consumer much slower than the ~1 ms demo frames
    finally:
        assert capture.stop(timeout=2.0)
    assert seen == sorted(set(seen))
    assert any(b - a > 1 for a, b in zip(seen, seen[1:], strict=False)), seen
    assert capture.frames_read > 3 * len(seen)
    assert capture.dropped > 0
    assert capture.error is None


def test_stop_is_prompt_and_the_capture_thread_releases_the_source():
    source = CountingSource(fps=5.0)  # paced: the thread mostly sleeps between frames
    capture = CaptureThread(source, LatestFrameSlot(), realtime=True, name="facelens-capture-test").start()
    time.sleep(0.05)
    start = time.monotonic()
    assert capture.stop(timeout=2.0)
    assert time.monotonic() - start < 0.5
    assert not capture.running and capture.finished.is_set()
    assert source.closed_by == "facelens-capture-test"
    assert capture._thread.daemon


def test_realtime_paces_files_at_their_fps_with_media_timestamps():
    slot = LatestFrameSlot()
    capture = CaptureThread(CountingSource(fps=30.0), slot, realtime=True).start()
    time.sleep(0.5)
    capture.stop()
    assert 10 <= capture.frames_read <= 20  # ~15 at 30 fps
    latest = slot.latest()
    assert latest.timestamp == pytest.approx(latest.index / 30.0)


def test_queue_delivers_every_frame_in_order_then_the_end():
    source = CountingSource(frames=25)
    ended = []
    queue = FrameQueue(maxsize=3)
    capture = CaptureThread(source, queue, realtime=False, on_end=ended.append).start()
    frames = list(queue)
    assert [f.index for f in frames] == list(range(25))
    assert [int(f.image[0, 0, 0]) for f in frames] == list(range(1, 26))
    assert capture.join(2.0) and capture.finished.is_set()
    assert ended == [None] and capture.error is None and capture.dropped == 0


def test_a_full_queue_holds_the_producer_back_and_stop_still_releases_it():
    source = CountingSource()
    queue = FrameQueue(maxsize=2)
    capture = CaptureThread(source, queue, realtime=False).start()
    time.sleep(0.2)
    assert source.served <= 3  # two queued, one waiting for room: memory stays bounded
    assert capture.stop(timeout=1.0)
    assert source.closed_by is not None


def test_end_of_stream_ends_the_thread_without_spinning():
    slot = LatestFrameSlot()
    capture = CaptureThread(CountingSource(frames=3), slot, realtime=False).start()
    assert capture.finished.wait(2.0)
    assert capture.join(1.0)
    assert slot.closed and slot.wait_newer(2) is None  # consumers learn at once that nothing more comes


def test_read_errors_are_reported_not_raised():
    reports = []
    slot = LatestFrameSlot()
    capture = CaptureThread(CountingSource(fail_at=4), slot, realtime=False, on_end=reports.append).start()
    assert capture.finished.wait(2.0)
    assert capture.error == "camera 0 stopped delivering frames (unplugged?)"
    assert reports == [capture.error]
    assert capture.frames_read == 4 and slot.closed


def test_on_frame_callback_sees_every_frame():
    got = []
    capture = CaptureThread(
        CountingSource(frames=5), LatestFrameSlot(), realtime=False, on_frame=lambda f: got.append(f.index)
    ).start()
    capture.finished.wait(2.0)
    assert got == [0, 1, 2, 3, 4]


def test_queue_rejects_a_zero_size():
    with pytest.raises(ValueError):
        FrameQueue(0)
