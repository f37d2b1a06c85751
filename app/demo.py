"""The built-in demo stream: two real portraits that ship inside installed packages, animated over a plain
background, so a newcomer without a webcam (or a test without media) sees detection, labels and tracking work.

The photos are `skimage.data.astronaut()` (Eileen Collins, NASA, public domain) and matplotlib's sample
`grace_hopper.jpg` (US Navy, public domain). Each face is cut out once with a generous margin and a soft oval
edge; every frame is then a pure function of its index (a 12 s loop of keyframed paths), so the stream is
deterministic and costs about a millisecond per frame. Faces stay upright and at least ~90 px tall so
OpenCV's frontal Haar cascade finds them; they enter, cross, grow, shrink and leave, which exercises the
tracker (new ids, lost ids) as well as the detector.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from inference.errors import SourceError
from inference.preprocess import crop_face
from inference.types import FaceBox

WIDTH, HEIGHT, FPS = 640, 480, 30.0
LOOP_S = 12.0
START_S = 1.5  # the stream starts where the first face is fully in, so the demo never opens on an empty frame
# A sprite is the face box enlarged by MARGIN on every side; the face is 1 / SPRITE_RATIO of its side.
MARGIN = 0.6
SPRITE_RATIO = 1.0 + 2.0 * MARGIN
MAX_FACE_PX = 170  # sprites are stored at this face size and only ever scaled down
CAPTION = "FaceLens demo - photos: NASA (scikit-image), US Navy (matplotlib)"


@dataclass(frozen=True)
class Path2D:
    """A face's trajectory: keyframes (time s, centre x, centre y, face height px), linearly interpolated.
    A centre far outside the frame means "not on screen"."""

    times: tuple[float, ...]
    cx: tuple[float, ...]
    cy: tuple[float, ...]
    face: tuple[float, ...]

    def at(self, t: float) -> tuple[float, float, float]:
        return (
            float(np.interp(t, self.times, self.cx)),
            float(np.interp(t, self.times, self.cy)),
            float(np.interp(t, self.times, self.face)),
        )


# The astronaut walks in from the left, comes closer, steps back and leaves the way she came; Grace Hopper
# enters from the right while the astronaut is on screen (two faces), shrinks, grows, takes the centre
# once alone and leaves right at the end of the loop, just before the astronaut comes back (a zero-face
# moment each loop). Their faces never overlap, so every face on screen is detectable.
PATHS: dict[str, Path2D] = {
    "astronaut": Path2D(
        times=(0.0, 1.5, 4.0, 6.0, 8.0, 9.5, 12.0),
        cx=(-200, 190, 210, 150, 200, -220, -220),
        cy=(240, 235, 210, 260, 225, 230, 230),
        face=(110, 110, 160, 100, 125, 125, 125),
    ),
    "grace_hopper": Path2D(
        times=(0.0, 3.0, 4.5, 7.0, 9.0, 10.5, 11.6, 12.0),
        cx=(880, 880, 480, 470, 470, 320, 880, 880),
        cy=(240, 240, 250, 230, 255, 240, 240, 240),
        face=(120, 120, 120, 92, 150, 130, 130, 130),
    ),
}


@dataclass(frozen=True)
class Sprite:
    image: np.ndarray  # BGR uint8, square
    alpha: np.ndarray  # float32 0..1, same side, soft oval


def _portraits() -> dict[str, tuple[np.ndarray, FaceBox]]:
    """The two photos (BGR) and their face boxes (found once with OpenCV's frontal Haar cascade,
    scale 1.1, minNeighbors 5; fixed here so the demo needs no detector to build itself)."""
    try:
        import matplotlib.cbook
        from skimage import data

        astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
        hopper_path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    except Exception as exc:  # a broken install of either package is a source failure, not a crash
        raise SourceError(f"demo source unavailable: {type(exc).__name__}: {exc}") from exc
    hopper = cv2.imread(str(hopper_path), cv2.IMREAD_COLOR)
    if hopper is None:
        raise SourceError(f"demo source unavailable: cannot read {hopper_path}")
    return {"astronaut": (astronaut, FaceBox(177, 66, 95, 95)), "grace_hopper": (hopper, FaceBox(155, 105, 222, 222))}


def _oval_alpha(side: int) -> np.ndarray:
    """Opaque inside an oval that leaves the whole face and hair untouched, fading out over the edge."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    centre = (side - 1) / 2.0
    r = np.sqrt(((xx - centre) / (0.47 * side)) ** 2 + ((yy - centre) / (0.50 * side)) ** 2)
    return np.clip((1.0 - r) / 0.12, 0.0, 1.0).astype(np.float32)


@cache
def sprites() -> dict[str, Sprite]:
    """Cut each face once, at the largest size the animation uses."""
    side = int(round(MAX_FACE_PX * SPRITE_RATIO))
    out = {}
    for name, (photo, box) in _portraits().items():
        crop = crop_face(photo, box, MARGIN)
        interp = cv2.INTER_AREA if crop.shape[0] > side else cv2.INTER_CUBIC
        out[name] = Sprite(cv2.resize(crop, (side, side), interpolation=interp), _oval_alpha(side))
    return out


@cache
def background(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """A calm vertical grey-blue gradient with a caption crediting the photos."""
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    top, bottom = np.array([70, 60, 48], np.float32), np.array([125, 112, 98], np.float32)
    image = np.broadcast_to(top + (bottom - top) * ramp, (height, width, 3)).astype(np.uint8).copy()
    cv2.putText(image, CAPTION, (10, height - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (200, 200, 200), 1, cv2.LINE_AA)
    image.setflags(write=False)
    return image


def _paste(canvas: np.ndarray, sprite: Sprite, cx: float, cy: float, face_px: float) -> None:
    side = max(2, int(round(face_px * SPRITE_RATIO)))
    x0, y0 = int(round(cx - side / 2.0)), int(round(cy - side / 2.0))
    height, width = canvas.shape[:2]
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(width, x0 + side), min(height, y0 + side)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    # Bilinear is ~7x cheaper than INTER_AREA here, and sprites never shrink below half size, so it is clean.
    image = cv2.resize(sprite.image, (side, side), interpolation=cv2.INTER_LINEAR)
    alpha = cv2.resize(sprite.alpha, (side, side), interpolation=cv2.INTER_LINEAR)
    sx, sy = cx0 - x0, cy0 - y0
    src = image[sy : sy + cy1 - cy0, sx : sx + cx1 - cx0]
    a = alpha[sy : sy + cy1 - cy0, sx : sx + cx1 - cx0]
    roi = canvas[cy0:cy1, cx0:cx1]
    roi[:] = cv2.blendLinear(src, roi, a, 1.0 - a)


def face_boxes(index: int, fps: float = FPS) -> list[FaceBox]:
    """Where the faces are in frame `index` (the ground truth of the animation, for tests and checks)."""
    t = (index / fps + START_S) % LOOP_S
    boxes = []
    for name in PATHS:
        cx, cy, face = PATHS[name].at(t)
        box = FaceBox(cx - face / 2.0, cy - face / 2.0, face, face)
        if 0 <= box.x and box.x + box.w <= WIDTH and 0 <= box.y and box.y + box.h <= HEIGHT:
            boxes.append(box)
    return boxes


def render_frame(index: int, fps: float = FPS) -> np.ndarray:
    """Frame `index` of the demo: a pure function of the index, BGR uint8 HEIGHTxWIDTHx3."""
    t = (index / fps + START_S) % LOOP_S
    canvas = background().copy()
    placed = sorted(
        ((PATHS[name].at(t), sprite) for name, sprite in sprites().items()), key=lambda item: item[0][2]
    )  # smaller (farther) faces first, nearer ones on top
    for (cx, cy, face), sprite in placed:
        _paste(canvas, sprite, cx, cy, face)
    return canvas
