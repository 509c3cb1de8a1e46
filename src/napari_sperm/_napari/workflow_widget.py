"""Dock widget *Sperm workflow*: detect, segment, review, export and retrain in one panel.

One image is chosen at the top and preselected in every step; a line under it counts the sperm of the
current frame and of the whole stack (paired, reviewed). Each step is the same widget that is also
available on its own from the Plugins menu.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from magicgui.widgets import ComboBox, Container, Label
from napari.layers import Image

from ..annotations.review import frame_counts
from ..io.errors import SpermInputError
from .annotation_layers import find_annotation_layers, stack_from_layers
from .detect_widget import DetectWidget
from .export_widget import ExportWidget
from .review_widget import ReviewWidget
from .segment_widget import SegmentWidget
from .train_widget import TrainWidget

if TYPE_CHECKING:
    import napari

__all__ = ["WorkflowWidget", "STEPS"]

# "&&" shows one "&" (a single "&" would be a Qt mnemonic)
STEPS = [
    "1 · Detect sperm",
    "2 · Segment heads && tails",
    "3 · Review && correct",
    "4 · Export COCO",
    "5 · Retrain detector",
]


class WorkflowWidget(Container):
    """The everyday path in one dock."""

    def __init__(self, viewer: napari.viewer.Viewer):
        from qtpy.QtWidgets import QToolBox

        self._viewer = viewer
        self.image = ComboBox(label="image", choices=self._image_choices)
        self.counts = Label(value="")
        self.detect = DetectWidget(viewer)
        self.segment = SegmentWidget(viewer)
        self.review = ReviewWidget(viewer)
        self.export = ExportWidget(viewer)
        self.train = TrainWidget(viewer)
        super().__init__(widgets=[self.image, self.counts])
        self.steps = QToolBox()
        for title, step in zip(STEPS, self._steps()):
            self.steps.addItem(step.native, title)
        self.native.layout().addWidget(self.steps)
        self.review.listeners.append(self.update_counts)
        self.image.changed.connect(self._image_changed)
        viewer.layers.events.inserted.connect(self._layers_changed)
        viewer.layers.events.removed.connect(self._layers_changed)
        self._image_changed()

    def _steps(self) -> tuple:
        return (self.detect, self.segment, self.review, self.export, self.train)

    def _image_choices(self, _widget=None) -> list[tuple[str, Image]]:
        return [(ly.name, ly) for ly in self._viewer.layers if isinstance(ly, Image)]

    def _layers_changed(self, event=None) -> None:
        self.image.reset_choices()
        for step in self._steps():
            step.reset_choices()
        self._image_changed()

    def _image_changed(self, *_) -> None:
        layer = self.image.value
        for step in self._steps():
            step.image.reset_choices()
            if layer is not None and layer in step.image.choices:
                step.image.value = layer
        if layer is not None:
            boxes = find_annotation_layers(self._viewer, layer)["boxes"]
            if boxes is not None and hasattr(self.segment, "boxes"):
                self.segment.boxes.reset_choices()
                if boxes in self.segment.boxes.choices:
                    self.segment.boxes.value = boxes
        self.update_counts()

    def update_counts(self) -> None:
        """Sperm in the current frame and in the whole image: total, paired, reviewed."""
        layer = self.image.value
        if layer is None:
            self.counts.value = "Open a TIFF stack or a sample (File > Open Sample > napari-sperm)."
            return
        found = find_annotation_layers(self._viewer, layer)
        if all(v is None for v in found.values()):
            self.counts.value = "No sperm yet: step 1 detects them."
            return
        try:
            stack = stack_from_layers(layer, **found)
        except SpermInputError as exc:
            self.counts.value = str(exc)
            return
        counts = frame_counts(stack)
        k = self.review.current_frame()
        here = counts[min(k, len(counts) - 1)]
        total = sum(c.cells for c in counts)
        text = f"{here.cells} sperm, {here.paired} paired, {here.reviewed} reviewed"
        if stack.is_stack:
            text = (
                f"frame {k}: {text} · all {len(counts)} frames: {total} sperm, "
                f"{sum(c.reviewed for c in counts)} reviewed"
            )
        self.counts.value = text
