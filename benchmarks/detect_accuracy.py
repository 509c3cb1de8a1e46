"""Detector accuracy per modality on fresh synthetic fields (pycocotools COCOeval, bbox).

Ground truth from ``make_field``: ``head_box`` -> category 2 (head), ``sperm_box`` -> category 1
(sperm, whole cell). Reports per modality and class: AP (IoU .5:.95), AP50 and AR@100 (maxDets 1,
10, 100), and the same at maxDets 1000 (``AP50@1k``, ``AR@1k``) for dense phase-low frames with more
than 100 cells. Seeds 0..N-1 (never used in training: training seeds are >= 1_000_000).

The detector runs with its defaults, as ``napari-sperm detect`` does: 2 flipped copies
(``--flips K`` for others) and every head box fitted to the head's outline in the frame
(:mod:`napari_sperm.detection.refine`), with each edge placed by the edge classifier
(:mod:`napari_sperm.detection.head_edges`). ``--no-edges`` uses the outline's box as it is;
``--no-refine`` scores the network's own head boxes (``--no-refine-boxes``).

``--misses`` also sorts the true heads that no head box finds (IoU >= 0.5 at score >= 0.3, the
default threshold) by what the head looks like, first that applies: overlapping another head (more
than 10 % of its pixels under another head), cut by the frame border, seen edge-on, or none of these.

Usage: .venv/bin/python benchmarks/detect_accuracy.py [N_FIELDS] [--weights PATH] [--json OUT]
       [--misses] [--flips K] [--no-refine | --no-edges] [--first-seed S]
(default 8 fields per modality, about 1-2 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from pycocotools import mask as mask_utils

from napari_sperm.detection import load_detector
from napari_sperm.detection.detector import DEFAULT_FLIPS
from napari_sperm.detection.evaluate import coco_eval_fields
from napari_sperm.detection.refine import refine_head_boxes
from napari_sperm.synthetic import MODALITIES, make_field


def missed_heads(fields, dets, score_threshold: float = 0.3) -> dict[str, int]:
    """Count true heads with no head box (IoU >= 0.5, score >= threshold), by kind."""
    out = {"heads": 0, "missed": 0, "overlapping": 0, "border": 0, "edge-on": 0, "other": 0}
    for f, d in zip(fields, dets):
        cells = [s for s in f.sperm if s.head.area > 0]
        if not cells:
            continue
        gt = np.array([s.head_box() for s in cells], float)
        keep = (d.classes == 2) & (d.scores >= score_threshold)
        pred = d.boxes[keep].astype(float)
        if len(pred):  # pycocotools box IoU, (n_gt, n_pred)
            best = np.asarray(mask_utils.iou(gt.tolist(), pred.tolist(), [0] * len(pred))).max(1)
        else:
            best = np.zeros(len(gt))
        # How many heads cover each pixel, summed crop by crop (no full frame per cell).
        cover = np.zeros(f.shape, np.int16)
        for s in cells:
            (r0, c0), m = s.head.offset, s.head.mask
            cover[r0 : r0 + m.shape[0], c0 : c0 + m.shape[1]] += m
        h, w = f.shape
        out["heads"] += len(cells)
        for k in np.flatnonzero(best < 0.5).tolist():
            s, (x, y, bw, bh) = cells[k], gt[k]
            (r0, c0), m = s.head.offset, s.head.mask
            out["missed"] += 1
            if (cover[r0 : r0 + m.shape[0], c0 : c0 + m.shape[1]][m] > 1).mean() > 0.1:
                out["overlapping"] += 1
            elif x <= 0 or y <= 0 or x + bw >= w or y + bh >= h:
                out["border"] += 1
            elif s.edge_on:
                out["edge-on"] += 1
            else:
                out["other"] += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="?", type=int, default=8)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--threshold", type=float, default=0.05)
    ap.add_argument(
        "--flips", type=int, default=None, help="flipped copies averaged (1, 2, 4, 8; default 2)"
    )
    ap.add_argument("--json", default=None)
    ap.add_argument("--misses", action="store_true", help="sort missed heads by kind")
    how = ap.add_mutually_exclusive_group()
    how.add_argument("--no-refine", action="store_true", help="the network's own head boxes")
    how.add_argument("--no-edges", action="store_true", help="the outline's box as it is")
    a = ap.parse_args()
    torch.set_num_threads(2)
    flips = DEFAULT_FLIPS if a.flips is None else a.flips
    det = load_detector(a.weights, "cpu", flips, refine_boxes=not (a.no_refine or a.no_edges))
    names = list(MODALITIES) if not isinstance(MODALITIES, dict) else list(MODALITIES.keys())
    results = {}
    print(
        f"{'modality':12s} {'cells':>6s} | {'head AP50':>9s} {'AP':>6s} {'AR@100':>6s} "
        f"{'AP50@1k':>7s} {'AR@1k':>6s} | {'sperm AP50':>10s} {'AP':>6s} {'AR@100':>6s} "
        f"{'AP50@1k':>7s} {'AR@1k':>6s} | s/frame"
    )
    for mod in names:
        fields = [make_field(mod, seed=s) for s in range(a.first_seed, a.first_seed + a.n)]
        t0 = time.perf_counter()
        dets = det.detect(np.stack([f.image for f in fields]), a.threshold, 4)
        if a.no_edges:
            dets = [refine_head_boxes(f.image, d, edges=False) for f, d in zip(fields, dets)]
        dt = (time.perf_counter() - t0) / len(fields)
        m = coco_eval_fields(fields, dets)
        m["seconds_per_frame"] = dt
        results[mod] = m
        h, s = m["head"], m["sperm"]
        print(
            f"{mod:12s} {m['n_cells']:6d} | {h['AP50']:9.3f} {h['AP']:6.3f} {h['AR100']:6.3f} "
            f"{h['AP50_1000']:7.3f} {h['AR1000']:6.3f} | {s['AP50']:10.3f} {s['AP']:6.3f} "
            f"{s['AR100']:6.3f} {s['AP50_1000']:7.3f} {s['AR1000']:6.3f} | {dt:.3f}",
            flush=True,
        )
        if a.misses:
            mm = missed_heads(fields, dets)
            m["missed_heads"] = mm
            print(
                f"{'':12s} missed heads at score >= 0.3: {mm['missed']} of {mm['heads']} "
                f"(overlapping another head {mm['overlapping']}, cut by the border {mm['border']}, "
                f"edge-on {mm['edge-on']}, other {mm['other']})",
                flush=True,
            )
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(
                {
                    "n_fields": a.n,
                    "first_seed": a.first_seed,
                    "threshold": a.threshold,
                    "metrics": results,
                },
                fh,
                indent=1,
            )


if __name__ == "__main__":
    main()
