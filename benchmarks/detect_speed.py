"""Detector speed: frames per second at 640x480 and 1280x1024, batch sizes 1, 4, 8.

Runs under ``torch.inference_mode()`` (inside :meth:`Detector.detect`) with
``torch.set_num_threads(THREADS)`` (default 2), on synthetic frames (phase-high and stained), the
whole pipeline included (normalisation, pyramid, network, decoding, merging, and the head boxes
fitted to the heads' outlines, :mod:`napari_sperm.detection.refine`), with the detector's defaults
(2 flipped copies, fitted head boxes, score threshold 0.3): what ``napari-sperm detect`` does.
Peak memory: the process's maximum resident set size (``resource.getrusage``). Adds CUDA figures
when CUDA is present.

``--flips 1,4`` also times, at batch 1, averaging over other numbers of flipped copies of each
frame. ``--no-refine`` also times, at batch 1 and for 2 and each ``--flips`` value, the network's
own head boxes (``--no-refine-boxes``). ``--baseline`` adds, in the same run, the network as
trained (batch norm not folded, channels-first layout; see :mod:`napari_sperm.detection.fused`) at
batch 1, and the ratio of the two.

Usage: .venv/bin/python benchmarks/detect_speed.py [--threads 2] [--frames 24] [--baseline]
       [--flips 1,4] [--no-refine]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from napari_sperm.detection import load_detector
from napari_sperm.synthetic import make_field


def bench(det, frames: np.ndarray, batch: int, repeats: int = 2, flips=None, refine=None) -> float:
    """Frames per second, best of ``repeats`` (None: the detector's default flips and refine)."""
    det.detect(frames[:batch], 0.3, batch, flips, refine)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        det.detect(frames, 0.3, batch, flips, refine)
        if det.device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return len(frames) / best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--baseline", action="store_true", help="also time the unfolded network")
    ap.add_argument("--flips", default="", help="other flipped copies to time, e.g. 1,4")
    ap.add_argument(
        "--no-refine", action="store_true", help="also time the network's own head boxes"
    )
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sets = {
        "640x480 (phase-high)": np.stack(
            [make_field("phase-high", seed=s).image for s in range(4)]
        ),
        "1280x1024 (stained RGB)": np.stack(
            [make_field("stained", seed=s).image for s in range(2)]
        ),
    }
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, torch threads {torch.get_num_threads()}")
    others = [int(v) for v in a.flips.split(",") if v.strip()]
    for dev in devices:
        det = load_detector(None, dev)
        print(f"defaults: {det.flips} flipped copies, head boxes fitted: {det.refine_boxes}")
        for name, imgs in sets.items():
            n = a.frames if "640" in name else max(8, a.frames // 3)
            frames = np.concatenate([imgs] * (-(-n // len(imgs))))[:n]
            if dev == "cuda":
                torch.cuda.reset_peak_memory_stats()
            for b in (1, 4, 8):
                fps = bench(det, frames, b)
                extra = ""
                if dev == "cuda":
                    extra = f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
                print(f"{dev:4s} {name:24s} batch {b}: {fps:6.1f} frames/s{extra}", flush=True)
                if a.baseline and b == 1:
                    fast, det.net = det.net, det.model
                    slow = bench(det, frames, b)
                    det.net = fast
                    print(
                        f"{dev:4s} {name:24s} batch {b}: {slow:6.1f} frames/s with the network as "
                        f"trained (folded + channels-last: {fps / slow:.2f}x)",
                        flush=True,
                    )
            for k in [v for v in others if v != det.flips]:
                fps = bench(det, frames, 1, flips=k)
                print(f"{dev:4s} {name:24s} batch 1: {fps:6.1f} frames/s, {_copies(k)}", flush=True)
            for k in sorted({det.flips, *others}) if a.no_refine else []:
                fps = bench(det, frames, 1, flips=k, refine=False)
                print(
                    f"{dev:4s} {name:24s} batch 1: {fps:6.1f} frames/s, {_copies(k)}, "
                    "network's own head boxes",
                    flush=True,
                )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory (whole process, incl. test frames): {rss:.0f} MiB")


def _copies(k: int) -> str:
    return f"{k} flipped cop{'y' if k == 1 else 'ies'}"


if __name__ == "__main__":
    main()
