"""Screenshot napari as the main job opens it (sample stack + plugin widgets) into docs/images/.

Needs a display; on a server run it under a virtual one:
    xvfb-run -a .venv/bin/python scripts/screenshot_viewer.py [OUT_PNG]
"""

from __future__ import annotations

import sys
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from napari_sperm.demo import open_viewer


def main(out: str = "docs/images/napari-main-job.png") -> None:
    viewer = napari.Viewer(title="napari-sperm", show=True)
    viewer.window._qt_window.resize(1400, 900)
    open_viewer(viewer, block=False)
    viewer.dims.set_point(0, 5)
    # Generate a ground-truth overlay with the Synthetic sperm widget's core, to show the layers.
    from napari_sperm.synthetic import make_stack
    from napari_sperm.synthetic.layers import truth_layer_data

    layer = viewer.layers[0]
    meta = layer.metadata["napari_sperm"]
    stack = make_stack(meta["modality"], layer.data.shape[0], meta["seed"])
    for data, kwargs, kind in truth_layer_data(stack, "ground truth"):
        kwargs = {**kwargs}
        if kind == "labels":
            kwargs["opacity"] = 0.45
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    viewer.layers["ground truth boxes"].visible = False  # heads and tails are easier to see alone
    for _ in range(10):
        QApplication.processEvents()
    viewer.reset_view()
    for _ in range(10):
        QApplication.processEvents()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(out, canvas_only=False)
    print(f"wrote {out}")
    viewer.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
