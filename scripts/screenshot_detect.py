"""Screenshot the Detect sperm widget after a run on the sample stack, into docs/images/.

    xvfb-run -a .venv/bin/python scripts/screenshot_detect.py [OUT_PNG]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication


def main(out: str = "docs/images/detect-widget.png") -> None:
    viewer = napari.Viewer(title="napari-sperm", show=True)
    viewer.window._qt_window.resize(1400, 900)
    viewer.open_sample("napari-sperm", "phase_stack")
    _, widget = viewer.window.add_plugin_dock_widget("napari-sperm", "Detect sperm")
    widget.runner.run_button.clicked.emit()
    deadline = time.time() + 300
    while widget.runner.running and time.time() < deadline:
        QApplication.processEvents()
        time.sleep(0.05)
    viewer.dims.set_point(0, 5)
    viewer.reset_view()
    for _ in range(20):
        QApplication.processEvents()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(out, canvas_only=False)
    print(f"wrote {out}")
    viewer.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
