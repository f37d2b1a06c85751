"""Draw a FrameResult onto a frame: one renderer for the screen, the recorded video and annotated photos,
so what a user sees live is exactly what they get in the file.

Everything is plain OpenCV on a copy of the frame (a few rectangles and text runs per face; no per-pixel
Python), and every size derives from the frame's size, so the overlay reads the same at 480p and at 1080p.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from inference.types import ATTRIBUTES, Face, FrameResult, Prediction

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_AA = cv2.LINE_AA
_WHITE = (255, 255, 255)
_BLACK = (0, 0, 0)
_BAR_TRACK = (70, 70, 70)  # the unfilled part of a probability bar
_BAR_OTHER = (200, 200, 200)  # bars of the classes that are not the winner
_PANEL_DARKEN = 0.3  # panels keep this much of the picture behind them: readable text, visible scene
_PANEL_OPAQUE = (24, 24, 24)  # where one bar panel covers another

# Saturated BGR colours that stay distinct from each other and from skin tones; a track keeps its colour for
# life (id modulo the palette), so a face is recognisable by colour as well as by its number.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 170, 0),  # azure
    (60, 200, 60),  # green
    (0, 140, 255),  # orange
    (220, 60, 220),  # magenta
    (0, 220, 220),  # yellow
    (255, 90, 90),  # blue-violet
    (150, 250, 120),  # mint
    (90, 90, 255),  # salmon red
    (255, 255, 60),  # cyan
    (180, 120, 255),  # pink
)


def track_color(track_id: int) -> tuple[int, int, int]:
    """The BGR colour of a track; the same id always gets the same colour."""
    return PALETTE[track_id % len(PALETTE)]


def _text_color(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black on light colours, white on dark ones (perceived luminance of a BGR colour)."""
    b, g, r = background
    return _BLACK if 0.114 * b + 0.587 * g + 0.299 * r > 140 else _WHITE


def percent(p: float) -> str:
    return f"{round(p * 100)}%"


def format_stat(key: str, value: float) -> str:
    """'display fps', 30 -> 'display 30.0 fps'; 'analysis_ms', 41.3 -> 'analysis 41 ms'; 'faces', 2 -> 'faces 2'.
    A trailing unit word in the key (fps, ms, s) moves behind the number, so callers name stats plainly."""
    words = key.replace("_", " ").split()
    unit = words[-1] if len(words) > 1 and words[-1] in ("fps", "ms", "s") else ""
    name = " ".join(words[:-1] if unit else words)
    value = float(value)
    if unit == "fps":
        number = f"{value:.1f}"
    elif unit == "ms":
        number = f"{value:.0f}"
    elif unit == "s" or not value.is_integer():
        number = f"{value:.2f}"
    else:
        number = f"{int(value)}"
    return f"{name} {number} {unit}".rstrip()


@lru_cache(maxsize=4096)
def _text_width(text: str, scale: float, thickness: int) -> int:
    (width, _), _ = cv2.getTextSize(text, _FONT, scale, thickness)
    return width


@lru_cache(maxsize=512)
def _sprite(text: str, scale: float, thickness: int, color: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, int]:
    """`text` rendered once, anti-aliased, as (255 - alpha, colour * alpha) images and the baseline's row.

    Thick anti-aliased Hershey text is slow to rasterise (~0.2 ms a word at 1080p) and the overlay repeats the
    same few words every frame (class names, "0%".."100%"), so each is drawn once and then blended in with two
    saturating OpenCV calls (~10 us)."""
    (width, height), descent = cv2.getTextSize(text, _FONT, scale, thickness)
    margin = thickness + 1
    baseline = height + margin
    alpha = np.zeros((height + descent + 2 * margin, width + 2 * margin), np.uint8)
    cv2.putText(alpha, text, (margin, baseline), _FONT, scale, 255, thickness, _AA)
    alpha3 = cv2.cvtColor(alpha, cv2.COLOR_GRAY2BGR)
    ink = (alpha3.astype(np.uint16) * np.array(color, np.uint16) // 255).astype(np.uint8)
    inverse = 255 - alpha3
    inverse.flags.writeable = False
    ink.flags.writeable = False
    return inverse, ink, baseline


def _blit(image: np.ndarray, text: str, scale: float, thickness: int, color, x: int, baseline_y: int) -> None:
    """Blend a cached text sprite into `image` with its baseline starting at (x, baseline_y); clipped."""
    inverse, ink, baseline = _sprite(text, scale, thickness, tuple(color))
    margin = thickness + 1
    x0, y0 = x - margin, baseline_y - baseline
    h, w = inverse.shape[:2]
    height, width = image.shape[:2]
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + w, width), min(y0 + h, height)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    sy, sx = slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0)
    roi = image[cy0:cy1, cx0:cx1]
    image[cy0:cy1, cx0:cx1] = cv2.add(cv2.multiply(roi, inverse[sy, sx], scale=1 / 255), ink[sy, sx])


@dataclass(frozen=True, slots=True)
class _Font:
    """A font size with its metrics: `ascent` above the baseline, `descent` below it, `pad` around a row."""

    scale: float
    thickness: int
    ascent: int
    descent: int
    pad: int

    @classmethod
    def make(cls, scale: float, thickness: int, pad: float) -> _Font:
        (_, ascent), descent = cv2.getTextSize("Hg", _FONT, scale, thickness)
        return cls(scale, thickness, ascent, descent, max(2, round(ascent * pad)))

    @property
    def line(self) -> int:
        return self.ascent + self.descent + 2 * self.pad

    def width(self, text: str) -> int:
        return _text_width(text, self.scale, self.thickness)

    def put(
        self, image: np.ndarray, text: str, x: int, top: int, color: tuple[int, int, int], cache: bool = True
    ) -> None:
        """Write `text` in a row whose top edge (padding included) is at `top`. Text that changes all the time
        (the stats line) is drawn directly (`cache=False`) so it does not churn the sprite cache."""
        baseline = top + self.pad + self.ascent
        if cache:
            _blit(image, text, self.scale, self.thickness, color, x, baseline)
        else:
            cv2.putText(image, text, (x, baseline), _FONT, self.scale, color, self.thickness, _AA)


@dataclass(frozen=True, slots=True)
class _Style:
    label: _Font
    small: _Font
    box_thickness: int
    gap: int
    dot_radius: int

    @classmethod
    @lru_cache(maxsize=32)
    def for_frame(cls, width: int, height: int) -> _Style:
        # The reference is the height of a landscape frame; a portrait frame is limited by its width instead.
        # Below ~300 px text would shrink past legibility, so small frames keep that size (and wrap the stats).
        ref = max(300.0, min(float(height), width * 3.0 / 4.0))
        label = _Font.make(ref / 880.0, max(1, round(ref / 540.0)), pad=0.35)
        small = _Font.make(ref / 1050.0, max(1, round(ref / 720.0)), pad=0.22)
        return cls(
            label=label,
            small=small,
            box_thickness=max(2, round(ref / 300.0)),
            gap=max(2, round(ref / 160.0)),
            dot_radius=max(2, round(label.ascent / 6.0)),
        )


Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)


def _darken(image: np.ndarray, rect: Rect) -> None:
    """Dim a rectangle (clipped to the image) so light text over it reads on any background."""
    height, width = image.shape[:2]
    x0, y0, x1, y1 = max(0, rect[0]), max(0, rect[1]), min(width, rect[2]), min(height, rect[3])
    if x1 > x0 and y1 > y0:
        image[y0:y1, x0:x1] = cv2.convertScaleAbs(image[y0:y1, x0:x1], alpha=_PANEL_DARKEN)


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(value, high))


def _box_rect(face: Face, style: _Style) -> Rect:
    """The box as drawn, its outline's thickness included."""
    half = style.box_thickness // 2
    box = face.box
    return round(box.x) - half, round(box.y) - half, round(box.x + box.w) + half, round(box.y + box.h) + half


def _split_columns(sizes: list[int], columns: int) -> list[int]:
    """Where to cut consecutive groups of `sizes` rows into `columns` columns with the shortest tallest column."""
    if columns <= 1 or len(sizes) <= 1:
        return []
    best, cut = None, 1
    for k in range(1, len(sizes)):
        tallest = max(sum(sizes[:k]), sum(sizes[k:]))
        if best is None or tallest < best:
            best, cut = tallest, k
    return [cut]


def _overlap(a: Rect, b: Rect) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def _place(
    size: tuple[int, int], box: Rect, label: Rect, taken: list[Rect], gap: int, width: int, height: int
) -> tuple[int, int]:
    """Top-left corner for a panel of `size` beside `box`: right of it, left of it, below it or above it (clear
    of its label), kept inside the frame; the candidate covering the least of the face itself and of `taken`
    wins, the earlier one on a tie."""
    w, h = size
    candidates = (
        (box[2] + gap, box[1]),
        (box[0] - gap - w, box[1]),
        (box[0], max(box[3], label[3]) + gap),
        (box[0], min(box[1], label[1]) - gap - h),
    )
    placed = []
    for x, y in candidates:
        x, y = _clamp(x, 0, max(width - w, 0)), _clamp(y, 0, max(height - h, 0))
        rect = (x, y, x + w, y + h)
        cost = 4 * _overlap(rect, box) + sum(_overlap(rect, other) for other in taken)
        placed.append((cost, len(placed), x, y))
    _, _, x, y = min(placed)
    return x, y


class Renderer:
    """Draws boxes, labels, optional probability bars and an optional stats line.

    The switches are plain attributes that the GUI flips between frames: `show[attr]` (each attribute's text
    and bars), `bars`, `stats`. A face with every attribute off still gets its box and id.
    """

    def __init__(self, show: Mapping[str, bool] | None = None, bars: bool = False, stats: bool = True) -> None:
        self.show: dict[str, bool] = dict.fromkeys(ATTRIBUTES, True)
        for attr, on in (show or {}).items():
            if attr not in ATTRIBUTES:
                raise ValueError(f"unknown attribute {attr!r}; expected one of {ATTRIBUTES}")
            self.show[attr] = bool(on)
        self.bars = bars
        self.stats = stats
        self._label_spots: dict[int, int] = {}  # track id -> where its label went last frame (see _label_layout)

    def annotate(
        self, frame_bgr: np.ndarray, result: FrameResult | None, stats: Mapping[str, float] | None = None
    ) -> np.ndarray:
        """A new BGR image: `frame_bgr` with `result` drawn on it (None: no faces yet, only the stats line).
        `stats` maps names to numbers, e.g. {"display fps": 30, "analysis ms": 41}; see `format_stat`.
        When a result is given, its face count is added as "faces" unless `stats` has that key."""
        if (
            not isinstance(frame_bgr, np.ndarray)
            or frame_bgr.dtype != np.uint8
            or frame_bgr.ndim != 3
            or frame_bgr.shape[2] != 3
        ):
            shape, dtype = getattr(frame_bgr, "shape", None), getattr(frame_bgr, "dtype", type(frame_bgr).__name__)
            raise ValueError(f"expected a uint8 BGR image of shape (h, w, 3), got {dtype} {shape}")
        image = frame_bgr.copy()  # C-contiguous, as OpenCV's drawing functions need
        height, width = image.shape[:2]
        style = _Style.for_frame(width, height)
        shown = [attr for attr in ATTRIBUTES if self.show.get(attr, False)]
        faces = result.faces if result is not None else ()
        shown_predictions = [[(a, p) for a in shown if (p := face.attribute(a)) is not None] for face in faces]
        labels: list[tuple[Rect, list[tuple[str, ...]]]] = []
        boxes = [_box_rect(face, style) for face in faces]
        spots: dict[int, int] = {}
        for face, preds in zip(faces, shown_predictions, strict=True):
            placed = [rect for rect, _ in labels]
            previous = self._label_spots.get(face.track_id)
            rect, parts, spots[face.track_id] = self._label_layout(
                face, preds, style, width, height, placed, boxes, previous
            )
            labels.append((rect, parts))
        self._label_spots = spots

        # Layers, bottom to top: boxes, bar panels, labels, stats; the most important text is never covered.
        for face in faces:
            box = face.box
            p0, p1 = (round(box.x), round(box.y)), (round(box.x + box.w), round(box.y + box.h))
            cv2.rectangle(image, p0, p1, track_color(face.track_id), style.box_thickness, _AA)
        stats_panel = None
        if self.stats:
            items = dict(stats or {})
            if result is not None:
                items.setdefault("faces", len(faces))
            if items:
                stats_panel = self._stats_layout([format_stat(k, v) for k, v in items.items()], style, width)
        if self.bars:
            taken = [_box_rect(face, style) for face in faces] + [rect for rect, _ in labels]
            if stats_panel is not None:
                taken.append(stats_panel[0])
            panels: list[Rect] = []
            for face, preds, (label, _) in zip(faces, shown_predictions, labels, strict=True):
                if preds:
                    panels.append(self._draw_bars(image, face, preds, label, taken + panels, panels, style))
        for face, label in zip(faces, labels, strict=True):
            self._draw_label(image, face, label, style)
        if stats_panel is not None:
            self._draw_stats(image, stats_panel, style)
        return image

    # -- pieces --------------------------------------------------------------------------------------------

    @staticmethod
    def _label_layout(
        face: Face,
        predictions: list[tuple[str, Prediction]],
        style: _Style,
        width: int,
        height: int,
        placed: Sequence[Rect] = (),
        boxes: Sequence[Rect] = (),
        previous: int | None = None,
    ) -> tuple[Rect, list[tuple[str, ...]], int]:
        """Where the label goes and what it says: above the box, below it when the box touches the top,
        inside its top edge when neither fits; shifted left to stay in the frame. Labels are often wider than
        their face, so in a group one face's label could hide another's: of those spots (then inside the
        bottom edge) the one covering least of the `placed` labels and of the faces' `boxes` wins, the
        earlier on a tie. A track keeps its `previous` spot while that covers nothing and the better one is
        within a label's height of something, so a label does not jump back and forth as boxes jitter at the
        edge of a collision. Returns the rect, the text and the spot."""
        font = style.label
        # Each part is a few words drawn one after the other: the sprite cache then holds a few class names and
        # the 101 percentages instead of every combination of them.
        parts = [(f"#{face.track_id}",)] + [(f"{p.label} ", percent(p.confidence)) for _, p in predictions]
        sep = 2 * font.pad + 2 * style.dot_radius  # a separator dot and the space around it
        label_w = sum(font.width(word) for part in parts for word in part) + sep * (len(parts) - 1) + 2 * font.pad
        label_h = font.line
        own = _box_rect(face, style)
        bx0, by0, _, by1 = own
        left = _clamp(bx0, 0, max(width - label_w, 0))
        tops = (by0 - label_h, by1, max(by0, 0), by1 - label_h)
        spots = [spot for spot, top in enumerate(tops) if 0 <= top <= height - label_h]

        def covered(spot: int, margin: int = 0) -> int:
            """How much the label at `spot`, grown by `margin` on every side, covers (own box left out when grown)."""
            top = tops[spot]
            rect = (left - margin, top - margin, left + label_w + margin, top + label_h + margin)
            faces = (box for box in boxes if not margin or box != own)
            return 4 * sum(_overlap(rect, other) for other in placed) + sum(_overlap(rect, box) for box in faces)

        # The first free spot, when there is one (nearly always), without pricing the others: ~30 label x
        # rectangle tests per label instead of ~100 with eight faces on screen.
        spot = next((spot for spot in spots if covered(spot) == 0), None)
        if spot is None:
            spot = min(spots, key=covered) if spots else 2
        if previous in spots and previous != spot and covered(previous) == 0 and covered(spot, label_h) > 0:
            spot = previous  # the better spot is free, but only just: stay until it is clearly free
        top = _clamp(tops[spot], 0, max(height - label_h, 0))
        return (left, top, left + label_w, top + label_h), parts, spot

    @staticmethod
    def _draw_label(image: np.ndarray, face: Face, layout: tuple[Rect, list[tuple[str, ...]]], style: _Style) -> None:
        """'#3 • Happy 82% • Female 97% • White 88%' on a solid bar in the track's colour (Hershey fonts have
        no middle dot, so the separators are drawn as dots)."""
        (left, top, right, bottom), parts = layout
        font = style.label
        color = track_color(face.track_id)
        ink = _text_color(color)
        cv2.rectangle(image, (left, top), (right - 1, bottom - 1), color, cv2.FILLED)
        x = left + font.pad
        middle = top + font.pad + font.ascent // 2 + 1
        for i, part in enumerate(parts):
            if i:
                cv2.circle(image, (x + font.pad + style.dot_radius, middle), style.dot_radius, ink, cv2.FILLED, _AA)
                x += 2 * font.pad + 2 * style.dot_radius
            for word in part:
                font.put(image, word, x, top, ink)
                x += font.width(word)

    @staticmethod
    def _draw_bars(
        image: np.ndarray,
        face: Face,
        predictions: list[tuple[str, Prediction]],
        label: Rect,
        taken: list[Rect],
        panels: list[Rect],
        style: _Style,
    ) -> Rect:
        """Every class's probability as a bar, one block per attribute, on a dimmed panel next to the face,
        on whichever side covers the least of the other faces, labels and panels (`taken`). Blocks go into two
        columns when one column would take more than about half the frame's height. Where no side is free
        (a crowd in a small frame) the panel is opaque over earlier `panels`, so two never mix their rows.
        Returns the panel."""
        font = style.small
        height, width = image.shape[:2]
        name_w = max(font.width(name) for _, p in predictions for name in p.probs)
        value_w = font.width("100%")
        bar_w = max(4 * font.ascent, round(name_w * 0.9))
        row_h = font.line
        group_gap = font.pad * 2
        col_w = name_w + bar_w + value_w + 4 * font.pad
        sizes = [len(p.probs) for _, p in predictions]

        def column_h(groups: list[int]) -> int:
            return row_h * sum(groups) + group_gap * (len(groups) - 1)

        cuts = [] if column_h(sizes) <= 0.55 * height else _split_columns(sizes, 2)
        columns = [list(range(a, b)) for a, b in zip([0, *cuts], [*cuts, len(predictions)], strict=True)]
        column_gap = font.ascent
        panel_w = len(columns) * col_w + (len(columns) - 1) * column_gap + 4 * font.pad
        panel_h = max(column_h([sizes[i] for i in col]) for col in columns) + 2 * font.pad
        left, top = _place((panel_w, panel_h), _box_rect(face, style), label, taken, style.gap, width, height)
        rect = (left, top, left + panel_w, top + panel_h)
        _darken(image, rect)
        for other in panels:
            x0, y0, x1, y1 = (
                max(rect[0], other[0]),
                max(rect[1], other[1]),
                min(rect[2], other[2]),
                min(rect[3], other[3]),
            )
            if x1 > x0 and y1 > y0:
                cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), _PANEL_OPAQUE, cv2.FILLED)

        color = track_color(face.track_id)
        bar_h = max(3, round(font.ascent * 0.9))
        for c, column in enumerate(columns):
            name_x = left + 2 * font.pad + c * (col_w + column_gap)
            bar_x = name_x + name_w + 2 * font.pad
            value_x = bar_x + bar_w + 2 * font.pad + value_w  # percentages are right-aligned here
            y = top + font.pad
            for i in column:
                prediction = predictions[i][1]
                for name, p in prediction.probs.items():
                    bar_y = y + font.pad + (font.ascent - bar_h) // 2 + 1
                    cv2.rectangle(image, (bar_x, bar_y), (bar_x + bar_w, bar_y + bar_h), _BAR_TRACK, cv2.FILLED)
                    filled = round(bar_w * min(max(p, 0.0), 1.0))
                    if filled > 0:
                        fill = color if name == prediction.label else _BAR_OTHER
                        cv2.rectangle(image, (bar_x, bar_y), (bar_x + filled, bar_y + bar_h), fill, cv2.FILLED)
                    font.put(image, name, name_x, y, _WHITE)
                    value = percent(p)
                    font.put(image, value, value_x - font.width(value), y, _WHITE)
                    y += row_h
                y += group_gap
        return rect

    @staticmethod
    def _stats_layout(items: list[str], style: _Style, width: int) -> tuple[Rect, list[str]]:
        """The readout's lines (wrapped when the frame is narrow) and its panel in the top-left corner."""
        font = style.label
        spacer = font.width("  ")
        max_w = width - 2 * style.gap - 2 * font.pad
        lines: list[str] = []
        for item in items:
            if lines and font.width(lines[-1]) + spacer + font.width(item) <= max_w:
                lines[-1] = f"{lines[-1]}  {item}"
            else:
                lines.append(item)
        panel_w = max(font.width(line) for line in lines) + 2 * font.pad
        x0 = y0 = style.gap
        return (x0, y0, x0 + panel_w, y0 + font.line * len(lines)), lines

    @staticmethod
    def _draw_stats(image: np.ndarray, layout: tuple[Rect, list[str]], style: _Style) -> None:
        rect, lines = layout
        font = style.label
        _darken(image, rect)
        for i, line in enumerate(lines):
            font.put(image, line, rect[0] + font.pad, rect[1] + i * font.line, _WHITE, cache=False)
