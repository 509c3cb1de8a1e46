"""Detections as a COCO prediction dataset (fixed categories, ids from 1, one image per frame)."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

from .. import __version__
from ..coco import new_dataset
from .results import FrameDetections

__all__ = ["ImageRecord", "detections_to_coco"]


@dataclass
class ImageRecord:
    """One frame that was searched, and what was found in it.

    Attributes
    ----------
    file_name : str
        The input path as the user gave it.
    width, height : int
        Frame size in pixels.
    frame : int or None
        Frame index for frames of a stack, None for single images.
    detections : FrameDetections
    """

    file_name: str
    width: int
    height: int
    frame: int | None
    detections: FrameDetections


def detections_to_coco(records: list[ImageRecord], **info: Any) -> dict[str, Any]:
    """Build a COCO dataset of box predictions.

    Parameters
    ----------
    records
        One entry per searched frame.
    **info
        Extra ``info`` fields (weights, device, threshold, ...).

    Returns
    -------
    dict
        ``images`` (``file_name`` as given, ``width``, ``height``, ``frame`` for stack frames), the
        fixed ``categories``, and ``annotations`` with ``bbox`` [x, y, w, h], ``score``, ``area``
        (w * h), ``iscrowd`` 0 and ``attributes.sperm_id`` linking a head to its cell's box.
    """
    ds = new_dataset(
        "napari-sperm detections",
        version=__version__,
        date_created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **info,
    )
    ann_id = 1
    for image_id, rec in enumerate(records, start=1):
        entry: dict[str, Any] = {
            "id": image_id,
            "file_name": rec.file_name,
            "width": int(rec.width),
            "height": int(rec.height),
        }
        if rec.frame is not None:
            entry["frame"] = int(rec.frame)
        ds["images"].append(entry)
        det = rec.detections
        for box, score, cls, sid in zip(
            det.boxes, det.scores, det.classes, det.sperm_ids, strict=True
        ):
            x, y, w, h = (round(float(v), 2) for v in box)
            ds["annotations"].append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": int(cls),
                    "bbox": [x, y, w, h],
                    "area": round(w * h, 2),
                    "score": round(float(score), 4),
                    "iscrowd": 0,
                    "attributes": {"sperm_id": int(sid)},
                }
            )
            ann_id += 1
    return ds
