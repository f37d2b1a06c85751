"""The video area: paints the newest frame scaled to the widget with its aspect ratio kept, and a notice bar
(placed above it, never over the picture) that says when something is missing (no camera) and offers what to
do instead (demo, open a file)."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt, Signal, Slot
from PySide6.QtGui import QColor, QImage, QPainter, QPaintEvent
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QWidget

from app.gui.workers import FRAME_KEY, FpsMeter

BACKGROUND = QColor(24, 24, 24)


def fit_rect(image: QSize, area: QRect) -> QRect:
    """The largest rectangle with `image`'s aspect ratio centred in `area`."""
    if image.isEmpty() or area.isEmpty():
        return QRect(area.topLeft(), QSize(0, 0))
    scaled = image.scaled(area.size(), Qt.AspectRatioMode.KeepAspectRatio)
    x = area.x() + (area.width() - scaled.width()) // 2
    y = area.y() + (area.height() - scaled.height()) // 2
    return QRect(x, y, scaled.width(), scaled.height())


class NoticeBar(QFrame):
    """A one-line message over the top of the video with the actions that resolve it."""

    demo_requested = Signal()
    open_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("notice")
        self.setStyleSheet(
            "#notice { background: #3a3320; border-bottom: 2px solid #d9a400; }"
            "QLabel { color: #f2f2f2; } QPushButton { padding: 3px 10px; }"
        )
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.demo_button = QPushButton("Show demo", self)
        self.open_button = QPushButton("Open file…", self)
        self.close_button = QPushButton("Dismiss", self)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.addWidget(self.label, 1)
        for button in (self.demo_button, self.open_button, self.close_button):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Space stays the pause shortcut
            layout.addWidget(button)
        self.demo_button.clicked.connect(self.demo_requested)
        self.open_button.clicked.connect(self.open_requested)
        self.close_button.clicked.connect(self.hide)
        self.hide()

    def show_message(self, text: str, offer_demo: bool = True) -> None:
        self.label.setText(text)
        self.demo_button.setVisible(offer_demo)
        self.show()


class VideoView(QWidget):
    """Shows the latest frame. `set_image` only stores it and schedules a repaint, so frames that arrive
    before the next paint replace each other (the newest wins) and the GUI thread never falls behind.

    Frames normally arrive already scaled to `pixel_size()` (the display worker resizes them), so painting is
    a plain copy; right after a resize the next few are scaled here until the worker has caught up."""

    resized = Signal(int, int)  # the new size in device pixels

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 240)
        self._image: QImage | None = None
        self._painted = True
        self.placeholder = "Starting…"
        self.fps = FpsMeter()
        self.frames_painted = 0
        self._last_frame = ""

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(960, 720)

    @property
    def image(self) -> QImage | None:
        return self._image

    @Slot(QImage)
    def set_image(self, image: QImage) -> None:
        self._image = image
        self._painted = False
        self.update()

    def clear(self, placeholder: str) -> None:
        self._image = None
        self.placeholder = placeholder
        self.update()

    def pixel_size(self) -> tuple[int, int]:
        ratio = self.devicePixelRatioF()
        return max(1, round(self.width() * ratio)), max(1, round(self.height() * ratio))

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self.resized.emit(*self.pixel_size())

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        painter.fillRect(self.rect(), BACKGROUND)
        if self._image is None:
            painter.setPen(QColor(200, 200, 200))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.placeholder)
            return
        target = fit_rect(self._image.size(), self.rect())
        image_size = self._image.size() / self._image.devicePixelRatio()
        if image_size != target.size():
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(target, self._image)
        painter.end()
        if not self._painted:
            self._painted = True
            self.frames_painted += 1
            frame = self._image.text(FRAME_KEY)
            if not frame or frame != self._last_frame:  # redraws of one frame with a newer result don't count
                self._last_frame = frame
                self.fps.tick()
