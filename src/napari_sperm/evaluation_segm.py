"""Score predicted masks against ground truth: COCO segm AP, matched-instance IoU, a per-image table.

Box AP (:mod:`napari_sperm.evaluation`) says whether a cell was found; this module says how well it
was outlined:

- **COCO segm AP50, AP[.5:.95] and AR@max_dets** per category, from pycocotools ``COCOeval`` with
  ``iouType="segm"`` (mask IoU), over the images whose ground truth has masks for that category;
- **matched-instance IoU**: in every image, predicted and ground-truth masks of a category are paired
  one-to-one so that the summed IoU is largest (``scipy.optimize.linear_sum_assignment``); pairs with
  IoU at least ``iou_threshold`` count as matched. Reported: median and mean IoU over the matched
  ground-truth instances, and the matched, missed (ground truth left over) and false (predictions
  left over) counts. A thin tail that is found but traced 1 px too wide has a low IoU but is still
  matched, so this separates "not found" from "found, outlined badly".

Masks may be compressed RLE (string counts), uncompressed RLE (list counts) or polygons; IoUs are
computed on RLE by ``pycocotools.mask.iou``, never on dense pixel arrays. A category without masks in
either file is skipped with a reason, and so is every image whose ground truth has annotations of a
category without masks (an unoutlined object would otherwise count as missed).

Both datasets must use napari-sperm's categories (``1 sperm, 2 head, 3 tail``); see
:func:`napari_sperm.category_map.map_categories` for datasets that name them differently.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from pycocotools import mask as mask_utils

from .coco import CATEGORIES, CATEGORY_IDS
from .evaluation import _check_dataset, _coco, centre_distance_scores, match_images
from .io.atomic import atomic_write
from .io.errors import SpermInputError

__all__ = [
    "MaskMatch",
    "PER_IMAGE_COLUMNS",
    "evaluate_segmentation",
    "format_segm_report",
    "match_masks",
    "per_image_table",
    "write_per_image_csv",
]

_NAMES = {c["id"]: c["name"] for c in CATEGORIES}
_IOU_CATEGORIES = ("head", "tail")

#: Columns of :func:`per_image_table` rows, in CSV order.
PER_IMAGE_COLUMNS: list[str] = [
    "file_name",
    "frame",
    "image_id",
    "matched",
    *[f"{k}_{c}" for c in CATEGORY_IDS for k in ("n_gt", "n_pred")],
    *[f"centre_{k}_{c}" for c in CATEGORY_IDS for k in ("recall", "precision")],
    *[
        f"{k}_{c}"
        for c in _IOU_CATEGORIES
        for k in ("iou_median", "masks_matched", "masks_missed", "masks_false")
    ],
]


class MaskMatch(NamedTuple):
    """One-to-one pairing of predicted and ground-truth masks (see :func:`match_masks`).

    Attributes
    ----------
    pairs : list of (int, int, float)
        ``(gt_index, pred_index, iou)`` of every matched pair, by ground-truth index.
    missed : list of int
        Ground-truth indices left unmatched.
    false : list of int
        Prediction indices left unmatched.
    """

    pairs: list[tuple[int, int, float]]
    missed: list[int]
    false: list[int]


def _as_rle(m: Any) -> dict:
    if isinstance(m, np.ndarray):
        return mask_utils.encode(np.asfortranarray(m, dtype=np.uint8))
    return m


def match_masks(
    gt_masks: Sequence[Any], pred_masks: Sequence[Any], iou_threshold: float = 0.1
) -> MaskMatch:
    """Pair predicted with ground-truth masks one-to-one, maximising the summed IoU.

    Parameters
    ----------
    gt_masks, pred_masks : sequences of compressed RLE dicts or (H, W) bool arrays
        Masks of one category in one image, all of the same size.
    iou_threshold : float
        Smallest IoU of a matched pair. Pairs below it are not considered when pairing, so a
        prediction is never spent on a sub-threshold overlap.

    Returns
    -------
    MaskMatch
    """
    n_gt, n_pred = len(gt_masks), len(pred_masks)
    if n_gt == 0 or n_pred == 0:
        return MaskMatch([], list(range(n_gt)), list(range(n_pred)))
    from scipy.optimize import linear_sum_assignment

    g = [_as_rle(m) for m in gt_masks]
    p = [_as_rle(m) for m in pred_masks]
    iou = np.asarray(mask_utils.iou(p, g, [0] * n_gt), float).reshape(n_pred, n_gt).T
    usable = np.where(iou >= iou_threshold, iou, 0.0)
    rows, cols = linear_sum_assignment(usable, maximize=True)
    pairs = [
        (int(r), int(c), float(iou[r, c]))
        for r, c in zip(rows, cols)
        if iou[r, c] >= iou_threshold and iou[r, c] > 0
    ]
    got_gt = {r for r, _, _ in pairs}
    got_pred = {c for _, c, _ in pairs}
    return MaskMatch(
        pairs,
        [i for i in range(n_gt) if i not in got_gt],
        [j for j in range(n_pred) if j not in got_pred],
    )


def _has_mask(a: dict) -> bool:
    seg = a.get("segmentation")
    if isinstance(seg, dict):
        return "counts" in seg
    return isinstance(seg, list) and len(seg) > 0


def _to_rle(a: dict, size: tuple[int, int] | None, what: str, file_name: str) -> dict:
    """Compressed RLE (bytes counts) of an annotation's segmentation, checked against ``size``."""
    seg = a["segmentation"]
    ident = a.get("id", "?")
    try:
        if isinstance(seg, dict):
            h, w = (int(v) for v in seg["size"])
            counts = seg["counts"]
            if isinstance(counts, list):
                rle = mask_utils.frPyObjects(seg, h, w)
            elif isinstance(counts, str):
                rle = {"size": [h, w], "counts": counts.encode("ascii")}
            elif isinstance(counts, bytes):
                rle = {"size": [h, w], "counts": counts}
            else:
                raise TypeError("counts is neither a string nor a list")
            if size is not None and (h, w) != tuple(size):
                raise SpermInputError(
                    f"{what}: the mask of annotation {ident} is {h}x{w} but image "
                    f"'{file_name}' is {size[0]}x{size[1]} (height x width); "
                    "masks must cover the whole frame."
                )
            return rle
        if size is None:
            raise SpermInputError(
                f"{what}: annotation {ident} has polygon masks but image '{file_name}' has no "
                "height/width; add them to its images entry."
            )
        polys = [[float(v) for v in poly] for poly in seg if len(poly) >= 6]
        if not polys:
            return mask_utils.encode(np.zeros(tuple(size), np.uint8, order="F"))
        return mask_utils.merge(mask_utils.frPyObjects(polys, int(size[0]), int(size[1])))
    except SpermInputError:
        raise
    except (KeyError, TypeError, ValueError, UnicodeEncodeError) as exc:
        raise SpermInputError(
            f"{what}: annotation {ident} has a malformed segmentation ({exc}); "
            "use RLE {{size, counts}} or polygons."
        ) from None


def _image_size(im: dict, anns: list[dict]) -> tuple[int, int] | None:
    if im.get("height") and im.get("width"):
        return int(im["height"]), int(im["width"])
    for a in anns:
        seg = a.get("segmentation")
        if isinstance(seg, dict) and "size" in seg:
            return int(seg["size"][0]), int(seg["size"][1])
    return None


def _segm_scores(
    images: list[dict], gt_anns: list[dict], dets: list[dict], cat: int, max_dets: int
) -> dict[str, float]:
    from pycocotools.cocoeval import COCOeval

    ar_key = f"AR@{max_dets}"
    if not dets:
        return {"AP": 0.0, "AP50": 0.0, ar_key: 0.0}
    gt_coco = _coco(
        {"images": images, "annotations": gt_anns, "categories": [dict(c) for c in CATEGORIES]}
    )
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt_coco.loadRes(dets)
        ev = COCOeval(gt_coco, dt, "segm")
        ev.params.catIds = [cat]
        ev.params.imgIds = [im["id"] for im in images]
        ev.params.maxDets = [1, min(10, max_dets), max_dets]
        # Only area range "all" is read below; the small/medium/large ranges would triple the time.
        ev.params.areaRng, ev.params.areaRngLbl = [ev.params.areaRng[0]], ["all"]
        ev.evaluate()
        ev.accumulate()
    prec = ev.eval["precision"][:, :, 0, 0, -1]  # [IoU thresholds, recall points], area "all"
    rec = ev.eval["recall"][:, 0, 0, -1]

    def mean(a):
        a = a[a > -1]
        return float(a.mean()) if a.size else 0.0

    return {"AP": mean(prec), "AP50": mean(prec[0]), ar_key: mean(rec)}


def _stats(ious: list[float]) -> tuple[float | None, float | None]:
    if not ious:
        return None, None
    return float(np.median(ious)), float(np.mean(ious))


def evaluate_segmentation(
    gt: dict,
    pred: dict,
    gt_dir: str | os.PathLike | None = None,
    pred_dir: str | os.PathLike | None = None,
    *,
    iou_threshold: float = 0.1,
    mask_score_threshold: float = 0.0,
    max_dets: int = 100,
    categories: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Score predicted masks against ground-truth masks, per category.

    Parameters
    ----------
    gt, pred
        COCO dataset dicts with napari-sperm's category ids; ``pred`` annotations carry a
        ``score``. Annotations without ``segmentation`` are ignored on the prediction side.
    gt_dir, pred_dir
        See :func:`napari_sperm.evaluation.match_images`.
    iou_threshold
        Smallest IoU of a matched pair for the matched-instance IoU (COCO AP uses its own
        thresholds, 0.5 to 0.95).
    mask_score_threshold
        Predictions scoring below this are left out of the matched-instance IoU (COCO AP uses all
        scores). The default 0 keeps every mask, since ``napari-sperm segment`` gives unpaired tails
        a score of 0.
    max_dets
        Largest number of masks per image for COCO AP/AR.
    categories
        Category names to score; by default every category both files have masks for.

    Returns
    -------
    dict
        ``images`` (matched), ``iou_threshold``, ``mask_score_threshold``, ``categories``
        (``{name: {AP50, AP, AR@<max_dets>, n_gt, n_pred, images, images_without_masks,
        iou_median, iou_mean, matched, missed, false}}``), ``skipped`` (``{name: reason}`` for
        categories not scored) and ``per_image`` (one dict per scored image and category:
        ``image_id`` (ground truth), ``category``, ``n_gt``, ``n_pred``, ``matched``, ``missed``,
        ``false``, ``iou_median``, ``iou_mean``).
    """
    _check_dataset(gt, "ground truth")
    _check_dataset(pred, "predictions", need_scores=True)
    mapping = match_images(gt, pred, gt_dir, pred_dir)
    if not mapping:
        raise SpermInputError(
            "no prediction image matches a ground-truth image by file_name (and frame); "
            "run detect or segment on the same files the ground truth names."
        )
    if categories is None:
        wanted = list(CATEGORY_IDS.values())
    else:
        unknown = [c for c in categories if c not in CATEGORY_IDS]
        if unknown:
            raise SpermInputError(
                f"unknown categories {', '.join(unknown)}; use {', '.join(CATEGORY_IDS)}."
            )
        wanted = [CATEGORY_IDS[c] for c in categories]
    image_ids = set(mapping.values())
    images = {im["id"]: im for im in gt["images"] if im["id"] in image_ids}
    gt_by: dict[tuple[int, int], list[dict]] = {}
    for a in gt["annotations"]:
        if a["image_id"] in image_ids:
            gt_by.setdefault((a["image_id"], int(a["category_id"])), []).append(a)
    pred_by: dict[tuple[int, int], list[dict]] = {}
    for a in pred["annotations"]:
        if a["image_id"] in mapping and _has_mask(a):
            pred_by.setdefault((mapping[a["image_id"]], int(a["category_id"])), []).append(a)
    gt_masked = {c for (_, c), anns in gt_by.items() if any(_has_mask(a) for a in anns)}
    gt_present = {c for (_, c) in gt_by}
    pred_masked = {c for (_, c) in pred_by}

    result: dict[str, Any] = {
        "images": len(image_ids),
        "iou_threshold": iou_threshold,
        "mask_score_threshold": mask_score_threshold,
        "max_dets": max_dets,
        "categories": {},
        "skipped": {},
        "per_image": [],
    }
    sizes: dict[int, tuple[int, int] | None] = {}
    ar_key = f"AR@{max_dets}"
    for cat in wanted:
        name = _NAMES[cat]
        explicit = categories is not None
        if cat not in gt_masked:
            if cat in pred_masked or (explicit and cat in gt_present):
                result["skipped"][name] = "the ground truth has no masks"
            elif explicit:
                result["skipped"][name] = "no masks in either file"
            continue
        if cat not in pred_masked:
            result["skipped"][name] = "the predictions have no masks"
            continue
        scored, without = [], 0
        for img in sorted(image_ids):
            anns = gt_by.get((img, cat), [])
            if all(_has_mask(a) for a in anns):
                scored.append(img)
            else:
                without += 1
        coco_images, gt_anns, dets = [], [], []
        n_gt = n_pred = matched = missed = false = 0
        all_ious: list[float] = []
        for img in scored:
            im = images[img]
            if img not in sizes:
                sizes[img] = _image_size(
                    im, [a for c in CATEGORY_IDS.values() for a in gt_by.get((img, c), [])]
                )
            size = sizes[img]
            g_anns = gt_by.get((img, cat), [])
            g_rles = [_to_rle(a, size, "ground truth", im["file_name"]) for a in g_anns]
            p_anns = pred_by.get((img, cat), [])
            if size is None and p_anns:
                # no size known from the ground truth (an image without masks of any category)
                size = sizes[img] = _image_size({}, p_anns)
            p_rles = [_to_rle(a, size, "predictions", im["file_name"]) for a in p_anns]
            if size is None:  # nothing on either side: an empty image that adds nothing
                continue
            coco_images.append(
                {"id": img, "height": size[0], "width": size[1], "file_name": im["file_name"]}
            )
            crowd = [int(a.get("iscrowd", 0) or 0) for a in g_anns]
            for r, c in zip(g_rles, crowd):
                gt_anns.append(
                    {
                        "id": len(gt_anns) + 1,
                        "image_id": img,
                        "category_id": cat,
                        "segmentation": r,
                        "area": float(mask_utils.area(r)),
                        "bbox": [float(v) for v in mask_utils.toBbox(r)],
                        "iscrowd": c,
                    }
                )
            for a, r in zip(p_anns, p_rles):
                dets.append(
                    {
                        "image_id": img,
                        "category_id": cat,
                        "segmentation": r,
                        "score": float(a["score"]),
                    }
                )
            g_match = [r for r, c in zip(g_rles, crowd) if not c]
            p_match = [
                r for a, r in zip(p_anns, p_rles) if float(a["score"]) >= mask_score_threshold
            ]
            m = match_masks(g_match, p_match, iou_threshold)
            ious = [iou for _, _, iou in m.pairs]
            med, mean = _stats(ious)
            result["per_image"].append(
                {
                    "image_id": img,
                    "category": name,
                    "n_gt": len(g_match),
                    "n_pred": len(p_match),
                    "matched": len(m.pairs),
                    "missed": len(m.missed),
                    "false": len(m.false),
                    "iou_median": med,
                    "iou_mean": mean,
                }
            )
            all_ious += ious
            n_gt += len(g_match)
            n_pred += len(p_anns)
            matched, missed, false = (
                matched + len(m.pairs),
                missed + len(m.missed),
                false + len(m.false),
            )
        if n_gt == 0:
            result["skipped"][name] = (
                f"no ground-truth masks in the {len(scored)} images whose {name} annotations all "
                "have masks"
            )
            continue
        scores = _segm_scores(coco_images, gt_anns, dets, cat, max_dets)
        med, mean = _stats(all_ious)
        result["categories"][name] = {
            "AP50": scores["AP50"],
            "AP": scores["AP"],
            ar_key: scores[ar_key],
            "n_gt": n_gt,
            "n_pred": n_pred,
            "images": len(coco_images),
            "images_without_masks": without,
            "iou_median": med,
            "iou_mean": mean,
            "matched": matched,
            "missed": missed,
            "false": false,
        }
    return result


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _round(v: float | None) -> float | None:
    return None if v is None else round(float(v), 4)


def per_image_table(
    gt: dict,
    pred: dict,
    gt_dir: str | os.PathLike | None = None,
    pred_dir: str | os.PathLike | None = None,
    *,
    score_threshold: float = 0.3,
    radius_fraction: float = 0.5,
    min_radius: float = 2.0,
    segm: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One row per ground-truth image: counts, centre-distance recall/precision, mask matching.

    Parameters
    ----------
    gt, pred
        COCO dataset dicts with napari-sperm's category ids (as for
        :func:`napari_sperm.evaluation.evaluate_detections`).
    gt_dir, pred_dir
        See :func:`napari_sperm.evaluation.match_images`.
    score_threshold, radius_fraction, min_radius
        Operating point and hit radius of the centre-distance scores
        (:func:`napari_sperm.evaluation.centre_distance_scores`); ``n_pred_*`` counts the
        predictions scoring at least ``score_threshold``.
    segm
        Result of :func:`evaluate_segmentation`; fills the head and tail mask columns.

    Returns
    -------
    list of dict
        Keys :data:`PER_IMAGE_COLUMNS`. ``matched`` says whether a prediction image matched the
        ground-truth image; the other prediction columns are ``None`` when it did not, when the
        predictions have no such category (centre columns), when the ratio has no denominator, or
        when the category's masks were not scored in that image (mask columns).
    """
    mapping = match_images(gt, pred, gt_dir, pred_dir)
    matched_ids = set(mapping.values())
    predicted = {int(a["category_id"]) for a in pred["annotations"]}
    gt_by: dict[tuple[int, int], list] = {}
    for a in gt["annotations"]:
        if not a.get("iscrowd"):
            gt_by.setdefault((a["image_id"], int(a["category_id"])), []).append(a["bbox"])
    pred_by: dict[tuple[int, int], list] = {}
    for a in pred["annotations"]:
        if a["image_id"] in mapping and float(a["score"]) >= score_threshold:
            pred_by.setdefault((mapping[a["image_id"]], int(a["category_id"])), []).append(a)
    segm_by = {(r["image_id"], r["category"]): r for r in (segm or {}).get("per_image", [])}
    rows = []
    for im in gt["images"]:
        img = im["id"]
        ok = img in matched_ids
        row: dict[str, Any] = dict.fromkeys(PER_IMAGE_COLUMNS)
        row.update(
            file_name=im["file_name"], frame=int(im.get("frame", 0) or 0), image_id=img, matched=ok
        )
        for name, cat in CATEGORY_IDS.items():
            g = gt_by.get((img, cat), [])
            row[f"n_gt_{name}"] = len(g)
            if not ok:
                continue
            p = pred_by.get((img, cat), [])
            row[f"n_pred_{name}"] = len(p)
            if cat in predicted:
                tp, fp, fn = centre_distance_scores(
                    np.array(g, float),
                    np.array([a["bbox"] for a in p], float),
                    np.array([a["score"] for a in p], float),
                    radius_fraction,
                    min_radius,
                )
                row[f"centre_recall_{name}"] = _ratio(tp, tp + fn)
                row[f"centre_precision_{name}"] = _ratio(tp, tp + fp)
        for name in _IOU_CATEGORIES:
            s = segm_by.get((img, name))
            if s is not None:
                row[f"iou_median_{name}"] = _round(s["iou_median"])
                row[f"masks_matched_{name}"] = s["matched"]
                row[f"masks_missed_{name}"] = s["missed"]
                row[f"masks_false_{name}"] = s["false"]
        rows.append(row)
    return rows


def write_per_image_csv(path: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    """Write :func:`per_image_table` rows as CSV (atomically); ``None`` becomes an empty cell."""
    with atomic_write(path, "w") as fh:
        w = csv.DictWriter(fh, fieldnames=PER_IMAGE_COLUMNS, lineterminator="\n")
        w.writeheader()
        for row in rows:
            w.writerow({k: ("" if row.get(k) is None else row[k]) for k in PER_IMAGE_COLUMNS})


def _fmt(v: float | None, width: int) -> str:
    return f"{'-':>{width}s}" if v is None else f"{v:{width}.3f}"


def format_segm_report(segm: dict[str, Any]) -> str:
    """The segmentation section of the evaluation report (plain text)."""
    cats = segm["categories"]
    if not cats:
        reasons = "; ".join(f"{k}: {v}" for k, v in segm["skipped"].items())
        return "segmentation: not scored" + (f" ({reasons})" if reasons else " (no masks)")
    ar_key = next((k for k in next(iter(cats.values())) if k.startswith("AR@")), "AR@100")
    lines = [
        f"segmentation (mask IoU; matched-instance IoU >= {segm['iou_threshold']:g}"
        + (
            f", masks scoring >= {segm['mask_score_threshold']:g}"
            if segm["mask_score_threshold"]
            else ""
        )
        + ")",
        f"{'category':10s} {'AP50':>6s} {'AP':>6s} {ar_key:>7s} {'n_gt':>6s} {'n_pred':>7s}   "
        f"{'IoU med':>7s} {'mean':>6s} {'matched':>8s} {'missed':>7s} {'false':>6s}",
    ]
    for name, s in cats.items():
        lines.append(
            f"{name:10s} {s['AP50']:6.3f} {s['AP']:6.3f} {s[ar_key]:7.3f} {s['n_gt']:6d} "
            f"{s['n_pred']:7d}   {_fmt(s['iou_median'], 7)} {_fmt(s['iou_mean'], 6)} "
            f"{s['matched']:8d} {s['missed']:7d} {s['false']:6d}"
        )
    for name, s in cats.items():
        if s["images_without_masks"]:
            lines.append(
                f"{name}: {s['images_without_masks']} image(s) skipped: their ground truth has "
                f"{name} annotations without masks"
            )
    for name, reason in segm["skipped"].items():
        lines.append(f"{name}: not scored ({reason})")
    return "\n".join(lines)
