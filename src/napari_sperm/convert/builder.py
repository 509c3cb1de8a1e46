"""Writing cells into a COCO dataset in our schema (ids from 1, sperm/head/tail, sperm ids).

Per cell, in this order:

- ``sperm``: a box. With ``sperm_from_parts`` (labelme, coco-parts) the union of the boxes of all
  the cell's parts, whole-cell shapes included; otherwise (YOLO) the whole-cell box as drawn.
- ``head``: every head part of the cell as ONE annotation. When any of them has an outline, the
  union of their masks (box-only parts as filled boxes) as compressed RLE, with ``bbox`` and
  ``area`` computed by pycocotools; otherwise the union of their boxes.
- ``tail``: the same for the tail parts.

A box without a mask is written as its rectangle: a 4-point polygon, ``area`` = w * h, and
``attributes.box_only = true`` (as ``napari-sperm export`` writes boxes). Every annotation carries
``attributes.sperm_id`` (1, 2, ... per image), ``box_only`` and ``source_labels`` (the sorted
labels of the source shapes it was made from).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import __version__
from ..coco import CATEGORY_IDS, mask_fields, new_dataset
from .cells import Cell, Part, union_box
from .common import ConvertSummary
from .geometry import box_mask, union_masks

__all__ = ["DatasetBuilder", "box_fields"]


def box_fields(box: Sequence[float]) -> dict[str, Any] | None:
    """``segmentation`` (the rectangle as a polygon), ``area`` and ``bbox`` of a box.

    Parameters
    ----------
    box : (x, y, w, h)

    Returns
    -------
    dict or None
        None when the box, rounded to 0.001 px, has no width or height.
    """
    x, y, w, h = (round(float(v), 3) for v in box)
    if w <= 0 or h <= 0:
        return None
    x1, y1 = round(x + w, 3), round(y + h, 3)
    return {
        "segmentation": [[x, y, x1, y, x1, y1, x, y1]],
        "area": round(w * h, 3),
        "bbox": [x, y, w, h],
    }


class DatasetBuilder:
    """Collects images and cells into one COCO dataset dict and counts them in a summary.

    Parameters
    ----------
    summary : ConvertSummary
        Counts are added to it.
    **info
        Extra ``info`` fields (inputs, options).
    """

    def __init__(self, summary: ConvertSummary, **info: Any) -> None:
        self.summary = summary
        self.dataset = new_dataset(
            f"converted from {summary.source_format} by napari-sperm",
            version=__version__,
            date_created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            source_format=summary.source_format,
            **info,
        )
        self._next_ann = 1

    def add_image(self, file_name: str, width: int, height: int, **extra: Any) -> int:
        """Add an image entry.

        Parameters
        ----------
        file_name : str
            Relative to the output JSON's folder (see :func:`.common.output_name`).
        width, height : int
        **extra
            More fields (``frame`` for a frame of a stack).

        Returns
        -------
        int
            The image id (1, 2, ...).
        """
        image_id = len(self.dataset["images"]) + 1
        entry = {"id": image_id, "file_name": file_name, "width": int(width), "height": int(height)}
        entry.update(extra)
        self.dataset["images"].append(entry)
        self.summary.images += 1
        return image_id

    def add_cells(
        self,
        image_id: int,
        shape: tuple[int, int],
        cells: Sequence[Cell],
        sperm_from_parts: bool,
    ) -> None:
        """Write the annotations of an image's cells (see the module docstring).

        Parameters
        ----------
        image_id : int
        shape : (int, int)
            Image ``(height, width)``.
        cells : sequence of Cell
        sperm_from_parts : bool
            The ``sperm`` box is the union of all parts (True) or of the whole-cell parts only.
        """
        sperm_id = 0
        for cell in cells:
            anns = []
            sperm_parts = cell.parts if sperm_from_parts else cell.of("sperm")
            if sperm_parts:
                labels = cell.of("sperm") or sperm_parts
                fields = box_fields(union_box([p.box for p in sperm_parts]))
                anns.append(("sperm", fields, labels))
            for role in ("head", "tail"):
                parts = cell.of(role)
                if parts:
                    anns.append((role, self._part_fields(parts, shape), parts))
            if any(a[1] is None for a in anns):
                self.summary.skip("parts smaller than 0.001 px", sum(a[1] is None for a in anns))
                anns = [a for a in anns if a[1] is not None]
            if not anns:
                continue
            sperm_id += 1
            for role, fields, parts in anns:
                box_only = isinstance(fields["segmentation"], list)
                self.dataset["annotations"].append(
                    {
                        "id": self._next_ann,
                        "image_id": int(image_id),
                        "category_id": CATEGORY_IDS[role],
                        **fields,
                        "iscrowd": 0,
                        "attributes": {
                            "sperm_id": sperm_id,
                            "box_only": box_only,
                            "source_labels": sorted({p.label for p in parts}),
                        },
                    }
                )
                self._next_ann += 1
                if role == "sperm":
                    self.summary.sperm_boxes += 1
                elif role == "head":
                    self.summary.heads += 1
                else:
                    self.summary.tails += 1
        self.summary.cells += sperm_id

    @staticmethod
    def _part_fields(parts: list[Part], shape: tuple[int, int]) -> dict[str, Any] | None:
        """Fields of one head or tail annotation made from ``parts`` (None when empty)."""
        if not any(p.mask is not None for p in parts):
            return box_fields(union_box([p.box for p in parts]))
        crop = union_masks(
            [p.mask if p.mask is not None else box_mask(p.box, shape) for p in parts]
        )
        if crop.mask.size == 0:
            return None
        full = np.zeros(shape, dtype=bool)
        crop.paste(full)
        return mask_fields(full)
