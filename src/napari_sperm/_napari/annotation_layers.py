"""napari layers <-> :class:`~napari_sperm.annotations.AnnotatedStack`.

The layers of one image are found by their metadata (``napari_sperm.kind`` and ``source`` = the image
layer's name): the boxes Shapes layer (``detections``), and the ``heads`` and ``tails`` Labels layers.
Label values are sperm ids. Pixels two tails share are kept in the Labels layer's metadata
(``napari_sperm.overlaps``, see :mod:`napari_sperm.annotations.labels`); per-cell facts of cells
without a box (score, reviewed) in ``napari_sperm.cells``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..annotations.labels import labels_from_masks, masks_from_labels
from ..annotations.model import AnnotatedFrame, AnnotatedStack, Cell
from ..io import SpermInputError
from .detection_layer import CLASS_COLOURS, box_corners, corners_box
from .detection_layer import KIND as DETECTIONS_KIND
from .label_volume import new_label_volume
from .placement import placement
from .segment_layers import HEADS_KIND, TAILS_KIND

__all__ = [
    "find_annotation_layers",
    "frame_from_layers",
    "stack_from_layers",
    "layer_data_from_stack",
    "box_rows",
    "image_frames",
]

LayerData = tuple[Any, dict[str, Any], str]


def _meta(layer) -> dict:
    return getattr(layer, "metadata", {}).get("napari_sperm", {}) if layer is not None else {}


def find_annotation_layers(viewer, image_layer) -> dict[str, Any]:
    """``{"boxes": Shapes or None, "heads": Labels or None, "tails": Labels or None}`` of an image.

    ``viewer`` may also be any list of layers (the npe2 writer has no viewer).
    """
    found: dict[str, Any] = {"boxes": None, "heads": None, "tails": None}
    kinds = {DETECTIONS_KIND: "boxes", HEADS_KIND: "heads", TAILS_KIND: "tails"}
    for layer in getattr(viewer, "layers", viewer):
        meta = _meta(layer)
        role = kinds.get(meta.get("kind"))
        if role and meta.get("source") == image_layer.name and found[role] is None:
            found[role] = layer
    return found


def image_frames(image_layer) -> tuple[int, bool]:
    """``(number of frames, is_stack)`` of a 2-D or 3-D (frames first) image layer."""
    nd = image_layer.ndim
    if nd == 2:
        return 1, False
    if nd == 3:
        return int(image_layer.data.shape[0]), True
    raise SpermInputError(
        f"'{image_layer.name}' has {nd} dimensions; napari-sperm annotates single images and "
        "stacks of frames (2-D or 3-D). Split or project the hyperstack first."
    )


def box_rows(boxes_layer, is_stack: bool) -> list[dict[str, Any]]:
    """Each rectangle as ``{frame, class, sperm_id, box (x, y, w, h), score, reviewed}``."""
    if boxes_layer is None or len(boxes_layer.data) == 0:
        return []
    feats = boxes_layer.features
    n = len(boxes_layer.data)

    def column(name, default):
        return list(feats[name]) if name in feats else [default] * n

    classes, ids = column("class", "head"), column("sperm_id", -1)
    scores, reviewed = column("score", np.nan), column("reviewed", False)
    rows = []
    for k, corners in enumerate(boxes_layer.data):
        frame, box = corners_box(corners, is_stack)
        score = scores[k]
        rows.append(
            {
                "frame": frame,
                "class": str(classes[k]),
                "sperm_id": int(ids[k]) if pd.notna(ids[k]) else -1,
                "box": box,
                "score": None if score is None or not np.isfinite(float(score)) else float(score),
                "reviewed": bool(reviewed[k]) if pd.notna(reviewed[k]) else False,
            }
        )
    return rows


def _frame_data(layer, k: int, is_stack: bool) -> np.ndarray | None:
    if layer is None:
        return None
    data = layer.data
    arr = data[k] if is_stack and np.ndim(data) == 3 else data
    return np.asarray(arr)


def _overlaps(layer, k: int) -> dict:
    return (_meta(layer).get("overlaps") or {}).get(str(k), {})


def _cells_table(layers) -> dict[tuple[int, int], dict]:
    out: dict[tuple[int, int], dict] = {}
    for layer in layers:
        cells = _meta(layer).get("cells")
        if not cells:
            continue
        table = pd.DataFrame(cells)
        if not {"frame", "sperm_id"} <= set(table.columns):
            continue
        for row in table.to_dict(orient="records"):
            key = (int(row["frame"]), int(row["sperm_id"]))
            out.setdefault(key, {}).update(
                {k: row[k] for k in ("score", "reviewed") if k in row and pd.notna(row[k])}
            )
    return out


def _check_sizes(image_layer, heads, tails) -> tuple[int, int]:
    h, w = image_layer.data.shape[-3:-1] if image_layer.rgb else image_layer.data.shape[-2:]
    for layer in (heads, tails):
        if layer is not None and tuple(np.shape(layer.data)[-2:]) != (h, w):
            raise SpermInputError(
                f"'{layer.name}' is {np.shape(layer.data)[-1]} x {np.shape(layer.data)[-2]} px but "
                f"'{image_layer.name}' is {w} x {h}; pick the labels made for this image."
            )
    return int(h), int(w)


def frame_from_layers(
    image_layer, k: int, boxes=None, heads=None, tails=None, rows=None, table=None
) -> AnnotatedFrame:
    """The cells of frame ``k`` (position in the layer) as an :class:`AnnotatedFrame`.

    ``rows`` (from :func:`box_rows`) and ``table`` (from the labels' cell tables) may be passed in
    when reading many frames.
    """
    n_frames, is_stack = image_frames(image_layer)
    h, w = _check_sizes(image_layer, heads, tails)
    indices = _meta(image_layer).get("frame_indices")
    if not isinstance(indices, list) or len(indices) != n_frames:
        indices = list(range(n_frames))
    fr = AnnotatedFrame(h, w, int(indices[k]))
    for part, layer in (("head", heads), ("tail", tails)):
        data = _frame_data(layer, k, is_stack)
        if data is None:
            continue
        for sid, mask in masks_from_labels(data, _overlaps(layer, k)).items():
            setattr(fr.cell(sid), part, mask)
    table = _cells_table([heads, tails]) if table is None else table
    present = {c.sperm_id for c in fr.cells}
    for (f, sid), facts in table.items():
        if f == k and sid in present:
            cell = fr.cell(sid)
            if "score" in facts and np.isfinite(float(facts["score"])):
                cell.score = float(facts["score"])
            cell.reviewed = bool(facts.get("reviewed", False))
    rows = [
        dict(r) for r in (box_rows(boxes, is_stack) if rows is None else rows) if r["frame"] == k
    ]
    for row in rows:
        if row["sperm_id"] <= 0:  # drawn without the id hook: a new cell
            row["sperm_id"] = max((c.sperm_id for c in fr.cells), default=0) + 1
            fr.cell(row["sperm_id"])
    for row in sorted(rows, key=lambda r: r["class"] != "head"):
        cell = fr.cell(row["sperm_id"])
        if row["class"] == "head":
            if cell.head_box is None:
                cell.head_box = row["box"]
                cell.score = row["score"] if row["score"] is not None else cell.score
        elif row["class"] == "sperm" and cell.sperm_box is None:
            cell.sperm_box = row["box"]
            if cell.score is None:
                cell.score = row["score"]
        cell.reviewed = cell.reviewed or row["reviewed"]
    return fr


def stack_from_layers(image_layer, boxes=None, heads=None, tails=None) -> AnnotatedStack:
    """Read what the user sees (boxes, head and tail labels) into an :class:`AnnotatedStack`.

    Parameters
    ----------
    image_layer : napari.layers.Image
        2-D (or RGB) image or a stack of frames.
    boxes : napari.layers.Shapes, optional
        Rectangles with ``class`` (``head``/``sperm``) and ``sperm_id`` features.
    heads, tails : napari.layers.Labels, optional
        Label value = sperm id, same frames as the image.

    Returns
    -------
    AnnotatedStack
        Pixels are the image layer's data (not copied).
    """
    n_frames, is_stack = image_frames(image_layer)
    _check_sizes(image_layer, heads, tails)
    rows = box_rows(boxes, is_stack)
    table = _cells_table([heads, tails])
    frames = [
        frame_from_layers(image_layer, k, boxes, heads, tails, rows=rows, table=table)
        for k in range(n_frames)
    ]
    meta = _meta(image_layer)
    extra = dict(meta.get("image_meta") or {})
    size = _pixel_size_um(image_layer)
    if size is not None:
        extra["pixel_size_um"] = size
    return AnnotatedStack(
        name=str(meta.get("stack_name") or image_layer.name),
        frames=frames,
        pixels=image_layer.data if is_stack else image_layer.data[None],
        is_stack=is_stack,
        source_file=meta.get("source") if isinstance(meta.get("source"), str) else None,
        meta=extra,
    )


_MICRONS = {"um", "µm", "micrometer", "micrometre", "micron"}


def _pixel_size_um(image_layer) -> float | None:
    """The layer's square pixel size in micrometres, or None (unscaled, other units, anisotropic)."""
    sy, sx = (float(v) for v in image_layer.scale[-2:])
    units = getattr(image_layer, "units", None)
    unit = str(units[-1]) if units is not None and len(units) else ""
    if sy == sx and sx != 1.0 and unit in _MICRONS:
        return sx
    return None


def layer_data_from_stack(
    stack: AnnotatedStack, imported_from: str | None = None
) -> list[LayerData]:
    """Image, boxes, heads and tails layer data for an imported stack (npe2 reader output).

    Boxes: a ``head`` box for every cell with a head (the mask's box when it has a mask) and a
    ``sperm`` box where the file has a ``sperm`` annotation. The layers are the user's data: they
    carry no napari-sperm fingerprint, so no detection or segmentation rerun replaces them.
    """
    n = len(stack.frames)
    h, w = stack.frames[0].shape
    pixels = stack.pixels if stack.is_stack else stack.pixels[0]
    name = stack.name
    image_meta = {
        "napari_sperm": {
            "source": stack.source_file,
            "stack_name": stack.name,
            "frame_indices": [f.frame for f in stack.frames],
            "image_meta": dict(stack.meta),
            "imported_from": imported_from,
        }
    }
    place: dict[str, Any] = {}
    size = stack.meta.get("pixel_size_um")
    if isinstance(size, (int, float)) and size > 0:
        spatial = (float(size), float(size))
        place = {"scale": ((1.0,) + spatial) if stack.is_stack else spatial, "units": "um"}
    out: list[LayerData] = [
        (pixels, {"name": name, "rgb": stack.rgb, "metadata": image_meta, **place}, "image")
    ]
    shapes, feats = [], {"score": [], "class": [], "frame": [], "sperm_id": [], "reviewed": []}
    heads = new_label_volume((n, h, w), like=pixels)
    tails = new_label_volume((n, h, w), like=pixels)
    overlaps: dict[str, dict[str, dict]] = {"heads": {}, "tails": {}}
    cells_rows = []
    for k, fr in enumerate(stack.frames):
        cells = fr.sorted_cells()
        for cls, get in (("head", _head_box), ("sperm", lambda c: c.sperm_box)):
            for c in cells:
                box = get(c)
                if box is None:
                    continue
                shapes.append(box_corners(box, k if stack.is_stack else None))
                feats["score"].append(np.nan if c.score is None else float(c.score))
                feats["class"].append(cls)
                feats["frame"].append(k)
                feats["sperm_id"].append(int(c.sperm_id))
                feats["reviewed"].append(bool(c.reviewed))
        for part, arr in (("heads", heads), ("tails", tails)):
            attr = "head" if part == "heads" else "tail"
            masks = {c.sperm_id: getattr(c, attr) for c in cells if getattr(c, attr) is not None}
            arr[k], extras = labels_from_masks(masks, fr.shape)
            if extras:
                overlaps[part][str(k)] = extras
        for c in cells:
            cells_rows.append(
                {
                    "sperm_id": c.sperm_id,
                    "frame": k,
                    "score": np.nan if c.score is None else float(c.score),
                    "reviewed": bool(c.reviewed),
                }
            )
    features = {
        "score": np.asarray(feats["score"], float),
        "class": np.asarray(feats["class"], dtype=object),
        "frame": np.asarray(feats["frame"], int),
        "sperm_id": np.asarray(feats["sperm_id"], int),
        "reviewed": np.asarray(feats["reviewed"], bool),
    }
    colours = np.array([CLASS_COLOURS[c] for c in feats["class"]], float).reshape(-1, 4)
    ndim = 3 if stack.is_stack else 2
    out.append(
        (
            shapes,
            {
                "name": f"{name} boxes",
                "shape_type": "rectangle",
                "edge_color": colours if len(colours) else "yellow",
                "face_color": "transparent",
                "edge_width": 2,
                "features": features,
                "ndim": ndim,
                "metadata": {"napari_sperm": {"kind": DETECTIONS_KIND, "source": name}},
                **place,
            },
            "shapes",
        )
    )
    table = pd.DataFrame(cells_rows, columns=["sperm_id", "frame", "score", "reviewed"])
    for part, arr, kind in (("heads", heads, HEADS_KIND), ("tails", tails, TAILS_KIND)):
        out.append(
            (
                arr if stack.is_stack else arr[0],
                {
                    "name": f"{name} {part}",
                    **place,
                    "metadata": {
                        "napari_sperm": {
                            "kind": kind,
                            "source": name,
                            "overlaps": overlaps[part],
                            "cells": table.to_dict(orient="list"),
                        }
                    },
                },
                "labels",
            )
        )
    return out


def _head_box(cell: Cell):
    if cell.head is not None and cell.head.area:
        return tuple(float(v) for v in cell.head.bbox())
    return cell.head_box


def apply_placement(layer_data: list[LayerData], image_layer) -> list[LayerData]:
    """Give every layer the image layer's scale and translate (for layers added beside it)."""
    return [(d, {**kw, **placement(image_layer)}, t) for d, kw, t in layer_data]
