"""Accuracy of a detector on synthetic fields, scored by :mod:`napari_sperm.evaluation`.

Used by the training script and ``benchmarks/detect_accuracy.py``: the fields' ground truth and the
detections become COCO dicts and go through the same pycocotools scoring as ``napari-sperm evaluate``.
"""

from __future__ import annotations

from ..coco import CATEGORIES
from ..evaluation import evaluate_detections
from .coco_output import ImageRecord, detections_to_coco

__all__ = ["boxes_dataset", "coco_eval_fields", "field_ground_truth"]


def _name(index: int) -> str:
    return f"field_{index:05d}"


def boxes_dataset(images) -> dict:
    """A COCO ground-truth dataset of boxes (ids from 1, our fixed categories).

    Parameters
    ----------
    images : iterable of (file_name, width, height, boxes)
        ``boxes``: ``(category_id, (x, y, w, h), attributes or None)`` per annotation.

    Returns
    -------
    dict
    """
    out_images, anns = [], []
    for img_id, (name, w, h, boxes) in enumerate(images, start=1):
        out_images.append({"id": img_id, "file_name": name, "width": int(w), "height": int(h)})
        for cat, box, attributes in boxes:
            x, y, bw, bh = (float(v) for v in box)
            ann = {
                "id": len(anns) + 1,
                "image_id": img_id,
                "category_id": int(cat),
                "bbox": [x, y, bw, bh],
                "area": bw * bh,
                "iscrowd": 0,
            }
            if attributes is not None:
                ann["attributes"] = attributes
            anns.append(ann)
    return {"images": out_images, "annotations": anns, "categories": [dict(c) for c in CATEGORIES]}


def field_ground_truth(fields) -> dict:
    """COCO ground truth of synthetic fields: head box -> category 2, whole-cell box -> 1."""
    return boxes_dataset(
        (
            _name(i),
            fld.shape[1],
            fld.shape[0],
            [
                (cat, box, {"sperm_id": t.sperm_id})
                for t in fld.sperm
                for cat, box in ((2, t.head_box()), (1, t.sperm_box()))
                if box is not None
            ],
        )
        for i, fld in enumerate(fields, start=1)
    )


def coco_eval_fields(fields, detections) -> dict:
    """Per category (``head``, ``sperm``): AP, AP50, AR100 with COCO's 100 detections per image,
    and ``AP_1000``, ``AP50_1000``, ``AR1000`` with 1000 (fields with more than 100 cells).

    ``detections``: one :class:`FrameDetections` per field, in the same order. Also returns
    ``n_cells``, the number of ground-truth heads.
    """
    gt = field_ground_truth(fields)
    pred = detections_to_coco(
        [
            ImageRecord(_name(i), fld.shape[1], fld.shape[0], None, det)
            for i, (fld, det) in enumerate(zip(fields, detections, strict=True), start=1)
        ]
    )
    scores = {
        md: evaluate_detections(gt, pred, max_dets=md, categories=["head", "sperm"])["categories"]
        for md in (100, 1000)
    }
    out: dict = {}
    for name in ("head", "sperm"):
        a, b = scores[100][name], scores[1000][name]
        out[name] = {
            "AP": a["AP"],
            "AP50": a["AP50"],
            "AR100": a["AR@100"],
            "AP_1000": b["AP"],
            "AP50_1000": b["AP50"],
            "AR1000": b["AR@1000"],
        }
    out["n_cells"] = sum(1 for x in gt["annotations"] if x["category_id"] == 2)
    return out
