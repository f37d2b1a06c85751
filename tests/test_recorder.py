"""Recorder: round trip (video frames, size, timing, CSV rows), crash safety under SIGKILL, never overwriting,
and one-line OutputErrors for paths that cannot be written."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from app.recorder import BASE_COLUMNS, Recorder, check_video_path, unique_path
from inference.cards import DEFAULT_CLASSES
from inference.errors import OutputError
from inference.types import Face, FaceBox, FrameResult, Prediction

ROOT = Path(__file__).resolve().parents[1]


def result_for(index: int) -> FrameResult | None:
    """Frames 0-1: no analysis yet; then alternately one face (two attributes) and none."""
    if index < 2:
        return None
    if index % 2:
        return FrameResult(index, index / 30, ())
    emotion = Prediction.from_probs(DEFAULT_CLASSES["emotion"], [0.05, 0, 0, 0.8, 0.1, 0.05, 0])
    gender = Prediction.from_probs(DEFAULT_CLASSES["gender"], [0.3, 0.7])
    face = Face(7, FaceBox(10 + index, 20, 50, 60, 0.9), emotion=emotion, gender=gender)
    return FrameResult(index - 1, index / 30, (face,))


def moving_frame(index: int, size=(320, 240)) -> np.ndarray:
    image = np.full((size[1], size[0], 3), 40, np.uint8)
    cv2.rectangle(image, (5 * index % size[0], 50), (5 * index % size[0] + 30, 120), (0, 200, 255), -1)
    return image


def decode(path: Path) -> list[av.VideoFrame]:
    """Every frame that decodes; a truncated last fragment just ends the list."""
    frames = []
    with av.open(str(path)) as container:
        try:
            for f in container.decode(video=0):
                frames.append(f)
        except av.error.FFmpegError:
            pass
    return frames


def test_round_trip_video_and_csv(tmp_path):
    path = tmp_path / "clip.mp4"
    with Recorder(path, 30, (320, 240), DEFAULT_CLASSES) as rec:
        for i in range(60):
            rec.write(moving_frame(i), result_for(i), i, i / 30)
    assert rec.frames_written == 60 and rec.log_path == tmp_path / "clip.csv"

    frames = decode(path)
    assert len(frames) == 60
    assert (frames[0].width, frames[0].height) == (320, 240)
    assert frames[-1].time == pytest.approx(59 / 30, abs=0.002)
    assert sum(f.key_frame for f in frames) == 2  # one keyframe (fragment) per second
    # Content survives encoding: the orange box of frame 10 is where it was drawn.
    image = frames[10].to_ndarray(format="bgr24")
    assert image[80, 65, 2] > 180 and image[80, 200, 2] < 90
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened() and capture.get(cv2.CAP_PROP_FPS) == pytest.approx(30, abs=0.1)
    count = 0
    while capture.read()[0]:
        count += 1
    assert count == 60

    with open(rec.log_path, newline="") as f:
        rows = list(csv.DictReader(f))
    header = list(rows[0].keys())
    assert tuple(header[: len(BASE_COLUMNS)]) == BASE_COLUMNS
    assert header[len(BASE_COLUMNS)] == "emotion_Angry" and header[-1] == "race_Others"
    assert len(rows) == 60  # one row per frame: one face or an empty-face row
    assert [int(r["frame"]) for r in rows] == list(range(60))
    assert rows[0]["face_id"] == "" and rows[0]["result_frame"] == ""
    face_row = rows[4]
    assert face_row["face_id"] == "7" and face_row["result_frame"] == "3"
    assert (face_row["x"], face_row["w"], face_row["h"]) == ("14.0", "50.0", "60.0")
    assert (face_row["emotion"], float(face_row["emotion_p"])) == ("Happy", 0.8)
    assert (face_row["gender"], face_row["race"], face_row["race_p"]) == ("Female", "", "")
    assert float(face_row["emotion_Sad"]) == pytest.approx(0.1) and face_row["race_White"] == ""
    assert float(face_row["time_s"]) == pytest.approx(4 / 30, abs=1e-3)


def test_odd_sizes_are_padded_and_other_sizes_resized(tmp_path):
    path = tmp_path / "odd.mp4"
    with Recorder(path, 25, (161, 121), {}, log=False) as rec:
        rec.write(moving_frame(0, (161, 121)), None, 0, 0.0)
        rec.write(moving_frame(1, (320, 240)), None, 1, 0.04)  # a camera switching resolution mid-way
    frames = decode(path)
    assert [(f.width, f.height) for f in frames] == [(162, 122)] * 2
    assert not path.with_suffix(".csv").exists()


def test_timestamps_set_the_playback_speed(tmp_path):
    """A camera that delivers 10 fps while claiming 30 must still play at true speed."""
    path = tmp_path / "vfr.mp4"
    with Recorder(path, 30, (64, 48), {}, log=False) as rec:
        for i in range(20):
            rec.write(moving_frame(i, (64, 48)), None, i, 5.0 + i * 0.1)
    frames = decode(path)
    assert len(frames) == 20
    assert frames[-1].time - frames[0].time == pytest.approx(1.9, abs=0.002)


def test_renderer_draws_in_the_writer_thread(tmp_path):
    class BoxPainter:
        def __init__(self):
            self.threads = set()

        def annotate(self, frame_bgr, result, stats=None):
            self.threads.add(threading.current_thread().name)
            out = frame_bgr.copy()
            for face in result.faces if result else ():
                b = face.box
                cv2.rectangle(out, (int(b.x), int(b.y)), (int(b.x + b.w), int(b.y + b.h)), (255, 255, 255), -1)
            return out

    painter = BoxPainter()
    raw = moving_frame(0, (128, 96))
    with Recorder(tmp_path / "r.mp4", 30, (128, 96), {}, log=False, renderer=painter) as rec:
        face = Face(1, FaceBox(60, 40, 30, 30))
        rec.write(raw, FrameResult(0, 0.0, (face,)), 0, 0.0)
    assert painter.threads == {"facelens-recorder"}
    assert raw[55, 75].tolist() == [40, 40, 40]  # the caller's frame is untouched
    assert decode(tmp_path / "r.mp4")[0].to_ndarray(format="bgr24")[55, 75].min() > 220


def test_log_only_recording(tmp_path):
    log = tmp_path / "faces.csv"
    with Recorder(None, 30, (64, 48), DEFAULT_CLASSES, log=log) as rec:
        for i in range(5):
            rec.write(moving_frame(i, (64, 48)), result_for(i), i, i / 30)
    with open(log, newline="") as f:
        assert len(list(csv.reader(f))) == 1 + 5
    assert list(tmp_path.iterdir()) == [log]


CRASH_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from app.recorder import Recorder
    from app.sources import DemoSource
    source = DemoSource()
    recorder = Recorder(sys.argv[1], 30, source.size, {"gender": ("Male", "Female")})
    start = time.monotonic()
    i = 0
    while True:
        time.sleep(max(0.0, start + i / 30 - time.monotonic()))
        recorder.write(source.read(), None, i, i / 30)
        print(i, flush=True)
        i += 1
    """
)


def test_a_killed_recording_keeps_all_but_about_the_last_second(tmp_path):
    path = tmp_path / "killed.mp4"
    script = tmp_path / "record_forever.py"
    script.write_text(CRASH_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        written, first = -1, None
        while True:
            line = proc.stdout.readline()
            assert line, "the recording subprocess died on its own"
            written = int(line)
            first = first or time.monotonic()
            if time.monotonic() - first >= 2.5:
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(5)
    assert proc.returncode == -signal.SIGKILL
    frames_written = written + 1
    must_survive = frames_written - 36  # everything older than ~1.2 s (30 fps)
    frames = decode(path)
    assert len(frames) >= max(must_survive, 30), (len(frames), frames_written)
    assert (frames[0].width, frames[0].height) == (640, 480)
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened() and capture.read()[0]  # OpenCV (its own FFmpeg) plays it too
    with open(path.with_suffix(".csv"), newline="") as f:
        rows = [r for r in csv.reader(f) if len(r) == len(BASE_COLUMNS) + 2]
    assert len(rows) - 1 >= must_survive


def test_unique_path_never_overwrites(tmp_path):
    (tmp_path / "rec.mp4").write_bytes(b"precious")
    (tmp_path / "rec-3.csv").write_text("also precious")
    first = unique_path(tmp_path, "rec", ".mp4", companions=(".csv",))
    second = unique_path(tmp_path, "rec", "mp4", companions=(".csv",))
    assert (first.name, second.name) == ("rec-2.mp4", "rec-4.mp4")
    assert (tmp_path / "rec.mp4").read_bytes() == b"precious"
    assert first.exists() and first.stat().st_size == 0  # reserved: nobody else can take it


def test_unique_path_is_safe_against_concurrent_callers(tmp_path):
    names, barrier = [], threading.Barrier(8)

    def grab():
        barrier.wait()
        names.append(unique_path(tmp_path, "snap", ".png").name)

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(names)) == 8


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda d: d / "missing" / "a.mp4", "does not exist"),
        (lambda d: d / "file.txt" / "a.mp4", "is not a folder"),
        (lambda d: d / "a.avi", "use one of .mp4"),
        (lambda d: d, "use one of"),
    ],
)
def test_unwritable_paths_give_one_line_output_errors(tmp_path, make, needle):
    (tmp_path / "file.txt").write_text("x")
    path = make(tmp_path)
    for attempt in (lambda: check_video_path(path), lambda: Recorder(path, 30, (64, 48), {})):
        with pytest.raises(OutputError, match=needle) as info:
            attempt()
        assert "\n" not in str(info.value)


def test_a_full_disk_is_an_output_error(tmp_path):
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    video = tmp_path / "full.mp4"
    video.symlink_to("/dev/full")
    with pytest.raises(OutputError, match="the disk is full"):
        with Recorder(video, 30, (64, 48), {}, log=False) as rec:
            for i in range(40):
                rec.write(moving_frame(i, (64, 48)), None, i, i / 30)
    with pytest.raises(OutputError, match="No space left"):
        Recorder(None, 30, (64, 48), {}, log=Path("/dev/full"))


def test_write_after_close_is_refused(tmp_path):
    rec = Recorder(tmp_path / "a.mp4", 30, (64, 48), {})
    rec.close()
    rec.close()  # idempotent
    with pytest.raises(OutputError, match="already finished"):
        rec.write(moving_frame(0, (64, 48)), None, 0, 0.0)
    assert not (tmp_path / "a.mp4").exists()  # nothing recorded, no empty video left behind
    reserved = unique_path(tmp_path, "b", ".mp4")
    Recorder(reserved, 30, (64, 48), {}, log=False).close()
    assert not reserved.exists()
