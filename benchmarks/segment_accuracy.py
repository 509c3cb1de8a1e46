"""Segmentation accuracy of the classic engine per modality, against synthetic ground truth.

For each modality, fresh fields (seeds 0..N-1) go through detection (heads down to the weak-head
score 0.1, as `napari-sperm segment` does; or, with ``--truth-boxes``,
the true head boxes) and :func:`napari_sperm.segmentation.segment`. A predicted cell matches a true
one when their head masks overlap with IoU >= 0.3 (one-to-one, best first). Printed per modality:
true cells, matched, missed, false cells (predicted heads matching nothing), median head IoU and
median tail IoU over matched cells whose visible tail has at least 20 pixels (a matched cell with no
tail counts as tail IoU 0), the share of those tails with IoU >= 0.5, the median precision and
recall of the predicted tail (over matched cells that got one) with a one-pixel tolerance (``P@1px``, ``R@1px``: a pixel counts as
found when the other mask has a pixel within one pixel of it; near 1 with a low IoU means the tail
was traced along its whole length and the masks differ only at their edges), and frames per second
of segmentation alone (detection not included).

``--tail-finder ridge`` uses the ridge filter instead of the tail network (the default, ``net``);
``--tail-finder both`` prints both, one after the other, on the same fields. ``--tail-flips 1,4``
prints a line per number of flipped copies the tail network is averaged over (default: 4 only).

Usage: .venv/bin/python benchmarks/segment_accuracy.py [N_FIELDS] [--truth-boxes] [--modality M]
           [--tail-finder net|ridge|both|PATH] [--tail-flips 1,2,4,8]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy import ndimage as ndi

from napari_sperm.detection import FrameDetections, load_detector
from napari_sperm.segmentation.segment import WEAK_SCORE_THRESHOLD, segment
from napari_sperm.synthetic import make_field, modality_names


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def _near_pr(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """Precision and recall of ``pred`` against ``truth`` where a pixel counts as found when the
    other mask has a pixel within one pixel of it (8-neighbourhood): high values with a low IoU
    mean the masks differ at their boundary, not in where the tail runs."""
    both = truth | pred
    if not pred.any() or not truth.any():
        return 0.0, 0.0
    rr, cc = np.nonzero(both)
    sl = (slice(max(rr.min() - 1, 0), rr.max() + 2), slice(max(cc.min() - 1, 0), cc.max() + 2))
    t, q = truth[sl], pred[sl]
    ring = np.ones((3, 3), bool)
    prec = float((q & ndi.binary_dilation(t, ring)).sum() / q.sum())
    rec = float((t & ndi.binary_dilation(q, ring)).sum() / t.sum())
    return prec, rec


def _match(
    truth_heads: list[np.ndarray], pred_heads: list[np.ndarray]
) -> list[tuple[int, int, float]]:
    pairs = []
    for i, t in enumerate(truth_heads):
        for j, p in enumerate(pred_heads):
            v = _iou(t, p)
            if v >= 0.3:
                pairs.append((v, i, j))
    used_t, used_p, out = set(), set(), []
    for v, i, j in sorted(pairs, reverse=True):
        if i not in used_t and j not in used_p:
            used_t.add(i)
            used_p.add(j)
            out.append((i, j, v))
    return out


def evaluate(
    modality: str, n: int, detector, truth_boxes: bool, tail_finder="net", flips: int | None = None
) -> dict:
    head_ious, tail_ious, near = [], [], []
    n_true = n_pred = n_matched = 0
    seconds = 0.0
    for seed in range(n):
        f = make_field(modality, seed=seed)
        cells = [s for s in f.sperm if s.head.area > 0]
        if truth_boxes:
            boxes = np.array([s.head_box() for s in cells], float).reshape(-1, 4)
            k = len(cells)
            det = FrameDetections(boxes, np.ones(k), np.full(k, 2), np.arange(1, k + 1))
        else:
            det = detector.detect(f.image, WEAK_SCORE_THRESHOLD)  # heads >= 0.3, weak heads below
        t0 = time.perf_counter()
        res = segment(f.image, det, tail_finder=tail_finder, tail_flips=flips)[0]
        seconds += time.perf_counter() - t0
        preds = [r for r in res.sperm if r.head is not None]
        truth_h = [s.head.to_full(f.shape) for s in cells]
        pred_h = [r.head.to_full(f.shape) for r in preds]
        matches = _match(truth_h, pred_h)
        n_true += len(cells)
        n_pred += len(preds)
        n_matched += len(matches)
        for i, j, v in matches:
            head_ious.append(v)
            s, r = cells[i], preds[j]
            if s.tail.area < 20:
                continue
            pred_tail = r.tail.to_full(f.shape) if r.tail is not None else np.zeros(f.shape, bool)
            true_tail = s.tail.to_full(f.shape)
            tail_ious.append(_iou(true_tail, pred_tail))
            if r.tail is not None:
                near.append(_near_pr(true_tail, pred_tail))
    tail = np.asarray(tail_ious)
    return {
        "cells": n_true,
        "matched": n_matched,
        "missed": n_true - n_matched,
        "false": n_pred - n_matched,
        "head_iou": float(np.median(head_ious)) if head_ious else 0.0,
        "tail_iou": float(np.median(tail)) if tail.size else 0.0,
        "tail_ok": float((tail >= 0.5).mean()) if tail.size else 0.0,
        "near_p": float(np.median([v[0] for v in near])) if near else 0.0,
        "near_r": float(np.median([v[1] for v in near])) if near else 0.0,
        "fps": n / seconds if seconds else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="?", type=int, default=4)
    ap.add_argument("--truth-boxes", action="store_true")
    ap.add_argument("--modality", action="append")
    ap.add_argument("--tail-finder", default="net")
    ap.add_argument("--tail-flips", default="4", help="comma-separated, e.g. 1,4")
    a = ap.parse_args()
    torch.set_num_threads(2)
    # as napari-sperm segment: the network's head boxes (segment outlines every head itself)
    detector = None if a.truth_boxes else load_detector(None, "cpu", refine_boxes=False)
    print(
        f"classic engine, {'true head boxes' if a.truth_boxes else 'detector boxes'}, {a.n} fields"
    )
    print(
        f"{'modality':12s} {'cells':>6s} {'matched':>7s} {'missed':>6s} {'false':>6s} "
        f"{'head IoU':>8s} {'tail IoU':>8s} {'tail>=.5':>8s} {'P@1px':>6s} {'R@1px':>6s} {'fps':>6s}"
    )
    finders = ["net", "ridge"] if a.tail_finder == "both" else [a.tail_finder]
    runs = [
        (finder, int(k) if finder != "ridge" else None)
        for finder in finders
        for k in (a.tail_flips.split(",") if finder != "ridge" else ["-"])
    ]
    for mod in a.modality or modality_names():
        for finder, flips in runs:
            m = evaluate(mod, a.n, detector, a.truth_boxes, finder, flips)
            tag = finder if flips is None else f"{finder} x{flips}"
            label = f"{mod} ({tag})" if len(runs) > 1 else mod
            print(
                f"{label:12s} {m['cells']:6d} {m['matched']:7d} {m['missed']:6d} {m['false']:6d} "
                f"{m['head_iou']:8.3f} {m['tail_iou']:8.3f} {m['tail_ok']:8.2f} "
                f"{m['near_p']:6.3f} {m['near_r']:6.3f} {m['fps']:6.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
