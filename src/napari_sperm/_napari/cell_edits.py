"""Keep a cell's box, head and tail together while the user edits (the link is the sperm id).

- A box drawn by hand gets a new sperm id (one above every id in use), the frame it was drawn on,
  class ``head`` (or what the layer's ``class`` default says), no score and ``reviewed`` set.
- When the last box of a cell is deleted, the cell's head and tail labels in that frame go too
  (with a notification saying what was removed).
- :func:`remove_cell` does the same for the review table's *reject*.
"""

from __future__ import annotations

import weakref

import numpy as np

from .annotation_layers import find_annotation_layers, image_frames
from .detection_layer import box_corners, corners_box

__all__ = ["connect_cell_edits", "remove_cell", "next_sperm_id", "set_reviewed"]

_CONNECTED: weakref.WeakSet = weakref.WeakSet()
_PENDING: dict[int, set[tuple[int, int]]] = {}


def _keys(layer, indices, is_stack: bool) -> set[tuple[int, int]]:
    ids = np.asarray(layer.features["sperm_id"]) if "sperm_id" in layer.features else []
    out = set()
    for i in indices:
        if 0 <= i < len(layer.data) and len(ids) > i and int(ids[i]) > 0:
            out.add((corners_box(layer.data[i], is_stack)[0], int(ids[i])))
    return out


def _set_features(layer, feats) -> None:
    """Assign a features table without losing the defaults new shapes get (napari resets them)."""
    defaults = {k: layer.feature_defaults[k][0] for k in layer.feature_defaults.columns}
    layer.features = feats
    layer.feature_defaults = {
        k: defaults.get(k, layer.feature_defaults[k][0]) for k in layer.feature_defaults.columns
    }


def next_sperm_id(layers) -> int:
    """One above every sperm id in the given boxes and labels layers."""
    top = 0
    for layer in layers:
        if layer is None:
            continue
        if hasattr(layer, "features") and "sperm_id" in getattr(layer, "features", {}):
            ids = np.asarray(layer.features["sperm_id"], float)
            ids = ids[np.isfinite(ids)]
            if ids.size:
                top = max(top, int(ids.max()))
        if layer.__class__.__name__ == "Labels":
            data = np.asarray(layer.data)
            if data.size:
                top = max(top, int(data.max()))
    return top + 1


def _erase_label(layer, frame: int, sperm_id: int, is_stack: bool) -> int:
    if layer is None:
        return 0
    data = layer.data
    view = data[frame] if is_stack and np.ndim(data) == 3 else data
    hit = np.asarray(view) == sperm_id
    n = int(hit.sum())
    if n:
        view[hit] = 0
        layer.refresh()
    meta = dict(layer.metadata)
    inner = dict(meta.get("napari_sperm", {}))
    overlaps = {k: dict(v) for k, v in (inner.get("overlaps") or {}).items()}
    if overlaps.get(str(frame), {}).pop(str(sperm_id), None) is not None:
        inner["overlaps"] = overlaps
        meta["napari_sperm"] = inner
        layer.metadata = meta
    return n


def remove_cell(viewer, image_layer, frame: int, sperm_id: int) -> dict[str, int]:
    """Delete a cell's boxes, head and tail labels in one frame; returns what was removed."""
    _, is_stack = image_frames(image_layer)
    found = find_annotation_layers(viewer, image_layer)
    boxes = found["boxes"]
    removed = {
        "head_px": _erase_label(found["heads"], frame, sperm_id, is_stack),
        "tail_px": _erase_label(found["tails"], frame, sperm_id, is_stack),
        "boxes": 0,
    }
    if boxes is not None and len(boxes.data):
        idx = [
            i for i in range(len(boxes.data)) if (frame, sperm_id) in _keys(boxes, [i], is_stack)
        ]
        removed["boxes"] = len(idx)
        if idx:
            boxes.selected_data = set()
            boxes.remove(idx)
    return removed


def set_reviewed(viewer, image_layer, frame: int, sperm_id: int, value: bool = True) -> bool:
    """Mark a cell reviewed (its boxes' ``reviewed`` feature, or the labels' cell table).

    A cell without any box gets a ``sperm`` box around its masks so the flag has a home.
    Returns True when something changed.
    """
    _, is_stack = image_frames(image_layer)
    found = find_annotation_layers(viewer, image_layer)
    boxes = found["boxes"]
    if boxes is None:
        return False
    feats = boxes.features
    if "reviewed" not in feats:
        feats["reviewed"] = False
    rows = [i for i in range(len(boxes.data)) if (frame, sperm_id) in _keys(boxes, [i], is_stack)]
    if not rows:
        box = _mask_box(found, frame, sperm_id, is_stack)
        if box is None:
            return False
        _add_box(boxes, box, frame if is_stack else None, "sperm", sperm_id, value)
        return True
    col = np.array(feats["reviewed"], bool)
    col[rows] = value
    feats["reviewed"] = col
    _set_features(boxes, feats)
    return True


def _mask_box(found, frame, sperm_id, is_stack):
    rows, cols = [], []
    for part in ("heads", "tails"):
        layer = found[part]
        if layer is None:
            continue
        data = layer.data[frame] if is_stack and np.ndim(layer.data) == 3 else layer.data
        r, c = np.nonzero(np.asarray(data) == sperm_id)
        rows.append(r)
        cols.append(c)
    if not rows or not sum(len(r) for r in rows):
        return None
    r, c = np.concatenate(rows), np.concatenate(cols)
    return (
        float(c.min()),
        float(r.min()),
        float(c.max() - c.min() + 1),
        float(r.max() - r.min() + 1),
    )


def _add_box(boxes, box, frame, cls, sperm_id, reviewed) -> None:
    corners = box_corners(box, frame)
    defaults = boxes.feature_defaults
    boxes.feature_defaults = {
        **{k: defaults[k][0] for k in defaults.columns},
        "class": cls,
        "sperm_id": sperm_id,
        "frame": frame or 0,
        "reviewed": reviewed,
    }
    try:
        boxes.add_rectangles([corners])
    finally:
        boxes.feature_defaults = defaults


def connect_cell_edits(viewer, image_layer, boxes) -> None:
    """Hook a boxes layer so hand-drawn boxes get ids and deleting a cell's last box removes it."""
    if boxes in _CONNECTED:
        return
    _CONNECTED.add(boxes)
    _, is_stack = image_frames(image_layer)
    feats = boxes.features
    if "reviewed" not in feats and "sperm_id" in feats:
        feats["reviewed"] = False
        _set_features(boxes, feats)
    if "sperm_id" in boxes.features:
        defaults = {k: boxes.feature_defaults[k][0] for k in boxes.feature_defaults.columns}
        defaults.update({"sperm_id": -1, "reviewed": True})
        if "score" in defaults:
            defaults["score"] = np.nan
        if "class" in defaults:
            defaults["class"] = "head"
        boxes.feature_defaults = defaults
    layer_ref = weakref.ref(boxes)

    def on_data(event) -> None:
        layer = layer_ref()
        if layer is None or "sperm_id" not in layer.features:
            return
        action = str(getattr(event, "action", ""))
        if action.endswith("removing"):
            _PENDING[id(layer)] = _keys(layer, list(event.data_indices), is_stack)
        elif action.endswith("removed"):
            gone = _PENDING.pop(id(layer), set())
            left = _keys(layer, range(len(layer.data)), is_stack)
            found = find_annotation_layers(viewer, image_layer)
            erased = []
            for frame, sid in sorted(gone - left):
                n = _erase_label(found["heads"], frame, sid, is_stack)
                n += _erase_label(found["tails"], frame, sid, is_stack)
                if n:
                    erased.append(f"{sid} (frame {frame})" if is_stack else str(sid))
            if erased:
                from napari.utils.notifications import show_info

                show_info(f"napari-sperm: removed the head and tail of sperm {', '.join(erased)}.")
        elif action.endswith("added"):
            _name_new_boxes(viewer, image_layer, layer, is_stack)

    boxes.events.data.connect(on_data)


def _name_new_boxes(viewer, image_layer, layer, is_stack: bool) -> None:
    feats = layer.features
    ids = np.asarray(feats["sperm_id"], float)
    new = [i for i in range(len(ids)) if not np.isfinite(ids[i]) or ids[i] <= 0]
    if not new:
        return
    found = find_annotation_layers(viewer, image_layer)
    start = next_sperm_id([layer, found["heads"], found["tails"]])
    ids = np.array(feats["sperm_id"]).astype(int)
    frames = np.array(feats["frame"]).astype(int) if "frame" in feats else None
    for n, i in enumerate(new):
        ids[i] = start + n
        if frames is not None:
            frames[i] = corners_box(layer.data[i], is_stack)[0]
    feats["sperm_id"] = ids
    if frames is not None:
        feats["frame"] = frames
    _set_features(layer, feats)
