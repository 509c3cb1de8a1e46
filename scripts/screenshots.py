"""Retake the napari screenshots in docs/images/ (needs a display; on a server use a virtual one):

    xvfb-run -a .venv/bin/python scripts/screenshots.py [FOLDER]

- ``napari-main-job.png``: the main job's window (sample stack + plugin widgets) with the sample's
  ground-truth heads and tails drawn over it;
- ``detect-widget.png``: the Detect sperm widget after a run on the sample stack (shown frame);
- ``segment-widget.png``: Detect sperm, then Segment heads & tails (classic engine) on the sample
  stack's shown frame: the ``heads`` and ``tails`` Labels layers;
- ``tails-widget.png``: Detect sperm and Segment heads & tails on one frame, then Cluster tails
  (Con2Dis) on its ``tails`` layer: the re-split tails and their centreline paths.

``scripts/screenshots.py tutorial [FOLDER]`` instead saves ``tutorial-*.png``, one per step of the
everyday path, by running the workflow GUI test with a visible window.

The functions are importable: ``tests/test_docs_screenshots.py`` runs :func:`take` for every
picture into a temporary folder, with pytest's viewer fixture (GUI test, under Xvfb).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from napari_sperm.demo import open_viewer
from napari_sperm.synthetic import make_stack
from napari_sperm.synthetic.layers import truth_layer_data

WINDOW = (1400, 900)  # width, height of the window; the main job's docks may make it taller
FRAME = 5  # the frame of the sample stack the pictures show


def new_viewer() -> napari.Viewer:
    """A shown viewer for the pictures (the script's own; tests pass pytest's)."""
    return napari.Viewer(title="napari-sperm", show=True)


def _process_events(n: int = 10) -> None:
    for _ in range(n):
        QApplication.processEvents()


def save(viewer: napari.Viewer, out: Path, frame: int = FRAME) -> Path:
    """Show ``frame``, fit the view and write the whole window (canvas and docks) to ``out``."""
    viewer.dims.set_point(0, frame)
    _process_events()
    viewer.reset_view()
    _process_events()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(out), canvas_only=False)
    print(f"wrote {out}")
    return out


def _run(widget, timeout: float = 300) -> None:
    """Press the widget's run button and wait until its background job is done."""
    widget.runner.run_button.clicked.emit()
    deadline = time.time() + timeout
    while widget.runner.running and time.time() < deadline:
        QApplication.processEvents()
        time.sleep(0.05)
    if widget.runner.running:
        raise TimeoutError(f"{type(widget).__name__} did not finish within {timeout} s")
    _process_events()


def main_job(viewer: napari.Viewer) -> None:
    """The demo's window, with the sample's ground-truth heads and tails on top."""
    open_viewer(viewer, block=False)
    layer = viewer.layers[0]
    meta = layer.metadata["napari_sperm"]
    stack = make_stack(meta["modality"], layer.data.shape[0], meta["seed"])
    for data, kwargs, kind in truth_layer_data(stack, "ground truth"):
        if kind == "labels":
            kwargs = {**kwargs, "opacity": 0.45}
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    viewer.layers["ground truth boxes"].visible = False  # heads and tails are easier to see alone


def detect_widget(viewer: napari.Viewer) -> None:
    """Detect sperm on the shown frame of the sample stack (all frames give the same picture)."""
    viewer.open_sample("napari-sperm", "phase_stack")
    viewer.dims.set_point(0, FRAME)
    _, widget = viewer.window.add_plugin_dock_widget("napari-sperm", "Detect sperm")
    widget.frames.value = "current frame"
    _run(widget)


def segment_widget(viewer: napari.Viewer, frames: str = "current frame") -> list:
    """Detect sperm, then Segment heads & tails (classic engine) on the sample stack's shown frame
    (``frames="all frames"`` for every frame; the picture is the same, the run 20 times longer).

    Returns the two dock widgets (Qt wrappers).
    """
    viewer.open_sample("napari-sperm", "phase_stack")
    viewer.dims.set_point(0, FRAME)
    detect_dock, detect = viewer.window.add_plugin_dock_widget("napari-sperm", "Detect sperm")
    detect.frames.value = frames
    _run(detect)
    viewer.layers[-1].visible = False  # the boxes; the labels are the subject here
    dock, widget = viewer.window.add_plugin_dock_widget("napari-sperm", "Segment heads & tails")
    widget.reset_choices()
    widget.frames.value = frames
    _run(widget)
    return [detect_dock, dock]


def tails_widget(viewer: napari.Viewer) -> None:
    """Segment the shown frame, then Cluster tails (Con2Dis) on its tails layer, with the heads."""
    for dock in segment_widget(viewer):
        viewer.window.remove_dock_widget(dock)  # this picture is about Cluster tails
    _, widget = viewer.window.add_plugin_dock_widget("napari-sperm", "Cluster tails (Con2Dis)")
    widget.reset_choices()
    widget.tails.value = viewer.layers["tails"]
    widget.heads.value = viewer.layers["heads"]
    widget.frames.value = "current frame"
    _run(widget)
    viewer.layers["tails"].visible = False  # the input; the re-split tails are shown instead


SHOTS: dict[str, Callable[[napari.Viewer], object]] = {
    "napari-main-job.png": main_job,
    "detect-widget.png": detect_widget,
    "segment-widget.png": segment_widget,
    "tails-widget.png": tails_widget,
}


def take(name: str, viewer: napari.Viewer, folder: str | Path = "docs/images") -> Path:
    """Take the picture ``name`` (a key of :data:`SHOTS`) with ``viewer`` (shown) into ``folder``."""
    viewer.window._qt_window.resize(*WINDOW)
    SHOTS[name](viewer)
    return save(viewer, Path(folder) / name)


def take_all(folder: str | Path = "docs/images") -> list[Path]:
    """Take every picture of :data:`SHOTS` into ``folder``, one fresh viewer each."""
    written = []
    for name in SHOTS:
        viewer = new_viewer()
        written.append(take(name, viewer, folder))
        viewer.close()
    return written


def tutorial(folder: str | Path) -> int:
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
    take_all(args[0] if args else "docs/images")


if __name__ == "__main__":
    main(*sys.argv[1:])
