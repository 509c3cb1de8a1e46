"""The project's COCO schema: fixed categories, masks as compressed RLE, cells linked by sperm id.

Every napari-sperm file keeps these conventions so that pycocotools (and tools built on it) read it
as it is:

- categories ``1 sperm`` (whole cell), ``2 head``, ``3 tail`` (midpiece + principal piece);
- one ``images`` entry per frame; stack frames carry an extra ``frame`` index;
- annotation and image ids start at 1 (0 means "unmatched" inside COCOeval);
- ``segmentation`` is compressed RLE, ``bbox`` and ``area`` are computed from the mask the way
  pycocotools does; ``iscrowd`` is 0;
- ``attributes.sperm_id`` links a cell's ``sperm``, ``head`` and ``tail`` annotations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

__all__ = [
    "CATEGORIES",
    "CATEGORY_IDS",
    "encode_mask",
    "decode_mask",
    "mask_fields",
    "mask_annotation",
    "new_dataset",
]

CATEGORIES: list[dict[str, Any]] = [
    {"id": 1, "name": "sperm", "supercategory": "cell"},
    {"id": 2, "name": "head", "supercategory": "sperm"},
    {"id": 3, "name": "tail", "supercategory": "sperm"},
]
CATEGORY_IDS: dict[str, int] = {c["name"]: c["id"] for c in CATEGORIES}


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """Encode a 2-D boolean mask as JSON-ready compressed RLE.

    Parameters
    ----------
    mask : (H, W) array
        Non-zero pixels belong to the object.

    Returns
    -------
    dict
        ``{"size": [H, W], "counts": str}`` as pycocotools writes it, with ``counts`` decoded to ASCII.
    """
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {
        "size": [int(rle["size"][0]), int(rle["size"][1])],
        "counts": rle["counts"].decode("ascii"),
    }


def decode_mask(rle: dict[str, Any]) -> np.ndarray:
    """Decode compressed (string counts) or uncompressed (list counts) RLE to a boolean mask."""
    h, w = rle["size"]
    counts = rle["counts"]
    if isinstance(counts, list):
        rle = mask_utils.frPyObjects(rle, h, w)
    elif isinstance(counts, str):
        rle = {"size": [h, w], "counts": counts.encode("ascii")}
    return mask_utils.decode(rle).astype(bool)


def mask_fields(mask: np.ndarray) -> dict[str, Any]:
    """``segmentation`` (compressed RLE), ``area`` and ``bbox`` of a full-frame mask, computed the
    way pycocotools computes them."""
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {
        "segmentation": {
            "size": [int(rle["size"][0]), int(rle["size"][1])],
            "counts": rle["counts"].decode("ascii"),
        },
        "area": float(mask_utils.area(rle)),
        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
    }


def mask_annotation(
    mask: np.ndarray,
    ann_id: int,
    image_id: int,
    category: str,
    attributes: dict[str, Any] | None = None,
    score: float | None = None,
) -> dict[str, Any]:
    """One COCO annotation for a full-frame mask, with bbox and area as pycocotools computes them.

    Parameters
    ----------
    mask : (H, W) bool array
    ann_id, image_id : int
        Ids, both starting at 1.
    category : {"sperm", "head", "tail"}
    attributes : dict, optional
        Extra per-object fields; must include ``sperm_id`` for parts of a cell.
    score : float, optional
        Confidence for predictions (left out for ground truth).

    Returns
    -------
    dict
    """
    fields = mask_fields(mask)
    ann: dict[str, Any] = {
        "id": int(ann_id),
        "image_id": int(image_id),
        "category_id": CATEGORY_IDS[category],
        "segmentation": fields["segmentation"],
        "area": fields["area"],
        "bbox": fields["bbox"],
        "iscrowd": 0,
        "attributes": dict(attributes or {}),
    }
    if score is not None:
        ann["score"] = float(score)
    return ann


def new_dataset(description: str, **info: Any) -> dict[str, Any]:
    """An empty dataset dict with ``info``, ``licenses``, the fixed ``categories`` and no images."""
    return {
        "info": {"description": description, **info},
        "licenses": [],
        "images": [],
        "annotations": [],
        "categories": [dict(c) for c in CATEGORIES],
    }
