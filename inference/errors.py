"""Expected failures, each worth a clear one-line message rather than a traceback.

Everything a user can cause (a missing camera, an unreadable file, corrupt weights, a full disk) raises a
subclass of `FaceLensError`; the CLI maps it to exit code 2 and the GUI to a dialog. Anything else is a bug.
"""


class FaceLensError(Exception):
    """An expected error whose message (one line) is shown to the user as is."""


class SourceError(FaceLensError):
    """A camera, video or photo could not be opened or read."""


class DetectorError(FaceLensError):
    """A face detector is unknown or failed to load."""


class WeightsError(FaceLensError):
    """Model weights or their card are missing, corrupt or do not match."""


class DatasetError(FaceLensError):
    """A training/evaluation dataset is missing or malformed."""


class OutputError(FaceLensError):
    """An output file or folder cannot be written (unwritable path, full disk)."""
