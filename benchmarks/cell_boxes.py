"""Whole-cell (``sperm``) boxes: the detector's regressed boxes against boxes from segmentation.

The detector regresses a whole-cell box from the head; ``napari-sperm segment`` writes, per cell, the
mask of head plus traced tail, and its COCO ``bbox``. This runs the real commands on fresh synthetic
data (``napari-sperm synth``, seeds never used in training) and scores both with
``napari-sperm evaluate``: per modality, AP50 / AP / AR@100 of ``sperm`` boxes from both, and of
``head`` boxes from both (the detector's head boxes, and the boxes of ``segment``'s head masks).

``--misses`` also sorts the true cells that no ``segment`` whole-cell box finds (box IoU >= 0.5 with
any of them) by the first reason that applies, looking at the cell whose head box fits the true head
best: its head was not found (no head box with IoU >= 0.5); it got no tail; its tail is another
cell's (under 30 % of the traced tail lies within 2 px of the true one); its tail was cut short
(under 70 % of the true tail lies within 2 px of the traced one); its tail runs on into other pixels
(under 80 % of the traced tail within 2 px of the true one); none of these.

Usage: .venv/bin/python benchmarks/cell_boxes.py [N_IMAGES] [--seed S] [--score-threshold T]
       [--misses] [--tail-flips K]
(default 4 images per modality, seed 500; about a minute on 2 CPU cores). Numbers only. Phase-low
fields hold 300-500 cells, so they are scored with up to 1000 detections per image (AR@1000).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils
from scipy import ndimage as ndi

from napari_sperm.synthetic import modality_names

MISS_KINDS = ("head not found", "no tail", "another cell's tail", "tail cut short", "tail runs on",
              "other")  # fmt: skip


def _run(*args: str) -> None:
    cmd = [sys.executable, "-m", "napari_sperm", *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(args[:1])} failed: {done.stderr.strip()[-500:]}")


def _scores(gt: Path, pred: Path, out: Path, max_dets: int) -> dict:
    _run(
        "evaluate",
        *("--gt", str(gt), "--pred", str(pred), "--json", str(out), "--no-segm"),
        *("--max-dets", str(max_dets)),
    )
    res = json.loads(out.read_text())
    return {c: res["categories"][c] for c in ("sperm", "head")}


def _cells(data: dict) -> dict[str, dict[int, dict[int, dict]]]:
    """``{image file name: {sperm id: {category id: annotation}}}``; images by base name."""
    names = {im["id"]: Path(im["file_name"]).name for im in data["images"]}
    out: dict[str, dict[int, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    for a in data["annotations"]:
        out[names[a["image_id"]]][a["attributes"]["sperm_id"]][a["category_id"]] = a
    return out


def _box_iou(a: list, b: list) -> np.ndarray:
    if not a or not b:
        return np.zeros((len(a), len(b)))
    return np.asarray(mask_utils.iou(a, b, [0] * len(b)))


def _within(a: np.ndarray, b: np.ndarray, px: int = 2) -> float:
    """Share of ``a``'s pixels within ``px`` pixels of ``b``."""
    return float((a & ndi.binary_dilation(b, iterations=px)).sum() / max(a.sum(), 1))


def missed_cells(truth: dict, pred: dict) -> dict[str, int]:
    """Count true cells that no predicted whole-cell box finds, by the first reason that applies."""
    gt, pr = _cells(truth), _cells(pred)
    out = {"cells": 0, "missed": 0, **{k: 0 for k in MISS_KINDS}}
    for name in sorted(gt):
        g = [v for v in gt[name].values() if 1 in v and 2 in v]
        p = [v for v in pr.get(name, {}).values() if 1 in v]
        cell = _box_iou([v[1]["bbox"] for v in g], [v[1]["bbox"] for v in p])
        head = _box_iou(
            [v[2]["bbox"] for v in g], [v[2]["bbox"] if 2 in v else [0, 0, 0, 0] for v in p]
        )
        out["cells"] += len(g)
        for i, t in enumerate(g):
            if len(p) and cell[i].max() >= 0.5:
                continue
            out["missed"] += 1
            best = p[int(head[i].argmax())] if len(p) and head[i].max() >= 0.5 else None
            if best is None:
                kind = "head not found"
            elif 3 not in best:
                kind = "no tail"
            elif 3 not in t:
                kind = "other"
            else:
                q = mask_utils.decode(best[3]["segmentation"]).astype(bool)
                m = mask_utils.decode(t[3]["segmentation"]).astype(bool)
                prec, rec = _within(q, m), _within(m, q)
                kind = (
                    "another cell's tail" if prec < 0.3 else "tail cut short" if rec < 0.7
                    else "tail runs on" if prec < 0.8 else "other"
                )  # fmt: skip
            out[kind] += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="?", type=int, default=4)
    ap.add_argument("--seed", type=int, default=500)
    ap.add_argument("--score-threshold", type=float, default=None, help="for segment")
    ap.add_argument("--misses", action="store_true", help="sort cells segment's boxes miss")
    ap.add_argument("--tail-flips", type=int, default=None, help="for segment (default: its own)")
    a = ap.parse_args()
    print(f"{a.n} images per modality, seed {a.seed}; AP50 / AP / AR@100 (phase-low: AR@1000)")
    print(
        f"{'modality':12s} {'sperm: detector':>24s} {'sperm: segment':>24s} {'head: detector':>24s}"
        f" {'head: segment':>24s}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for mod in modality_names():
            d = Path(tmp) / mod
            _run(
                "synth",
                str(d),
                "--modality",
                mod,
                "--n-images",
                str(a.n),
                "--seed",
                str(a.seed),
                "-q",
            )
            t0 = time.perf_counter()
            _run("detect", str(d / "images"), "-o", str(d / "det.json"), "-q")
            t_det = time.perf_counter() - t0
            extra = (
                [] if a.score_threshold is None else ["--score-threshold", str(a.score_threshold)]
            )
            if a.tail_flips is not None:
                extra += ["--tail-flips", str(a.tail_flips)]
            t0 = time.perf_counter()
            _run("segment", str(d / "images"), "-o", str(d / "seg.json"), "-q", *extra)
            t_seg = time.perf_counter() - t0
            # Phase-low fields hold 300-500 cells: COCO's 100 detections per image would cap them.
            md = 1000 if mod == "phase-low" else 100
            det = _scores(d / "annotations.json", d / "det.json", d / "det_eval.json", md)
            seg = _scores(d / "annotations.json", d / "seg.json", d / "seg_eval.json", md)

            def f(m: dict, md: int = md) -> str:
                return f"{m['AP50']:.3f} / {m['AP']:.3f} / {m[f'AR@{md}']:.3f}"

            print(
                f"{mod:12s} {f(det['sperm']):>24s} {f(seg['sperm']):>24s} {f(det['head']):>24s}"
                f" {f(seg['head']):>24s}"
                f"   (detect {t_det:.0f} s, segment {t_seg:.0f} s, incl. start-up)",
                flush=True,
            )
            if a.misses:
                m = missed_cells(
                    json.loads((d / "annotations.json").read_text()),
                    json.loads((d / "seg.json").read_text()),
                )
                why = ", ".join(f"{k} {m[k]}" for k in MISS_KINDS)
                print(f"{'':12s} segment misses {m['missed']} of {m['cells']} cells: {why}")


if __name__ == "__main__":
    main()
