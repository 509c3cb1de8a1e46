"""The Detect sperm dock widget in a real viewer: layers, frames, features, replace, cancel, errors.

Most tests give the widget a scripted detector with known output, so the layer logic is checked
exactly; one test runs the shipped default model end to end.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from napari_sperm._napari import detect_widget as dw
from napari_sperm.detection import FrameDetections

pytestmark = pytest.mark.gui


class ScriptedDetector:
    """Per frame f: one head box at (10 + f, 20) and its cell box, ids 1; optional delay per frame."""

    device = "cpu"

    def __init__(self, delay=0.0):
        self.delay = delay
        self.calls = []
        self.flips = []
        self.refine = []

    def iter_detect(self, frames, score_threshold=0.3, batch_size=4, flips=None, refine=None):
        self.calls.append(len(frames))
        self.flips.append(flips)
        self.refine.append(refine)
        out = []
        for f in range(len(frames)):
            time.sleep(self.delay)
            out.append(
                FrameDetections(
                    [[20, 10 + f, 8, 6], [15, 5 + f, 40, 30]], [0.9, 0.8], [2, 1], [1, 1], frame=f
                )
            )
            yield f + 1, len(frames)
        return out


def _widget(viewer, detector):
    _, widget = viewer.window.add_plugin_dock_widget("napari-sperm", "Detect sperm")
    widget._detectors[("", "auto", 0)] = detector
    return widget


def _run(widget, qtbot):
    widget.runner.run_button.clicked.emit()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=60_000)


def test_boxes_land_on_their_frames_with_features(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((3, 64, 80), np.uint16), name="movie", scale=(1, 0.5, 0.5))
    widget = _widget(viewer, ScriptedDetector())
    widget.frames.value = dw.ALL
    _run(widget, qtbot)
    layer = viewer.layers["movie detections"]
    assert layer.nshapes == 6
    assert list(layer.features["frame"]) == [0, 0, 1, 1, 2, 2]
    assert list(layer.features["class"]) == ["head", "sperm"] * 3
    assert list(layer.features["sperm_id"]) == [1] * 6
    assert np.allclose(layer.features["score"], [0.9, 0.8] * 3)
    assert tuple(layer.scale) == (1, 0.5, 0.5)
    # Head box of frame 2: x 20..27, y 12..17 -> corners in (frame, row, col) with half-pixel edges.
    head2 = layer.data[4]
    assert np.allclose(head2[:, 0], 2)
    assert np.allclose(head2[:, 1].min(), 11.5) and np.allclose(head2[:, 1].max(), 17.5)
    assert np.allclose(head2[:, 2].min(), 19.5) and np.allclose(head2[:, 2].max(), 27.5)
    # Colours by class.
    assert not np.allclose(layer.edge_color[0], layer.edge_color[1])


def test_flips_choice_reaches_the_detector(make_napari_viewer, qtbot):
    from napari_sperm.detection.detector import DEFAULT_FLIPS

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((64, 80), np.uint8), name="cells")
    detector = ScriptedDetector()
    widget = _widget(viewer, detector)
    assert widget.flips.value == DEFAULT_FLIPS == 2
    assert list(widget.flips.choices) == [1, 2, 4, 8]
    _run(widget, qtbot)
    meta = viewer.layers["cells detections"].metadata["napari_sperm"]
    assert (meta["flips"], meta["refine_boxes"]) == (2, True)
    widget.flips.value = 4
    _run(widget, qtbot)
    assert detector.flips == [2, 4]
    # fitting head boxes to outlines: on by default, passed through when unticked
    assert widget.refine.value is True
    widget.refine.value = False
    _run(widget, qtbot)
    assert detector.refine == [True, True, False]
    # the layer records the settings its boxes were made with (the rerun replaced its contents)
    meta = viewer.layers["cells detections"].metadata["napari_sperm"]
    assert (meta["flips"], meta["refine_boxes"]) == (4, False)
    assert len([ly for ly in viewer.layers if ly.name.startswith("cells detections")]) == 1


def test_current_frame_only_and_rerun_replaces_own_unedited_layer(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((4, 64, 80), np.uint8), name="movie")
    det = ScriptedDetector()
    widget = _widget(viewer, det)
    _run(widget, qtbot)
    assert viewer.layers["movie detections"].nshapes == 8
    viewer.dims.set_point(0, 2)
    widget.frames.value = dw.CURRENT
    _run(widget, qtbot)
    assert det.calls == [4, 1]
    assert len(viewer.layers) == 2  # replaced in place, no second layer
    layer = viewer.layers["movie detections"]
    assert layer.nshapes == 8
    assert sorted(layer.features["frame"]) == [0, 0, 1, 1, 2, 2, 3, 3]


def test_edited_layer_is_never_overwritten(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((64, 80), np.uint8), name="field")
    widget = _widget(viewer, ScriptedDetector())
    _run(widget, qtbot)
    first = viewer.layers["field detections"]
    first.add_rectangles(np.array([[0, 0], [0, 5], [5, 5], [5, 0]], float))  # the user adds a box
    n_before = first.nshapes
    _run(widget, qtbot)
    assert first.nshapes == n_before  # untouched
    assert len(viewer.layers) == 3
    assert viewer.layers[-1].nshapes == 2


def test_cancel_leaves_viewer_unchanged(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((50, 32, 32), np.uint8), name="long")
    widget = _widget(viewer, ScriptedDetector(delay=0.05))
    widget.runner.run_button.clicked.emit()
    qtbot.waitUntil(lambda: widget.runner.progress.value >= 1, timeout=30_000)
    widget.runner.cancel_button.clicked.emit()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=30_000)
    assert [layer.name for layer in viewer.layers] == ["long"]


@pytest.mark.parametrize("case", ["no image", "empty stack", "hyperstack"])
def test_bad_input_gives_a_notification(make_napari_viewer, qtbot, monkeypatch, case):
    messages = []
    monkeypatch.setattr(dw, "show_error", messages.append)
    viewer = make_napari_viewer()
    if case == "no image":
        viewer.add_labels(np.zeros((10, 10), np.int32), name="labels only")
    elif case == "empty stack":
        viewer.add_image(np.zeros((0, 16, 16), np.uint8), name="empty")
    else:
        viewer.add_image(np.zeros((2, 3, 16, 16), np.uint8), name="tz")
    det = ScriptedDetector()
    widget = _widget(viewer, det)
    widget.runner.run_button.clicked.emit()
    assert len(messages) == 1 and messages[0].startswith("napari-sperm:")
    assert det.calls == []
    assert not widget.runner.running


def test_image_choices_follow_the_layer_list(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = _widget(viewer, ScriptedDetector())
    assert widget.image.choices == ()
    viewer.add_image(np.zeros((8, 8)), name="a")
    viewer.add_labels(np.zeros((8, 8), int), name="not an image")
    assert [layer.name for layer in widget.image.choices] == ["a"]


def test_missing_weights_give_one_clean_notification(
    make_napari_viewer, qtbot, monkeypatch, tmp_path
):
    from napari_sperm._napari import background

    messages = []
    monkeypatch.setattr(background, "show_error", messages.append)
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((32, 32), np.uint8), name="field")
    _, widget = viewer.window.add_plugin_dock_widget("napari-sperm", "Detect sperm")
    widget.weights.value = tmp_path / "nope.pt"
    _run(widget, qtbot)
    assert len(messages) == 1
    assert "nope.pt" in messages[0] and "Traceback" not in messages[0]
    assert [layer.name for layer in viewer.layers] == ["field"]


class WeakDetector(ScriptedDetector):
    """Per frame: a head at 0.9 and one at 0.2, each with its cell box; records the threshold."""

    def __init__(self):
        super().__init__()
        self.thresholds = []

    def iter_detect(self, frames, score_threshold=0.3, batch_size=4, flips=None, refine=None):
        self.thresholds.append(score_threshold)
        out = []
        for f in range(len(frames)):
            boxes = [[20, 10 + f, 8, 6], [15, 5 + f, 40, 30], [50, 30, 8, 6], [45, 25, 30, 30]]
            out.append(FrameDetections(boxes, [0.9, 0.9, 0.2, 0.2], [2, 1, 2, 1], [1, 1, 2, 2], f))
            yield f + 1, len(frames)
        return out


def test_fainter_heads_are_kept_in_metadata_not_drawn(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((3, 64, 80), np.uint8), name="movie")
    det = WeakDetector()
    widget = _widget(viewer, det)
    _run(widget, qtbot)
    assert det.thresholds == [0.1]  # detected down to the weak-head score
    layer = viewer.layers["movie detections"]
    assert layer.nshapes == 6 and (np.asarray(layer.features["score"]) >= 0.3).all()
    weak = layer.metadata["napari_sperm"]["weak_heads"]
    assert [(w["frame"], w["box"]) for w in weak] == [(f, [50.0, 30.0, 8.0, 6.0]) for f in range(3)]
    assert [w["score"] for w in weak] == pytest.approx([0.2] * 3)
    # a rerun on one frame keeps the other frames' weak heads
    viewer.dims.set_point(0, 1)
    widget.frames.value = dw.CURRENT
    _run(widget, qtbot)
    weak = viewer.layers["movie detections"].metadata["napari_sperm"]["weak_heads"]
    assert sorted(w["frame"] for w in weak) == [0, 1, 2]
    # a threshold under the weak-head score: everything is drawn, nothing kept aside
    widget.frames.value = dw.ALL
    widget.score.value = 0.05
    _run(widget, qtbot)
    assert det.thresholds[-1] == 0.05
    assert viewer.layers["movie detections"].nshapes == 12
    assert viewer.layers["movie detections"].metadata["napari_sperm"]["weak_heads"] == []
