"""Face packs: a task's prepared training and validation faces in one small file, for training elsewhere.

Why: a lent GPU machine receives at most 64 MiB and has no copy of `../shared`, and the raw datasets are
larger than that. A pack holds the faces exactly as `facelens train` would feed them (after the same crop
and `prepare_faces`), JPEG-encoded, with the labels, soft targets, balancing keys and UTKFace's per-face
gender/race/age groups (for `--aux`), so
`facelens train TASK --data PACK.npz` there runs the same recipe as here. The test split never goes into a
pack: faces that decide the final number stay on this machine.

    python -m training.pack gender --out pack/gender64.npz    # then: facelens train gender --data pack/gender64.npz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from inference.errors import DatasetError, FaceLensError
from inference.preprocess import InputSpec
from training.task_data import SplitData

PACK_FORMAT = "facelens-face-pack-1"
_PARTS = ("train", "val")


def encode_faces(images: np.ndarray, quality: int) -> tuple[np.ndarray, np.ndarray]:
    """JPEG-encode each face; returns (concatenated bytes, end offsets) so the pack needs no pickles."""
    chunks = []
    for face in images:
        ok, buf = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise DatasetError(f"could not JPEG-encode a {face.shape} face")
        chunks.append(buf.ravel())
    ends = np.cumsum([len(c) for c in chunks]).astype(np.int64)
    return (np.concatenate(chunks) if chunks else np.zeros(0, np.uint8)), ends


def decode_faces(blob: np.ndarray, ends: np.ndarray, spec: InputSpec) -> np.ndarray:
    flag = cv2.IMREAD_GRAYSCALE if spec.channels == 1 else cv2.IMREAD_COLOR
    faces = np.empty((len(ends), *spec.shape), np.uint8)
    start = 0
    for i, end in enumerate(ends):
        face = cv2.imdecode(blob[start:end], flag)
        if face is None or face.shape[:2] != (spec.size, spec.size):
            raise DatasetError(f"face {i} of the pack does not decode to {spec.size}x{spec.size}")
        faces[i] = face.reshape(spec.shape)
        start = end
    return faces


def write_pack(
    out: Path,
    task: str,
    spec: InputSpec,
    train: SplitData,
    val: SplitData,
    balance_keys: np.ndarray,
    quality: int,
    source: str = "",
) -> int:
    """Writes the pack atomically (a partial file never looks like a pack); returns its size in bytes."""
    arrays: dict[str, np.ndarray] = {
        "format": np.array(PACK_FORMAT),
        "source": np.array(source),
        "task": np.array(task),
        "spec": np.array([spec.size, spec.channels]),
        "color": np.array(spec.color),
        "margin": np.array(spec.margin),
        "train_keys": np.asarray(balance_keys, dtype=str),
    }
    for name, part in zip(_PARTS, (train, val), strict=True):
        blob, ends = encode_faces(part.images, quality)
        arrays[f"{name}_jpeg"], arrays[f"{name}_ends"] = blob, ends
        arrays[f"{name}_labels"] = part.labels.astype(np.int64)
        for group, values in part.groups.items():  # per-group tables and --aux heads need them there too
            arrays[f"{name}_group_{group}"] = np.asarray(values, dtype=str)
    if train.soft_targets is not None:
        arrays["train_soft"] = train.soft_targets.astype(np.float32)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        tmp.replace(out)
    except OSError:
        tmp.unlink(missing_ok=True)  # a full disk must not leave a half pack behind
        raise
    return out.stat().st_size


def is_pack(path: Path) -> bool:
    return Path(path).is_file() and Path(path).suffix == ".npz"


def read_pack(path: Path, task: str, spec: InputSpec) -> tuple[SplitData, SplitData, np.ndarray]:
    """(train, val, balancing keys) from a pack made for this task and input spec; anything else is a
    DatasetError naming the file and the mismatch."""
    try:
        data = np.load(path, allow_pickle=False)
        fmt = str(data["format"])
    except (OSError, ValueError, KeyError) as exc:
        raise DatasetError(f"{path}: not a FaceLens face pack ({exc.__class__.__name__})") from exc
    if fmt != PACK_FORMAT:
        raise DatasetError(f"{path}: unknown pack format {fmt!r} (expected {PACK_FORMAT})")
    packed = (str(data["task"]), int(data["spec"][0]), str(data["color"]), float(data["margin"]))
    wanted = (task, spec.size, spec.color, float(spec.margin))
    if packed != wanted:
        raise DatasetError(
            f"{path}: packed for {packed[0]} at {packed[1]} px {packed[2]} margin {packed[3]}, "
            f"but this run needs {wanted[0]} at {wanted[1]} px {wanted[2]} margin {wanted[3]}: "
            "make a pack with the run's task and --size"
        )
    parts = [
        SplitData(
            decode_faces(data[f"{name}_jpeg"], data[f"{name}_ends"], spec),
            data[f"{name}_labels"],
            groups={
                key.removeprefix(f"{name}_group_"): data[key].tolist()
                for key in data.files
                if key.startswith(f"{name}_group_")
            },
        )
        for name in _PARTS
    ]
    if "train_soft" in data.files:
        parts[0].soft_targets = data["train_soft"]
    return parts[0], parts[1], data["train_keys"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from training.tasks import TASK_CONFIGS

    parser = argparse.ArgumentParser(prog="python -m training.pack", description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=sorted(TASK_CONFIGS))
    parser.add_argument("--out", type=Path, required=True, help="the pack file to write (.npz)")
    parser.add_argument("--data", help="dataset path (default: the task's dataset in ../shared)")
    parser.add_argument("--size", type=int, help="face size in px (default: the task's recipe)")
    parser.add_argument("--split-file", type=Path, help="UTKFace split file (default weights/splits)")
    parser.add_argument(
        "--quality", type=int, default=90, help="JPEG quality 50..100 (default 90: a 64 px UTKFace pack is ~41 MiB)"
    )
    parser.add_argument("--ferplus-weight", type=float, default=0.0, help="share of FER+ votes in emotion targets")
    args = parser.parse_args(argv)
    if args.out.suffix != ".npz":
        parser.error(f"--out must end in .npz, got {args.out}")
    if not 50 <= args.quality <= 100:
        parser.error(f"--quality must be within 50..100, got {args.quality}")
    return args


def main(argv: list[str] | None = None) -> int:
    from dataclasses import replace

    from training.tasks import TASK_CONFIGS
    from training.train import load_faces

    args = parse_args(argv)
    config = TASK_CONFIGS[args.task]
    spec = replace(config.spec, size=args.size) if args.size else config.spec
    weights_dir = Path(__file__).resolve().parents[1] / "weights"
    try:
        train, val, keys = load_faces(args.task, args.data, spec, args.split_file, weights_dir, args.ferplus_weight)
        source = f"{args.data or config.default_path}; split file {args.split_file or 'weights/splits'}"
        size = write_pack(args.out, args.task, spec, train, val, keys, args.quality, source)
    except FaceLensError as exc:
        print(f"python -m training.pack: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"python -m training.pack: error: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {args.out}: {len(train.labels)} training + {len(val.labels)} validation faces "
        f"({spec.size} px {spec.color}, JPEG q{args.quality}), {size / 2**20:.1f} MiB; no test faces"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
