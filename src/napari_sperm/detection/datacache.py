"""Training data cache: synthetic fields rendered once, normalised, stored per pyramid level.

Only used for training (``scripts/train_detector.py``); seeds are always >= 1_000_000 so they never
meet the test and evaluation seeds (< 1_000_000).
"""

from __future__ import annotations

import os
from multiprocessing import get_context

import numpy as np
import torch

from .levels import build_pyramid
from .normalize import normalize_frame

__all__ = ["MODALITY_LEVELS", "TRAIN_SEED_BASE", "build_cache", "render_field"]

TRAIN_SEED_BASE = 1_000_000

# Which pyramid levels each modality is trained at, and the sampling weight of each level.
# The first entry is the level that owns the modality at inference; the others teach the network
# the true (too small / too large) head size there so the level gating rejects them.
MODALITY_LEVELS = {
    "phase-low": {0: 0.75, 1: 0.25},
    "phase-high": {1: 0.6, 0: 0.2, 2: 0.2},
    "brightfield": {1: 0.6, 0: 0.2, 2: 0.2},
    "stained": {2: 0.7, 1: 0.2, 0: 0.1},
}
"""Levels missing from the cache (stained level 0) are upsampled from the finest cached level."""


def render_field(args: tuple[str, int]) -> dict:
    """Render one field -> {"levels": {k: float16 (3,h,w)}, "boxes": (N, 9) float32}.

    ``boxes`` columns: head x, y, w, h, sperm x, y, w, h (frame px), true head length (px).
    """
    from napari_sperm.synthetic import make_field

    modality, seed = args
    fld = make_field(modality, seed=seed)
    x = torch.from_numpy(normalize_frame(fld.image))[None]
    levels = sorted(k for k in MODALITY_LEVELS[modality] if k > 0 or modality != "stained")
    pyr = build_pyramid(x, max(levels) + 1)
    rows = []
    for t in fld.sperm:
        hb, sb = t.head_box(), t.sperm_box()
        if hb is None or sb is None:
            continue
        rows.append([*hb, *sb, t.head_length])
    boxes = np.asarray(rows, np.float32).reshape(-1, 9)
    return {
        "modality": modality,
        "seed": seed,
        "levels": {k: pyr[k][0].to(torch.float16).numpy() for k in levels},
        "boxes": boxes,
    }


def build_cache(
    counts: dict[str, int], seed_base: int = TRAIN_SEED_BASE, workers: int | None = None, log=print
) -> list[dict]:
    """Render ``counts[modality]`` fields per modality with seeds ``seed_base + i``.

    Seeds are offset per modality (``+ 100_000 * index``) so modalities never share a seed.
    """
    jobs = []
    for mi, (mod, n) in enumerate(sorted(counts.items())):
        jobs += [(mod, seed_base + 100_000 * mi + i) for i in range(n)]
    # slowest first for better load balance
    order = {"stained": 0, "brightfield": 1, "phase-low": 2, "phase-high": 3}
    jobs.sort(key=lambda j: order.get(j[0], 9))
    workers = workers or max(1, min(os.cpu_count() or 1, 8))
    out = []
    torch.set_num_threads(1)
    with get_context("spawn").Pool(workers) as pool:
        for i, rec in enumerate(pool.imap_unordered(render_field, jobs, chunksize=2)):
            out.append(rec)
            if (i + 1) % 100 == 0 or i + 1 == len(jobs):
                log(f"cache: {i + 1}/{len(jobs)} fields")
    out.sort(key=lambda r: (r["modality"], r["seed"]))
    return out
