"""The everyday path in the Sperm workflow dock, on the sample stack: detect, segment, reject one
sperm, paint a correction, accept one, export, re-import, compare, retrain the detector.

With ``NAPARI_SPERM_TUTORIAL_SHOTS=<folder>`` set, each step's window is saved there as
``tutorial-<n>-<step>.png`` (``scripts/screenshots.py tutorial`` does this for ``docs/images``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from napari_sperm._napari.annotation_layers import find_annotation_layers, stack_from_layers
from napari_sperm._napari.review_widget import COLUMNS
from napari_sperm.annotations.export import export_coco

pytestmark = pytest.mark.gui


def _shot(viewer, name: str) -> None:
    folder = os.environ.get("NAPARI_SPERM_TUTORIAL_SHOTS")
    if not folder:
        return
    from qtpy.QtWidgets import QApplication

    for _ in range(5):
        QApplication.processEvents()
    Path(folder).mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(Path(folder) / f"tutorial-{name}.png"), canvas_only=False)


def _clear_toasts(viewer) -> None:
    """Close notification pop-ups, so each step's picture shows only its own."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()


def _run(widget, qtbot, timeout=240_000):
    _clear_toasts(getattr(widget._viewer, "__wrapped__", widget._viewer))
    widget.runner.run_button.clicked.emit()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=timeout)


def _cells(layer, frame, sid):
    return int((np.asarray(layer.data[frame]) == sid).sum())


def test_full_path_on_the_sample_stack(make_napari_viewer, qtbot, tmp_path):
    shots = bool(os.environ.get("NAPARI_SPERM_TUTORIAL_SHOTS"))
    viewer = make_napari_viewer(show=shots)
    if shots:
        viewer.window._qt_window.resize(1500, 950)
    viewer.open_sample("napari-sperm", "phase_stack")
    image = viewer.layers[0]
    _, flow = viewer.window.add_plugin_dock_widget("napari-sperm", "Sperm workflow")
    assert flow.image.value is image and flow.detect.image.value is image
    _shot(viewer, "0-open")

    # 1. detect
    flow.steps.setCurrentIndex(0)
    _run(flow.detect, qtbot)
    found = find_annotation_layers(viewer, image)
    boxes = found["boxes"]
    assert boxes is not None and len(boxes.data) > 50
    assert flow.segment.boxes.value is boxes  # preselected for the next step
    _shot(viewer, "1-detect")

    # 2. segment
    flow.steps.setCurrentIndex(1)
    _run(flow.segment, qtbot)
    found = find_annotation_layers(viewer, image)
    heads, tails = found["heads"], found["tails"]
    assert heads is not None and tails is not None
    _shot(viewer, "2-segment")

    # 3. review frame 0: reject the first sperm, paint a tail correction, accept one
    viewer.dims.set_point(0, 0)
    flow.steps.setCurrentIndex(2)
    review = flow.review
    review.refresh()
    assert review.image.value is image
    ids = list(review._ids)
    assert len(ids) > 5
    gone = ids[0]
    assert _cells(heads, 0, gone) > 0
    review.select_row(0)
    review.reject_current()
    assert _cells(heads, 0, gone) == 0 and _cells(tails, 0, gone) == 0
    assert gone not in review._ids
    feats = boxes.features
    in_frame0 = np.asarray(feats["frame"]) == 0
    assert gone not in set(np.asarray(feats["sperm_id"])[in_frame0])

    paired = [c for c in stack_from_layers(image, **found).frames[0].sorted_cells() if c.paired]
    fix = paired[0].sperm_id
    r0, c0 = paired[0].tail.offset
    rr, cc = np.nonzero(paired[0].tail.mask)
    patch = (slice(r0 + rr[0], r0 + rr[0] + 3), slice(c0 + cc[0], c0 + cc[0] + 3))
    tails.data[0][patch] = fix  # "paint" a 3x3 correction with the cell's id
    tails.refresh()

    accept = review._ids.index(fix)
    review.select_row(accept)
    review.accept_current()
    assert review.table.value["data"][accept][COLUMNS.index("reviewed")] == "yes"
    assert f"{len(review._ids)} sperm" in review.summary.value
    assert "1 reviewed" in flow.counts.value or "reviewed" in flow.counts.value
    _shot(viewer, "3-review")

    # least confident first: the same cells, by whole-cell score, lowest first
    review.by_confidence.value = True
    col = COLUMNS.index("cell score")
    shown = [float(row[col]) for row in review.table.value["data"] if row[col] != ""]
    assert len(shown) > 5 and shown == sorted(shown) and shown[0] < shown[-1]
    assert sorted(review._ids) == sorted(ids[1:])
    review.by_confidence.value = False
    assert review._ids == sorted(review._ids)

    # 4. export
    flow.steps.setCurrentIndex(3)
    out = tmp_path / "export"
    flow.export.folder.value = str(out)
    _run(flow.export, qtbot)
    path = out / "annotations.json"
    assert path.exists()
    _shot(viewer, "4-export")
    ds = json.loads(path.read_text())
    assert len(ds["images"]) == 20
    coco = COCO(str(path))
    img0 = next(i for i in ds["images"] if i["source_frame"] == 0)
    anns = coco.loadAnns(coco.getAnnIds(imgIds=img0["id"]))
    assert all(a["attributes"]["sperm_id"] != gone for a in anns)
    reviewed = {a["attributes"]["sperm_id"] for a in anns if a["attributes"]["reviewed"]}
    assert reviewed == {fix}
    tail_ann = next(a for a in anns if a["category_id"] == 3 and a["attributes"]["sperm_id"] == fix)
    tail_mask = coco.annToMask(tail_ann).astype(bool)
    assert tail_mask[patch].all()
    head_ann = next(a for a in anns if a["category_id"] == 2 and a["attributes"]["sperm_id"] == fix)
    np.testing.assert_array_equal(
        coco.annToMask(head_ann).astype(bool), np.asarray(heads.data[0]) == fix
    )

    # a second export to the same folder asks first; saying no writes nothing
    before = path.read_bytes()
    flow.export.confirm_overwrite = lambda _p: False
    _run(flow.export, qtbot)
    assert path.read_bytes() == before

    # 5. re-import and export again: the same annotations
    n_before = len(viewer.layers)
    _clear_toasts(viewer)
    flow.export.import_file.value = str(path)
    flow.export.import_coco()
    assert len(viewer.layers) == n_before + 4
    new_image = viewer.layers[n_before]
    again = find_annotation_layers(viewer, new_image)
    assert all(v is not None for v in again.values())
    assert new_image.data.shape == image.data.shape
    _shot(viewer, "5-reimport")
    second = export_coco([stack_from_layers(new_image, **again)], tmp_path / "again")
    ds2 = json.loads(second.path.read_text())
    assert ds2["images"] == ds["images"]
    assert ds2["annotations"] == ds["annotations"]

    # 6. retrain the detector on the export; Detect then uses the new weights
    flow.steps.setCurrentIndex(4)
    train = flow.train
    train.source.value = "COCO file"
    train.coco.value = str(path)
    train.output.value = str(tmp_path / "my-detector.pt")
    train.epochs.value = 2
    _run(train, qtbot)
    assert (tmp_path / "my-detector.pt").is_file()
    report = json.loads((tmp_path / "my-detector.json").read_text())
    assert report["epochs_run"] == 2
    assert report["train_data"]["images"] + report["val_data"]["images"] == 20
    assert "validation head AP50" in train.result_label.value
    assert str(flow.detect.weights.value) == str(tmp_path / "my-detector.pt")
    _shot(viewer, "6-retrain")


def test_review_table_follows_the_frame_and_hand_drawn_boxes_get_ids(
    make_napari_viewer, qtbot, tmp_path
):
    from napari_sperm._napari.cell_edits import set_reviewed
    from napari_sperm._napari.detection_layer import (
        detection_layer_kwargs,
        is_unedited,
        shapes_from_detections,
        stamp,
    )
    from napari_sperm.detection.results import FrameDetections
    from napari_sperm.synthetic import make_stack

    viewer = make_napari_viewer()
    image = viewer.add_image(make_stack("phase-high", n_frames=2, seed=4).images, name="s")
    _, review = viewer.window.add_plugin_dock_widget("napari-sperm", "Review sperm")
    # a boxes layer as Detect sperm makes it
    dets = [
        FrameDetections(
            np.array([[10.0, 10, 8, 6], [40, 40, 8, 6]]),
            np.array([0.9, 0.8]),
            np.array([2, 2]),
            np.array([1, 2]),
            frame=0,
        ),
        FrameDetections(
            np.array([[20.0, 20, 8, 6]]), np.array([0.7]), np.array([2]), np.array([1]), frame=1
        ),
    ]
    shapes, feats = shapes_from_detections(dets, True)
    boxes = viewer.add_shapes(shapes, **detection_layer_kwargs(image, feats, 0.3, None))
    stamp(boxes)  # as Detect sperm leaves it: a rerun may replace it while unedited
    review.refresh()
    assert review._ids == [1, 2]
    assert is_unedited(boxes)
    assert set_reviewed(viewer, image, 0, 2)
    assert not is_unedited(boxes)  # a review flag is the user's work: never replaced silently
    viewer.dims.set_point(0, 1)
    assert review._ids == [1]
    # draw a box by hand on frame 1: it gets a new id and is marked reviewed
    boxes.add_rectangles([np.array([[1, 5, 5], [1, 5, 15], [1, 12, 15], [1, 12, 5]], float)])
    feats = boxes.features
    assert int(feats["sperm_id"].iloc[-1]) == 3
    assert int(feats["frame"].iloc[-1]) == 1
    assert bool(feats["reviewed"].iloc[-1])
    review.refresh()
    assert review._ids == [1, 3]
