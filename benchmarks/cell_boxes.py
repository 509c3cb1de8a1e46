"""Whole-cell (``sperm``) boxes: the detector's regressed boxes against boxes from segmentation.

The detector regresses a whole-cell box from the head; ``napari-sperm segment`` writes, per cell, the
mask of head plus traced tail, and its COCO ``bbox``. This runs the real commands on fresh synthetic
data (``napari-sperm synth``, seeds never used in training) and scores both with
``napari-sperm evaluate``: per modality, AP50 / AP / AR@100 of ``sperm`` boxes from both, and of
``head`` boxes from both (the detector's head boxes, and the boxes of ``segment``'s head masks).

Usage: .venv/bin/python benchmarks/cell_boxes.py [N_IMAGES] [--seed S] [--score-threshold T]
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
from pathlib import Path

from napari_sperm.synthetic import modality_names


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="?", type=int, default=4)
    ap.add_argument("--seed", type=int, default=500)
    ap.add_argument("--score-threshold", type=float, default=None, help="for segment")
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


if __name__ == "__main__":
    main()
