"""Renderer: draws on a copy, where the faces are, legibly at any size, and obeys its switches."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inference.cards import DEFAULT_CLASSES
from inference.render import Renderer, format_stat, track_color
from inference.types import Face, FaceBox, FrameResult, Prediction


def prediction(attr: str, label: str, p: float) -> Prediction:
    classes = DEFAULT_CLASSES[attr]
    probs = np.full(len(classes), (1.0 - p) / (len(classes) - 1))
    probs[classes.index(label)] = p
    return Prediction.from_probs(classes, probs)


def full_face(track_id: int, box: FaceBox) -> Face:
    return Face(
        track_id,
        box,
        emotion=prediction("emotion", "Happy", 0.82),
        gender=prediction("gender", "Female", 0.97),
        race=prediction("race", "White", 0.88),
    )


@pytest.fixture(params=[(480, 640), (1080, 1920)], ids=["480p", "1080p"])
def frame(request: pytest.FixtureRequest) -> np.ndarray:
    """A textured frame (not flat), so 'the overlay changed these pixels' cannot pass by accident."""
    height, width = request.param
    rng = np.random.default_rng(0)
    small = rng.integers(40, 200, (height // 8, width // 8, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def scene(frame: np.ndarray) -> FrameResult:
    h, w = frame.shape[:2]
    s = h / 480
    faces = (
        full_face(1, FaceBox(250 * s, 150 * s, 120 * s, 140 * s)),
        full_face(2, FaceBox(20 * s, 10 * s, 80 * s, 90 * s)),
        Face(3, FaceBox(w - 130 * s, h - 140 * s, 110 * s, 120 * s), gender=prediction("gender", "Male", 0.6)),
    )
    return FrameResult(index=5, timestamp=0.2, faces=faces)


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.any(a != b, axis=2)


def test_annotate_draws_on_a_copy_of_the_same_shape_and_type(frame: np.ndarray):
    original = frame.copy()
    out = Renderer(bars=True).annotate(frame, scene(frame), {"display fps": 30.0})
    np.testing.assert_array_equal(frame, original)
    assert out is not frame and out.shape == frame.shape and out.dtype == np.uint8


def test_each_face_gets_a_box_in_its_track_colour_and_a_label_above_it(frame: np.ndarray):
    result = scene(frame)
    out = Renderer(stats=False).annotate(frame, result)
    diff = changed(out, frame)
    for face in result.faces:
        x0, y0 = round(face.box.x), round(face.box.y)
        x1, y1 = round(face.box.x + face.box.w), round(face.box.y + face.box.h)
        edge = out[y0 + (y1 - y0) // 2, x0]  # middle of the left edge
        assert np.abs(edge.astype(int) - track_color(face.track_id)).max() <= 40
        assert not diff[y0 + 10 : y1 - 10, x0 + 10 : x1 - 10].any()  # the face itself stays visible
    first = result.faces[0].box
    above = diff[max(0, round(first.y) - 20) : round(first.y) - 3, round(first.x) : round(first.x + first.w)]
    assert above.mean() > 0.3  # the label sits right above the box


def test_a_face_at_the_top_edge_gets_its_label_below_the_box():
    frame = np.full((480, 640, 3), 90, np.uint8)
    face = full_face(1, FaceBox(200, 0, 100, 100))
    out = Renderer(stats=False).annotate(frame, FrameResult(0, 0.0, (face,)))
    assert changed(out, frame)[104:120, 210:290].mean() > 0.3


def share_of_colour(region: np.ndarray, track_id: int) -> float:
    """How much of `region` is painted in the track's colour (its label's background)."""
    return float((np.abs(region.astype(int) - track_color(track_id)).max(axis=2) <= 10).mean())


def test_labels_in_a_group_do_not_cover_each_other():
    """Face 1 touches the top, so its label goes below it, where face 2's label would sit above face 2."""
    frame = np.full((480, 640, 3), 90, np.uint8)
    top_face, lower_face = full_face(1, FaceBox(200, 0, 100, 100)), full_face(2, FaceBox(220, 128, 100, 100))
    out = Renderer(stats=False).annotate(frame, FrameResult(0, 0.0, (top_face, lower_face)))
    assert share_of_colour(out[104:124, 200:400], 1) > 0.3  # face 1's label, whole, right below face 1
    assert share_of_colour(out[232:252, 220:420], 2) > 0.3  # face 2's label moved below face 2
    assert share_of_colour(out[104:124, 200:400], 2) < 0.05


def test_a_label_that_moved_comes_back_only_when_its_first_choice_is_clearly_free():
    """No back-and-forth as boxes jitter at the edge of a collision: face 2's label, pushed below by face 1's,
    stays below while the spot above is free by less than a label's height, and returns above after that."""
    frame = np.full((480, 640, 3), 90, np.uint8)
    top_face = full_face(1, FaceBox(200, 0, 100, 100))

    def label_below(out: np.ndarray, y: int) -> bool:
        """Face 2 (x 220, 100 px high, top at `y`) has its label right below it."""
        return share_of_colour(out[y + 104 : y + 124, 220:420], 2) > 0.3

    def scene_with_face_2_at(y: int) -> FrameResult:
        return FrameResult(y, 0.0, (top_face, full_face(2, FaceBox(220, y, 100, 100))))

    renderer = Renderer(stats=False)
    assert label_below(renderer.annotate(frame, scene_with_face_2_at(128)), 128)  # pushed below
    assert label_below(renderer.annotate(frame, scene_with_face_2_at(155)), 155)  # above is free, only just
    assert not label_below(Renderer(stats=False).annotate(frame, scene_with_face_2_at(155)), 155)
    assert not label_below(renderer.annotate(frame, scene_with_face_2_at(200)), 200)  # clearly free: back above


def test_stats_only_without_a_result_and_nothing_when_switched_off(frame: np.ndarray):
    stats = {"display fps": 30.0, "analysis fps": 24.8, "analysis ms": 41.0}
    h, w = frame.shape[:2]
    out = Renderer().annotate(frame, None, stats)
    diff = changed(out, frame)
    assert diff[: h // 10, : w // 3].mean() > 0.5  # the readout panel in the top-left corner
    assert not diff[h // 4 :, :].any()  # and nothing else
    np.testing.assert_array_equal(Renderer(stats=False).annotate(frame, None, stats), frame)
    np.testing.assert_array_equal(Renderer().annotate(frame, None), frame)  # no stats given: nothing to say


def test_stats_wrap_on_a_narrow_frame_instead_of_running_off_it():
    stats = {"display fps": 30.0, "analysis fps": 24.8, "analysis ms": 41.0}
    wide = np.full((300, 400, 3), 90, np.uint8)
    narrow = np.full((300, 160, 3), 90, np.uint8)
    one_line = np.flatnonzero(changed(Renderer().annotate(wide, None, stats), wide).any(axis=1)).max()
    diff = changed(Renderer().annotate(narrow, None, stats), narrow)
    assert np.flatnonzero(diff.any(axis=1)).max() > 2.5 * one_line  # three lines instead of one
    assert not diff[:, -3:].any()  # none of them runs off the right edge


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [
        ("display fps", 30, "display 30.0 fps"),
        ("analysis_fps", 24.84, "analysis 24.8 fps"),
        ("latency ms", 41.4, "latency 41 ms"),
        ("faces", 2, "faces 2"),
        ("uptime s", 3.5, "uptime 3.50 s"),
        ("fps", 12.0, "fps 12"),
    ],
)
def test_format_stat(key: str, value: float, text: str):
    assert format_stat(key, value) == text


def test_switching_attributes_bars_and_stats_changes_the_output(frame: np.ndarray):
    result = scene(frame)
    stats = {"display fps": 30.0}
    base = Renderer().annotate(frame, result, stats)
    for attr in ("emotion", "gender", "race"):
        off = Renderer(show={attr: False}).annotate(frame, result, stats)
        assert changed(off, base).any(), attr
    with_bars = Renderer(bars=True).annotate(frame, result, stats)
    assert changed(with_bars, base).sum() > changed(base, frame).sum() // 2  # panels add a lot of ink
    no_stats = Renderer(stats=False).annotate(frame, result, stats)
    assert changed(no_stats, base)[:40, :200].any()


def test_switches_are_live_attributes(frame: np.ndarray):
    result = scene(frame)
    renderer = Renderer()
    before = renderer.annotate(frame, result)
    renderer.bars = True
    renderer.show["emotion"] = False
    after = renderer.annotate(frame, result)
    expected = Renderer(show={"emotion": False}, bars=True).annotate(frame, result)
    assert changed(after, before).any()
    np.testing.assert_array_equal(after, expected)


def test_a_face_with_every_attribute_off_keeps_its_box_and_id(frame: np.ndarray):
    face = full_face(7, FaceBox(200, 150, 120, 140))
    result = FrameResult(0, 0.0, (face,))
    renderer = Renderer(show={"emotion": False, "gender": False, "race": False}, bars=True, stats=False)
    out = renderer.annotate(frame, result)
    diff = changed(out, frame)
    assert diff[150:290, 198:203].all()  # the left edge of the box
    label = diff[110:150, 200:320]
    assert 0.1 < label.mean()  # a small '#7' tag
    assert not diff[150:290, 330:].any()  # and no bar panel
    bare = Face(7, face.box)  # no predictions at all: the same picture
    np.testing.assert_array_equal(renderer.annotate(frame, FrameResult(0, 0.0, (bare,))), out)


def test_bars_show_the_probabilities(frame: np.ndarray):
    """A surer prediction draws a longer bar in the track's colour."""
    box = FaceBox(100, 150, 120, 140)
    color = np.array(track_color(1))

    def coloured_pixels(p: float) -> int:
        """Pixels in the track's colour that the bars add (the label and the box have that colour too)."""
        result = FrameResult(0, 0.0, (Face(1, box, gender=prediction("gender", "Female", p)),))
        counts = []
        for bars in (True, False):
            out = Renderer(bars=bars, stats=False).annotate(frame, result)
            counts.append(int(np.all(np.abs(out.astype(int) - color) <= 10, axis=2).sum()))
        return counts[0] - counts[1]

    assert coloured_pixels(0.95) > coloured_pixels(0.6) * 1.3 > 0


def test_track_colours_are_stable_and_distinct_for_neighbouring_ids():
    assert track_color(3) == track_color(3)
    assert len({track_color(i) for i in range(1, 9)}) == 8


def test_boxes_partly_outside_the_frame_are_drawn_without_error(frame: np.ndarray):
    h, w = frame.shape[:2]
    faces = (full_face(1, FaceBox(-50, -40, 120, 130)), full_face(2, FaceBox(w - 60, h - 50, 150, 160)))
    out = Renderer(bars=True).annotate(frame, FrameResult(0, 0.0, faces), {"display fps": 30.0})
    assert out.shape == frame.shape


def test_text_scales_with_the_frame():
    """Legible at 480p and 1080p: the label's ink is about as tall, relative to the frame, at both sizes."""
    heights = []
    for h, w in ((480, 640), (1080, 1920)):
        frame = np.full((h, w, 3), 90, np.uint8)
        face = Face(1, FaceBox(w * 0.4, h * 0.4, h * 0.25, h * 0.3), emotion=prediction("emotion", "Happy", 0.8))
        diff = changed(Renderer(stats=False).annotate(frame, FrameResult(0, 0.0, (face,))), frame)
        column = diff[: round(face.box.y) - 3, round(w * 0.4) + 5]  # through the label, above the box
        heights.append(column.sum() / h)
    assert heights[1] == pytest.approx(heights[0], rel=0.25)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((48, 64), np.uint8), "shape"),
        (np.zeros((48, 64, 3), np.float32), "uint8"),
        ([[0, 0, 0]], "BGR"),
    ],
)
def test_bad_frames_are_rejected(image, message: str):
    with pytest.raises(ValueError, match=message):
        Renderer().annotate(image, None)


def test_unknown_attribute_switch_is_rejected():
    with pytest.raises(ValueError, match="unknown attribute"):
        Renderer(show={"age": True})
