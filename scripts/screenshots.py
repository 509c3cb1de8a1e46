"""Retake the napari screenshots in docs/images/ (needs a display; on a server use a virtual one):

    xvfb-run -a .venv/bin/python scripts/screenshots.py

- ``napari-main-job.png``: the main job's window (sample stack + plugin widgets) with the sample's
  ground-truth heads and tails drawn over it;
- ``detect-widget.png``: the Detect sperm widget after a run on the sample stack;
- ``segment-widget.png``: Detect sperm, then Segment heads & tails (classic engine) on the sample
  stack: the ``heads`` and ``tails`` Labels layers and their features table.

``scripts/screenshots.py tutorial`` instead saves ``tutorial-*.png``, one per step of the everyday
path, by running the workflow GUI test with a visible window.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from napari_sperm.demo import open_viewer
from napari_sperm.synthetic import make_stack
from napari_sperm.synthetic.layers import truth_layer_data


def _new_viewer() -> napari.Viewer:
    viewer = napari.Viewer(title="napari-sperm", show=True)
    viewer.window._qt_window.resize(1400, 900)
    return viewer


def _save(viewer: napari.Viewer, out: Path, frame: int = 5) -> None:
    viewer.dims.set_point(0, frame)
    for _ in range(10):
        QApplication.processEvents()
    viewer.reset_view()
    for _ in range(10):
        QApplication.processEvents()
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(out), canvas_only=False)
    print(f"wrote {out}")
    viewer.close()


def main_job(out: Path) -> None:
    viewer = _new_viewer()
    open_viewer(viewer, block=False)
    layer = viewer.layers[0]
    meta = layer.metadata["napari_sperm"]
    stack = make_stack(meta["modality"], layer.data.shape[0], meta["seed"])
    for data, kwargs, kind in truth_layer_data(stack, "ground truth"):
        if kind == "labels":
            kwargs = {**kwargs, "opacity": 0.45}
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    viewer.layers["ground truth boxes"].visible = False  # heads and tails are easier to see alone
    _save(viewer, out)


def _run(widget) -> None:
    widget.runner.run_button.clicked.emit()
    deadline = time.time() + 300
    while widget.runner.running and time.time() < deadline:
        QApplication.processEvents()
        time.sleep(0.05)


def detect_widget(out: Path) -> None:
    viewer = _new_viewer()
    viewer.open_sample("napari-sperm", "phase_stack")
    _, widget = viewer.window.add_plugin_dock_widget("napari-sperm", "Detect sperm")
    _run(widget)
    _save(viewer, out)


def segment_widget(out: Path) -> None:
    viewer = _new_viewer()
    viewer.open_sample("napari-sperm", "phase_stack")
    _, detect = viewer.window.add_plugin_dock_widget("napari-sperm", "Detect sperm")
    _run(detect)
    viewer.layers[-1].visible = False  # the boxes; the labels are the subject here
    _, widget = viewer.window.add_plugin_dock_widget("napari-sperm", "Segment heads & tails")
    widget.reset_choices()
    _run(widget)
    _save(viewer, out)


def tutorial(folder: Path) -> int:
    """The tutorial's pictures: the workflow GUI test, run with a visible window, saves each step."""
    import os
    import subprocess

    env = {**os.environ, "NAPARI_SPERM_TUTORIAL_SHOTS": str(Path(folder).resolve())}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    cmd += ["tests/test_workflow_gui.py::test_full_path_on_the_sample_stack"]
    return subprocess.call(cmd, env=env)


def main(*args: str) -> None:
    if args and args[0] == "tutorial":
        sys.exit(tutorial(Path(args[1] if len(args) > 1 else "docs/images")))
    folder = args[0] if args else "docs/images"
    main_job(Path(folder) / "napari-main-job.png")
    detect_widget(Path(folder) / "detect-widget.png")
    segment_widget(Path(folder) / "segment-widget.png")


if __name__ == "__main__":
    main(*sys.argv[1:])
