"""Segmentation results as COCO: ``sperm``, ``head`` and ``tail`` masks linked by ``sperm_id``."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import __version__
from ..coco import mask_annotation, new_dataset
from .segment import FrameSegmentation

__all__ = ["SegmentedImage", "segmentation_to_coco"]


@dataclass
class SegmentedImage:
    """One segmented frame and where it came from.

    Attributes
    ----------
    file_name : str
        The input path as the user gave it.
    frame : int or None
        Frame index for frames of a stack, None for single images.
    result : FrameSegmentation
    """

    file_name: str
    frame: int | None
    result: FrameSegmentation


def segmentation_to_coco(images: list[SegmentedImage], **info: Any) -> dict[str, Any]:
    """Build a COCO dataset with compressed-RLE masks.

    Per cell: category 2 ``head`` and 3 ``tail`` (each when found) and 1 ``sperm`` (head plus tail),
    all with ``attributes.sperm_id`` (the detector's id) and ``attributes.paired``; a tail that no
    head claimed is written as a ``tail`` only, with a fresh ``sperm_id``. Crossing pixels stay in
    both tails' masks. A ``head`` carries the head detection's score; a ``sperm`` and its ``tail``
    carry the whole-cell score (``SpermRecord.whole_cell_score``: the head score, scaled down when
    the tail is missing or shorter than the frame's typical tail), so whole cells rank by how
    complete they are; tails without a head score 0.

    Parameters
    ----------
    images
        One entry per segmented frame.
    **info
        Extra ``info`` fields (engine, weights, ...).

    Returns
    -------
    dict
    """
    ds = new_dataset(
        "napari-sperm segmentation",
        version=__version__,
        date_created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **info,
    )
    ann_id = 1
    for image_id, item in enumerate(images, start=1):
        res = item.result
        h, w = res.shape
        entry: dict[str, Any] = {
            "id": image_id,
            "file_name": item.file_name,
            "width": int(w),
            "height": int(h),
        }
        if item.frame is not None:
            entry["frame"] = int(item.frame)
        ds["images"].append(entry)
        for rec in res.sperm:
            attrs = {"sperm_id": int(rec.sperm_id), "paired": bool(rec.paired)}
            parts = []
            if rec.head is not None and rec.head.area:
                parts.append(("head", rec.head.to_full(res.shape)))
            if rec.tail is not None and rec.tail.area:
                tail_attrs = {"tail_length_px": round(rec.tail_length, 2)}
                parts.append(("tail", rec.tail.to_full(res.shape), tail_attrs))
            if rec.head is not None and rec.head.area:
                parts.insert(0, ("sperm", rec.mask(res.shape)))
            for part in parts:
                category, mask = part[0], part[1]
                extra = part[2] if len(part) > 2 else {}
                score = rec.score if category == "head" else rec.whole_cell_score
                ds["annotations"].append(
                    mask_annotation(
                        np.asarray(mask, bool),
                        ann_id,
                        image_id,
                        category,
                        {**attrs, **extra, "engine": rec.engine},
                        score=round(float(score), 4),
                    )
                )
                ann_id += 1
    return ds
