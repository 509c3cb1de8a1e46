"""Concatenate COCO datasets with fresh image and annotation ids (no collisions)."""

from __future__ import annotations

from typing import Any

__all__ = ["append_dataset", "count_heads", "renumbered"]


def renumbered(
    src: dict[str, Any], image_base: int, ann_base: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``src``'s images and annotations with ids continuing after ``image_base`` / ``ann_base``.

    Each annotation's ``image_id`` follows its image; every other field is kept.
    """
    new_ids: dict[Any, int] = {}
    images = []
    for k, im in enumerate(src.get("images", []), start=1):
        new_ids[im["id"]] = image_base + k
        images.append({**im, "id": image_base + k})
    anns = [
        {**ann, "id": ann_base + k, "image_id": new_ids[ann["image_id"]]}
        for k, ann in enumerate(src.get("annotations", []), start=1)
    ]
    return images, anns


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
    images, anns = renumbered(src, len(dst["images"]), len(dst["annotations"]))
    dst["images"].extend(images)
    dst["annotations"].extend(anns)
    return dst


def count_heads(ds: dict[str, Any]) -> int:
    """Number of ``head`` annotations (category 2) in a napari-sperm COCO dataset."""
    return sum(1 for a in ds.get("annotations", []) if a.get("category_id") == 2)
