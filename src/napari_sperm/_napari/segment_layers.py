"""Segmentation results -> the ``heads`` and ``tails`` Labels layers with a per-cell features table.

Layers are recognised by metadata (kind and source image), carry a fingerprint, and are replaced only
while unedited (see :mod:`.tails_layers`); an edited layer is kept and the new result goes to a new
layer. The table has one row per cell and frame and is kept in the metadata (``napari_sperm.cells``); for a
single image it is also the layer's features table, whose ``index`` column is the label value, so
napari shows the row when the pointer is over the cell. Pixels where two tails cross show one tail;
the other keeps them in ``napari_sperm.overlaps`` so the export writes both full masks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..annotations.labels import labels_from_masks
from .label_volume import new_label_volume
from .placement import placement
from .tails_layers import find_output, is_unedited, stamp

__all__ = ["HEADS_KIND", "TAILS_KIND", "features_table", "write_segmentation"]

HEADS_KIND, TAILS_KIND = "segmentation-heads", "segmentation-tails"


def features_table(results, first: int = 0) -> pd.DataFrame:
    """One row per cell (and unpaired tail) per frame."""
    rows = []
    for k, res in enumerate(results):
        for rec in res.sperm:
            rows.append(
                {
                    "index": rec.sperm_id,
                    "sperm_id": rec.sperm_id,
                    "frame": first + k,
                    "head_area": rec.head_area,
                    "tail_length": round(rec.tail_length, 2),
                    "paired": rec.paired,
                    "score": round(rec.score, 4),
                    "cell_score": round(rec.whole_cell_score, 4),
                    "engine": rec.engine,
                }
            )
    columns = [
        "index",
        "sperm_id",
        "frame",
        "head_area",
        "tail_length",
        "paired",
        "score",
        "cell_score",
        "engine",
    ]
    return pd.DataFrame(rows, columns=columns)


def _labels(result, part: str) -> tuple[np.ndarray, dict]:
    """Label image of one part (value = sperm id) and the pixels cells share (see annotations.labels)."""
    masks = {
        rec.sperm_id: getattr(rec, part) for rec in result.sperm if getattr(rec, part) is not None
    }
    return labels_from_masks(masks, result.shape)


def write_segmentation(
    viewer, image_layer, results, engine, is_stack, first, only_current, replace
):
    """Add or update the ``heads`` and ``tails`` layers of ``image_layer``."""
    table = features_table(results, first)
    for kind, name, part in ((HEADS_KIND, "heads", "head"), (TAILS_KIND, "tails", "tail")):
        overlaps = {}
        previous = find_output(viewer, kind, image_layer.name) if replace else None
        if previous is not None and not is_unedited(previous):
            from napari.utils.notifications import show_info

            show_info(
                f"napari-sperm: '{previous.name}' was edited, so it is kept and the new result goes to a new layer."
            )
            previous = None
        old_table = None
        if is_stack:
            # one frame at a time into one volume (disk-backed for stacks larger than memory)
            shape = tuple(image_layer.data.shape[:1]) + tuple(results[0].shape)
            if only_current and previous is not None:
                data = previous.data  # painted in place: the other frames stay as they are
                old = previous.metadata.get("napari_sperm", {}).get("cells")
                old_table = None if old is None else pd.DataFrame(old)
                old_overlaps = previous.metadata.get("napari_sperm", {}).get("overlaps") or {}
                overlaps = {k: v for k, v in old_overlaps.items() if k != str(first)}
            else:
                data = new_label_volume(shape, like=image_layer.data)
            for k, r in enumerate(results):
                lab, extra = _labels(r, part)
                data[first + k] = lab
                if extra:
                    overlaps[str(first + k)] = extra
        else:
            data, extra = _labels(results[0], part)
            data = data.astype(np.int32, copy=False)
            if extra:
                overlaps["0"] = extra
        cells = table
        if old_table is not None and len(old_table):
            cells = pd.concat([old_table[old_table["frame"] != first], table], ignore_index=True)
        meta = {
            "napari_sperm": {
                "kind": kind,
                "source": image_layer.name,
                "engine": engine,
                "cells": cells.to_dict(orient="list"),
                "overlaps": overlaps,
            }
        }
        # napari shows the features row whose ``index`` equals the label under the pointer; in a
        # stack one sperm id names different cells in different frames, so the table stays in the
        # metadata there (``napari_sperm.cells``) instead of giving the wrong row.
        features = cells if not is_stack else pd.DataFrame()
        if previous is None:
            new = viewer.add_labels(
                data, name=name, metadata=meta, features=features, **placement(image_layer)
            )
            stamp(new)
        else:
            if previous.data is data:
                previous.refresh()  # painted in place
            else:
                previous.data = data
            previous.metadata = meta
            previous.features = features
            stamp(previous)
