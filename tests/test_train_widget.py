"""The Train detector dock in a real viewer: train from the corrected layers or a COCO file in the
background, switch the Detect widgets to the new weights, cancel, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_sperm._napari import train_widget as tw
from napari_sperm.synthetic import write_dataset

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("train-gui")
    return write_dataset(root / "gt", "phase-high", n_images=1, frames=3, seed=41, n_sperm=10)


def _widget(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("napari-sperm", "Train detector")
    return widget


def _run(widget, qtbot, timeout=240_000):
    widget.runner.run_button.clicked.emit()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=timeout)


def test_train_from_layers_switches_the_detect_widget(make_napari_viewer, qtbot, coco, tmp_path):
    viewer = make_napari_viewer()
    viewer.open(str(coco), plugin="napari-sperm")
    names = [ly.name for ly in viewer.layers]
    _, detect = viewer.window.add_plugin_dock_widget("napari-sperm", "Detect sperm")
    widget = _widget(viewer)
    widget.output.value = str(tmp_path / "mine.pt")
    widget.epochs.value = 1
    assert widget.source.value == tw.LAYERS and widget.image.value is viewer.layers[0]
    _run(widget, qtbot)
    assert (tmp_path / "mine.pt").is_file() and (tmp_path / "mine.json").is_file()
    report = json.loads((tmp_path / "mine.json").read_text())
    assert report["train_data"]["images"] + report["val_data"]["images"] == 3  # the 3 frames
    assert "AP50" in widget.result_label.value
    assert str(detect.weights.value) == str(tmp_path / "mine.pt")
    assert [ly.name for ly in viewer.layers] == names  # training adds and changes no layer
    # the Detect widget loads the new file (not a cached default model)
    assert detect._detector(detect._weights_path(), "cpu").path == tmp_path / "mine.pt"


def test_train_from_a_coco_file(make_napari_viewer, qtbot, coco, tmp_path):
    viewer = make_napari_viewer()
    widget = _widget(viewer)
    widget.source.value = tw.FILE
    assert not widget.coco.native.isHidden() and widget.image.native.isHidden()
    widget.coco.value = str(coco)
    widget.output.value = str(tmp_path / "file.pt")
    widget.epochs.value = 1
    _run(widget, qtbot)
    assert (tmp_path / "file.pt").is_file()
    assert widget.last_result is not None and widget.last_result.summary["epochs_run"] == 1
    assert len(viewer.layers) == 0


def test_cancel_writes_no_weights(make_napari_viewer, qtbot, coco, tmp_path):
    viewer = make_napari_viewer()
    viewer.open(str(coco), plugin="napari-sperm")
    widget = _widget(viewer)
    widget.output.value = str(tmp_path / "never.pt")
    widget.epochs.value = 50
    widget.runner.run_button.clicked.emit()
    qtbot.waitUntil(lambda: widget.runner.progress.value >= 1, timeout=60_000)
    widget.runner.cancel_button.clicked.emit()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=60_000)
    assert not (tmp_path / "never.pt").exists()
    assert "cancelled" in widget.runner.status.value


@pytest.mark.parametrize("case", ["no output", "no boxes", "not json"])
def test_bad_input_gives_one_notification(make_napari_viewer, monkeypatch, tmp_path, case):
    messages = []
    monkeypatch.setattr(tw, "show_error", messages.append)
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((2, 64, 64), np.uint8), name="plain")
    widget = _widget(viewer)
    if case != "no output":
        widget.output.value = str(tmp_path / "x.pt")
    if case == "not json":
        widget.source.value = tw.FILE
        widget.coco.value = str(tmp_path / "data.csv")
    widget.runner.run_button.clicked.emit()
    assert len(messages) == 1 and messages[0].startswith("napari-sperm:")
    assert not widget.runner.running and not (tmp_path / "x.pt").exists()


def test_reviewed_only_exports_just_the_reviewed_frames(
    make_napari_viewer, coco, tmp_path, monkeypatch
):
    from napari_sperm._napari.cell_edits import set_reviewed

    messages = []
    monkeypatch.setattr(tw, "show_error", messages.append)
    viewer = make_napari_viewer()
    viewer.open(str(coco), plugin="napari-sperm")
    image, boxes = viewer.layers[0], viewer.layers[1]
    widget = _widget(viewer)
    widget.reviewed_only.value = True
    widget.output.value = str(tmp_path / "r.pt")
    widget.runner.run_button.clicked.emit()  # nothing reviewed yet: one message, no run
    assert len(messages) == 1 and "reviewed" in messages[0] and not widget.runner.running
    feats = boxes.features
    for frame in (0, 2):
        sid = int(feats["sperm_id"][np.asarray(feats["frame"]) == frame].iloc[0])
        assert set_reviewed(viewer, image, frame, sid)
    path = widget._export_layers(tmp_path / "exported")
    ds = json.loads(path.read_text())
    assert sorted(im["source_frame"] for im in ds["images"]) == [0, 2]
