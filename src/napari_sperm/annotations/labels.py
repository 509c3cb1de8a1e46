"""Label images <-> per-cell masks, keeping pixels that two cells share.

A label image holds one value per pixel, but crossing tails share pixels and both keep them in the
export. The label image shows one owner per pixel; every other cell that also covers the pixel keeps
it in ``extras`` (``{sperm_id: RLE}``, JSON-ready, stored in the layer's metadata). A shared pixel
survives only while the label image still has *some* label there, so erasing a crossing erases it for
both tails.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..coco import decode_mask, encode_mask
from ..synthetic.raster import CropMask

__all__ = ["masks_from_labels", "labels_from_masks"]


def masks_from_labels(
    labels: np.ndarray, extras: dict[Any, dict[str, Any]] | None = None
) -> dict[int, CropMask]:
    """Per-id crop masks of a 2-D label image, plus each id's shared pixels.

    Parameters
    ----------
    labels : (H, W) int array
        0 is background.
    extras : dict, optional
        ``{sperm_id: RLE}`` of pixels an id covers where another id is shown (keys may be str).

    Returns
    -------
    dict of int -> CropMask
        Ids with at least one pixel, ascending.
    """
    labels = np.asarray(labels)
    out: dict[int, CropMask] = {}
    if labels.size and labels.max() > 0:
        for value, sl in enumerate(ndi.find_objects(labels.astype(np.int64, copy=False)), start=1):
            if sl is None:
                continue
            crop = labels[sl] == value
            out[value] = CropMask((sl[0].start, sl[1].start), crop)
    for key, rle in (extras or {}).items():
        sid = int(key)
        extra = decode_mask(rle)
        if extra.shape != labels.shape:
            continue
        extra &= labels > 0
        if not extra.any():
            continue
        full = extra
        if sid in out:
            full = extra | out[sid].to_full(labels.shape)
        out[sid] = CropMask.from_full(full)
    return dict(sorted(out.items()))


def labels_from_masks(
    masks: dict[int, CropMask], shape: tuple[int, int]
) -> tuple[np.ndarray, dict[str, dict[str, Any]]]:
    """Paint masks into a label image (higher ids on top) and record the pixels they share.

    Parameters
    ----------
    masks : dict of int -> CropMask
    shape : (int, int)

    Returns
    -------
    labels : (H, W) int32 array
    extras : dict of str -> RLE
        For each id, its pixels shown under another id (only ids that have such pixels).
    """
    labels = np.zeros(shape, np.int32)
    items = sorted((int(k), m) for k, m in masks.items() if m is not None and m.area)
    for sid, m in items:
        m.paste(labels, sid)
    extras: dict[str, dict[str, Any]] = {}
    for sid, m in items:
        r0, c0 = m.offset
        h, w = m.mask.shape
        hidden = m.mask & (labels[r0 : r0 + h, c0 : c0 + w] != sid)
        if hidden.any():
            extras[str(sid)] = encode_mask(CropMask((r0, c0), hidden).to_full(shape))
    return labels, extras
