"""The Cluster tails (Con2Dis) dock widget in a real viewer: labels keep the heads' sperm ids,
centreline paths, heads from a detections layer, frames, reruns, edits, cancel and bad input."""

from __future__ import annotations

import time

import numpy as np
import pytest

from napari_sperm._napari import tails_widget as tw
from napari_sperm.synthetic import make_field

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def field():
    # one forced crossing, so the tail union has at least one merged component to split
    return make_field("phase-high", seed=3, n_sperm=6, crossings=1, crossing_angle_deg=(40, 90))


def _tail_union(f):
    mask = np.zeros(f.shape, bool)
    for s in f.sperm:
        s.tail.paste(mask)
    return mask


def _widget(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("napari-sperm", "Cluster tails (Con2Dis)")
    return widget


def _run(widget, qtbot):
    widget.runner.run_button.clicked.emit()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=60_000)


def _majority_label(labels, crop):
    """Most frequent non-zero label under a truth tail mask (0 if none)."""
    r0, c0 = crop.offset
    h, w = crop.mask.shape
    values = labels[r0 : r0 + h, c0 : c0 + w][crop.mask]
    values = values[values > 0]
    return 0 if values.size == 0 else int(np.bincount(values).argmax())


def _visible_tails(f, min_px=40):
    return [s for s in f.sperm if s.tail.area >= min_px and s.head.area > 0]


def test_tails_keep_their_heads_sperm_ids(make_napari_viewer, qtbot, field):
    viewer = make_napari_viewer()
    viewer.add_labels(_tail_union(field).astype(np.uint8), name="tails", scale=(0.5, 0.5))
    viewer.add_labels(field.head_labels(), name="heads", scale=(0.5, 0.5))
    widget = _widget(viewer)
    widget.tails.value = viewer.layers["tails"]
    widget.heads.value = viewer.layers["heads"]
    _run(widget, qtbot)
    out = viewer.layers["tails (Con2Dis)"]
    assert tuple(out.scale) == (0.5, 0.5)
    labels = np.asarray(out.data)
    cells = _visible_tails(field)
    right = [_majority_label(labels, s.tail) == s.sperm_id for s in cells]
    assert sum(right) >= 0.8 * len(cells), right
    paths = viewer.layers["tails centrelines"]
    assert paths.nshapes == len(paths.features)
    assert set(paths.features["sperm_id"]) - {0} <= {s.sperm_id for s in field.sperm}
    assert all(t == "path" for t in paths.shape_type)
    # the input layers are untouched
    assert np.array_equal(np.asarray(viewer.layers["tails"].data) > 0, _tail_union(field))


def test_heads_from_a_detections_layer(make_napari_viewer, qtbot, field):
    viewer = make_napari_viewer()
    viewer.add_labels(_tail_union(field).astype(np.uint8), name="tails")
    boxes, ids = [], []
    for s in field.sperm:
        box = s.head_box()
        if box is None:
            continue
        x, y, w, h = box
        boxes.append(np.array([[y, x], [y, x + w], [y + h, x + w], [y + h, x]], float) - 0.5)
        ids.append(s.sperm_id)
    viewer.add_shapes(
        boxes,
        shape_type="rectangle",
        name="detections",
        features={"class": ["head"] * len(ids), "sperm_id": ids, "score": [1.0] * len(ids)},
    )
    widget = _widget(viewer)
    widget.tails.value = viewer.layers["tails"]
    widget.heads.value = viewer.layers["detections"]
    _run(widget, qtbot)
    labels = np.asarray(viewer.layers["tails (Con2Dis)"].data)
    cells = _visible_tails(field)
    right = [_majority_label(labels, s.tail) == s.sperm_id for s in cells]
    assert sum(right) >= 0.8 * len(cells), right


def test_current_frame_rerun_replaces_own_layer_but_never_an_edited_one(
    make_napari_viewer, qtbot, field
):
    viewer = make_napari_viewer()
    mask = _tail_union(field).astype(np.uint8)
    viewer.add_labels(np.stack([mask, mask, np.zeros_like(mask)]), name="tails")
    widget = _widget(viewer)
    widget.tails.value = viewer.layers["tails"]
    widget.centrelines.value = False
    _run(widget, qtbot)
    out = viewer.layers["tails (Con2Dis)"]
    assert out.data.shape == (3,) + field.shape
    assert out.data[0].max() > 0 and out.data[2].max() == 0
    assert np.array_equal(out.data[0] > 0, out.data[1] > 0)
    # rerun on frame 1 only: same layer, frame 0 kept
    viewer.dims.set_point(0, 1)
    widget.frames.value = tw.CURRENT
    _run(widget, qtbot)
    assert len(viewer.layers) == 2 and viewer.layers[-1] is out
    assert out.data[0].max() > 0 and out.data[1].max() > 0
    # the user paints on it: the next run must go to a new layer
    data = np.asarray(out.data).copy()
    data[2, :5, :5] = 99
    out.data = data
    _run(widget, qtbot)
    assert len(viewer.layers) == 3
    assert out.data[2, 0, 0] == 99


def test_cancel_leaves_the_viewer_unchanged(make_napari_viewer, qtbot, monkeypatch, field):
    def slow(masks, heads=None, *, params=None):
        for f in range(len(masks)):
            time.sleep(0.05)
            yield f + 1, len(masks)
        return []

    monkeypatch.setattr(tw, "iter_cluster_stack", slow)
    viewer = make_napari_viewer()
    viewer.add_labels(np.ones((60, 16, 16), np.uint8), name="tails")
    widget = _widget(viewer)
    widget.tails.value = viewer.layers["tails"]
    widget.runner.run_button.clicked.emit()
    qtbot.waitUntil(lambda: widget.runner.progress.value >= 1, timeout=30_000)
    widget.runner.cancel_button.clicked.emit()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=30_000)
    assert [layer.name for layer in viewer.layers] == ["tails"]


@pytest.mark.parametrize("case", ["no labels", "empty mask", "heads other size"])
def test_bad_input_gives_one_notification(make_napari_viewer, qtbot, monkeypatch, case):
    from napari_sperm._napari import background

    messages = []
    monkeypatch.setattr(tw, "show_error", messages.append)
    monkeypatch.setattr(background, "show_error", messages.append)
    viewer = make_napari_viewer()
    if case == "no labels":
        viewer.add_image(np.zeros((10, 10), np.uint8), name="image only")
    elif case == "empty mask":
        viewer.add_labels(np.zeros((40, 40), np.uint8), name="tails")
    else:
        viewer.add_labels(np.ones((40, 40), np.uint8), name="tails")
        viewer.add_labels(np.zeros((30, 30), np.int32), name="heads")
    widget = _widget(viewer)
    if case != "no labels":
        widget.tails.value = viewer.layers["tails"]
    if case == "heads other size":
        widget.heads.value = viewer.layers["heads"]
    _run(widget, qtbot)
    assert len(messages) == 1 and messages[0].startswith("napari-sperm:"), messages
    assert "Traceback" not in messages[0]
    assert not any("Con2Dis" in layer.name for layer in viewer.layers)


def test_rebuild_from_edited_centrelines(make_napari_viewer, qtbot, field):
    viewer = make_napari_viewer()
    viewer.add_labels(_tail_union(field).astype(np.uint8), name="tails")
    viewer.add_labels(field.head_labels(), name="heads")
    widget = _widget(viewer)
    widget.tails.value = viewer.layers["tails"]
    widget.heads.value = viewer.layers["heads"]
    _run(widget, qtbot)
    paths = viewer.layers["tails centrelines"]
    out = viewer.layers["tails (Con2Dis)"]
    keep = int(np.argmax(paths.features["length"]))
    kept_id = int(paths.features["label"][keep])
    paths.selected_data = set(range(paths.nshapes)) - {keep}
    paths.remove_selected()  # the user deletes every path but the longest
    assert paths.nshapes == 1
    widget.rebuild.clicked.emit()
    labels = np.asarray(out.data)
    assert set(np.unique(labels)) == {0, kept_id}
    line = np.rint(np.asarray(paths.data[0])).astype(int)
    assert np.mean(labels[line[:, 0], line[:, 1]] == kept_id) > 0.9


def test_defaults_pick_the_layers_named_tails_and_heads(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_labels(np.zeros((8, 8), np.int32), name="my heads")
    viewer.add_labels(np.zeros((8, 8), np.int32), name="other")
    viewer.add_labels(np.zeros((8, 8), np.int32), name="painted tails")
    widget = _widget(viewer)
    assert widget.tails.value is viewer.layers["painted tails"]
    assert widget.heads.value is viewer.layers["my heads"]
