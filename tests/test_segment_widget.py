"""The Segment heads & tails dock widget: Labels layers keyed by sperm id, features, frames,
reruns that never clobber edits, cancel, bad input, and the SAM fallback message."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from napari_sperm._napari import segment_widget as sw
from napari_sperm.synthetic import make_field

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def field():
    return make_field("phase-high", seed=6, n_sperm=5)


def _boxes_layer(viewer, fields, name="cells detections"):
    """A detections-style Shapes layer holding the truth head boxes (frame axis for stacks)."""
    shapes, ids, frames = [], [], []
    for k, f in enumerate(fields):
        for s in f.sperm:
            box = s.head_box()
            if box is None:
                continue
            x, y, w, h = box
            corners = np.array([[y, x], [y, x + w], [y + h, x + w], [y + h, x]], float) - 0.5
            if len(fields) > 1:
                corners = np.column_stack([np.full(4, k, float), corners])
            shapes.append(corners)
            ids.append(s.sperm_id)
            frames.append(k)
    return viewer.add_shapes(
        shapes,
        shape_type="rectangle",
        name=name,
        features={
            "score": [0.9] * len(ids),
            "class": ["head"] * len(ids),
            "frame": frames,
            "sperm_id": ids,
        },
    )


def _widget(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("napari-sperm", "Segment heads & tails")
    return widget


def _run(widget, qtbot):
    widget.runner.run_button.clicked.emit()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=120_000)


def test_heads_and_tails_layers_share_sperm_ids(make_napari_viewer, qtbot, field):
    viewer = make_napari_viewer()
    viewer.add_image(field.image, name="cells", scale=(0.2, 0.2))
    _boxes_layer(viewer, [field])
    widget = _widget(viewer)
    _run(widget, qtbot)
    heads, tails = viewer.layers["heads"], viewer.layers["tails"]
    assert tuple(heads.scale) == (0.2, 0.2)
    truth = field.head_labels()
    for s in field.sperm:
        if s.head.area == 0:
            continue
        inside = np.asarray(heads.data)[truth == s.sperm_id]
        assert np.mean(inside == s.sperm_id) > 0.7
    feats = heads.features
    assert {"sperm_id", "head_area", "tail_length", "paired", "engine"} <= set(feats.columns)
    assert (feats["engine"] == "classic").all()
    paired = feats[feats["paired"]]
    assert len(paired) >= 3
    for sid in paired["sperm_id"]:
        assert (np.asarray(tails.data) == sid).any()


def test_stack_current_frame_and_edits_are_kept(make_napari_viewer, qtbot, field):
    other = make_field("phase-high", seed=7, n_sperm=4)
    viewer = make_napari_viewer()
    viewer.add_image(np.stack([field.image, other.image]), name="cells")
    _boxes_layer(viewer, [field, other])
    widget = _widget(viewer)
    _run(widget, qtbot)
    heads = viewer.layers["heads"]
    assert heads.data.shape == (2,) + field.shape
    assert heads.data[0].max() > 0 and heads.data[1].max() > 0
    cells = heads.metadata["napari_sperm"]["cells"]
    assert set(cells["frame"]) == {0, 1} and len(heads.features) == 0  # ids repeat across frames
    # rerun on frame 1 only: same layers, frame 0 untouched
    before0 = np.asarray(heads.data[0]).copy()
    viewer.dims.set_point(0, 1)
    widget.frames.value = sw.CURRENT
    _run(widget, qtbot)
    assert len(viewer.layers) == 4 and viewer.layers["heads"] is heads
    assert np.array_equal(heads.data[0], before0)
    assert set(heads.metadata["napari_sperm"]["cells"]["frame"]) == {0, 1}
    # the user paints on the tails: the next run leaves them alone
    tails = viewer.layers["tails"]
    data = np.asarray(tails.data).copy()
    data[0, :4, :4] = 77
    tails.data = data
    _run(widget, qtbot)
    assert tails.data[0, 0, 0] == 77
    assert len(viewer.layers) == 5


def test_cancel_leaves_viewer_unchanged(make_napari_viewer, qtbot, monkeypatch, field):
    def slow(frames, dets, **kwargs):
        for f in range(len(frames)):
            time.sleep(0.05)
            yield f + 1, len(frames)
        return []

    monkeypatch.setattr(sw, "iter_segment", slow)
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((60,) + field.shape, np.uint8), name="cells")
    _boxes_layer(viewer, [field] * 60)
    widget = _widget(viewer)
    widget.runner.run_button.clicked.emit()
    qtbot.waitUntil(lambda: widget.runner.progress.value >= 1, timeout=30_000)
    widget.runner.cancel_button.clicked.emit()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=30_000)
    assert [layer.name for layer in viewer.layers] == ["cells", "cells detections"]


@pytest.mark.parametrize("case", ["no image", "no detections", "empty stack"])
def test_bad_input_gives_a_notification(make_napari_viewer, monkeypatch, case, field):
    messages = []
    monkeypatch.setattr(sw, "show_error", messages.append)
    viewer = make_napari_viewer()
    if case == "no detections":
        viewer.add_image(field.image, name="cells")
    elif case == "empty stack":
        viewer.add_image(np.zeros((0, 16, 16), np.uint8), name="cells")
        _boxes_layer(viewer, [field])
    widget = _widget(viewer)
    widget.runner.run_button.clicked.emit()
    assert len(messages) == 1 and messages[0].startswith("napari-sperm:")
    assert not widget.runner.running


def test_sam_without_checkpoint_falls_back_to_classic(
    make_napari_viewer, qtbot, monkeypatch, tmp_path, field
):
    warnings = []
    monkeypatch.setattr(sw, "show_warning", warnings.append)
    monkeypatch.delenv("NAPARI_SPERM_SAM_CHECKPOINT", raising=False)
    monkeypatch.setenv("NAPARI_SPERM_CACHE", str(tmp_path / "empty-cache"))
    viewer = make_napari_viewer()
    viewer.add_image(field.image, name="cells")
    _boxes_layer(viewer, [field])
    widget = _widget(viewer)
    widget.engine.value = "sam"
    assert not widget.checkpoint.native.isHidden()  # SAM fields show only for the sam engine
    _run(widget, qtbot)
    assert len(warnings) == 1 and "classic" in warnings[0]
    assert (viewer.layers["heads"].features["engine"] == "classic").all()


def test_tail_flips_reach_the_tail_network_and_show_only_for_it(
    make_napari_viewer, qtbot, monkeypatch, field
):
    from napari_sperm.segmentation.tailnet import TailFinder

    seen = []
    real = TailFinder.probability

    def spy(self, image, flips=None):
        seen.append(self.flips if flips is None else flips)
        return real(self, image, flips)

    monkeypatch.setattr(TailFinder, "probability", spy)
    viewer = make_napari_viewer()
    viewer.add_image(field.image, name="cells")
    _boxes_layer(viewer, [field])
    widget = _widget(viewer)
    assert widget.tail_flips.value == 4 and not widget.tail_flips.native.isHidden()
    widget.tail_finder.value = "ridge"
    assert widget.tail_flips.native.isHidden()
    widget.tail_finder.value = "net"
    widget.engine.value = "sam"
    assert widget.tail_flips.native.isHidden()
    widget.engine.value = "classic"
    assert not widget.tail_flips.native.isHidden()
    widget.tail_flips.value = 1
    _run(widget, qtbot)
    assert seen == [1]
    assert (viewer.layers["heads"].features["paired"]).sum() >= 3


def test_sam_engine_runs_end_to_end_with_a_tiny_model(make_napari_viewer, qtbot, field):
    from napari_sperm.segmentation.sam import tiny_sam

    viewer = make_napari_viewer()
    viewer.add_image(field.image, name="cells")
    _boxes_layer(viewer, [field])
    widget = _widget(viewer)
    widget.engine.value = "sam"
    widget._sam_cache[("vit_b", "", "auto")] = tiny_sam()  # random weights: plumbing, not accuracy
    _run(widget, qtbot)
    feats = viewer.layers["heads"].features
    assert (feats["engine"] == "sam").all()
    n_boxes = sum(1 for s in field.sperm if s.head_box() is not None)
    assert (feats["sperm_id"] <= max(s.sperm_id for s in field.sperm)).sum() == n_boxes


def test_lazy_stack_gets_disk_backed_labels_equal_to_in_memory_ones(
    make_napari_viewer, qtbot, field, tmp_path, monkeypatch
):
    import dask.array as da

    from napari_sperm._napari.label_volume import is_disk_backed

    monkeypatch.setenv("NAPARI_SPERM_SCRATCH", str(tmp_path))
    other = make_field("phase-high", seed=7, n_sperm=4)
    stack = np.stack([field.image, other.image])
    out = {}
    for lazy in (False, True):
        viewer = make_napari_viewer()
        data = da.from_array(stack, chunks=(1, *stack.shape[1:])) if lazy else stack
        viewer.add_image(data, name="cells")
        _boxes_layer(viewer, [field, other])
        _run(_widget(viewer), qtbot)
        out[lazy] = {n: viewer.layers[n].data for n in ("heads", "tails")}
    for name in ("heads", "tails"):
        assert not is_disk_backed(out[False][name]) and is_disk_backed(out[True][name])
        np.testing.assert_array_equal(np.asarray(out[True][name]), out[False][name])
        assert out[True][name].max() > 0
    assert list(tmp_path.iterdir()) == []  # the scratch files are unlinked once mapped


def test_weak_heads_from_the_detections_metadata_need_a_tail(make_napari_viewer, qtbot, field):
    """Detect sperm keeps head boxes scoring under its threshold in the layer's metadata; Segment
    keeps such a head only when a tail that no drawn head took leads to it."""
    viewer = make_napari_viewer()
    viewer.add_image(field.image, name="cells")
    cells = [s for s in field.sperm if s.head.area > 0 and s.tail.area >= 80]
    weak_cell = cells[0]
    drawn = [s for s in field.sperm if s is not weak_cell]
    layer = _boxes_layer(viewer, [dataclasses.replace(field, sperm=drawn)])
    free = [5.0, 5.0, 12.0, 8.0]  # empty background: no tail leads there
    layer.metadata = {
        "napari_sperm": {
            "weak_heads": [
                {
                    "frame": 0,
                    "box": list(map(float, weak_cell.head_box())),
                    "score": 0.2,
                    "sperm_id": 1,
                },
                {"frame": 0, "box": free, "score": 0.25, "sperm_id": 2},
            ]
        }
    }
    widget = _widget(viewer)
    _run(widget, qtbot)
    feats = viewer.layers["heads"].features
    weak_rows = feats[(feats["score"] < 0.3) & (feats["head_area"] > 0)]
    assert len(weak_rows) == 1 and bool(weak_rows["paired"].iloc[0])
    sid = int(weak_rows["sperm_id"].iloc[0])
    assert sid > max(s.sperm_id for s in drawn)  # renumbered above the drawn boxes' ids
    inside = np.asarray(viewer.layers["heads"].data)[weak_cell.head.to_full(field.shape)]
    assert np.mean(inside == sid) > 0.7
    # weak heads off (from = the min head score): only the drawn heads
    widget.weak_score.value = widget.score.value
    widget.replace.value = True
    _run(widget, qtbot)
    feats = viewer.layers["heads"].features
    assert (feats[feats["head_area"] > 0]["score"] >= 0.3).all()
    assert len(feats[feats["head_area"] > 0]) == len(drawn) - sum(s.head.area == 0 for s in drawn)
