"""COCO export / import speed and size, and the validator on a large file.

    .venv/bin/python benchmarks/coco_io.py [--frames 20] [--annotations 50000]

Prints: export and import seconds and frames per second for the sample-like phase-contrast stack
(ground truth: every head and tail mask), the JSON size, whether export -> import -> export is
identical, peak Python memory of the import, and how long the validator takes on a dataset with
``--annotations`` compressed-RLE annotations.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from napari_sperm.annotations.export import export_coco
from napari_sperm.annotations.load import load_coco
from napari_sperm.annotations.validate import coco_problems
from napari_sperm.coco import mask_annotation, new_dataset
from napari_sperm.synthetic.dataset import write_dataset


def _validator_dataset(n: int) -> dict:
    rng = np.random.default_rng(1)
    ds = new_dataset("validator benchmark")
    ds["images"] = [
        {"id": k, "width": 640, "height": 480, "file_name": "s.tif", "frame": k - 1}
        for k in range(1, 51)
    ]
    yy, xx = np.ogrid[:480, :640]
    pool = []
    for _ in range(50):
        y, x = rng.integers(0, 440), rng.integers(0, 600)
        mask = (yy - y - 20) ** 2 / 60 + (xx - x - 20) ** 2 / 300 < 1
        pool.append(mask_annotation(mask, 1, 1, "head", {"sperm_id": 1}, 0.9))
    ds["annotations"] = [dict(pool[i % 50], id=i, image_id=i % 50 + 1) for i in range(1, n + 1)]
    return ds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--annotations", type=int, default=50_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        gt = write_dataset(root / "gt", "phase-high", n_images=1, frames=args.frames, seed=7)
        stacks = load_coco(gt).stacks
        t = time.perf_counter()
        first = export_coco(stacks, root / "a")
        t_export = time.perf_counter() - t
        tracemalloc.start()
        t = time.perf_counter()
        back = load_coco(first.path)
        t_import = time.perf_counter() - t
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        second = export_coco(back.stacks, root / "b")
        same = (
            json.loads(first.path.read_text())["annotations"]
            == json.loads(second.path.read_text())["annotations"]
        )
        size = first.path.stat().st_size
        print(
            f"phase-high stack: {args.frames} frames of 640x480, {first.n_annotations} annotations"
        )
        print(
            f"  export: {t_export:.2f} s ({args.frames / t_export:.1f} frames/s), JSON {size / 1e6:.2f} MB"
        )
        print(
            f"  import: {t_import:.2f} s ({args.frames / t_import:.1f} frames/s), peak Python memory {peak / 2**20:.0f} MiB"
        )
        print(f"  export -> import -> export identical: {same}")
    ds = _validator_dataset(args.annotations)
    t = time.perf_counter()
    problems = coco_problems(ds)
    t_val = time.perf_counter() - t
    print(
        f"validator: {args.annotations} RLE annotations in {t_val * 1000:.0f} ms ({len(problems)} problems)"
    )


if __name__ == "__main__":
    main()
