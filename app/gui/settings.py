"""What the window remembers between runs, read and written in one place with types (QSettings hands back
strings from ini files, so every read says what it expects)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QStandardPaths

ORGANIZATION = "FaceLens"
APPLICATION = "FaceLens"
VIEW_TOGGLES: tuple[str, ...] = ("emotion", "gender", "race", "bars", "stats", "mirror")
VIEW_DEFAULTS: dict[str, bool] = {
    "emotion": True,
    "gender": True,
    "race": True,
    "bars": False,
    "stats": True,
    "mirror": False,
}


def default_recording_folder() -> Path:
    movies = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.MoviesLocation)
    return Path(movies or Path.home()) / "FaceLens"


def open_settings() -> QSettings:
    """The user's settings (organization and application "FaceLens", Qt's default format and place)."""
    return QSettings(ORGANIZATION, APPLICATION)


@dataclass
class GuiSettings:
    source: str | None = None
    detector: str | None = None
    view: dict[str, bool] = field(default_factory=lambda: dict(VIEW_DEFAULTS))
    recording_folder: Path = field(default_factory=default_recording_folder)
    geometry: QByteArray | None = None

    @classmethod
    def load(cls, store: QSettings) -> GuiSettings:
        view = {name: bool(store.value(f"view/{name}", VIEW_DEFAULTS[name], type=bool)) for name in VIEW_TOGGLES}
        folder = str(store.value("recording/folder", "", type=str))
        geometry = store.value("window/geometry")
        return cls(
            source=str(store.value("source", "", type=str)) or None,
            detector=str(store.value("detector", "", type=str)) or None,
            view=view,
            recording_folder=Path(folder) if folder else default_recording_folder(),
            geometry=geometry if isinstance(geometry, QByteArray) else None,
        )

    def save(self, store: QSettings) -> None:
        if self.source:
            store.setValue("source", self.source)
        if self.detector:
            store.setValue("detector", self.detector)
        for name, on in self.view.items():
            store.setValue(f"view/{name}", bool(on))
        store.setValue("recording/folder", str(self.recording_folder))
        if self.geometry is not None:
            store.setValue("window/geometry", self.geometry)
        store.sync()
