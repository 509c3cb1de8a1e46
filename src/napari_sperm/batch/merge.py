"""Concatenate COCO datasets with fresh image and annotation ids (no collisions)."""

from __future__ import annotations

from typing import Any

__all__ = ["append_dataset", "count_heads"]


def append_dataset(dst: dict[str, Any], src: dict[str, Any]) -> dict[str, Any]:
    """Append ``src``'s images and annotations to ``dst``, renumbering both from ``dst``'s end.

    Image ids continue after ``dst``'s images and annotation ids after its annotations, in
    ``src``'s order; each annotation's ``image_id`` follows its image. ``file_name``, ``frame``
    and every other field are kept. Ids in ``dst`` are assumed to run 1..n (as this module and
    the napari-sperm writers make them).

    Parameters
    ----------
    dst : dict
        COCO dataset to extend in place.
    src : dict
        COCO dataset to take images and annotations from (not modified).

    Returns
    -------
    dict
        ``dst``.
    """
    image_base = len(dst["images"])
    ann_base = len(dst["annotations"])
    new_ids: dict[Any, int] = {}
    for k, im in enumerate(src.get("images", []), start=1):
        new_ids[im["id"]] = image_base + k
        dst["images"].append({**im, "id": image_base + k})
    for k, ann in enumerate(src.get("annotations", []), start=1):
        dst["annotations"].append({**ann, "id": ann_base + k, "image_id": new_ids[ann["image_id"]]})
    return dst


def count_heads(ds: dict[str, Any]) -> int:
    """Number of ``head`` annotations (category 2) in a napari-sperm COCO dataset."""
    return sum(1 for a in ds.get("annotations", []) if a.get("category_id") == 2)
