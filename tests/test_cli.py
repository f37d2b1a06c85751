"""The `facelens` command line: exit codes and one-line errors, `image` and `analyze` end to end with the tiny
models, delegation to train/eval/bench, and the GUI as the default."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import shared_path
from skimage import data

from app import cli, demo, headless
from detectors.roi import RegionSearch
from inference.explain import TILE

ROOT = Path(__file__).resolve().parents[1]


def run(capfd, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capfd.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, needle: str) -> None:
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("facelens: error: ") and needle in lines[0]
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def astronaut_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def demo_clip(tmp_path_factory) -> Path:
    """A short real video (30 demo frames with moving faces) written by OpenCV, as a user's file would be."""
    path = tmp_path_factory.mktemp("clips") / "demo.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (demo.WIDTH, demo.HEIGHT))
    for i in range(30):
        writer.write(demo.render_frame(90 + i))
    writer.release()
    return path


def count_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (("analyze", "/no/such/video.mp4"), "no such file: /no/such/video.mp4"),
        (("image", "/no/such/photo.jpg"), "no such file: /no/such/photo.jpg"),
        (("analyze", "97"), "no camera at index 97"),
        (("analyze", "demo", "--record", "/dev/null/out.mp4"), "is not a folder"),
        (("analyze", "demo", "--record", "out.avi"), "use one of .mp4"),
        (("analyze", "demo", "--log", "/no/such/folder/log.csv"), "does not exist"),
    ],
)
def test_bad_input_exits_2_with_one_line(capfd, argv, needle):
    code, out, err = run(capfd, *argv)
    assert_one_line_error(code, err, needle)
    assert out == ""


def test_unknown_detector_exits_2(capfd, astronaut_png, tiny_weights_dir):
    code, _, err = run(capfd, "image", str(astronaut_png), "--detector", "nope", "--weights", str(tiny_weights_dir))
    assert_one_line_error(code, err, "unknown detector 'nope'")


def test_corrupt_weights_exit_2(capfd, tmp_path, astronaut_png):
    (tmp_path / "emotion.json").write_text("{ not json")
    code, _, err = run(capfd, "image", str(astronaut_png), "--weights", str(tmp_path))
    assert_one_line_error(code, err, "emotion.json")
    (tmp_path / "emotion.json").write_text(
        json.dumps(
            {
                "task": "emotion",
                "classes": list("ABCDEFG"),
                "input": {"size": 48, "color": "grey", "margin": 0.1},
                "file": "emotion.keras",
            }
        )
    )
    (tmp_path / "emotion.keras").write_bytes(b"PK\x03\x04 truncated")
    code, _, err = run(capfd, "analyze", "demo", "--max-frames", "2", "--weights", str(tmp_path))
    assert_one_line_error(code, err, "emotion.keras")


def test_usage_errors_exit_2_and_help_0(capfd):
    assert run(capfd, "analyze")[0] == 2
    assert run(capfd, "analyze", "demo", "--every", "0")[0] == 2
    code, out, _ = run(capfd, "--help")
    assert code == 0 and "analyze" in out and "bench" in out


def test_image_json_lists_faces_with_every_probability(capfd, astronaut_png, tiny_weights_dir, tmp_path):
    annotated = tmp_path / "annotated.png"
    code, out, err = run(
        capfd, "image", str(astronaut_png), "--json", "--weights", str(tiny_weights_dir), "--out", str(annotated)
    )
    assert code == 0, err
    faces = json.loads(out)
    assert len(faces) >= 1
    face = faces[0]
    assert {"x", "y", "w", "h", "score"} <= set(face["box"])
    assert 150 < face["box"]["x"] + face["box"]["w"] / 2 < 300  # the astronaut's face, not elsewhere
    for attr, n in (("emotion", 7), ("gender", 2), ("race", 5)):
        assert len(face[attr]["probs"]) == n
        assert face[attr]["label"] in face[attr]["probs"]
        assert sum(face[attr]["probs"].values()) == pytest.approx(1.0, abs=1e-3)
    saved = cv2.imread(str(annotated))
    original = cv2.imread(str(astronaut_png))
    assert saved.shape == original.shape and not np.array_equal(saved, original)


def test_image_table_and_a_photo_without_faces(capfd, astronaut_png, tiny_weights_dir, tmp_path):
    code, out, _ = run(capfd, "image", str(astronaut_png), "--weights", str(tiny_weights_dir))
    assert code == 0 and out.splitlines()[0].split()[:2] == ["face", "box"] and len(out.splitlines()) >= 2
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 300, 3), 127, np.uint8))
    code, out, _ = run(capfd, "image", str(blank), "--weights", str(tiny_weights_dir))
    assert (code, out.strip()) == (0, "no faces found")


def test_a_photo_gets_the_detector_that_finds_most_faces(capfd, tiny_weights_dir):
    """Video defaults to Haar (speed); a photo to MTCNN, which costs about the same one-off start-up there.
    In this selfie MTCNN also finds the woman cut off at the left edge, whom Haar misses."""
    photo = shared_path("media", "images", "deepface__selfie-many-people.jpg")
    found = {}
    for extra in ([], ["--detector", "haar"]):
        code, out, err = run(capfd, "image", str(photo), "--json", "--weights", str(tiny_weights_dir), *extra)
        assert code == 0, err
        found[tuple(extra)] = len(json.loads(out))
    assert found == {(): 4, ("--detector", "haar"): 3}
    assert cli.build_parser().parse_args(["analyze", "demo"]).detector == "haar"


def test_image_out_with_unknown_format_exits_2(capfd, astronaut_png, tmp_path):
    for option in ("--out", "--explain"):
        code, _, err = run(capfd, "image", str(astronaut_png), option, str(tmp_path / "x.notanimage"))
        assert_one_line_error(code, err, "unknown image format")


def test_image_explain_saves_a_map_per_model_for_each_face(capfd, astronaut_png, tiny_weights_dir, tmp_path):
    panel_path = tmp_path / "explain.png"
    code, out, err = run(
        capfd, "image", str(astronaut_png), "--json", "--weights", str(tiny_weights_dir), "--explain", str(panel_path)
    )
    assert code == 0, err
    faces = len(json.loads(out))
    panel = cv2.imread(str(panel_path))
    assert faces >= 1 and panel.shape[:2] == (faces * (TILE + 40), 4 * TILE)  # the face, then three maps
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 300, 3), 127, np.uint8))
    unused = tmp_path / "none.png"
    code, out, _ = run(capfd, "image", str(blank), "--weights", str(tiny_weights_dir), "--explain", str(unused))
    assert (code, out.strip()) == (0, "no faces found") and not unused.exists()


def test_analyze_records_every_frame_and_logs_them(capfd, demo_clip, tiny_weights_dir, tmp_path):
    out_video = tmp_path / "annotated.mp4"
    code, out, err = run(
        capfd, "analyze", str(demo_clip), "--record", str(out_video), "--weights", str(tiny_weights_dir), "--json"
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["frames"] == summary["analyzed_frames"] == 30
    assert summary["face_detections"] >= 30  # two faces in most of these frames
    assert summary["analysis_fps"] > 0 and set(summary["stage_ms"]) >= {"detect", "emotion", "total"}
    assert count_frames(out_video) == 30
    with av.open(str(out_video)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (640, 480)
    with open(out_video.with_suffix(".csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert {int(r["frame"]) for r in rows} == set(range(30))
    assert all(r["emotion"] and r["gender"] and r["race"] for r in rows if r["face_id"])


def test_pipelined_analyze_matches_a_plain_sequential_loop(capfd, demo_clip, tiny_weights_dir, tmp_path, monkeypatch):
    """Detection runs one thread ahead of the models in `analyze`; the faces, boxes and labels must be exactly
    what detect-then-classify one frame at a time gives. (The region search's choice between regions and a
    full scan depends on measured times; fixed here so both runs make the same choices.)"""
    monkeypatch.setattr(RegionSearch, "_regions_cheaper", lambda self, count: True)
    log = tmp_path / "faces.csv"
    code, _, err = run(capfd, "analyze", str(demo_clip), "--log", str(log), "--weights", str(tiny_weights_dir))
    assert code == 0, err
    with open(log, newline="") as f:
        logged = [(int(r["frame"]), r["face_id"], r["x"], r["emotion"], r["race"]) for r in csv.DictReader(f)]

    analyzer = headless.build_analyzer("haar", tiny_weights_dir)
    capture = cv2.VideoCapture(str(demo_clip))
    expected = []
    for index in range(30):
        ok, image = capture.read()
        assert ok
        result = analyzer.analyze(image, index, index / 30.0)
        expected += (
            [(index, "", "", "", "")]
            if not result.faces
            else [
                (index, str(face.track_id), f"{face.box.x:.1f}", face.emotion.label, face.race.label)
                for face in result.faces
            ]
        )
    capture.release()
    analyzer.detector.close()
    assert logged == expected


def test_analyze_every_nth_frame_follows_faces_between(capfd, demo_clip, tiny_weights_dir, tmp_path):
    log = tmp_path / "faces.csv"
    code, out, err = run(
        capfd,
        "analyze",
        str(demo_clip),
        "--every",
        "4",
        "--log",
        str(log),
        "--weights",
        str(tiny_weights_dir),
        "--json",
    )
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["frames"], summary["analyzed_frames"]) == (30, 8)
    with open(log, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["face_id"]]
    followed = [r for r in rows if r["result_frame"] != r["frame"]]
    assert followed, "frames between analyses must carry the followed result"
    assert not list(tmp_path.glob("*.mp4"))


def test_analyze_text_summary_and_demo_limit(capfd, tiny_weights_dir):
    code, out, _ = run(capfd, "analyze", "demo", "--max-frames", "5", "--weights", str(tiny_weights_dir))
    assert code == 0
    assert out.startswith("demo: 5 frames (5 analyzed)") and "fps" in out


def test_ctrl_c_finishes_the_recording_and_exits_130(capfd, tiny_weights_dir, tmp_path, monkeypatch):
    original = headless.Summary.add

    def add_then_interrupt(self, result, analyzed):
        original(self, result, analyzed)
        if self.frames == 12:
            raise KeyboardInterrupt

    monkeypatch.setattr(headless.Summary, "add", add_then_interrupt)
    video = tmp_path / "partial.mp4"
    code, _, err = run(capfd, "analyze", "demo", "--record", str(video), "--weights", str(tiny_weights_dir))
    assert code == 130 and "interrupted" in err and "Traceback" not in err
    assert count_frames(video) == 11  # every frame recorded before the interrupt, in a finished file
    with open(video.with_suffix(".csv"), newline="") as f:
        assert {int(r["frame"]) for r in csv.DictReader(f)} == set(range(11))


def test_unexpected_errors_exit_1_with_a_traceback(capfd, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(headless, "run_analyze", broken)
    code, _, err = run(capfd, "analyze", "demo")
    assert code == 1 and "Traceback" in err and "RuntimeError: a bug" in err


def test_train_eval_bench_get_the_rest_of_the_command_line(capfd, monkeypatch):
    calls = []
    fake = types.ModuleType("fake_bench")
    fake.main = lambda argv: calls.append(argv) or 0
    monkeypatch.setitem(sys.modules, "fake_bench", fake)
    monkeypatch.setitem(cli.DELEGATED, "bench", ("fake_bench", "speed"))
    assert run(capfd, "bench", "--json", "--source", "demo")[0] == 0
    assert calls == [["--json", "--source", "demo"]]


def test_no_command_opens_the_gui(capfd, monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    calls = []
    fake = types.ModuleType("app.gui.main_window")
    fake.run_gui = lambda source, detector: calls.append((source, detector)) or 0
    monkeypatch.setitem(sys.modules, "app.gui.main_window", fake)
    assert run(capfd, "--source", "demo", "--detector", "mtcnn")[0] == 0
    assert run(capfd)[0] == 0
    assert calls == [("demo", "mtcnn"), (None, None)]


def test_python_dash_m_app_works():
    proc = subprocess.run(
        [sys.executable, "-m", "app", "analyze", "/no/such.mp4"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "facelens: error: no such file: /no/such.mp4"


def test_progress_line_only_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term, pipe = Terminal(), io.StringIO()
    for stream in (term, pipe):
        progress = headless.Progress(100, stream)
        progress._last = -1.0
        progress.update(50, 3)
        progress.close()
    assert "\ranalyze: 50/100 frames  50%" in term.getvalue() and "3 faces" in term.getvalue()
    assert pipe.getvalue() == ""


def test_native_log_noise_is_hidden_unless_loading_breaks(capfd):
    with headless.quiet_native_logs():
        os.write(2, b"I0000 oneDNN custom operations are on\n")
    assert capfd.readouterr().err == ""
    with pytest.raises(RuntimeError), headless.quiet_native_logs():
        os.write(2, b"libfoo.so: cannot open shared object\n")
        raise RuntimeError("import failed")
    assert "libfoo.so" in capfd.readouterr().err


def test_gui_without_a_display_is_a_one_line_error(capfd, monkeypatch):
    if not sys.platform.startswith("linux"):
        pytest.skip("the display check is for X11/Wayland")
    for name in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    code, _, err = run(capfd, "--source", "demo")
    assert_one_line_error(code, err, "no display for the desktop app")
