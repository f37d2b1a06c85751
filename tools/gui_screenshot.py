"""Take the README screenshot of the real FaceLens window on the demo source (a developer tool, not part of
the installed app).

    xvfb-run -a -s "-screen 0 1280x800x24" python tools/gui_screenshot.py docs/screenshot.png

It waits until the attribute models are loaded and the demo shows both portraits with their labels apart
(about 3 s into the demo's 12 s loop), grabs the window, and stores it as a 256-colour PNG so it stays small
(< 300 KB). Settings go to a temporary ini file, never the user's; set FACELENS_WEIGHTS to use other weights.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

# The demo moment to capture (seconds into its loop): both faces on screen with their labels not overlapping.
MOMENT_S = (2.95, 3.25)
MIN_WAIT_S, MAX_WAIT_S = 5.0, 180.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", default="860x720", help="window size WxH (default 860x720)")
    parser.add_argument("--detector", default="haar")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    from PIL import Image
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from app import demo
    from app.gui.main_window import MainWindow

    app = QApplication(sys.argv[:1])
    folder = Path(tempfile.mkdtemp(prefix="facelens-shot-"))
    store = QSettings(str(folder / "facelens.ini"), QSettings.Format.IniFormat)
    store.setValue("recording/folder", str(folder))
    window = MainWindow("demo", args.detector, settings=store)
    window.resize(width, height)
    window.show()
    start = time.monotonic()

    def ready() -> bool:
        """The frame on screen (not just the newest result) is at the chosen moment with two labelled faces."""
        last = window.display._last
        if last is None or last[2] is None or window.analysis.models_state == "loading":
            return False
        frame, _, result = last
        t = (frame.index / demo.FPS) % demo.LOOP_S
        labelled = window.analysis.models_state == "failed" or all(f.emotion is not None for f in result.faces)
        return MOMENT_S[0] <= t <= MOMENT_S[1] and len(result.faces) == 2 and labelled

    def poll() -> None:
        waited = time.monotonic() - start
        if (waited > MIN_WAIT_S and ready()) or waited > MAX_WAIT_S:
            rates = f"display {window.view.fps.rate():.1f} fps, analysis {window.analysis.fps.rate():.1f} fps"
            window._update_status()
            raw = folder / "raw.png"
            window.grab().save(str(raw))
            image = Image.open(raw).convert("RGB")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
            size_kb = args.out.stat().st_size // 1024
            print(f"{args.out}: {size_kb} KB after {waited:.0f} s; {rates}; models {window.analysis.models_state}")
            window.close()
        else:
            QTimer.singleShot(20, poll)

    QTimer.singleShot(500, poll)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
