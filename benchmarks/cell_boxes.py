"""Whole-cell (``sperm``) boxes: the detector's regressed boxes against boxes from segmentation.

The detector regresses a whole-cell box from the head; ``napari-sperm segment`` writes, per cell, the
mask of head plus traced tail, and its COCO ``bbox``. This runs the real commands on fresh synthetic
data (``napari-sperm synth``, seeds never used in training) and scores both with
``napari-sperm evaluate``: per modality, AP50 / AP / AR@100 of ``sperm`` and ``head`` boxes.

Usage: .venv/bin/python benchmarks/cell_boxes.py [N_IMAGES] [--seed S] [--score-threshold T]
(default 4 images per modality, seed 500; about a minute on 2 CPU cores). Numbers only.
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


def _scores(gt: Path, pred: Path, out: Path) -> dict:
    _run("evaluate", "--gt", str(gt), "--pred", str(pred), "--json", str(out), "--no-segm")
    res = json.loads(out.read_text())
    return {c: res["categories"][c] for c in ("sperm", "head")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="?", type=int, default=4)
    ap.add_argument("--seed", type=int, default=500)
    ap.add_argument("--score-threshold", type=float, default=None, help="for segment")
    a = ap.parse_args()
    print(f"{a.n} images per modality, seed {a.seed}; AP50 / AP / AR@100")
    print(
        f"{'modality':12s} {'sperm: detector':>24s} {'sperm: segment':>24s} {'head: detector':>24s}"
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
            det = _scores(d / "annotations.json", d / "det.json", d / "det_eval.json")
            seg = _scores(d / "annotations.json", d / "seg.json", d / "seg_eval.json")

            def f(m: dict) -> str:
                return f"{m['AP50']:.3f} / {m['AP']:.3f} / {m['AR@100']:.3f}"

            print(
                f"{mod:12s} {f(det['sperm']):>24s} {f(seg['sperm']):>24s} {f(det['head']):>24s}"
                f"   (detect {t_det:.0f} s, segment {t_seg:.0f} s, incl. start-up)",
                flush=True,
            )


if __name__ == "__main__":
    main()
