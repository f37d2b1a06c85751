"""Dataset loaders on small files generated in the real formats, seeded splits, augmentation, loss weights, and
the promise that a face is prepared identically for training and at run time."""

from __future__ import annotations

import gzip
import logging
import lzma
from pathlib import Path

import cv2
import numpy as np
import pytest

from inference.cards import DEFAULT_CLASSES
from inference.errors import DatasetError
from inference.preprocess import InputSpec, crop_face, prepare_faces
from inference.types import FaceBox

GREY48 = InputSpec(48, "grey", 0.1)
RGB64 = InputSpec(64, "rgb", 0.2)


def astronaut_bgr() -> np.ndarray:
    """A real face photo that ships inside scikit-image, so these tests need no ../shared."""
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


# --------------------------------------------------------------------------------------------------- FER2013


def fer_rows(n: int, seed: int = 0, usages=("Training", "PublicTest", "PrivateTest")) -> list[tuple[int, str, str]]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        pixels = " ".join(map(str, rng.integers(0, 256, 48 * 48)))
        rows.append((i % 7, pixels, usages[i % len(usages)]))
    return rows


def write_fer(path: Path, rows, opener=open) -> Path:
    with opener(path, "wt", encoding="utf-8", newline="") as handle:
        handle.write("emotion,pixels,Usage\n")
        for label, pixels, usage in rows:
            handle.write(f"{label},{pixels},{usage}\n")
    return path


@pytest.mark.parametrize(
    ("name", "opener"), [("fer2013.csv", open), ("fer2013.csv.gz", gzip.open), ("fer2013.csv.xz", lzma.open)]
)
def test_fer_csv_plain_and_compressed(tmp_path, name, opener):
    from training.data.fer import load_fer2013

    rows = fer_rows(9)
    path = write_fer(tmp_path / name, rows, opener)
    data = load_fer2013(path, ferplus=False)
    assert data.images.shape == (9, 48, 48) and data.images.dtype == np.uint8
    assert data.labels.tolist() == [r[0] for r in rows]
    assert data.usage.tolist() == [r[2] for r in rows]
    first = np.array(rows[0][1].split(), dtype=np.uint8).reshape(48, 48)
    np.testing.assert_array_equal(data.images[0], first)
    assert len(data.split("PrivateTest").labels) == 3
    # the folder form finds the same file
    assert load_fer2013(tmp_path, ferplus=False).labels.tolist() == data.labels.tolist()


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ((3, " ".join(["7"] * 2303), "Training"), "2303 pixel values"),
        ((9, " ".join(["7"] * 2304), "Training"), "emotion 9"),
        ((3, " ".join(["7"] * 2304), "Validation"), "unknown Usage"),
        (("x", " ".join(["7"] * 2304), "Training"), "non-numeric"),
        ((3, " ".join(["7"] * 2303 + ["300"]), "Training"), "0..255"),
    ],
)
def test_fer_csv_malformed_rows_name_file_and_line(tmp_path, bad_row, message):
    from training.data.fer import load_fer2013

    rows = fer_rows(3)
    rows.insert(1, bad_row)  # data row 2 = line 3 of the file
    path = write_fer(tmp_path / "fer2013.csv", rows)
    with pytest.raises(DatasetError) as info:
        load_fer2013(path, ferplus=False)
    assert f"{path}:3:" in str(info.value)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_fer_csv_wrong_header(tmp_path):
    from training.data.fer import load_fer2013

    path = tmp_path / "faces.csv"
    path.write_text("label,pixels\n1,2\n")
    with pytest.raises(DatasetError, match="expected header"):
        load_fer2013(path, ferplus=False)


def write_ferplus(path: Path, votes: list[list[int]]) -> Path:
    header = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
    lines = [header] + [f"Training,fer{i:07d}.png," + ",".join(map(str, v)) for i, v in enumerate(votes)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_ferplus_alignment_mismatch_is_an_error(tmp_path):
    from training.data.fer import load_fer2013

    csv = write_fer(tmp_path / "fer2013.csv", fer_rows(4))
    plus = write_ferplus(tmp_path / "fer2013new.csv", [[10, 0, 0, 0, 0, 0, 0, 0, 0, 0]] * 3)
    with pytest.raises(DatasetError, match="3 rows but the FER2013 CSV has 4"):
        load_fer2013(csv, ferplus=plus)


def test_ferplus_majority_skips_contempt_unknown_and_not_a_face(tmp_path):
    from training.data.fer import load_fer2013

    csv = write_fer(tmp_path / "fer2013.csv", fer_rows(4))
    # columns: neutral happiness surprise sadness anger disgust fear contempt unknown NF
    write_ferplus(
        tmp_path / "fer2013new.csv",
        [
            [0, 9, 1, 0, 0, 0, 0, 0, 0, 0],
            [1, 0, 0, 0, 0, 0, 0, 8, 1, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],
            [2, 0, 0, 0, 7, 0, 0, 0, 1, 0],
        ],
    )
    data = load_fer2013(csv)  # finds fer2013new.csv beside the CSV
    names = DEFAULT_CLASSES["emotion"]
    majority = data.ferplus_majority()
    assert majority[0] == names.index("Happy") and majority[3] == names.index("Angry")
    assert majority[1] == -1 and majority[2] == -1


# --------------------------------------------------------------------------------------------------- UTKFace

UTK_MALFORMED = (  # the five real malformed names of UTKFace
    "39_1_20170116174525125.jpg.chip.jpg",
    "61_1_20170109142408075.jpg.chip.jpg",
    "61_1_20170109150557335.jpg.chip.jpg",
    "24_0_1_20170116220224657 .jpg.chip.jpg",
    "55_0_0_20170116232725357jpg.chip.jpg",
)


def make_utk_folder(root: Path, n_per_cell: int = 1) -> list[str]:
    folder = root / "UTKFace"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    good = []
    stamp = 20170116000000000
    for gender in (0, 1):
        for race in range(5):
            for k in range(n_per_cell):
                stamp += 1
                name = f"{20 + 7 * race + k}_{gender}_{race}_{stamp}.jpg.chip.jpg"
                cv2.imwrite(str(folder / name), rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
                good.append(name)
    for name in UTK_MALFORMED:
        cv2.imwrite(str(folder / name), rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    return good


def test_utkface_malformed_names_are_counted_and_skipped_with_one_warning(tmp_path, caplog):
    from training.data.utk import load_utkface, parse_name, scan_utkface

    good = make_utk_folder(tmp_path)
    for name in UTK_MALFORMED:
        assert parse_name(name) is None
    with caplog.at_level(logging.WARNING, logger="training.data.utk"):
        records = scan_utkface(tmp_path)
    assert sorted(r.file for r in records) == sorted(good)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipped 5 file(s)" in warnings[0].getMessage()
    data = load_utkface(tmp_path, RGB64)  # never crashes on them, prepares the rest
    assert data.images.shape == (len(good), 64, 64, 3)
    assert sorted(data.race.tolist()) == sorted([0, 1, 2, 3, 4] * 2)


def test_utkface_missing_or_empty_folder(tmp_path):
    from training.data.utk import scan_utkface

    with pytest.raises(DatasetError, match="not found"):
        scan_utkface(tmp_path / "absent")
    with pytest.raises(DatasetError, match="no .jpg files"):
        scan_utkface(tmp_path)


# --------------------------------------------------------------------------------------------------- FairFace

FAIRFACE_HEADER = "file,age,gender,race,service_test"


def make_fairface(root: Path, rows: list[str], split: str = "val", images: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / f"fairface_label_{split}.csv").write_text("\n".join([FAIRFACE_HEADER, *rows]) + "\n")
    if images:
        chip = cv2.resize(astronaut_bgr()[20:280, 110:370], (224, 224), interpolation=cv2.INTER_AREA)
        (root / split).mkdir(exist_ok=True)
        for row in rows:
            cv2.imwrite(str(root / row.split(",")[0]), chip)
    return root


FAIRFACE_ROWS = [
    "val/1.jpg,3-9,Male,East Asian,False",
    "val/2.jpg,50-59,Female,East Asian,True",
    "val/3.jpg,30-39,Male,White,True",
    "val/4.jpg,20-29,Female,Latino_Hispanic,True",
    "val/5.jpg,20-29,Male,Southeast Asian,False",
    "val/6.jpg,more than 70,Female,Middle Eastern,False",
    "val/7.jpg,0-2,Male,Indian,True",
    "val/8.jpg,10-19,Female,Black,False",
]


def test_fairface_loads_maps_race_7_to_5_and_keeps_groups(tmp_path):
    from training.data.fairface import FAIRFACE_TO_UTK_RACE, load_fairface

    assert set(FAIRFACE_TO_UTK_RACE.values()) == set(DEFAULT_CLASSES["race"])
    root = make_fairface(tmp_path / "fairface", FAIRFACE_ROWS)
    data = load_fairface(root, "val", RGB64)
    assert data.images.shape == (8, 64, 64, 3)
    assert data.labels("race").tolist() == ["Asian", "Asian", "White", "Others", "Asian", "Others", "Indian", "Black"]
    assert data.labels("gender").tolist() == ["Male", "Female"] * 4
    groups = data.groups()
    assert groups["race"][3] == "Latino_Hispanic" and groups["age"][5] == "more than 70"
    with pytest.raises(DatasetError, match="no 'emotion' labels"):
        data.labels("emotion")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("val/9.jpg,20-29,male,White,True", "gender 'male' is not one of Male, Female"),
        ("val/9.jpg,20-29,Male,Hispanic,True", "race 'Hispanic'"),
        ("val/9.jpg,21,Male,White,True", "age '21'"),
        ("val/9.jpg,20-29,Male,White,yes", "service_test 'yes'"),
        ("/etc/9.jpg,20-29,Male,White,True", "must be a path relative"),
        ("val/9.jpg,20-29,Male,White", "expected 5 fields, got 4"),
    ],
)
def test_fairface_bad_rows_name_file_and_line(tmp_path, row, message):
    from training.data.fairface import parse_fairface_csv

    root = make_fairface(tmp_path, [FAIRFACE_ROWS[0], row], images=False)
    path = root / "fairface_label_val.csv"
    with pytest.raises(DatasetError) as info:
        parse_fairface_csv(path)
    assert f"{path}:3:" in str(info.value) and message in str(info.value)


def test_fairface_missing_column_split_or_image(tmp_path):
    from training.data.fairface import load_fairface, parse_fairface_csv

    bad = tmp_path / "bad.csv"
    bad.write_text("file,age,gender,race\nval/1.jpg,3-9,Male,White\n")
    with pytest.raises(DatasetError, match=r"bad.csv:1: missing column\(s\) service_test"):
        parse_fairface_csv(bad)
    root = make_fairface(tmp_path / "ff", FAIRFACE_ROWS[:2], images=False)
    with pytest.raises(DatasetError, match="unknown FairFace split 'test'"):
        load_fairface(root, "test", RGB64)
    with pytest.raises(DatasetError, match="fairface_label_train.csv: FairFace label file not found"):
        load_fairface(root, "train", RGB64)
    with pytest.raises(DatasetError, match=r"fairface_label_val.csv:2: image val/1.jpg not found"):
        load_fairface(root, "val", RGB64)


@pytest.mark.parametrize("padding", [0.25, 1.25])
def test_fairface_box_finds_the_face_in_both_margin_releases(padding):
    """FairFace ships chips padded by 25% and by 125%: both must give the detector's box on the face."""
    from training.data.fairface import fairface_box

    photo = astronaut_bgr()
    face = FaceBox(177, 66, 95, 95)  # the Haar box of the astronaut's face at full resolution
    chip = cv2.resize(crop_face(photo, face, padding), (224, 224), interpolation=cv2.INTER_AREA)
    box = fairface_box(chip)
    expected_side = 224 / (1 + 2 * padding)
    assert abs(box.w - expected_side) < 0.2 * expected_side
    cx, cy = box.center
    assert abs(cx - 112) < 0.1 * 224 and abs(cy - 112) < 0.1 * 224


# --------------------------------------------------------------------------------------------------- folders


def make_folders(root: Path, layout: dict[str, dict[str, int]]) -> Path:
    rng = np.random.default_rng(1)
    for split, classes in layout.items():
        for name, count in classes.items():
            folder = root / split / name if split else root / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 256, (48, 48), dtype=np.uint8))
    return root


def test_folder_class_names_match_case_insensitively():
    from training.data.folders import match_class

    emotions = DEFAULT_CLASSES["emotion"]
    assert match_class("happy", emotions) == "Happy"
    assert match_class("ANGRY", emotions) == "Angry"
    assert match_class("surprised", emotions) == "Surprise"
    assert match_class("male", DEFAULT_CLASSES["gender"]) == "Male"
    assert match_class("women", DEFAULT_CLASSES["gender"]) == "Female"
    assert match_class("contempt", emotions) is None


def test_folders_with_splits_default_to_test(tmp_path):
    from training.data.folders import load_folders

    root = make_folders(tmp_path, {"train": {"happy": 3, "sad": 2}, "test": {"Happy": 2, "angry": 1}})
    data = load_folders(root, None, DEFAULT_CLASSES["emotion"], GREY48)
    assert data.split == "test"
    assert sorted(data.labels.tolist()) == ["Angry", "Happy", "Happy"]
    assert data.images.shape == (3, 48, 48, 1) and data.images.dtype == np.uint8
    assert len(load_folders(root, "all", DEFAULT_CLASSES["emotion"], GREY48).labels) == 8
    assert load_folders(root, "training", DEFAULT_CLASSES["emotion"], GREY48).split == "train"
    with pytest.raises(DatasetError, match="no 'val' split folder; found test, train"):
        load_folders(root, "val", DEFAULT_CLASSES["emotion"], GREY48)


def test_folders_without_splits_and_unknown_class_folders(tmp_path):
    from training.data.folders import load_folders

    root = make_folders(tmp_path / "flat", {"": {"male": 2, "FEMALE": 2}})
    data = load_folders(root, None, DEFAULT_CLASSES["gender"], RGB64)
    assert data.split == "all" and sorted(set(data.labels.tolist())) == ["Female", "Male"]
    with pytest.raises(DatasetError, match="only class folders; use --split all"):
        load_folders(root, "test", DEFAULT_CLASSES["gender"], RGB64)
    bad = make_folders(tmp_path / "bad", {"test": {"happy": 1, "contempt": 1}})
    with pytest.raises(DatasetError) as info:
        load_folders(bad, None, DEFAULT_CLASSES["emotion"], GREY48)
    assert "'contempt' is not a class" in str(info.value)
    assert "Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral" in str(info.value)
    with pytest.raises(DatasetError, match="image folder not found"):
        load_folders(tmp_path / "absent", None, DEFAULT_CLASSES["emotion"], GREY48)


def test_folder_images_are_prepared_as_whole_image_face_crops(tmp_path):
    from training.data.folders import load_folders

    rng = np.random.default_rng(2)
    wide = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)  # non-square: the box is the whole image
    (tmp_path / "Male").mkdir()
    cv2.imwrite(str(tmp_path / "Male" / "a.png"), wide)
    data = load_folders(tmp_path, None, DEFAULT_CLASSES["gender"], RGB64)
    expected = prepare_faces([crop_face(wide, FaceBox(0, 0, 60, 40), RGB64.margin)], RGB64)
    np.testing.assert_array_equal(data.images[0], expected[0])


# --------------------------------------------------------------------------------------------------- splits


def strata_keys(counts: dict[str, int]) -> list[str]:
    return [key for key, n in counts.items() for _ in range(n)]


def test_split_is_deterministic_per_seed():
    from training.splits import stratified_split

    keys = strata_keys({"a": 300, "b": 120, "c": 40})
    first, again = stratified_split(keys, seed=7), stratified_split(keys, seed=7)
    other = stratified_split(keys, seed=8)
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(first[name], again[name])
    assert not np.array_equal(first["test"], other["test"])
    together = np.concatenate([first["train"], first["val"], first["test"]])
    assert sorted(together.tolist()) == list(range(len(keys)))  # a partition


def test_split_keeps_every_stratum_in_proportion():
    from training.splits import stratified_split

    counts = {"Male|White|20-29": 500, "Female|Others|60+": 50, "Male|Black|0-12": 130}
    keys = np.array(strata_keys(counts))
    split = stratified_split(list(keys), fractions=(0.1, 0.2), seed=0)
    for key, n in counts.items():
        in_test = int((keys[split["test"]] == key).sum())
        in_val = int((keys[split["val"]] == key).sum())
        assert abs(in_test - 0.2 * n) <= 1 and abs(in_val - 0.1 * n) <= 1


def test_saved_split_round_trips(tmp_path):
    from training.splits import load_split, save_split, stratified_split

    files = [f"f{i}.jpg" for i in range(50)]
    split = stratified_split(["k"] * 50, seed=3)
    save_split(tmp_path / "s.json", files, split, {"seed": 3})
    loaded = load_split(tmp_path / "s.json", files)
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(loaded[name], split[name])


# --------------------------------------------------------------------------------------------------- preprocessing


def test_utkface_training_face_equals_the_apps_preparation(tmp_path):
    from training.data.utk import haar_box, load_face

    photo = astronaut_bgr()
    path = tmp_path / "face.png"  # lossless, so the file holds exactly `photo`
    cv2.imwrite(str(path), photo)
    for spec in (RGB64, GREY48, InputSpec(64, "rgb", 0.0)):
        app_side = prepare_faces([crop_face(photo, haar_box(photo), spec.margin)], spec)[0]
        np.testing.assert_array_equal(load_face(path, spec), app_side)


def test_fairface_face_equals_the_apps_preparation(tmp_path):
    from training.data.fairface import fairface_box, load_fairface_face

    chip = cv2.resize(crop_face(astronaut_bgr(), FaceBox(177, 66, 95, 95), 1.25), (224, 224))
    path = tmp_path / "chip.png"
    cv2.imwrite(str(path), chip)
    app_side = prepare_faces([crop_face(chip, fairface_box(chip), RGB64.margin)], RGB64)[0]
    np.testing.assert_array_equal(load_fairface_face(path, RGB64), app_side)


def test_fer_training_face_equals_the_apps_preparation():
    from training.task_data import prepare_fer_faces

    faces = np.random.default_rng(4).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    for spec in (GREY48, InputSpec(48, "grey", 0.0), InputSpec(64, "rgb", 0.2)):
        ours = prepare_fer_faces(faces, spec)
        app_side = prepare_faces([crop_face(f, FaceBox(0, 0, 48, 48), spec.margin) for f in faces], spec)
        np.testing.assert_array_equal(ours, app_side)


# --------------------------------------------------------------------------------------------------- augmentation


def test_augmentation_keeps_shape_and_range_and_varies():
    from training.augment import augment_batch

    faces = np.random.default_rng(5).integers(0, 256, (16, 48, 48, 1), dtype=np.uint8)
    rng = np.random.default_rng(0)
    a, b = augment_batch(faces, rng), augment_batch(faces, rng)
    assert a.shape == b.shape == faces.shape and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() <= 255.0
    assert not np.allclose(a, b)
    assert not np.allclose(a, faces)
    colour = np.random.default_rng(6).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    assert augment_batch(colour, rng).shape == colour.shape


def test_balanced_weights_mean_one_and_rare_classes_weigh_more():
    from training.augment import balanced_weights

    keys = np.array(["Happy"] * 90 + ["Disgust"] * 10)
    for power in (0.5, 1.0):
        weights = balanced_weights(keys, power)
        assert weights.mean() == pytest.approx(1.0, abs=1e-6)
        assert weights[-1] > weights[0]
    full = balanced_weights(keys, 1.0)
    assert full[keys == "Disgust"].sum() == pytest.approx(full[keys == "Happy"].sum(), rel=1e-5)
    np.testing.assert_allclose(balanced_weights(keys, 0.0), 1.0)


def test_batches_keep_faces_targets_and_weights_aligned_for_one_or_several_outputs():
    from training.dataset import FaceBatches

    faces = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((10, 4, 4, 1), np.uint8)
    labels = np.eye(2, dtype=np.float64)[np.arange(10) % 2]
    weights = np.arange(10, dtype=np.float64)
    x, y, w = FaceBatches(faces, labels, weights, batch_size=4)[1]  # no augmentation: faces 4..7 in order
    assert x[:, 0, 0, 0].tolist() == [4, 5, 6, 7] and y.dtype == np.float32 and w.tolist() == [4, 5, 6, 7]
    np.testing.assert_array_equal(y, labels[4:8])

    named = {"probs": labels, "aux_age": np.eye(3)[np.arange(10) % 3]}
    multi_output = FaceBatches(faces, named, batch_size=4)
    x, y = multi_output[2]  # the last, short batch
    assert set(y) == {"probs", "aux_age"} and len(x) == len(y["probs"]) == len(y["aux_age"]) == 2
    np.testing.assert_array_equal(y["aux_age"], named["aux_age"][8:10])
    with pytest.raises(ValueError, match="10 images but 9 aux_age"):
        FaceBatches(faces, {"probs": labels, "aux_age": labels[:9]})


def test_a_resumed_run_sees_the_batches_an_uninterrupted_run_would():
    """Resuming at epoch k must continue the augmentation stream, not replay epoch 1's images."""
    from training.augment import AugmentConfig
    from training.dataset import FaceBatches

    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (12, 16, 16, 1), dtype=np.uint8)
    labels = np.eye(2)[np.arange(12) % 2]

    def make(first_epoch: int = 0) -> FaceBatches:
        return FaceBatches(faces, labels, batch_size=4, augment=AugmentConfig(), seed=3, first_epoch=first_epoch)

    uninterrupted = make()
    epoch0 = [uninterrupted[i][0] for i in range(len(uninterrupted))]
    uninterrupted.on_epoch_end()
    uninterrupted.on_epoch_end()
    resumed = make(first_epoch=2)
    resumed[2]  # fetched out of order first, as Keras may do to peek at a batch's shape
    for index in range(len(resumed)):
        np.testing.assert_array_equal(resumed[index][0], uninterrupted[index][0])
        np.testing.assert_array_equal(resumed[index][1], uninterrupted[index][1])
    assert not np.array_equal(resumed[0][0], epoch0[0])  # epoch 2 is not a replay of epoch 0


@pytest.mark.parametrize("shares", [{"cutmix": 1.0}, {"mixup": 1.0}, {"cutmix": 0.5, "mixup": 0.5}])
def test_mixing_mixes_every_head_and_weight_by_the_share_of_the_partner_actually_taken(shares):
    """Faces 0-3 are black and class 0, faces 4-7 white and class 1: after CutMix or mixup a face's share of
    white pixels must equal its class-1 target in every head, and its weight must mix the same way."""
    from training.augment import mix_batch

    faces = np.zeros((8, 32, 32, 3), np.float32)
    faces[4:] = 255.0
    classes = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    targets = {"probs": np.eye(2, dtype=np.float32)[classes], "aux_race": np.eye(5, dtype=np.float32)[classes]}
    weights = np.where(classes == 1, 3.0, 1.0).astype(np.float32)
    before = {name: y.copy() for name, y in targets.items()}

    x, y, w = mix_batch(faces, targets, weights, np.random.default_rng(5), **shares)

    white = x[..., 0].mean(axis=(1, 2)) / 255.0
    np.testing.assert_allclose(y["probs"][:, 1], white, atol=1e-6)
    np.testing.assert_allclose(y["aux_race"][:, 1], white, atol=1e-6)
    np.testing.assert_allclose(y["probs"].sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(w, 1.0 + 2.0 * white, atol=1e-5)
    assert 0.0 < white[:4].max() and white[4:].min() < 1.0  # some faces of each class really were mixed
    for name in targets:  # the caller's arrays are untouched
        np.testing.assert_array_equal(targets[name], before[name])
    assert faces[:4].max() == 0.0


def test_mixup_blends_whole_faces_and_cutmix_pastes_rectangles():
    """A blended face is one grey level all over; a pasted one is black and white in places."""
    from training.augment import mix_batch

    faces = np.zeros((64, 16, 16, 1), np.float32)
    faces[32:] = 255.0
    targets = {"probs": np.eye(2, dtype=np.float32)[np.arange(64) // 32]}
    rng = np.random.default_rng(3)
    blended, _, _ = mix_batch(faces, targets, None, rng, mixup=1.0)
    pasted, _, _ = mix_batch(faces, targets, None, rng, cutmix=1.0)
    assert np.ptp(blended, axis=(1, 2, 3)).max() < 1e-3  # uniform faces stay uniform
    grey = (blended[:, 0, 0, 0] > 1.0) & (blended[:, 0, 0, 0] < 254.0)
    assert grey.sum() >= 8  # between the two faces, not one or the other
    assert np.ptp(pasted, axis=(1, 2, 3)).max() == 255.0


@pytest.mark.parametrize(
    "options, message",
    [
        (["--mixup", "-0.1"], "--mixup must be within 0..1"),
        (["--cutmix", "0.6", "--mixup", "0.5"], "--cutmix and --mixup are shares of the same faces"),
    ],
)
def test_mixing_shares_outside_the_faces_are_a_usage_error(options, message, capsys):
    from training.train import parse_args

    with pytest.raises(SystemExit) as exit_info:
        parse_args(["race", *options])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_cutmix_off_leaves_the_batch_as_it_was_and_on_makes_soft_targets():
    from training.augment import mix_batch
    from training.dataset import FaceBatches

    faces = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 1)).astype(np.float32)
    labels = {"probs": np.eye(2, dtype=np.float32)[np.arange(6) % 2]}
    x, y, w = mix_batch(faces, labels, None, np.random.default_rng(0))
    assert x is faces and y is labels and w is None

    from training.augment import AugmentConfig

    plain = FaceBatches(faces.astype(np.uint8), labels["probs"], batch_size=6, augment=AugmentConfig(), seed=1)
    mixed = FaceBatches(
        faces.astype(np.uint8), labels["probs"], batch_size=6, augment=AugmentConfig(), seed=1, cutmix=1.0
    )
    assert set(np.unique(plain[0][1])) <= {0.0, 1.0}
    assert not set(np.unique(mixed[0][1])) <= {0.0, 1.0}  # mixed targets are soft
