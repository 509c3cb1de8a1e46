"""The plugin inside a real napari viewer (virtual display): samples, reader, widget, main job."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_sperm._napari.reader import get_reader
from napari_sperm.demo import DOCKED, open_viewer, widget_names

pytestmark = pytest.mark.gui


@pytest.mark.parametrize(
    ("key", "shape", "rgb"),
    [
        ("phase_stack", (20, 480, 640), False),
        ("stained_field", (1024, 1280, 3), True),
        ("brightfield_field", (768, 1024), False),
    ],
)
def test_sample_data_opens(make_napari_viewer, key, shape, rgb):
    viewer = make_napari_viewer()
    layers = viewer.open_sample("napari-sperm", key)
    assert len(layers) == 1
    layer = viewer.layers[0]
    assert layer.data.shape == shape
    assert layer.rgb is rgb
    assert layer.data.dtype == np.uint8
    assert layer.data.std() > 5  # real content, not a blank frame


def test_reader_opens_stack_with_pixel_size(make_napari_viewer, tmp_path):
    path = tmp_path / "movie.tif"
    data = np.random.default_rng(0).integers(0, 4000, (4, 32, 40), dtype=np.uint16)
    tifffile.imwrite(
        path, data, imagej=True, resolution=(4.0, 4.0), metadata={"axes": "TYX", "unit": "um"}
    )
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-sperm")
    layer = viewer.layers["movie"]
    assert np.array_equal(np.asarray(layer.data), data)
    assert tuple(layer.scale) == pytest.approx((1.0, 0.25, 0.25))


def test_reader_declines_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    assert get_reader(str(tmp_path / "notes.txt")) is None
    assert get_reader(str(tmp_path / "a.json")) is None


def test_reader_reports_corrupt_file(make_napari_viewer, tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_text("this is not a tiff")
    viewer = make_napari_viewer()
    with pytest.raises(Exception, match="broken.tif"):
        viewer.open(str(bad), plugin="napari-sperm")
    assert len(viewer.layers) == 0


def _synthetic_widget(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("napari-sperm", "Synthetic sperm")
    return widget


def test_synthetic_widget_adds_image_and_ground_truth(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = _synthetic_widget(viewer)
    widget.modality.value = "phase-high"
    widget.frames.value = 3
    widget.n_sperm.value = 6
    widget.seed.value = 4
    widget.runner.run_button.clicked.emit()
    qtbot.waitUntil(lambda: len(viewer.layers) == 4, timeout=60_000)
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=10_000)
    names = [layer.name for layer in viewer.layers]
    assert names == [
        "synthetic phase-high #4",
        "synthetic phase-high #4 heads",
        "synthetic phase-high #4 tails",
        "synthetic phase-high #4 boxes",
    ]
    image, heads, tails, boxes = viewer.layers
    assert image.data.shape == heads.data.shape == tails.data.shape == (3, 480, 640)
    assert set(np.unique(heads.data)) - {0} <= set(range(1, 7))
    assert boxes.nshapes == len(boxes.features)
    assert set(boxes.features["frame"]) == {0, 1, 2}
    # Boxes sit on their frame and enclose the head with the same sperm id.
    for verts, sid, frame in zip(
        boxes.data, boxes.features["sperm_id"], boxes.features["frame"], strict=True
    ):
        assert np.all(verts[:, 0] == frame)
        rows, cols = np.nonzero(heads.data[frame] == sid)
        if rows.size:
            assert verts[:, 1].min() <= rows.min() and rows.max() <= verts[:, 1].max()
            assert verts[:, 2].min() <= cols.min() and cols.max() <= verts[:, 2].max()


def test_synthetic_widget_cancel_leaves_viewer_unchanged(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = _synthetic_widget(viewer)
    widget.modality.value = "phase-low"
    widget.frames.value = 400
    widget.runner.run_button.clicked.emit()
    qtbot.waitUntil(lambda: widget.runner.progress.value >= 1, timeout=60_000)
    widget.runner.cancel_button.clicked.emit()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=60_000)
    assert len(viewer.layers) == 0
    assert "cancelled" in widget.runner.status.value
    assert widget.runner.run_button.enabled


def test_main_job_opens_sample_with_widgets_docked(make_napari_viewer):
    viewer = make_napari_viewer()
    open_viewer(viewer, block=False)
    assert [layer.name for layer in viewer.layers] == ["phase-contrast sample"]
    assert viewer.layers[0].data.shape == (20, 480, 640)
    docked = set(viewer.window.dock_widgets.keys())
    assert set(DOCKED) <= set(widget_names())
    for name in DOCKED:
        assert any(name in key for key in docked), (name, docked)
