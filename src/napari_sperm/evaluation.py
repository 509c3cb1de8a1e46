"""Score detections against ground truth: COCO AP with pycocotools, plus a centre-distance recall.

COCO box AP is unforgiving for small objects: a 2 px error on a 10 px head drops IoU below 0.5. So
next to AP50, AP[.5:.95] and AR@100 (pycocotools ``COCOeval``, not a home-made mAP) we report a
centre-distance precision / recall / F1: a prediction hits a ground-truth object of the same class
when their box centres are closer than ``radius_fraction`` times the object's size
(``sqrt(w * h)``), at least ``min_radius`` px.

Images of the two files are matched by ``file_name`` (and ``frame`` for stack frames): by the
resolved path when both files exist on disk (the ground truth's names are relative to its JSON file,
the predictions' as given on the command line), else by the bare file name.

Masks (COCO segm AP, matched-instance IoU) and the per-image table are scored by
:mod:`napari_sperm.evaluation_segm`.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from .coco import CATEGORIES
from .io.errors import SpermInputError

__all__ = ["evaluate_detections", "format_report", "match_images", "centre_distance_scores"]

_NAMES = {c["id"]: c["name"] for c in CATEGORIES}


def _check_dataset(ds: Any, what: str, need_scores: bool = False) -> None:
    if not isinstance(ds, dict):
        raise SpermInputError(f"{what} is not a COCO dataset (expected a JSON object).")
    missing = [k for k in ("images", "annotations") if k not in ds]
    if missing:
        raise SpermInputError(f"{what} is not a COCO dataset: missing {', '.join(missing)}.")
    for im in ds["images"]:
        if not {"id", "file_name"} <= set(im):
            raise SpermInputError(f"{what}: an image entry lacks 'id' or 'file_name': {im!r:.120}")
    for a in ds["annotations"]:
        if not {"image_id", "category_id", "bbox"} <= set(a):
            raise SpermInputError(
                f"{what}: annotation {a.get('id', '?')} lacks image_id, category_id or bbox."
            )
        if len(a["bbox"]) != 4:
            raise SpermInputError(
                f"{what}: annotation {a.get('id', '?')} has a bbox without 4 numbers."
            )
        if need_scores and "score" not in a:
            raise SpermInputError(
                f"{what}: annotation {a.get('id', '?')} has no 'score' (is it a prediction file?)."
            )


def _key_path(name: str, base: Path | None) -> str | None:
    p = Path(name)
    if not p.is_absolute() and base is not None:
        p = base / p
    try:
        return str(p.resolve()) if p.exists() else None
    except OSError:
        return None


def match_images(
    gt: dict,
    pred: dict,
    gt_dir: str | os.PathLike | None = None,
    pred_dir: str | os.PathLike | None = None,
) -> dict[int, int]:
    """Map prediction image ids to ground-truth image ids.

    Parameters
    ----------
    gt, pred
        COCO dataset dicts.
    gt_dir
        Folder the ground truth's ``file_name`` entries are relative to (its JSON file's folder).
    pred_dir
        Folder the predictions' relative names are resolved against (the current folder by default;
        names that do not exist there are also tried relative to this folder).

    Returns
    -------
    dict
        ``pred_image_id -> gt_image_id`` for every prediction image that has a match.
    """
    gt_base = Path(gt_dir) if gt_dir is not None else None

    def frame_of(im):
        return int(im.get("frame", 0) or 0)

    by_path: dict[tuple[str, int], int] = {}
    by_name: dict[tuple[str, int], list[int]] = {}
    for im in gt["images"]:
        key = _key_path(im["file_name"], gt_base)
        if key:
            by_path[(key, frame_of(im))] = im["id"]
        by_name.setdefault((Path(im["file_name"]).name, frame_of(im)), []).append(im["id"])
    out: dict[int, int] = {}
    for im in pred["images"]:
        f = frame_of(im)
        key = _key_path(im["file_name"], None) or (
            _key_path(im["file_name"], Path(pred_dir)) if pred_dir is not None else None
        )
        if key and (key, f) in by_path:
            out[im["id"]] = by_path[(key, f)]
            continue
        cands = by_name.get((Path(im["file_name"]).name, f), [])
        if len(cands) == 1:
            out[im["id"]] = cands[0]
    return out


def _coco(ds: dict):
    from pycocotools.coco import COCO

    c = COCO()
    c.dataset = ds
    with contextlib.redirect_stdout(io.StringIO()):
        c.createIndex()
    return c


def _gt_for_boxes(gt: dict, image_ids: set[int]) -> dict:
    anns = []
    for a in gt["annotations"]:
        if a["image_id"] in image_ids:
            b = a["bbox"]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": a["image_id"],
                    "category_id": a["category_id"],
                    "bbox": [float(v) for v in b],
                    "area": float(a.get("area", b[2] * b[3])),
                    "iscrowd": int(a.get("iscrowd", 0)),
                }
            )
    images = [
        {
            "id": im["id"],
            "width": im.get("width", 0),
            "height": im.get("height", 0),
            "file_name": im["file_name"],
        }
        for im in gt["images"]
        if im["id"] in image_ids
    ]
    return {"images": images, "annotations": anns, "categories": [dict(c) for c in CATEGORIES]}


def _coco_scores(
    gt_coco, dets: list[dict], cat: int, max_dets: tuple[int, int, int]
) -> dict[str, float]:
    from pycocotools.cocoeval import COCOeval

    cat_dets = [d for d in dets if d["category_id"] == cat]
    if not cat_dets:
        return {"AP": 0.0, "AP50": 0.0, f"AR@{max_dets[2]}": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt_coco.loadRes(cat_dets)
        ev = COCOeval(gt_coco, dt, "bbox")
        ev.params.catIds = [cat]
        ev.params.maxDets = list(max_dets)
        # Only area range "all" is read below; the small/medium/large ranges would triple the time.
        ev.params.areaRng, ev.params.areaRngLbl = [ev.params.areaRng[0]], ["all"]
        ev.evaluate()
        ev.accumulate()
    # Read the accumulated arrays (area range "all", the largest maxDets): summarize() hard-codes
    # maxDets=100 for AP, which would report -1 for any other limit.
    prec = ev.eval["precision"][:, :, 0, 0, -1]  # [IoU thresholds, recall points]
    rec = ev.eval["recall"][:, 0, 0, -1]  # [IoU thresholds]

    def mean(a):
        a = a[a > -1]
        return float(a.mean()) if a.size else 0.0

    return {"AP": mean(prec), "AP50": mean(prec[0]), f"AR@{max_dets[2]}": mean(rec)}


def centre_distance_scores(
    gt_boxes: np.ndarray,
    pred_boxes: np.ndarray,
    pred_scores: np.ndarray,
    radius_fraction: float = 0.5,
    min_radius: float = 2.0,
) -> tuple[int, int, int]:
    """Greedy one-to-one matching of box centres, best score first.

    Parameters
    ----------
    gt_boxes, pred_boxes : (N, 4) arrays of ``[x, y, w, h]``
    pred_scores : (M,) array
    radius_fraction, min_radius
        A prediction hits a ground-truth box when the centres are closer than
        ``max(min_radius, radius_fraction * sqrt(w * h))`` of that ground-truth box.

    Returns
    -------
    (true positives, false positives, false negatives)
    """
    gt_boxes = np.asarray(gt_boxes, float).reshape(-1, 4)
    pred_boxes = np.asarray(pred_boxes, float).reshape(-1, 4)
    if len(gt_boxes) == 0 or len(pred_boxes) == 0:
        return 0, len(pred_boxes), len(gt_boxes)
    gc = gt_boxes[:, :2] + gt_boxes[:, 2:] / 2
    pc = pred_boxes[:, :2] + pred_boxes[:, 2:] / 2
    radius = np.maximum(min_radius, radius_fraction * np.sqrt(gt_boxes[:, 2] * gt_boxes[:, 3]))
    d = np.hypot(pc[:, None, 0] - gc[None, :, 0], pc[:, None, 1] - gc[None, :, 1])
    taken = np.zeros(len(gt_boxes), bool)
    tp = 0
    for i in np.argsort(-np.asarray(pred_scores, float), kind="stable"):
        ok = (d[i] <= radius) & ~taken
        if ok.any():
            j = int(np.argmin(np.where(ok, d[i], np.inf)))
            taken[j] = True
            tp += 1
    return tp, len(pred_boxes) - tp, len(gt_boxes) - tp


def evaluate_detections(
    gt: dict,
    pred: dict,
    gt_dir: str | os.PathLike | None = None,
    pred_dir: str | os.PathLike | None = None,
    score_threshold: float = 0.3,
    radius_fraction: float = 0.5,
    min_radius: float = 2.0,
    max_dets: int = 100,
    categories: list[str] | None = None,
) -> dict[str, Any]:
    """Evaluate box predictions against ground truth, per category.

    Parameters
    ----------
    gt, pred
        COCO dataset dicts; ``pred`` annotations carry a ``score``.
    gt_dir, pred_dir
        See :func:`match_images`.
    score_threshold
        Operating point for the centre-distance precision/recall/F1 (COCO AP uses all scores).
    radius_fraction, min_radius
        Centre-distance hit radius, see :func:`centre_distance_scores`.
    max_dets
        Largest number of detections per image for COCO AR (100 is the COCO default; dense
        fields with hundreds of cells need more).
    categories
        Category names to score; by default those of the ground truth that the predictions
        contain at least once.

    Returns
    -------
    dict
        ``{"images": n_matched, "unmatched_pred_images": k, "categories": {name: {...}}}`` with
        ``AP``, ``AP50``, ``AR@<max_dets>``, ``n_gt``, ``n_pred``, ``centre_precision``,
        ``centre_recall``, ``centre_f1`` per category present in the ground truth.
    """
    _check_dataset(gt, "ground truth")
    _check_dataset(pred, "predictions", need_scores=True)
    mapping = match_images(gt, pred, gt_dir, pred_dir)
    if not mapping:
        raise SpermInputError(
            "no prediction image matches a ground-truth image by file_name (and frame); "
            "run detect on the same files the ground truth names."
        )
    image_ids = set(mapping.values())
    gt_boxes_ds = _gt_for_boxes(gt, image_ids)
    gt_coco = _coco(gt_boxes_ds)
    dets = [
        {
            "image_id": mapping[a["image_id"]],
            "category_id": int(a["category_id"]),
            "bbox": [float(v) for v in a["bbox"]],
            "score": float(a["score"]),
        }
        for a in pred["annotations"]
        if a["image_id"] in mapping
    ]
    gt_cats = {a["category_id"] for a in gt_boxes_ds["annotations"]}
    if categories is None:
        # Score what the predictions cover (a detector of heads and cells is not asked for tails).
        categories = sorted(gt_cats & {int(a["category_id"]) for a in pred["annotations"]})
    else:
        ids = {c["name"]: c["id"] for c in CATEGORIES}
        unknown = [c for c in categories if c not in ids]
        if unknown:
            raise SpermInputError(f"unknown categories {', '.join(unknown)}; use {', '.join(ids)}.")
        categories = [ids[c] for c in categories]
    cats = [c for c in categories if c in gt_cats]
    md = (1, min(10, max_dets), max_dets)
    result: dict[str, Any] = {
        "images": len(image_ids),
        "unmatched_pred_images": len(pred["images"]) - len(mapping),
        "score_threshold": score_threshold,
        "categories": {},
    }
    gt_by: dict[tuple[int, int], list] = {}
    for a in gt_boxes_ds["annotations"]:
        gt_by.setdefault((a["image_id"], a["category_id"]), []).append(a["bbox"])
    pred_by: dict[tuple[int, int], list] = {}
    for d in dets:
        if d["score"] >= score_threshold:
            pred_by.setdefault((d["image_id"], d["category_id"]), []).append(d)
    for cat in cats:
        scores = _coco_scores(gt_coco, dets, cat, md)
        tp = fp = fn = 0
        for img in image_ids:
            p = pred_by.get((img, cat), [])
            t, f, n = centre_distance_scores(
                np.array(gt_by.get((img, cat), [])),
                np.array([d["bbox"] for d in p]),
                np.array([d["score"] for d in p]),
                radius_fraction,
                min_radius,
            )
            tp, fp, fn = tp + t, fp + f, fn + n
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        scores.update(
            n_gt=tp + fn,
            n_pred=sum(1 for d in dets if d["category_id"] == cat),
            centre_precision=prec,
            centre_recall=rec,
            centre_f1=2 * prec * rec / (prec + rec) if prec + rec else 0.0,
        )
        result["categories"][_NAMES.get(cat, str(cat))] = scores
    return result


def format_report(result: dict[str, Any]) -> str:
    """A plain-text table of :func:`evaluate_detections` numbers.

    When ``result`` has a ``"segm"`` entry (the output of
    :func:`napari_sperm.evaluation_segm.evaluate_segmentation`), its section follows the box table.
    """
    cats = result["categories"]
    ar_key = next((k for k in next(iter(cats.values()), {}) if k.startswith("AR@")), "AR@100")
    lines = [
        f"{result['images']} images matched"
        + (
            f" ({result['unmatched_pred_images']} prediction images unmatched)"
            if result["unmatched_pred_images"]
            else ""
        ),
        f"{'category':10s} {'AP50':>6s} {'AP':>6s} {ar_key:>7s} {'n_gt':>6s} {'n_pred':>7s}   "
        f"centre P/R/F1 @ score >= {result['score_threshold']:g}",
    ]
    for name, s in cats.items():
        lines.append(
            f"{name:10s} {s['AP50']:6.3f} {s['AP']:6.3f} {s[ar_key]:7.3f} {s['n_gt']:6d} {s['n_pred']:7d}   "
            f"{s['centre_precision']:.3f} / {s['centre_recall']:.3f} / {s['centre_f1']:.3f}"
        )
    if result.get("segm") is not None:
        from .evaluation_segm import format_segm_report

        lines += ["", format_segm_report(result["segm"])]
    return "\n".join(lines)
