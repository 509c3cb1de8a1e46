"""Dock widget *Cluster tails (Con2Dis)*: split merged or crossing tails and pair them with heads.

Input: a Labels layer of tail pixels (hand-painted, or the ``tails`` layer of the segmentation step;
every label > 0 counts as tail) and, optionally, heads as a Labels layer or as the head boxes of a
detections layer. Output: a Labels layer in which each tail carries its head's id (the sperm id) and
a Shapes layer of centreline paths that shows which way each tail was followed through a crossing.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, PushButton
from napari.layers import Labels, Shapes
from napari.utils.notifications import show_error, show_info

from ..io.errors import SpermInputError
from ..tails.params import Con2DisParams
from ..tails.stack import (
    as_head_labels,
    as_tail_masks,
    centreline_paths,
    heads_from_boxes,
    iter_cluster_stack,
    labels_from_paths,
    stack_labels,
)
from .background import BackgroundRunner
from .label_volume import new_label_volume
from .tails_layers import (
    LABELS_KIND,
    PATHS_KIND,
    find_output,
    heads_from_shapes,
    is_detections_layer,
    is_unedited,
    labels_kwargs,
    paths_kwargs,
    stamp,
)

if TYPE_CHECKING:
    import napari

__all__ = ["TailsWidget"]

CURRENT, ALL = "current frame", "all frames"
NO_HEADS = "(no heads)"


def _named_first(layers: list, word: str) -> list:
    """Layers whose name contains ``word`` first (the likely choice becomes the default)."""
    return sorted(layers, key=lambda layer: word not in layer.name.lower())


class TailsWidget(Container):
    """Re-split merged or crossing tails and pair each with a head (Con2Dis).

    Writes ``<tails> (Con2Dis)`` (Labels; a paired tail carries its head's id, an unpaired one a
    fresh id above every head id) and ``<tails> centrelines`` (Shapes paths, green when paired,
    orange when not). Running again replaces these layers only while they are unedited.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self.tails = ComboBox(
            label="tails",
            choices=self._tail_choices,
            tooltip="Labels layer of tail pixels; every label > 0 counts as tail",
        )
        self.heads = ComboBox(
            label="heads",
            choices=self._head_choices,
            tooltip="Labels layer of heads (ids = sperm ids) or a detections Shapes layer",
        )
        self.frames = ComboBox(label="frames", choices=[ALL, CURRENT], value=ALL)
        self.tail_width = FloatSpinBox(
            label="tail width (px)",
            value=0.0,
            min=0.0,
            max=50.0,
            step=0.5,
            tooltip="0: estimate from the mask; thresholds scale with it",
        )
        self.centrelines = CheckBox(text="show centrelines as paths", value=True)
        self.runner = BackgroundRunner("Cluster tails", self._job)
        self.rebuild = PushButton(
            text="Rebuild tails from edited centrelines",
            tooltip="after editing paths in the centrelines layer, redraw the tail labels along them",
        )
        self.rebuild.changed.connect(self.rebuild_from_paths)
        super().__init__(
            widgets=[
                self.tails,
                self.heads,
                self.frames,
                self.tail_width,
                self.centrelines,
                self.runner,
                self.rebuild,
            ]
        )
        for event in (
            viewer.layers.events.inserted,
            viewer.layers.events.removed,
            viewer.layers.events.changed,
        ):
            event.connect(self.reset_choices)

    # -- choices ------------------------------------------------------------------------------
    def _tail_choices(self, _widget=None):
        labels = [layer for layer in self._viewer.layers if isinstance(layer, Labels)]
        return [(layer.name, layer) for layer in _named_first(labels, "tail")]

    def _head_choices(self, _widget=None):
        layers = [
            layer
            for layer in self._viewer.layers
            if isinstance(layer, Labels)
            or (isinstance(layer, Shapes) and is_detections_layer(layer))
        ]
        found = [(layer.name, layer) for layer in _named_first(layers, "head")]
        # a heads layer when there is one, else no heads (a detections layer is a choice, not a guess)
        if found and "head" in found[0][0].lower():
            return found + [(NO_HEADS, None)]
        return [(NO_HEADS, None)] + found

    # -- the job ------------------------------------------------------------------------------
    def _params(self) -> Con2DisParams:
        width = float(self.tail_width.value)
        params = Con2DisParams()
        if width > 0 and "tail_width" in {f.name for f in dataclasses.fields(params)}:
            params = dataclasses.replace(params, tail_width=width)
        return params

    def _inputs(self):
        layer = self.tails.value
        if layer is None:
            raise SpermInputError(
                "add a Labels layer of tails first (paint one, or run Segment heads & tails)."
            )
        masks, is_stack = as_tail_masks(layer.data, f"tail layer '{layer.name}'")
        first = 0
        if is_stack and self.frames.value == CURRENT:
            point = self._viewer.dims.point[-layer.ndim :]
            first = int(np.clip(round(float(layer.world_to_data(point)[0])), 0, masks.shape[0] - 1))
        heads = self._heads(masks.shape, is_stack)
        if is_stack and self.frames.value == CURRENT:
            masks = masks[first : first + 1]
            heads = None if heads is None else heads[first : first + 1]
        return layer, masks, heads, is_stack, first

    def _heads(self, shape, is_stack):
        layer = self.heads.value
        if layer is None:
            return None
        if layer is self.tails.value:
            raise SpermInputError("the heads layer is the tails layer; choose another or none.")
        if isinstance(layer, Labels):
            data = np.asarray(layer.data)
            if is_stack and data.ndim == 2:
                data = data[None]
            return as_head_labels(data, shape, f"head layer '{layer.name}'")
        per_frame = heads_from_shapes(layer, shape[0], is_stack)
        return np.stack([heads_from_boxes(shape[1:], b, i) for b, i in per_frame])

    def _job(self):
        try:
            layer, masks, heads, is_stack, first = self._inputs()
        except SpermInputError as exc:
            show_error(f"napari-sperm: {exc}")
            return None
        params = self._params()
        only_current = is_stack and self.frames.value == CURRENT
        show_paths = bool(self.centrelines.value)

        def work():
            return (yield from iter_cluster_stack(masks, heads, params=params))

        def done(results):
            labels = stack_labels(results)
            self._write_labels(layer, labels, is_stack, first, only_current, results)
            if show_paths:
                self._write_paths(layer, results, is_stack, first, only_current)
            n = sum(len(r.tails) for r in results)
            paired = sum(1 for r in results for t in r.tails if t.head is not None)
            show_info(
                f"napari-sperm: {n} tails in {len(results)} frame(s), {paired} paired with a head"
            )

        return work, done

    # -- writing layers -----------------------------------------------------------------------
    def rebuild_from_paths(self, *_) -> None:
        """Redraw the Con2Dis labels along the (edited) centreline paths of the chosen tail layer."""
        layer = self.tails.value
        paths_layer = None if layer is None else find_output(self._viewer, PATHS_KIND, layer.name)
        if paths_layer is None:
            show_error(
                "napari-sperm: no centrelines layer for this tail layer; run Cluster tails first."
            )
            return
        try:
            masks, is_stack = as_tail_masks(layer.data, f"tail layer '{layer.name}'")
        except SpermInputError as exc:
            show_error(f"napari-sperm: {exc}")
            return
        labels_layer = find_output(self._viewer, LABELS_KIND, layer.name)
        widths = (
            {} if labels_layer is None else labels_layer.metadata["napari_sperm"].get("widths", {})
        )
        ids = np.asarray(paths_layer.features["label"], int)
        out = np.zeros(masks.shape, np.int32)
        for f in range(masks.shape[0]):
            chosen = [
                (np.asarray(path)[:, -2:], int(i))
                for path, i in zip(paths_layer.data, ids, strict=True)
                if not is_stack or int(round(float(np.asarray(path)[0, 0]))) == f
            ]
            width = float(widths.get(str(f), self.tail_width.value or 2.0))
            out[f] = labels_from_paths(
                masks[f], [p for p, _ in chosen], [i for _, i in chosen], width
            )
        data = out if is_stack else out[0]
        if labels_layer is not None and is_unedited(labels_layer):
            labels_layer.data = data
            stamp(labels_layer)
        else:
            stamp(self._viewer.add_labels(data, **labels_kwargs(layer, {"widths": widths})))
        show_info(f"napari-sperm: tails redrawn along {len(ids)} centreline(s)")

    def _write_labels(self, layer, labels, is_stack, first, only_current, results):
        n_tails = sum(len(r.tails) for r in results)
        widths = {
            str(first + k): float(r.tail_width)
            for k, r in enumerate(results)
            if np.isfinite(r.tail_width)
        }
        kwargs = labels_kwargs(layer, {"tails": n_tails, "widths": widths})
        previous = find_output(self._viewer, LABELS_KIND, layer.name)
        if previous is not None and not is_unedited(previous):
            show_info(
                f"napari-sperm: '{previous.name}' was edited, so it is kept and the new tails go to a new layer."
            )
            previous = None
        if previous is not None and only_current:
            kept = previous.metadata.get("napari_sperm", {}).get("widths", {})
            kwargs["metadata"]["napari_sperm"]["widths"] = {**kept, **widths}
        if is_stack:
            if only_current and previous is not None:
                full = previous.data  # painted in place: the other frames stay as they are
            else:
                shape = (layer.data.shape[0],) + labels.shape[1:]
                full = new_label_volume(shape, like=layer.data)
            full[first : first + labels.shape[0]] = labels
            labels = full
        else:
            labels = labels[0]
        if previous is None:
            stamp(self._viewer.add_labels(labels, **kwargs))
        else:
            if previous.data is labels:
                previous.refresh()
            else:
                previous.data = labels
            previous.metadata = kwargs["metadata"]
            stamp(previous)

    def _write_paths(self, layer, results, is_stack, first, only_current):
        paths, features = centreline_paths(results, is_stack)
        if is_stack:
            for p in paths:
                p[:, 0] += first
            features["frame"] = features["frame"] + first
        previous = find_output(self._viewer, PATHS_KIND, layer.name)
        if previous is not None and not is_unedited(previous):
            previous = None
        if previous is not None and only_current:
            old = previous.features
            keep = [i for i, f in enumerate(np.asarray(old["frame"], int)) if f != first]
            paths = [np.asarray(previous.data[i]) for i in keep] + paths
            features = {
                k: np.concatenate([np.asarray(old[k])[keep], features[k]]).astype(features[k].dtype)
                for k in features
            }
        kwargs = paths_kwargs(layer, features, is_stack)
        if previous is None:
            stamp(self._viewer.add_shapes(paths, **kwargs))
        else:
            previous.data = []
            if paths:
                previous.add_paths(paths, edge_color=kwargs["edge_color"], edge_width=1.5)
            previous.features = features
            stamp(previous)
