"""FaceTracker: stable ids, dropping lost faces, time-based probability smoothing, and follow()."""

from __future__ import annotations

import numpy as np
import pytest

from inference.tracking import FaceTracker
from inference.types import Face, FaceBox, FrameResult

EMOTIONS = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
GENDERS = ("Male", "Female")


def box_at(cx: float, cy: float, size: float = 100.0) -> FaceBox:
    return FaceBox(cx - size / 2, cy - size / 2, size, size, 0.9)


def ids(faces: tuple[Face, ...]) -> list[int]:
    return [face.track_id for face in faces]


def gender_probs(*female: float) -> dict[str, np.ndarray]:
    return {"gender": np.array([[1.0 - f, f] for f in female]).reshape(-1, 2)}


def test_ids_stay_with_a_moving_face_and_new_faces_get_new_ids():
    tracker = FaceTracker()
    first = tracker.update([box_at(100, 100), box_at(400, 100)], {}, {}, 0.0)
    assert ids(first) == [1, 2]
    for step in range(1, 30):
        t = step / 30
        # Both faces move 3 px per frame toward each other; the detector reports them in swapped order.
        faces = tracker.update([box_at(400 - 3 * step, 100), box_at(100 + 3 * step, 100)], {}, {}, t)
        assert ids(faces) == [2, 1]
    faces = tracker.update([box_at(100 + 3 * 30, 100), box_at(400 - 3 * 30, 100), box_at(600, 400)], {}, {}, 1.0)
    assert ids(faces) == [1, 2, 3]


def test_box_is_lightly_smoothed_and_tracks_a_moving_face_without_lag():
    tracker = FaceTracker()
    rng = np.random.default_rng(0)
    errors = []
    for step in range(60):
        true_cx = 100 + 5 * step
        noisy = box_at(true_cx + rng.normal(0, 3), 200 + rng.normal(0, 3))
        (face,) = tracker.update([noisy], {}, {}, step / 30)
        errors.append(face.box.center[0] - true_cx)
    settled = np.array(errors[10:])
    assert abs(settled.mean()) < 1.5  # no systematic lag behind a face moving 150 px/s
    assert settled.std() < 3.0  # and the jitter is no worse than the detector's


@pytest.mark.parametrize("offset_y", [0.0, 40.0])
def test_crossing_faces_keep_their_ids(offset_y: float):
    """Two faces walk through each other; matching against each face's predicted position keeps ids right
    even when the boxes coincide for a moment."""
    tracker = FaceTracker()
    a_ids, b_ids = set(), set()
    for step in range(31):
        a = box_at(100 + 10 * step, 200)  # moves right
        b = box_at(405 - 10 * step, 200 + offset_y)  # moves left; they pass each other at step 15
        faces = tracker.update([a, b], {}, {}, step / 15)
        a_ids.add(faces[0].track_id)
        b_ids.add(faces[1].track_id)
    assert a_ids == {1} and b_ids == {2}


def test_faces_that_do_not_overlap_enough_are_not_matched():
    tracker = FaceTracker(iou_threshold=0.3)
    tracker.update([box_at(100, 100)], {}, {}, 0.0)
    faces = tracker.update([box_at(180, 100)], {}, {}, 0.1)  # IoU = 20/180 = 0.11: a different face
    assert ids(faces) == [2, 1]  # the new face, then the old one held at its last place
    assert faces[1].box == box_at(100, 100)


def test_a_lost_face_is_held_briefly_then_dropped_after_max_missed_s():
    tracker = FaceTracker(max_missed_s=0.5, hold_s=0.2)
    tracker.update([box_at(100, 100)], gender_probs(0.9), {"gender": GENDERS}, 0.0)
    held = tracker.update([], gender_probs(), {"gender": GENDERS}, 0.1)
    assert ids(held) == [1] and held[0].gender.label == "Female"  # a one-frame miss does not blink the box
    assert tracker.update([], {}, {}, 0.3) == ()  # past hold_s: not shown, but still remembered
    assert tracker.track_count == 1
    assert ids(tracker.update([box_at(102, 100)], {}, {}, 0.45)) == [1]  # re-found within max_missed_s
    tracker.update([], {}, {}, 0.9)
    assert tracker.track_count == 1
    assert tracker.update([], {}, {}, 1.0) == () and tracker.track_count == 0  # missed > 0.5 s: forgotten
    assert ids(tracker.update([box_at(102, 100)], {}, {}, 1.1)) == [2]


def test_a_missed_face_is_not_held_on_top_of_a_face_found_there():
    """A detector boxed one face twice (a whole-face box and a smaller one inside it), then only the smaller:
    the face is still there, under the other id, so holding the big box would draw two labels on one face.
    A face missed beside another (overlap under half the smaller box) is held as before."""
    tracker = FaceTracker(hold_s=0.25)
    big, inner = FaceBox(100, 100, 200, 200), FaceBox(150, 160, 110, 110)
    assert ids(tracker.update([big, inner], {}, {}, 0.0)) == [1, 2]
    assert ids(tracker.update([inner], {}, {}, 0.04)) == [2]
    beside = FaceTracker(hold_s=0.25)
    beside.update([box_at(100, 100), box_at(190, 100)], {}, {}, 0.0)
    assert ids(beside.update([box_at(190, 100)], {}, {}, 0.04)) == [2, 1]


def test_reset_and_time_going_backwards_restart_ids():
    tracker = FaceTracker()
    tracker.update([box_at(100, 100), box_at(400, 100)], {}, {}, 5.0)
    tracker.reset()
    assert ids(tracker.update([box_at(100, 100)], {}, {}, 5.1)) == [1]
    assert ids(tracker.update([box_at(400, 100)], {}, {}, 0.0)) == [1]  # a looped file starts over


def test_ids_are_per_tracker_not_global():
    first, second = FaceTracker(), FaceTracker()
    first.update([box_at(100, 100)], {}, {}, 0.0)
    assert ids(second.update([box_at(100, 100)], {}, {}, 0.0)) == [1]


def test_caller_objects_are_not_modified():
    tracker = FaceTracker()
    boxes = [box_at(100, 100)]
    probs = gender_probs(0.8)
    snapshot = probs["gender"].copy()
    tracker.update(boxes, probs, {"gender": GENDERS}, 0.0)
    tracker.update([box_at(110, 100)], gender_probs(0.1), {"gender": GENDERS}, 0.1)
    assert boxes == [box_at(100, 100)]
    np.testing.assert_array_equal(probs["gender"], snapshot)


def test_attributes_absent_from_probs_are_none_and_class_names_come_from_the_caller():
    tracker = FaceTracker()
    emotion = np.zeros((1, 7))
    emotion[0, 3] = 1.0
    (face,) = tracker.update([box_at(100, 100)], {"emotion": emotion}, {"emotion": EMOTIONS, "gender": GENDERS}, 0.0)
    assert face.emotion.label == "Happy" and face.emotion.confidence == pytest.approx(1.0)
    assert face.gender is None and face.race is None
    assert list(face.emotion.probs) == list(EMOTIONS)


def test_bad_probability_shapes_are_rejected():
    tracker = FaceTracker()
    with pytest.raises(ValueError, match="shape"):
        tracker.update([box_at(100, 100)], {"gender": np.ones((2, 2)) / 2}, {"gender": GENDERS}, 0.0)
    with pytest.raises(ValueError, match="class names"):
        tracker.update([box_at(100, 100)], {"gender": np.ones((1, 2)) / 2}, {}, 0.0)


RATES = [8.0, 15.0, 30.0]


def run_labels(tracker: FaceTracker, female: list[float], fps: float) -> list[str]:
    labels = []
    for i, f in enumerate(female):
        (face,) = tracker.update([box_at(100, 100)], gender_probs(f), {"gender": GENDERS}, i / fps)
        labels.append(face.gender.label)
    return labels


@pytest.mark.parametrize("fps", RATES)
def test_smoothing_ignores_a_single_frame_flip(fps: float):
    steady = [0.12] * int(fps)  # a second of confident "Male"
    female = steady + [0.88] + steady  # one wrong, equally confident frame
    labels = run_labels(FaceTracker(), female, fps)
    assert set(labels) == {"Male"}


@pytest.mark.parametrize("fps", RATES)
def test_smoothing_ignores_a_single_frame_flip_unsmoothed_would_not(fps: float):
    female = [0.12] * int(fps) + [0.88] + [0.12] * 3
    assert "Female" in run_labels(FaceTracker(smoothing_s=0.0), female, fps)


@pytest.mark.parametrize("fps", RATES)
@pytest.mark.parametrize("new_level", [0.9, 0.7])
def test_smoothing_follows_a_sustained_change_within_half_a_second(fps: float, new_level: float):
    before = int(fps)
    female = [0.1] * before + [new_level] * int(fps)
    labels = run_labels(FaceTracker(), female, fps)
    first_female = labels.index("Female")
    assert first_female >= before
    delay = (first_female - before) / fps
    assert delay <= 0.5
    assert set(labels[first_female:]) == {"Female"}  # and it stays


@pytest.mark.parametrize("fps", [5.0, *RATES])
def test_smoothing_follows_a_weak_change_among_seven_classes_within_half_a_second(fps: float):
    """A hesitant classifier: Neutral 0.6 becomes Happy 0.5 with Neutral still 0.3."""
    before = np.full(7, 0.4 / 6)
    before[EMOTIONS.index("Neutral")] = 0.6
    after = np.full(7, 0.2 / 5)
    after[EMOTIONS.index("Happy")], after[EMOTIONS.index("Neutral")] = 0.5, 0.3
    tracker = FaceTracker()
    n = int(fps)
    labels = []
    for i in range(2 * n):
        probs = {"emotion": (before if i < n else after)[None]}
        (face,) = tracker.update([box_at(100, 100)], probs, {"emotion": EMOTIONS}, i / fps)
        labels.append(face.emotion.label)
    assert labels[:n] == ["Neutral"] * n
    since_last_neutral_frame = (labels.index("Happy") - (n - 1)) / fps
    assert since_last_neutral_frame <= 0.5


@pytest.mark.parametrize("fps", RATES)
def test_smoothing_is_set_in_seconds_not_frames(fps: float):
    """The same step seen at different analysis rates reaches the same smoothed value at the same time."""
    tracker = FaceTracker(smoothing_s=0.2)
    n = int(fps * 0.4)  # 0.4 s after the step
    tracker.update([box_at(100, 100)], gender_probs(0.0), {"gender": GENDERS}, 0.0)
    for i in range(1, n + 1):
        (face,) = tracker.update([box_at(100, 100)], gender_probs(1.0), {"gender": GENDERS}, i / fps)
    expected = 1.0 - np.exp(-(n / fps) / 0.2)
    assert face.gender.probs["Female"] == pytest.approx(expected, abs=1e-6)


def test_follow_moves_boxes_along_their_velocity_and_caps_extrapolation():
    tracker = FaceTracker(max_extrapolate_s=0.25)
    faces = ()
    for step in range(10):  # 300 px/s to the right, 10 updates per second
        faces = tracker.update([box_at(100 + 30 * step, 200)], {}, {}, step / 10)
    result = FrameResult(index=9, timestamp=0.9, faces=faces)
    cx0 = faces[0].box.center[0]

    moved = tracker.follow(result, 0.95)
    assert moved.faces[0].box.center[0] == pytest.approx(cx0 + 15, abs=1.0)
    assert moved.faces[0].box.center[1] == pytest.approx(faces[0].box.center[1], abs=0.5)
    assert moved.faces[0].track_id == faces[0].track_id
    assert moved.index == result.index and moved.timestamp == result.timestamp

    capped = tracker.follow(result, 2.0)
    assert capped.faces[0].box.center[0] == pytest.approx(cx0 + 300 * 0.25, abs=2.0)
    assert tracker.follow(result, 0.9) is result  # same frame: nothing to move
    assert result.faces == faces  # the input result is untouched


def test_follow_leaves_still_and_unknown_faces_alone():
    tracker = FaceTracker()
    for step in range(5):
        faces = tracker.update([box_at(100, 100)], {}, {}, step / 10)
    stranger = Face(track_id=99, box=box_at(300, 300))
    result = FrameResult(index=4, timestamp=0.4, faces=(*faces, stranger))
    followed = tracker.follow(result, 0.5)
    assert followed.faces[0].box.center == pytest.approx(faces[0].box.center)
    assert followed.faces[1] is stranger


def test_follow_does_not_extrapolate_a_held_face_past_the_cap():
    tracker = FaceTracker(max_extrapolate_s=0.25, hold_s=0.25)
    for step in range(10):
        tracker.update([box_at(100 + 30 * step, 200)], {}, {}, step / 10)
    held = tracker.update([], {}, {}, 1.1)  # missed for 0.2 s: reported 0.2 s further along
    last_cx = 100 + 30 * 9
    assert held[0].box.center[0] == pytest.approx(last_cx + 60, abs=3.0)
    followed = tracker.follow(FrameResult(index=11, timestamp=1.1, faces=held), 1.5)
    assert followed.faces[0].box.center[0] == pytest.approx(last_cx + 75, abs=3.0)  # only 0.05 s more
