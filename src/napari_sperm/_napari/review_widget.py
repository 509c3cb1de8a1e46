"""Dock widget *Review sperm*: the cells of the current frame in a table, accept / reject / next.

Click a row to jump to the cell (the view centres on it and its boxes are selected). Keys, with the
viewer focused: **Shift-Y** accept (mark reviewed, go to the next cell), **Shift-X** reject (delete
the cell's boxes, head and tail in this frame), **Shift-N** next cell. Correct shapes and masks with
napari's own tools: boxes on the boxes layer, heads and tails by painting on the Labels layers
(paint with the cell's sperm id, which the table shows).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, PushButton, Table
from napari.layers import Image
from napari.utils.notifications import show_error, show_info

from ..annotations.review import cell_rows
from ..io.errors import SpermInputError
from .annotation_layers import find_annotation_layers, frame_from_layers, image_frames
from .cell_edits import connect_cell_edits, remove_cell, set_reviewed
from .detection_layer import corners_box
from .placement import current_frame

if TYPE_CHECKING:
    import napari

__all__ = ["ReviewWidget", "COLUMNS", "KEYS"]

COLUMNS = ["sperm id", "score", "cell score", "head area", "tail length", "paired", "reviewed"]
KEYS = {"accept": "Shift-Y", "reject": "Shift-X", "next": "Shift-N"}


class ReviewWidget(Container):
    """Review the sperm of the current frame: table, jump, accept / reject / next."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self.image = ComboBox(label="image", choices=self._image_choices)
        self.summary = Label(value="")
        self.by_confidence = CheckBox(text="least confident first", value=False)
        self.table = Table(value={c: [] for c in COLUMNS})
        self.accept = PushButton(text=f"Accept ({KEYS['accept']})")
        self.reject = PushButton(text=f"Reject ({KEYS['reject']})")
        self.next = PushButton(text=f"Next ({KEYS['next']})")
        self.refresh_button = PushButton(text="Refresh")
        buttons = Container(
            widgets=[self.accept, self.reject, self.next, self.refresh_button],
            layout="horizontal",
            labels=False,
        )
        super().__init__(
            widgets=[self.image, self.by_confidence, self.summary, self.table, buttons]
        )
        self._ids: list[int] = []
        self._row = 0
        self.listeners: list = []  # called after every refresh (the workflow's counts)
        self.table.read_only = True
        native = self.table.native
        native.setSelectionBehavior(native.SelectionBehavior.SelectRows)
        native.setSelectionMode(native.SelectionMode.SingleSelection)
        native.cellClicked.connect(lambda r, _c: self.select_row(r))
        self.accept.changed.connect(lambda *_: self.accept_current())
        self.reject.changed.connect(lambda *_: self.reject_current())
        self.next.changed.connect(lambda *_: self.next_cell())
        self.refresh_button.changed.connect(lambda *_: self.refresh())
        self.image.changed.connect(lambda *_: self.refresh())
        self.by_confidence.changed.connect(lambda *_: self.refresh())
        viewer.layers.events.inserted.connect(self._layers_changed)
        viewer.layers.events.removed.connect(self._layers_changed)
        viewer.dims.events.current_step.connect(self._frame_changed)
        self._bind_keys()
        self._frame = None
        self.refresh()

    # ------------------------------------------------------------------ plumbing
    def _image_choices(self, _widget=None) -> list[tuple[str, Image]]:
        return [(ly.name, ly) for ly in self._viewer.layers if isinstance(ly, Image)]

    def _bind_keys(self) -> None:
        for action, key in KEYS.items():
            func = {
                "accept": self.accept_current,
                "reject": self.reject_current,
                "next": self.next_cell,
            }[action]

            def handler(_viewer, func=func):
                func()

            self._viewer.bind_key(key, handler, overwrite=True)

    def _layers_changed(self, *_):
        self.image.reset_choices()
        self.refresh()

    def current_frame(self) -> int:
        layer = self.image.value
        if layer is None:
            return 0
        n, is_stack = image_frames(layer)
        return current_frame(self._viewer, layer, n) if is_stack else 0

    def _frame_changed(self, *_):
        if self.image.value is not None and self.current_frame() != self._frame:
            self.refresh()

    def _layers(self):
        layer = self.image.value
        if layer is None:
            return None, {}
        found = find_annotation_layers(self._viewer, layer)
        if found["boxes"] is not None:
            connect_cell_edits(self._viewer, layer, found["boxes"])
        return layer, found

    # ------------------------------------------------------------------ table
    def refresh(self) -> None:
        """Re-read the current frame's cells into the table."""
        layer, found = self._layers()
        if layer is None:
            self.table.value = {c: [] for c in COLUMNS}
            self.summary.value = "Open an image, then detect sperm."
            self._ids = []
            return
        try:
            self._frame = k = self.current_frame()
            fr = frame_from_layers(layer, k, found["boxes"], found["heads"], found["tails"])
        except SpermInputError as exc:
            show_error(f"napari-sperm: {exc}")
            return
        rows = cell_rows(fr, "confidence" if self.by_confidence.value else "id")
        self._ids = [r.sperm_id for r in rows]
        self.table.value = {
            "sperm id": [r.sperm_id for r in rows],
            "score": ["" if r.score is None else f"{r.score:.2f}" for r in rows],
            "cell score": ["" if r.cell_score is None else f"{r.cell_score:.2f}" for r in rows],
            "head area": [r.head_area for r in rows],
            "tail length": [f"{r.tail_length:.1f}" for r in rows],
            "paired": ["yes" if r.paired else "no" for r in rows],
            "reviewed": ["yes" if r.reviewed else "" for r in rows],
        }
        n_rev = sum(r.reviewed for r in rows)
        where = f"frame {k}: " if image_frames(layer)[1] else ""
        self.summary.value = (
            f"{where}{len(rows)} sperm, {sum(r.paired for r in rows)} paired, {n_rev} reviewed"
        )
        self.table.native.resizeColumnsToContents()
        if rows:
            self._row = min(self._row, len(rows) - 1)
            self.table.native.selectRow(self._row)
        for listener in list(self.listeners):
            listener()

    def selected_id(self) -> int | None:
        if not self._ids:
            return None
        return self._ids[min(self._row, len(self._ids) - 1)]

    def select_row(self, row: int) -> None:
        """Select table row ``row`` and centre the view on that cell."""
        if not self._ids:
            return
        self._row = int(np.clip(row, 0, len(self._ids) - 1))
        self.table.native.selectRow(self._row)
        self._jump(self._ids[self._row])

    def _jump(self, sperm_id: int) -> None:
        layer, found = self._layers()
        boxes = found.get("boxes")
        if boxes is None:
            return
        k = self.current_frame()
        _, is_stack = image_frames(layer)
        ids = np.asarray(boxes.features["sperm_id"]) if "sperm_id" in boxes.features else []
        picked = []
        for i, corners in enumerate(boxes.data):
            f, _ = corners_box(corners, is_stack)
            if f == k and len(ids) > i and int(ids[i]) == sperm_id:
                picked.append(i)
        if not picked:
            return
        centre = np.mean([np.asarray(boxes.data[i], float).mean(axis=0) for i in picked], axis=0)
        world = boxes.data_to_world(centre)
        self._viewer.camera.center = tuple(world[-2:])
        boxes.selected_data = set(picked)

    # ------------------------------------------------------------------ actions
    def accept_current(self) -> None:
        """Mark the selected cell reviewed and move to the next one."""
        sid = self.selected_id()
        layer, _ = self._layers()
        if sid is None or layer is None:
            return
        set_reviewed(self._viewer, layer, self.current_frame(), sid, True)
        self._row += 1
        self.refresh()
        if self._row < len(self._ids):
            self._jump(self._ids[self._row])

    def reject_current(self) -> None:
        """Delete the selected cell's boxes, head and tail in this frame."""
        sid = self.selected_id()
        layer, _ = self._layers()
        if sid is None or layer is None:
            return
        removed = remove_cell(self._viewer, layer, self.current_frame(), sid)
        show_info(
            f"napari-sperm: rejected sperm {sid} ({removed['boxes']} box(es), "
            f"{removed['head_px']} head px, {removed['tail_px']} tail px)."
        )
        self.refresh()

    def next_cell(self) -> None:
        """Select the next cell (wraps to the first)."""
        if not self._ids:
            return
        self.select_row((self._row + 1) % len(self._ids))
