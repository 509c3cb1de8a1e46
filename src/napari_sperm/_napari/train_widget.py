"""Dock widget *Train detector*: fine-tune the detector on the corrected layers or a COCO file,
in the background, then point the Detect widgets at the new weights."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, SpinBox
from napari.layers import Image
from napari.utils.notifications import show_error, show_info

from ..detection.device import available_devices
from ..io.errors import SpermInputError
from ..training import TrainResult, TrainSettings, check_output, iter_train_from_coco
from .annotation_layers import find_annotation_layers, stack_from_layers
from .background import BackgroundRunner
from .detect_widget import DETECT_WIDGETS

if TYPE_CHECKING:
    import napari

__all__ = ["TrainWidget"]

LAYERS, FILE = "corrected layers", "COCO file"
INITS = ["default", "scratch"]


class TrainWidget(Container):
    """Train the detector from the current corrected layers (exported behind the scenes to a
    temporary COCO folder) or from a COCO file; validation AP50 is shown as it trains.

    When training finishes, every *Detect sperm* widget of this viewer switches to the new weights.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self.source = ComboBox(label="train on", choices=[LAYERS, FILE], value=LAYERS)
        self.image = ComboBox(
            label="image",
            choices=self._image_choices,
            tooltip="the image whose boxes (and heads) you corrected",
        )
        self.reviewed_only = CheckBox(
            text="only frames with reviewed sperm",
            value=False,
            tooltip="train on the frames where you accepted at least one cell (Review sperm)",
        )
        self.coco = FileEdit(label="COCO file", mode="r", filter="*.json", value="", visible=False)
        self.val = FileEdit(
            label="validation file",
            mode="r",
            filter="*.json",
            value="",
            tooltip="optional; without it 20 % of the images are held out",
        )
        self.output = FileEdit(label="save weights as", mode="w", filter="*.pt", value="")
        self.init = ComboBox(
            label="start from",
            choices=INITS,
            value="default",
            tooltip="default: fine-tune the shipped weights; scratch: random weights",
        )
        self.epochs = SpinBox(label="epochs (at most)", value=50, min=1, max=1000)
        self.device = ComboBox(label="device", choices=available_devices(), value="auto")
        self.runner = BackgroundRunner("Train detector", self._job)
        self.result_label = Label(value="")
        super().__init__(
            widgets=[
                self.source,
                self.image,
                self.reviewed_only,
                self.coco,
                self.val,
                self.output,
                self.init,
                self.epochs,
                self.device,
                self.runner,
                self.result_label,
            ]
        )
        self.last_result: TrainResult | None = None
        self.source.changed.connect(self._source_changed)
        viewer.layers.events.inserted.connect(self.reset_choices)
        viewer.layers.events.removed.connect(self.reset_choices)

    def _image_choices(self, *_: Any) -> list[tuple[str, Image]]:
        return [(ly.name, ly) for ly in self._viewer.layers if isinstance(ly, Image)]

    def _source_changed(self, value: str) -> None:
        self.image.visible = self.reviewed_only.visible = value == LAYERS
        self.coco.visible = value == FILE

    def _export_layers(self, folder: Path) -> Path:
        from ..annotations.export import export_coco

        img = self.image.value
        if img is None:
            raise SpermInputError("Open an image and detect or draw sperm boxes first.")
        found = find_annotation_layers(self._viewer, img)
        if found["boxes"] is None:
            raise SpermInputError(
                f"'{img.name}' has no detections layer to train on; run Detect sperm (and correct "
                "its boxes) first."
            )
        stack = stack_from_layers(img, **found)
        if self.reviewed_only.value:
            # frames without a reviewed cell are emptied, so the export leaves them out
            stack.frames = [
                fr if any(c.reviewed for c in fr.cells) else replace(fr, cells=[])
                for fr in stack.frames
            ]
            if not any(fr.cells for fr in stack.frames):
                raise SpermInputError(
                    f"No sperm of '{img.name}' is marked reviewed yet: accept cells in Review "
                    "sperm (Shift-Y), or untick 'only frames with reviewed sperm'."
                )
        return export_coco([stack], folder, force=True).path

    def _job(self):
        out_text = str(self.output.value or "").strip()
        if not out_text or out_text == ".":
            show_error("napari-sperm: choose where to save the new weights (a .pt file).")
            return None
        try:
            out = check_output(out_text, force=True)
            tmp = None
            if self.source.value == LAYERS:
                tmp = tempfile.TemporaryDirectory(prefix="napari-sperm-train-")
                train_json = self._export_layers(Path(tmp.name))  # layers read on the GUI thread
            else:
                train_json = str(self.coco.value or "").strip()
                if not train_json.lower().endswith(".json"):
                    raise SpermInputError("Choose the COCO .json file to train on.")
            val_text = str(self.val.value or "").strip()
            val_json = val_text if val_text.lower().endswith(".json") else None
        except SpermInputError as exc:
            show_error(f"napari-sperm: {exc}")
            return None
        settings = TrainSettings(
            init=str(self.init.value), epochs=int(self.epochs.value), device=str(self.device.value)
        )

        def work():  # yields (done, total, status text, kind): the runner shows the text
            try:
                return (
                    yield from iter_train_from_coco(
                        train_json, out, val_json=val_json, settings=settings
                    )
                )
            finally:
                if tmp is not None:
                    tmp.cleanup()

        def done(result: TrainResult):
            self.last_result = result
            final = result.summary["final"]
            text = (
                f"validation head AP50 {final['head_AP50']:.3f}, AR@100 "
                f"{final['head_AR100']:.3f} (best of {result.summary['epochs_run']} epochs)"
            )
            self.result_label.value = f"{result.weights.name}: {text}"
            self.runner.status.value = f"done: {text}"
            switched = use_weights_in_detect_widgets(self._viewer, result.weights)
            where = f"; {switched} Detect widget(s) now use it" if switched else ""
            show_info(f"napari-sperm: trained {result.weights} ({text}){where}.")

        return work, done


def _unwrap(viewer):
    # napari hands plugin widgets a proxy of the viewer, a new one per widget
    return getattr(viewer, "__wrapped__", viewer)


def use_weights_in_detect_widgets(viewer, weights: Path) -> int:
    """Set ``weights`` in every Detect widget of ``viewer``; returns how many were switched."""
    n = 0
    for w in list(DETECT_WIDGETS):
        if _unwrap(getattr(w, "_viewer", None)) is _unwrap(viewer):
            w.weights.value = str(weights)
            n += 1
    return n
