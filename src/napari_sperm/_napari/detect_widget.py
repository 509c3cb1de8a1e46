"""Dock widget *Detect sperm*: run the detector on an image layer and draw the boxes as Shapes."""

from __future__ import annotations

import os
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSlider, SpinBox
from napari.layers import Image
from napari.utils.notifications import show_error, show_info

from ..detection.detector import DEFAULT_FLIPS
from ..detection.device import available_devices
from ..detection.inputs import frame_stack
from ..io.errors import SpermInputError
from ..segmentation.params import WEAK_SCORE_THRESHOLD
from .background import BackgroundRunner
from .detection_layer import (
    detection_layer_kwargs,
    find_detection_layer,
    is_unedited,
    merge_frames,
    merge_weak_heads,
    shapes_from_detections,
    split_weak_heads,
    stamp,
)
from .flips_choice import flips_choice
from .placement import current_frame

if TYPE_CHECKING:
    import napari

__all__ = ["DETECT_WIDGETS", "DetectWidget"]

DETECT_WIDGETS: weakref.WeakSet = weakref.WeakSet()
"""Every live Detect widget (the Train widget points them at the weights it writes)."""

CURRENT, ALL = "current frame", "all frames"


class DetectWidget(Container):
    """Detect sperm heads and whole cells in an image layer (single image or stack).

    Writes a Shapes layer of rectangles, one per detection, on the right frame, with a features
    table (``score``, ``class``, ``frame``, ``sperm_id``) and colours by class. Running again
    replaces the layer this widget made, unless it was edited: edits are never overwritten.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self.image = ComboBox(
            label="image", choices=self._image_choices, tooltip="image layer to search"
        )
        self.frames = ComboBox(label="frames", choices=[ALL, CURRENT], value=ALL)
        self.score = FloatSlider(label="score threshold", value=0.3, min=0.01, max=0.99, step=0.01)
        self.device = ComboBox(
            label="device",
            choices=available_devices(),
            value="auto",
            tooltip="auto: CUDA, then MPS, then CPU",
        )
        self.weights = FileEdit(
            label="weights",
            mode="r",
            filter="*.pt",
            value="",
            tooltip="leave empty for the shipped default model",
        )
        self.batch = SpinBox(label="batch size", value=4, min=1, max=64)
        self.flips = flips_choice(
            "flips", DEFAULT_FLIPS, "detector", "steadier head scores and boxes"
        )
        self.refine = CheckBox(
            text="fit head boxes to the heads' outlines",
            value=True,
            tooltip="tighter head boxes, found in the image around each detected head, each "
            "edge placed on the head's edge by a small classifier (some 5-12 ms per frame on "
            "the CPU); off: the network's own boxes",
        )
        self.replace = CheckBox(
            text="replace my previous detections (never edited ones)", value=True
        )
        self.runner = BackgroundRunner("Detect sperm", self._job)
        super().__init__(
            widgets=[
                self.image,
                self.frames,
                self.score,
                self.device,
                self.weights,
                self.batch,
                self.flips,
                self.refine,
                self.replace,
                self.runner,
            ]
        )
        self._detectors: dict[tuple[str, str, int], Any] = {}
        viewer.layers.events.inserted.connect(self.reset_choices)
        viewer.layers.events.removed.connect(self.reset_choices)
        viewer.layers.events.changed.connect(self.reset_choices)
        DETECT_WIDGETS.add(self)

    def _image_choices(self, _widget=None) -> list[tuple[str, Image]]:
        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Image)]

    def _weights_path(self) -> str | None:
        value = str(self.weights.value or "").strip()
        return None if value in ("", ".") else value

    def _detector(self, weights: str | None, device: str):
        # the file's time stamp too: retraining into the same file must not reuse the old model
        stamp = os.stat(weights).st_mtime_ns if weights and os.path.isfile(weights) else 0
        key = (weights or "", device, stamp)
        if key not in self._detectors:
            from ..detection.detector import load_detector

            self._detectors[key] = load_detector(weights, device)
        return self._detectors[key]

    def _job(self):
        layer = self.image.value
        if layer is None:
            show_error("napari-sperm: open an image layer (a single image or a stack) first.")
            return None
        data = layer.data[0] if layer.multiscale else layer.data
        try:
            frames, is_stack = frame_stack(data, layer.rgb)
            if frames.shape[0] == 0 or 0 in frames.shape[1:3]:
                raise SpermInputError(
                    f"layer '{layer.name}' is empty (shape {tuple(data.shape)}); nothing to detect."
                )
        except SpermInputError as exc:
            show_error(f"napari-sperm: {exc}")
            return None
        first = 0
        if is_stack and self.frames.value == CURRENT:
            first = current_frame(self._viewer, layer, frames.shape[0])
            frames = frames[first : first + 1]
        threshold, batch = float(self.score.value), int(self.batch.value)
        flips, refine = int(self.flips.value), bool(self.refine.value)
        weights, device = self._weights_path(), str(self.device.value)
        replace = bool(self.replace.value)
        only_current = is_stack and self.frames.value == CURRENT

        # Head boxes from WEAK_SCORE_THRESHOLD up to the threshold are not drawn but kept in the
        # layer's metadata for Segment heads & tails (weak heads, kept there only with a tail).
        lowest = min(threshold, WEAK_SCORE_THRESHOLD)

        def work():
            detector = self._detector(weights, device)
            results = yield from detector.iter_detect(frames, lowest, batch, flips, refine)
            for r in results:
                r.frame += first
            return results

        def layer_kwargs(features, weak):
            return detection_layer_kwargs(
                layer,
                features,
                threshold,
                weights,
                flips=flips,
                refine_boxes=refine,
                weak_heads=weak,
            )

        def done(results):
            results, weak = split_weak_heads(results, threshold)
            shapes, features = shapes_from_detections(results, is_stack)
            kwargs = layer_kwargs(features, weak)
            previous = find_detection_layer(self._viewer, layer) if replace else None
            if previous is not None and not is_unedited(previous):
                show_info(
                    f"napari-sperm: '{previous.name}' was edited, so it is kept and the new detections go to a new layer."
                )
                previous = None
            if previous is None:
                stamp(self._viewer.add_shapes(shapes, **kwargs))
            else:
                if only_current:
                    shapes, features = merge_frames(previous, shapes, features, {first})
                    weak = merge_weak_heads(previous, weak, {first})
                    kwargs = layer_kwargs(features, weak)
                _replace_layer_contents(previous, shapes, kwargs)
                stamp(previous)
            n_heads = (
                int((np.asarray(features["class"]) == "head").sum())
                if len(features["class"])
                else 0
            )
            show_info(f"napari-sperm: {n_heads} heads in {len(results)} frame(s)")

        return work, done


def _replace_layer_contents(layer, shapes, kwargs) -> None:
    """Put new detections into an existing (unedited) detections layer, keeping its place."""
    layer.data = []
    if shapes:
        layer.add_rectangles(shapes, edge_color=kwargs["edge_color"], face_color="transparent")
    layer.features = kwargs["features"]
    layer.metadata = kwargs["metadata"]
