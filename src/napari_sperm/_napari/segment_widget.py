"""Dock widget *Segment heads & tails*: outline the detected cells as ``heads`` and ``tails`` Labels.

Input: an image layer and its detections (the Shapes layer *Detect sperm* made, or any Shapes layer
with ``class`` and ``sperm_id`` features, hand-edited boxes included). Output: Labels ``heads`` and
``tails`` in which a head and its tail carry the same id, the sperm id of the boxes, plus a features
table per cell (head area, tail length, paired or not, engine).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSlider
from napari.layers import Image, Shapes
from napari.utils.notifications import show_error, show_info, show_warning

from ..detection.device import available_devices
from ..detection.inputs import frame_stack
from ..detection.results import FrameDetections
from ..io.errors import SpermInputError
from ..segmentation.segment import WEAK_SCORE_THRESHOLD, iter_segment
from ..segmentation.tailnet.infer import DEFAULT_FLIPS
from .background import BackgroundRunner
from .detection_layer import corners_box, weak_head_detections
from .flips_choice import flips_choice
from .placement import current_frame
from .tails_layers import heads_from_shapes, is_detections_layer

if TYPE_CHECKING:
    import napari

__all__ = ["SegmentWidget"]

CURRENT, ALL = "current frame", "all frames"
SAM_MODELS = ["vit_b", "vit_l", "vit_h", "mobile_sam"]


class SegmentWidget(Container):
    """Segment heads and tails of detected sperm (classic engine, or the SAM cascade)."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self.image = ComboBox(label="image", choices=self._image_choices)
        self.boxes = ComboBox(
            label="detections",
            choices=self._box_choices,
            tooltip="the Shapes layer of boxes made by Detect sperm (edited boxes count)",
        )
        self.engine = ComboBox(
            label="engine",
            choices=["classic", "sam"],
            value="classic",
            tooltip="classic needs no weights; sam needs a checkpoint",
        )
        self.tail_finder = ComboBox(
            label="tail finder",
            choices=[("tail network", "net"), ("ridge filter", "ridge")],
            value="net",
            tooltip="classic engine: the small tail network shipped with napari-sperm, or an "
            "oriented ridge filter with no network",
        )
        self.tail_flips = flips_choice(
            "tail flips", DEFAULT_FLIPS, "tail network", "steadier tail edges"
        )
        self.sam_model = ComboBox(label="SAM model", choices=SAM_MODELS, value="vit_b")
        self.checkpoint = FileEdit(
            label="SAM checkpoint",
            mode="r",
            filter="*.pth *.pt",
            value="",
            tooltip="empty: $NAPARI_SPERM_SAM_CHECKPOINT, then the cache folder",
        )
        self.device = ComboBox(label="device", choices=available_devices(), value="auto")
        self.frames = ComboBox(label="frames", choices=[ALL, CURRENT], value=ALL)
        self.score = FloatSlider(label="min head score", value=0.3, min=0.0, max=0.99, step=0.01)
        self.weak_score = FloatSlider(
            label="weak heads from",
            value=WEAK_SCORE_THRESHOLD,
            min=0.0,
            max=0.99,
            step=0.01,
            tooltip="head boxes scoring from this up to the min head score are kept only when a "
            "tail that no other head took leads to them: the drawn boxes below the min head score, "
            "and the fainter boxes Detect sperm keeps in the layer's metadata (down to 0.1). Set "
            "it to the min head score to turn this off",
        )
        self.replace = CheckBox(text="replace my previous (unedited) result", value=True)
        self.runner = BackgroundRunner("Segment heads and tails", self._job)  # "&" is a Qt mnemonic
        super().__init__(
            widgets=[
                self.image,
                self.boxes,
                self.engine,
                self.tail_finder,
                self.tail_flips,
                self.sam_model,
                self.checkpoint,
                self.device,
                self.frames,
                self.score,
                self.weak_score,
                self.replace,
                self.runner,
            ]
        )
        self._sam_cache: dict = {}
        self.engine.changed.connect(self._engine_changed)
        self.tail_finder.changed.connect(self._engine_changed)
        self._engine_changed()
        for event in (
            viewer.layers.events.inserted,
            viewer.layers.events.removed,
            viewer.layers.events.changed,
        ):
            event.connect(self.reset_choices)

    def _engine_changed(self, *_):
        sam = self.engine.value == "sam"
        self.sam_model.visible = sam
        self.checkpoint.visible = sam
        self.tail_finder.visible = not sam
        self.tail_flips.visible = not sam and self.tail_finder.value == "net"

    def _image_choices(self, _widget=None):
        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Image)]

    def _box_choices(self, _widget=None):
        return [
            (layer.name, layer)
            for layer in self._viewer.layers
            if isinstance(layer, Shapes) and is_detections_layer(layer)
        ]

    def _checkpoint(self) -> str | None:
        value = str(self.checkpoint.value or "").strip()
        return None if value in ("", ".") else value

    # -- inputs -------------------------------------------------------------------------------
    def _inputs(self):
        layer = self.image.value
        if layer is None:
            raise SpermInputError("open an image layer (a single image or a stack) first.")
        boxes = self.boxes.value
        if boxes is None:
            raise SpermInputError("no detections layer: run Detect sperm on the image first.")
        data = layer.data[0] if layer.multiscale else layer.data
        frames, is_stack = frame_stack(data, layer.rgb)
        if frames.shape[0] == 0 or 0 in frames.shape[1:3]:
            raise SpermInputError(f"layer '{layer.name}' is empty (shape {tuple(data.shape)}).")
        per_frame = heads_from_shapes(boxes, frames.shape[0], is_stack)
        scores = _scores_per_frame(boxes, frames.shape[0], is_stack)
        dets = [
            FrameDetections(b, s, np.full(len(b), 2), ids, frame=f)
            for f, ((b, ids), s) in enumerate(zip(per_frame, scores, strict=True))
        ]
        weak = weak_head_detections(
            boxes,
            frames.shape[0],
            float(self.weak_score.value),
            float(self.score.value),
            [max([0, *np.asarray(ids, int).tolist()]) for _, ids in per_frame],
        )
        dets = [_joined(d, w) for d, w in zip(dets, weak, strict=True)]
        first = 0
        if is_stack and self.frames.value == CURRENT:
            first = current_frame(self._viewer, layer, frames.shape[0])
            frames, dets = frames[first : first + 1], dets[first : first + 1]
        if sum(len(d) for d in dets) == 0:
            raise SpermInputError(
                f"'{boxes.name}' has no head boxes on the chosen frame(s); run Detect sperm first."
            )
        return layer, frames, dets, is_stack, first

    def _sam(self, model: str, checkpoint: str | None, device: str):
        from ..segmentation.sam import load_sam

        key = (model, checkpoint or "", device)
        if key not in self._sam_cache:
            self._sam_cache[key] = load_sam(model, checkpoint, device)
        return self._sam_cache[key]

    # -- the job ------------------------------------------------------------------------------
    def _job(self):
        try:
            layer, frames, dets, is_stack, first = self._inputs()
        except SpermInputError as exc:
            show_error(f"napari-sperm: {exc}")
            return None
        engine = str(self.engine.value)
        model, checkpoint, device = str(self.sam_model.value), self._checkpoint(), self.device.value
        threshold = float(self.score.value)
        weak = float(self.weak_score.value)
        tail_finder = str(self.tail_finder.value)
        tail_flips = int(self.tail_flips.value)
        only_current = is_stack and self.frames.value == CURRENT
        replace = bool(self.replace.value)
        notes: list[str] = []

        def work():
            sam, used = None, engine
            if engine == "sam":
                from ..segmentation.sam import SamUnavailable

                try:
                    sam = self._sam(model, checkpoint, str(device))
                except SamUnavailable as exc:
                    notes.append(str(exc))
                    used = "classic"
            results = yield from iter_segment(
                frames,
                dets,
                engine=used,
                sam=sam,
                score_threshold=threshold,
                tail_finder=tail_finder,
                tail_flips=tail_flips if tail_finder == "net" else None,
                weak_score_threshold=weak,  # at or above the threshold: no weak heads
            )
            return results, used

        def done(outcome):
            results, used = outcome
            for note in notes:
                show_warning(f"napari-sperm: {note}")
            self._write(layer, results, used, is_stack, first, only_current, replace)
            cells = sum(1 for r in results for s in r.sperm if s.head is not None)
            paired = sum(1 for r in results for s in r.sperm if s.paired)
            show_info(
                f"napari-sperm: {cells} heads segmented, {paired} with a tail ({used} engine)"
            )

        return work, done

    # -- writing layers -----------------------------------------------------------------------
    def _write(self, layer, results, engine, is_stack, first, only_current, replace):
        from .segment_layers import write_segmentation

        write_segmentation(
            self._viewer, layer, results, engine, is_stack, first, only_current, replace
        )


def _scores_per_frame(layer, n_frames: int, is_stack: bool) -> list[np.ndarray]:
    """Scores of the head rows of a detections layer, per frame, in the order of
    :func:`heads_from_shapes` (hand-drawn boxes without a score count as 1)."""
    out: list[list[float]] = [[] for _ in range(n_frames)]
    classes = np.asarray(layer.features["class"]).astype(str)
    scores = (
        np.asarray(layer.features["score"], float)
        if "score" in layer.features
        else np.ones(len(classes))
    )
    scores = np.where(np.isfinite(scores), scores, 1.0)
    for corners, cls, score in zip(layer.data, classes, scores, strict=True):
        if cls != "head":
            continue
        frame, _ = corners_box(corners, is_stack)
        if 0 <= frame < n_frames:
            out[frame].append(float(score))
    return [np.asarray(s, float) for s in out]


def _joined(a: FrameDetections, b: FrameDetections) -> FrameDetections:
    """The rows of ``a`` followed by those of ``b`` (one frame)."""
    if not len(b):
        return a
    return FrameDetections(
        np.vstack([a.boxes.reshape(-1, 4), b.boxes]),
        np.concatenate([a.scores, b.scores]),
        np.concatenate([a.classes, b.classes]),
        np.concatenate([a.sperm_ids, b.sperm_ids]),
        frame=a.frame,
    )
